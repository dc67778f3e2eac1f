"""Apps for the process tests: a class given as the app, a failing lifespan, a slow request."""

from __future__ import annotations

import anyio

from tests.integration.apps import respond
from tricorn.server.asgi_types import Receive, Scope, Send


class SimpleASGIApp:
    """A class whose instances are ASGI apps: ``tricorn module:SimpleASGIApp`` serves one."""

    def __init__(self) -> None:
        self.greeting = b"class app"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await respond(send, 200, self.greeting)


async def failing_startup(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})


async def hangs(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await anyio.sleep(3600)
