"""An app written for trio: it imports trio and opens a nursery in every request."""

from __future__ import annotations

import trio

from tests.integration.minimal_lifespan import lifespan_only
from tricorn.server.asgi_types import Receive, Scope, Send


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await lifespan_only(receive, send)
        return
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep, 0)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"trio-ok"})
