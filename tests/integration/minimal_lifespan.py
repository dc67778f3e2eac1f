"""The smallest lifespan handler, for test apps that only need the protocol completed."""

from __future__ import annotations

from tricorn.server.asgi_types import Receive, Send


async def lifespan_only(receive: Receive, send: Send) -> None:
    """Answer startup and shutdown with their ``complete`` messages, then return."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
