"""An app written for asyncio alone, using what Django and Quart use: the running loop,
``asyncio.gather`` and a loop-bound future. On trio it fails as they do."""

from __future__ import annotations

import asyncio

from tests.integration.minimal_lifespan import lifespan_only
from tricorn.server.asgi_types import Receive, Scope, Send


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await lifespan_only(receive, send)
        return
    loop = asyncio.get_running_loop()
    future: asyncio.Future[bytes] = loop.create_future()
    loop.call_soon(future.set_result, b"asyncio")
    first, second = await asyncio.gather(future, asyncio.sleep(0, b"-ok"))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": first + second})
