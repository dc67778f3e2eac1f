"""Request-body pacing on a real tricorn: ``body_read_timeout`` and ``body_min_rate``.

A body that stops (idle gap) or trickles (under the minimum rate after the grace period)
gets 408 and a closed connection on HTTP/1.1, RST_STREAM(CANCEL) on HTTP/2 with the other
streams served on; the app's ``receive`` returns ``http.disconnect``. Waiting the server
imposes itself (the app does not read: backpressure) never counts against the client.
Small settings keep the tests fast; the client's sleeps between bytes are the input.
Every test runs on trio and on asyncio.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import anyio
import pytest

from tests import helpers
from tests.helpers import open_raw, read_response, read_until_closed, serving
from tests.integration.apps import read_body, respond
from tests.integration.h2_client import CANCEL, H2Client, Response, h2_connection
from tricorn.server.asgi_types import Message, Receive, Scope, Send

pytestmark = pytest.mark.anyio

#: Settings for a trickle: a client under 200 bytes/s is cut after half a second of waiting.
RATE = {"body_min_rate": 200, "body_min_rate_grace": 0.5, "body_read_timeout": 5.0}
#: Settings for an idle gap: 0.3 s without a byte while the app waits; no rate limit.
IDLE = {"body_read_timeout": 0.3, "body_min_rate": 0}
_SEND_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


@pytest.fixture(params=helpers.HTTP1_PARSERS)
def http1_parser(request: pytest.FixtureRequest) -> Iterator[str]:
    """The HTTP/1.1 tests run on the three HTTP/1.1 implementations."""
    yield from helpers.use_http1_parser(request.param)


@dataclass
class Recorder:
    """An app that reads the body and records every message it receives, by path."""

    respond_first: bool = False
    messages: dict[str, list[Message]] = field(default_factory=dict)
    done: dict[str, anyio.Event] = field(default_factory=dict)

    def finished(self, path: str) -> anyio.Event:
        return self.done.setdefault(path, anyio.Event())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        received = self.messages.setdefault(path, [])
        try:
            if self.respond_first:  # the response is under way while the body comes in
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"started", "more_body": True})
            total = 0
            while True:
                message = await receive()
                received.append(message)
                if message["type"] == "http.disconnect":
                    return
                total += len(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            if self.respond_first:
                await send({"type": "http.response.body", "body": b""})
            else:
                await respond(send, 200, str(total).encode())
        finally:
            self.finished(path).set()

    def types(self, path: str) -> list[str]:
        return [message["type"] for message in self.messages.get(path, [])]

    def body(self, path: str) -> bytes:
        return b"".join(message.get("body", b"") for message in self.messages.get(path, []))


async def _trickle(stream: anyio.abc.ByteStream, stop: anyio.Event, interval: float) -> None:
    """Send one body byte every ``interval`` seconds until ``stop`` or the server closes."""
    while not stop.is_set():
        try:
            await stream.send(b"x")
        except _SEND_ERRORS:
            return
        await anyio.sleep(interval)


async def _read_while_trickling(stream: anyio.abc.ByteStream, interval: float) -> bytes:
    """Trickle the body and read what the server answers until it closes the connection."""
    stop = anyio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(_trickle, stream, stop, interval)
        try:
            answer = await read_until_closed(stream, timeout=10)
        finally:
            stop.set()
    return answer


# --- HTTP/1.1 --------------------------------------------------------------------------


async def test_http11_trickled_body_gets_408_and_close_and_the_app_sees_disconnect(
    http1_parser: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tricorn.error")
    app = Recorder()
    async with serving(app, **RATE) as server:
        stream = await open_raw(server)
        # The finding: Content-Length 1,000,000 and a byte now and then (20 bytes/s here).
        await stream.send(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
        answer = await _read_while_trickling(stream, 0.05)
        with anyio.fail_after(5):
            await app.finished("/up").wait()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in answer.lower()
    types = app.types("/up")
    assert types[-1] == "http.disconnect"
    assert set(types[:-1]) == {"http.request"}
    assert 0 < len(app.body("/up")) < 1000000
    records = [r for r in caplog.records if "body_min_rate" in r.getMessage()]
    assert [r.levelno for r in records] == [logging.INFO]
    assert records[0].getMessage().startswith("127.0.0.1:")
    assert "answering 408" in records[0].getMessage()


async def test_http11_idle_gap_longer_than_body_read_timeout_gets_408(
    http1_parser: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tricorn.error")
    caplog.set_level(logging.INFO, logger="tricorn.access")
    app = Recorder()
    async with serving(app, access_log=True, **IDLE) as server:
        stream = await open_raw(server)
        await stream.send(
            b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"y" * 10
        )  # ... and then nothing
        answer = await read_until_closed(stream, timeout=10)
        with anyio.fail_after(5):
            await app.finished("/up").wait()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert app.body("/up") == b"y" * 10
    assert app.types("/up")[-1] == "http.disconnect"
    assert any(
        r.getMessage().startswith("127.0.0.1:") and "body_read_timeout" in r.getMessage()
        for r in caplog.records
    )
    access = [r.getMessage() for r in caplog.records if r.name == "tricorn.access"]
    assert len(access) == 1 and '"POST /up HTTP/1.1" 408 ' in access[0]


async def test_http11_slow_body_after_the_response_started_closes_without_408(
    http1_parser: str,
) -> None:
    app = Recorder(respond_first=True)
    async with serving(app, **IDLE) as server:
        stream = await open_raw(server)
        await stream.send(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nyyy")
        answer = await read_until_closed(stream, timeout=10)
        with anyio.fail_after(5):
            await app.finished("/up").wait()
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"408" not in answer
    assert b"started" in answer
    assert not answer.endswith(b"0\r\n\r\n")  # the chunked response was cut, not completed
    assert app.types("/up")[-1] == "http.disconnect"


async def test_http11_app_that_does_not_read_is_not_blamed_on_the_client(
    http1_parser: str,
) -> None:
    """Backpressure: the app leaves the body unread for longer than both limits allow; the
    server stops reading meanwhile, and none of that waiting counts against the client."""
    release = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await release.wait()
        body = await read_body(receive)
        await respond(send, 200, str(len(body)).encode())

    total = 16 * 1024 * 1024
    settings = {"body_read_timeout": 0.3, "body_min_rate": 1000, "body_min_rate_grace": 0.3}
    async with serving(app, **settings) as server:
        stream = await open_raw(server)
        await stream.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % total)
        pushed = 0
        with anyio.move_on_after(1.0):  # the client is held up by the server for a second
            while pushed < total:
                await stream.send(b"y" * 65536)
                pushed += 65536
        assert pushed < total  # the server did stop reading
        release.set()

        async def push_rest() -> None:
            remaining = total - pushed
            while remaining:
                size = min(remaining, 65536)
                await stream.send(b"y" * size)
                remaining -= size

        async with anyio.create_task_group() as group:
            group.start_soon(push_rest)
            response = await read_response(stream, timeout=30)
        await stream.aclose()
    assert response.startswith(b"HTTP/1.1 200 ")
    assert response.endswith(str(total).encode())


async def test_http11_steady_client_above_the_minimum_rate_is_never_cut(
    http1_parser: str,
) -> None:
    """10 kB/s against a 200 bytes/s minimum: the body arrives whole and is answered."""
    app = Recorder()
    chunk, count = b"z" * 500, 20
    async with serving(app, **{**RATE, "body_read_timeout": 1.0}) as server:
        stream = await open_raw(server)
        await stream.send(
            b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (len(chunk) * count)
        )
        for _ in range(count):
            await stream.send(chunk)
            await anyio.sleep(0.05)
        response = await read_response(stream, timeout=10)
        await stream.aclose()
    assert response.startswith(b"HTTP/1.1 200 ")
    assert response.endswith(str(len(chunk) * count).encode())
    assert "http.disconnect" not in app.types("/up")


async def test_zero_turns_both_limits_off() -> None:
    """With both limits at 0 a body may pause for as long as it likes (here far past what
    the settings of the other tests allow, within the bound) and is answered when done."""
    app = Recorder()
    async with serving(app, body_read_timeout=0, body_min_rate=0) as server:
        stream = await open_raw(server)
        await stream.send(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabc")
        with anyio.move_on_after(1.0):  # the pause; nothing is to come from the server
            assert await stream.receive() == b"", "the server answered during the pause"
        await stream.send(b"def")
        response = await read_response(stream, timeout=10)
        await stream.aclose()
    assert response.startswith(b"HTTP/1.1 200 ")
    assert response.endswith(b"6")
    assert app.body("/up") == b"abcdef"


# --- HTTP/2 ----------------------------------------------------------------------------


async def _pace(client: H2Client, interval: float) -> None:
    """Read frames for ``interval`` seconds (the pause between two trickled bytes)."""
    with anyio.move_on_after(interval):
        while True:
            await client.next_frame()


async def test_http2_trickled_stream_is_reset_while_the_others_are_served(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tricorn.error")
    app = Recorder()
    async with serving(app, **RATE) as server, h2_connection(server.host, server.port) as client:
        # Frames read while pacing may be cut short by the pause's end; nothing there awaits
        # a send once the window acknowledgements are off (the responses here are small).
        client.auto_window = False
        slow = await client.request(
            "POST", "/slow", [(b"content-length", b"1000000")], end_stream=False
        )
        fast = await client.request("POST", "/fast", body=b"hello")
        with anyio.fail_after(10):
            while not client.stream_ended(slow):
                await client.send_data(slow, b"x")
                await _pace(client, 0.05)
        reset = Response(slow, client.stream_frames(slow)).reset
        answered = await client.response(fast)
        after = await client.response(await client.request("POST", "/after", body=b"abc"))
        with anyio.fail_after(5):
            await app.finished("/slow").wait()
    assert reset is not None and reset.error_code == CANCEL
    assert not Response(slow, client.stream_frames(slow)).heads  # no response, just the reset
    assert (answered.status, answered.body) == (200, b"5")
    assert (after.status, after.body) == (200, b"3")
    assert not any(frame.kind == "GOAWAY" for frame in client.frames)
    assert app.types("/slow")[-1] == "http.disconnect"
    assert 0 < len(app.body("/slow")) < 1000000
    assert any(
        r.getMessage().startswith("127.0.0.1:")
        and "body_min_rate" in r.getMessage()
        and f"resetting stream {slow}" in r.getMessage()
        for r in caplog.records
    )


async def test_http2_idle_stream_is_reset_after_body_read_timeout() -> None:
    app = Recorder()
    async with serving(app, **IDLE) as server, h2_connection(server.host, server.port) as client:
        stream_id = await client.request(
            "POST", "/idle", [(b"content-length", b"100")], end_stream=False
        )
        await client.send_data(stream_id, b"y" * 10)
        response = await client.response(stream_id, timeout=10)
        with anyio.fail_after(5):
            await app.finished("/idle").wait()
        after = await client.response(await client.request("GET", "/after"))
    assert response.reset is not None and response.reset.error_code == CANCEL
    assert app.body("/idle") == b"y" * 10
    assert app.types("/idle")[-1] == "http.disconnect"
    assert after.status == 200


async def test_http2_stream_held_back_by_the_connection_window_is_not_cut() -> None:
    """Stream 1's app does not read: its body fills the connection window. Stream 3's app
    waits for a body the client cannot send (no window) for longer than body_read_timeout:
    the server holds the client back, so stream 3 is not reset and completes once stream
    1's app reads."""
    release = anyio.Event()
    recorder = Recorder()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/hog":
            await release.wait()
        await recorder(scope, receive, send)

    window = 65535
    settings: dict[str, object] = {
        **IDLE,
        "h2_initial_window_size": window,
        "h2_connection_window_size": window,
    }
    async with (
        serving(app, **settings) as server,
        h2_connection(server.host, server.port) as client,
    ):
        hog = await client.request("POST", "/hog", end_stream=False)
        await client.send_data(hog, b"h" * window, end_stream=True)  # all the connection window
        waiting = await client.request("POST", "/waiting", end_stream=False)
        assert client.sendable(waiting) == 0
        with anyio.move_on_after(1.0):  # the bound: over three body_read_timeouts
            await client.wait_for(lambda f: f.kind == "RST_STREAM")
        assert not client.stream_ended(waiting)
        release.set()
        await client.send_body(waiting, b"w" * 1000)  # as the hog's app reads, windows open
        answered = await client.response(waiting)
        hogged = await client.response(hog)
    assert (answered.status, answered.body) == (200, b"1000")
    assert (hogged.status, hogged.body) == (200, str(window).encode())
    assert "http.disconnect" not in recorder.types("/waiting")
