"""A Starlette app that says what it sees of itself behind a proxy (tests/e2e/test_nginx.py):
the client, the scheme, its own URL as ``request.url_for`` builds it, and a redirect."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket


def _seen(connection: HTTPConnection) -> dict[str, Any]:
    client = connection.client
    return {
        "client": [client.host, client.port] if client else None,
        "scheme": connection.url.scheme,
        "url": str(connection.url),
        "root_path": connection.scope.get("root_path", ""),
        "server": list(connection.scope["server"]) if connection.scope.get("server") else None,
        "host": connection.headers.get("host"),
    }


async def whoami(request: Request) -> Response:
    return JSONResponse({**_seen(request), "url_for": str(request.url_for("whoami"))})


async def go(request: Request) -> Response:
    """A redirect to ``whoami``, as a login page would send one."""
    return RedirectResponse(request.url_for("whoami"), status_code=303)


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json(_seen(websocket))
    await websocket.close()


app = Starlette(
    routes=[
        Route("/whoami", whoami, name="whoami"),
        Route("/go", go),
        WebSocketRoute("/ws", ws),
    ]
)
