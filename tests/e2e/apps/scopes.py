"""An app that answers with its own scope: HTTP as JSON, WebSocket as one JSON text message
(tests/e2e/test_haproxy.py checks what a proxy in front changed in it)."""

from __future__ import annotations

from tests.integration import apps, ws_apps
from tricorn.server.asgi_types import Receive, Scope, Send


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await ws_apps.scope_dump(scope, receive, send)
    else:
        await apps.scope_dump(scope, receive, send)
