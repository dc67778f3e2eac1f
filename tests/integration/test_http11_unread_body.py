"""A request body the app leaves unread: the next request on the connection must not suffer.

The server drains a Content-Length body of up to ``max_unread_body_drain`` bytes after the
response and keeps the connection; a longer or chunked body (or the h11 parser, which cannot
drain) gets ``connection: close`` and a graceful close (FIN, then the client's bytes read and
dropped), so the client's unsent body neither becomes its next request nor resets the
connection under the response. Three parsers, both backends.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import httpx
import pytest

from tests import helpers
from tests.helpers import open_raw, read_response, serving
from tests.integration import apps
from tricorn.server.asgi_types import Receive, Scope, Send

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True, params=helpers.HTTP1_PARSERS)
def http1_parser(request: pytest.FixtureRequest) -> Iterator[str]:
    yield from helpers.use_http1_parser(request.param)


async def answer_without_reading(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await apps.respond(send, 200, b"ok")


async def _read_to_eof(stream: anyio.abc.ByteStream) -> tuple[bytes, bool]:
    """Everything until the server's close; and whether it closed with a FIN (not a reset)."""
    chunks = []
    with anyio.fail_after(10):
        while True:
            try:
                chunks.append(await stream.receive())
            except anyio.EndOfStream:
                return b"".join(chunks), True
            except anyio.BrokenResourceError:
                return b"".join(chunks), False


@pytest.mark.parametrize("size", [1024, 100 * 1024, 2 * 1024 * 1024])
async def test_unread_bodies_do_not_break_the_next_keep_alive_request(size: int) -> None:
    body = b"x" * size
    async with serving(answer_without_reading) as server, httpx.AsyncClient() as client:
        for _ in range(15):
            posted = await client.post(server.url, content=body)
            got = await client.get(server.url)
            assert (posted.status_code, posted.text) == (200, "ok")
            assert (got.status_code, got.text) == (200, "ok")


async def test_an_unread_body_within_the_limit_is_drained_and_the_connection_kept(
    http1_parser: str,
) -> None:
    total = 100_000
    async with serving(answer_without_reading) as server:
        stream = await open_raw(server)
        await stream.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % total)
        await stream.send(b"y" * 1000)
        response = await read_response(stream)  # answered before the body is all sent
        assert response.startswith(b"HTTP/1.1 200")
        if http1_parser == "h11":
            # h11 cannot drain: it says so and closes gracefully once the body is in.
            assert b"connection: close" in response.lower()
            await stream.send(b"y" * (total - 1000))
            rest, clean = await _read_to_eof(stream)
            assert (rest, clean) == (b"", True)
        else:
            assert b"connection: close" not in response.lower()
            # The rest of the body, then the next request in the same segment.
            await stream.send(b"y" * (total - 1000) + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            second = await read_response(stream)
            assert second.startswith(b"HTTP/1.1 200") and second.endswith(b"ok")
        await stream.aclose()


@pytest.mark.parametrize("chunked", [False, True])
async def test_an_unread_body_past_the_limit_gets_connection_close_and_a_clean_close(
    chunked: bool,
) -> None:
    total = 300_000
    async with serving(answer_without_reading, max_unread_body_drain=1000) as server:
        stream = await open_raw(server)
        if chunked:
            head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            first, rest = b"3e8\r\n" + b"y" * 1000 + b"\r\n", b"%x\r\n" % total + b"y" * total
            rest += b"\r\n0\r\n\r\n"
        else:
            head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % total
            first, rest = b"y" * 1000, b"y" * (total - 1000)
        await stream.send(head + first)
        response = await read_response(stream)
        assert response.startswith(b"HTTP/1.1 200") and response.endswith(b"ok")
        assert b"connection: close" in response.lower()
        # The client goes on sending what it had started: the server reads and drops it
        # until the client's FIN, so no unread byte turns its close into a reset.
        await stream.send(rest)
        await stream.send_eof()
        after, clean = await _read_to_eof(stream)
        assert (after, clean) == (b"", True)
        await stream.aclose()
