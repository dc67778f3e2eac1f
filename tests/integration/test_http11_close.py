"""``Connection: close`` responses: everything sent arrives before the close, on both
backends (the asyncio stream's close must not drop what its transport still holds)."""

from __future__ import annotations

import anyio
import pytest

from tests.helpers import open_raw, serving
from tricorn.server.asgi_types import Receive, Scope, Send

pytestmark = pytest.mark.anyio

SIZE = 5 * 1024 * 1024


@pytest.mark.parametrize("pieces", [1, 80])
async def test_a_large_close_response_read_slowly_arrives_whole(pieces: int) -> None:
    finished = anyio.Event()
    body = bytes(range(256)) * (SIZE // 256)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-length", str(SIZE).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        step = SIZE // pieces
        for start in range(0, SIZE, step):
            piece = body[start : start + step]
            more = start + step < SIZE
            await send({"type": "http.response.body", "body": piece, "more_body": more})
        finished.set()

    async with serving(app) as server:
        stream = await open_raw(server)
        await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = bytearray()
        clean = False
        with anyio.fail_after(30):
            while True:
                try:
                    received += await stream.receive(4096)  # a slow reader: small reads
                except anyio.EndOfStream:
                    clean = True
                    break
                except anyio.BrokenResourceError:
                    break
        await stream.aclose()
    head, _, rest = bytes(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"connection: close" in head.lower()
    assert finished.is_set()
    assert len(rest) == SIZE
    assert rest == body
    assert clean  # a FIN, not a reset
