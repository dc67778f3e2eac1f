"""The one ASGI app every server under test runs.

- ``GET /``         -> 200 ``Hello, world!`` (text/plain, with Content-Length)
- ``GET /download`` -> 200 with a 10 MiB body, sent in 1 MiB chunks
- ``POST /upload``  -> reads the whole body (without keeping it) and answers its size
- ``/ws``           -> WebSocket echo (text and bytes)
- anything else     -> 404

It uses nothing but the ASGI 3 interface, so every server runs the same code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HELLO = b"Hello, world!"
MIB = 1024 * 1024
DOWNLOAD_SIZE = 10 * MIB
_CHUNK = b"x" * MIB
_CHUNKS = DOWNLOAD_SIZE // MIB

_HELLO_HEADERS = [
    (b"content-type", b"text/plain"),
    (b"content-length", str(len(HELLO)).encode()),
]
_DOWNLOAD_HEADERS = [
    (b"content-type", b"application/octet-stream"),
    (b"content-length", str(DOWNLOAD_SIZE).encode()),
]


async def _respond(send: Send, status: int, body: bytes) -> None:
    headers = [
        (b"content-type", b"text/plain"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _http(scope: Scope, receive: Receive, send: Send) -> None:
    path = scope["path"]
    method = scope["method"]
    if path == "/" and method in ("GET", "HEAD"):
        await send({"type": "http.response.start", "status": 200, "headers": _HELLO_HEADERS})
        await send({"type": "http.response.body", "body": HELLO})
    elif path == "/download" and method == "GET":
        await send({"type": "http.response.start", "status": 200, "headers": _DOWNLOAD_HEADERS})
        for i in range(_CHUNKS):
            more = i < _CHUNKS - 1
            await send({"type": "http.response.body", "body": _CHUNK, "more_body": more})
    elif path == "/upload" and method in ("POST", "PUT"):
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        await _respond(send, 200, str(size).encode())
    else:
        await _respond(send, 404, b"Not Found")


async def _websocket(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["path"] != "/ws":
        await send({"type": "websocket.close", "code": 1008})
        return
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif kind == "websocket.receive":
            data = message.get("bytes")
            if data is not None:
                await send({"type": "websocket.send", "bytes": data})
            else:
                await send({"type": "websocket.send", "text": message.get("text") or ""})
        else:  # websocket.disconnect
            return


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The benchmark app (ASGI 3)."""
    kind = scope["type"]
    if kind == "http":
        await _http(scope, receive, send)
    elif kind == "websocket":
        await _websocket(scope, receive, send)
    elif kind == "lifespan":
        await _lifespan(receive, send)
