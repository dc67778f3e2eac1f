"""Graceful shutdown and long-lived responses: an app that streams and waits in ``receive()``
for the disconnect (an event stream, a long poll) gets ``http.disconnect`` as soon as the
shutdown starts, over HTTP/1.1 and HTTP/2, so the shutdown does not wait out
``graceful_timeout`` for it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import h2.exceptions
import httpx
import pytest

from tests.helpers import open_raw, read_until_closed, serving
from tricorn.server.asgi_types import Message, Receive, Scope, Send

pytestmark = pytest.mark.anyio


class EventStream:
    """Sends one event, then waits in ``receive()`` until the disconnect; records what it got."""

    def __init__(self) -> None:
        self.streaming = anyio.Event()
        self.received: list[str] = []
        self.finished = anyio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"data: one\n\n", "more_body": True})
        self.streaming.set()
        try:
            while True:
                message: Message = await receive()
                self.received.append(message["type"])
                if message["type"] == "http.disconnect":
                    return
        finally:
            self.finished.set()


@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "h2c"])
async def test_a_waiting_event_stream_gets_disconnect_when_the_shutdown_starts(
    http2: bool,
) -> None:
    app = EventStream()
    # A graceful timeout far longer than the test's own bound: only the disconnect can end
    # the stream in time.
    with anyio.fail_after(20):
        async with serving(app, graceful_timeout=600) as server:
            client = httpx.AsyncClient(http1=not http2, http2=http2, timeout=20)
            async with client, client.stream("GET", server.url) as response:
                chunks = response.aiter_raw()
                first = await chunks.__anext__()
                await app.streaming.wait()
                server.shutdown.set()
                await app.finished.wait()
                rest = b""
                try:
                    async for chunk in chunks:  # the server ends the cut stream
                        rest += chunk
                except (httpx.HTTPError, h2.exceptions.ProtocolError):
                    pass  # cut: httpx's h2 refuses the RST_STREAM that follows our GOAWAY
    assert first == b"data: one\n\n"
    assert rest == b""
    assert app.received[-1] == "http.disconnect"
    assert "http.request" in app.received  # the (empty) request body came first


async def test_a_response_that_does_not_wait_in_receive_still_finishes() -> None:
    """Only apps waiting for the disconnect are told: a download in flight completes."""
    release = anyio.Event()
    started = anyio.Event()

    async def download(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a" * 1000, "more_body": True})
        started.set()
        await release.wait()
        await send({"type": "http.response.body", "body": b"b" * 1000})

    with anyio.fail_after(20):
        async with (
            serving(download, graceful_timeout=600) as server,
            httpx.AsyncClient(timeout=20) as client,
            client.stream("GET", server.url) as response,
        ):
            chunks = response.aiter_raw()
            body = await chunks.__anext__()
            await started.wait()
            server.shutdown.set()
            release.set()
            async for chunk in chunks:
                body += chunk
    assert body == b"a" * 1000 + b"b" * 1000


# --- HTTP/1.1 keep-alive connections at shutdown (shutdown_idle_drain) ----------------------

GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


async def _hello(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    headers = [(b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"hi"})


class _ShutdownLine(logging.Handler):
    """Sets ``started`` at the "Shutting down" line, which the server logs right before it
    tells every connection (in the same step of its task: no request can come between)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.started = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Shutting down"):
            self.started.set()


@asynccontextmanager
async def _watching_shutdown() -> AsyncIterator[_ShutdownLine]:
    logger = logging.getLogger("tricorn.error")
    handler, level = _ShutdownLine(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def _shutdown_started(line: _ShutdownLine) -> None:
    with anyio.fail_after(10):
        await line.started.wait()


async def _read_response(stream: anyio.abc.ByteStream, data: bytes = b"") -> bytes:
    with anyio.fail_after(10):
        while not data.endswith(b"\r\n\r\nhi"):
            data += await stream.receive()
    return data


async def test_a_request_on_an_idle_keep_alive_connection_at_shutdown_is_answered() -> None:
    """The client sends its next request on a connection it believes open, just after the
    shutdown started: it is answered with connection: close, then the server closes cleanly."""
    async with _watching_shutdown() as line, serving(_hello, shutdown_idle_drain=10) as server:
        stream = await open_raw(server)
        await stream.send(GET)
        first = await _read_response(stream)
        server.shutdown.set()
        await _shutdown_started(line)
        await stream.send(GET)
        second = await read_until_closed(stream)  # an EOF: a reset would raise
        await stream.aclose()
    assert b"connection: close" not in first.lower()
    assert second.startswith(b"HTTP/1.1 200 ") and second.endswith(b"\r\n\r\nhi")
    assert b"\r\nconnection: close\r\n" in second.lower()


async def test_an_idle_keep_alive_connection_closes_after_the_drain() -> None:
    async with (
        _watching_shutdown() as line,
        serving(_hello, shutdown_idle_drain=0.2, graceful_timeout=600) as server,
    ):
        stream = await open_raw(server)
        await stream.send(GET)
        await _read_response(stream)
        server.shutdown.set()
        await _shutdown_started(line)
        assert await read_until_closed(stream) == b""  # our FIN, after the drain window
        with anyio.fail_after(10):
            await stream.send_eof()  # the client's FIN ends the server's staged close


async def test_a_response_promised_keep_alive_before_the_shutdown_keeps_its_promise() -> None:
    """Its head went out without connection: close before the shutdown: the client may send
    its next request at once; that one is answered (with connection: close), not cut."""
    release = anyio.Event()
    heads = 0

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal heads
        if scope["type"] != "http":
            return
        heads += 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if heads == 1:  # chunked: the head leaves with the first piece
            await send({"type": "http.response.body", "body": b"h", "more_body": True})
            await release.wait()
        await send({"type": "http.response.body", "body": b"hi"})

    async with _watching_shutdown() as line, serving(app, shutdown_idle_drain=10) as server:
        stream = await open_raw(server)
        await stream.send(GET)
        head = b""
        with anyio.fail_after(10):
            while b"\r\n\r\n" not in head:
                head += await stream.receive()
        server.shutdown.set()
        await _shutdown_started(line)
        release.set()
        first = head
        with anyio.fail_after(10):
            while not first.endswith(b"0\r\n\r\n"):
                first += await stream.receive()
        await stream.send(GET)
        second = await read_until_closed(stream)
        await stream.aclose()
    assert b"connection: close" not in first.lower()
    assert second.startswith(b"HTTP/1.1 200 ") and b"\r\nconnection: close\r\n" in second.lower()
