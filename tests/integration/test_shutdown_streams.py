"""Graceful shutdown and long-lived responses: an app that streams and waits in ``receive()``
for the disconnect (an event stream, a long poll) gets ``http.disconnect`` as soon as the
shutdown starts, over HTTP/1.1 and HTTP/2, so the shutdown does not wait out
``graceful_timeout`` for it."""

from __future__ import annotations

import anyio
import h2.exceptions
import httpx
import pytest

from tests.helpers import serving
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
