"""The ASGI app the HTTP/2 attack tests serve from a tricorn subprocess.

Paths:

- ``/hang``: reads the request until the client goes away (``http.disconnect``) or 30 s pass,
  then answers 200 if it still can. It is counted as a live app instance meanwhile.
- ``/stream``: streams 1 GiB of zeros in 64 KiB chunks (``?kib=N``: N KiB chunks; no
  content-length); stops when the client goes away. Counted as live too.
- ``/sit``: never reads the request body; answers 200 after ``SIT_SECONDS`` (or when the
  client goes away first, as far as tricorn tells it: the body is simply never read).
- ``/count``: JSON ``{"live": N, "peak": N, "started": N}``: app instances of ``/hang`` and
  ``/stream`` alive now, the most alive at once since the process started, and how many
  ever started. The counters are module state: one server process, one worker.
- anything else: 200 ``ok``.
"""

from __future__ import annotations

import json

import anyio

from tricorn.server.asgi_types import Receive, Scope, Send

HANG_SECONDS = 30.0
SIT_SECONDS = 3.0
CHUNK = bytes(65536)

_chunks: dict[int, bytes] = {}
_counts = {"live": 0, "peak": 0, "started": 0}


async def _respond(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _hang(receive: Receive, send: Send) -> None:
    with anyio.move_on_after(HANG_SECONDS):
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
    await _respond(send, 200, b"waited", b"text/plain")


async def _stream(scope: Scope, send: Send) -> None:
    query = scope["query_string"]
    chunk = CHUNK
    if query.startswith(b"kib="):  # one shared chunk per size: the app itself holds little
        size = int(query[4:]) * 1024
        chunk = _chunks.setdefault(size, bytes(size))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for _ in range((1 << 30) // len(chunk)):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return  # lifespan: nothing to set up
    path = scope["path"]
    if path == "/count":
        await _respond(send, 200, json.dumps(_counts).encode(), b"application/json")
        return
    if path == "/sit":
        await anyio.sleep(SIT_SECONDS)
        await _respond(send, 200, b"sat", b"text/plain")
        return
    if path not in ("/hang", "/stream"):
        await _respond(send, 200, b"ok", b"text/plain")
        return
    _counts["live"] += 1
    _counts["started"] += 1
    _counts["peak"] = max(_counts["peak"], _counts["live"])
    try:
        if path == "/hang":
            await _hang(receive, send)
        else:
            await _stream(scope, send)
    except OSError:
        pass  # the client went away mid-response (tricorn raises ClientDisconnected)
    finally:
        _counts["live"] -= 1
