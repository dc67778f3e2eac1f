"""The access log on a real tricorn, with real clients, on both backends.

One line per HTTP response (HTTP/1.1 and HTTP/2) and per WebSocket session (over HTTP/1.1
and HTTP/2), also for responses cut short (the client left, the app failed after the
start, the shutdown ended them) and marked by their ``outcome``; JSON lines; and a
``log_config`` file applied by the ``tricorn`` command (a real process), in one process and
in worker processes.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from websockets.exceptions import InvalidStatus
from wsproto.events import CloseConnection, TextMessage

from tests.helpers import RunningServer, ipv6_loopback, open_raw, read_until_closed, serving
from tests.integration import ws_apps
from tests.integration.h2_client import h2_connection
from tests.integration.test_process import stop, tricorn
from tests.integration.test_websocket import (
    H2WebSocketClient,
    RawWebSocket,
    ws_close,
    ws_connect,
    ws_url,
)
from tricorn.constants import ACCESS_LOGGER
from tricorn.server.asgi_types import Receive, Scope, Send

pytestmark = pytest.mark.anyio

GUARD = 10.0


class Lines(logging.Handler):
    """Collects the access log's records (their text and their typed fields)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self._written: anyio.Event | None = None

    def emit(self, record: logging.LogRecord) -> None:
        # Called in the event loop's thread: the server writes the line from its tasks.
        self.records.append(record)
        if self._written is not None:
            self._written.set()

    async def wait(self, count: int = 1) -> list[logging.LogRecord]:
        """The first ``count`` records, once written."""
        with anyio.fail_after(GUARD):
            while len(self.records) < count:
                self._written = anyio.Event()
                await self._written.wait()
        return self.records[:count]

    async def one(self) -> tuple[str, dict[str, Any]]:
        [record] = await self.wait(1)
        fields: dict[str, Any] = record.access  # type: ignore[attr-defined]
        return record.getMessage(), fields

    async def next(self) -> tuple[str, dict[str, Any]]:
        """The line after the one ``next`` returned last (the first one at first)."""
        self._taken = getattr(self, "_taken", 0) + 1
        record = (await self.wait(self._taken))[-1]
        fields: dict[str, Any] = record.access  # type: ignore[attr-defined]
        return record.getMessage(), fields


@pytest.fixture
def lines() -> Iterator[Lines]:
    logger = logging.getLogger(ACCESS_LOGGER)
    handler = Lines()
    saved = (logger.level, logger.disabled)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.disabled = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.disabled = saved[1]


# --- apps ----------------------------------------------------------------------------------


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    body = b"hello"
    headers = [(b"content-length", b"5")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Streaming:
    """Sends 16 KiB body pieces until ``send`` raises (the client left); records that."""

    def __init__(self) -> None:
        self.stopped = anyio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"x" * 16384, "more_body": True})
        finally:
            self.stopped.set()


async def raise_after_start(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"part", "more_body": True})
    raise RuntimeError("broken after the start")


async def raise_before_start(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    raise RuntimeError("broken before the start")


class LongPoll:
    """Never answers: waits for ``http.disconnect`` (the client leaving, or the shutdown)."""

    def __init__(self) -> None:
        self.waiting = anyio.Event()
        self.disconnected = anyio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.waiting.set()
        while (await receive())["type"] != "http.disconnect":
            pass
        self.disconnected.set()


# --- a server, one request, its line -------------------------------------------------------


async def logged_get(
    lines: Lines,
    app: Any,
    path: str,
    *,
    http2: bool = False,
    headers: dict[str, str] | None = None,
    **settings: Any,
) -> tuple[httpx.Response | httpx.HTTPError, str, dict[str, Any]]:
    """GET ``path`` from ``app`` served with the access log on (httpx; HTTP/2 with prior
    knowledge if ``http2``): the response (or the client's error) and the line."""
    async with (
        serving(app, access_log=True, **settings) as server,
        httpx.AsyncClient(base_url=server.url, http1=not http2, http2=http2) as client,
    ):
        response: httpx.Response | httpx.HTTPError
        try:
            response = await client.get(path, headers=headers)
        except httpx.HTTPError as error:
            response = error
        text, fields = await lines.one()
    return response, text, fields


async def request_started(
    server: RunningServer, path: str, started: anyio.Event
) -> anyio.abc.SocketStream:
    """A raw connection whose GET ``path`` has reached the app (``started`` is set)."""
    stream = await open_raw(server)
    await stream.send(f"GET {path} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
    with anyio.fail_after(GUARD):
        await started.wait()
    return stream


async def raw_exchange(server: RunningServer, request: bytes) -> bytes:
    """Send ``request`` on a new raw connection; what the server sent until it closed."""
    async with await open_raw(server) as stream:
        await stream.send(request)
        return await read_until_closed(stream)


# --- HTTP lines ----------------------------------------------------------------------------


async def test_http11_line_has_path_target_query_request_id(lines: Lines) -> None:
    headers = {"x-request-id": "req-42", "user-agent": "tester/1", "referer": "http://r/"}
    response, text, fields = await logged_get(lines, hello, "/a%20b/c?x=1&y=%22", headers=headers)
    assert isinstance(response, httpx.Response) and response.status_code == 200
    port = fields["client"].rpartition(":")[2]
    assert text == (
        f'127.0.0.1:{port} - "GET /a%20b/c?x=1&y=%22 HTTP/1.1" 200 5 '
        f"{fields['duration_ms']:.1f}ms ok"
    )
    assert fields["path"] == "/a b/c"
    assert fields["target"] == "/a%20b/c?x=1&y=%22"
    assert fields["query"] == "x=1&y=%22"
    assert fields["request_id"] == "req-42"
    assert fields["user_agent"] == "tester/1"
    assert fields["referer"] == "http://r/"
    assert (fields["status"], fields["bytes"], fields["outcome"]) == (200, 5, "ok")
    assert fields["close_code"] is None


async def test_http2_line(lines: Lines) -> None:
    response, text, fields = await logged_get(lines, hello, "/h2?q=2", http2=True)
    assert isinstance(response, httpx.Response) and response.http_version == "HTTP/2"
    assert '"GET /h2?q=2 HTTP/2" 200 5 ' in text
    assert text.endswith("ms ok")
    assert fields["protocol"] == "HTTP/2"
    assert fields["request_id"] is None


async def test_a_request_id_is_passed_through_not_made_up(lines: Lines) -> None:
    template = "{request_id} {path}"
    async with (
        serving(hello, access_log=True, access_log_format=template) as server,
        httpx.AsyncClient() as client,
    ):
        await client.get(f"{server.url}/without")
        await client.get(f"{server.url}/with", headers={"x-request-id": 'a"b'})
        records = await lines.wait(2)
    assert [r.getMessage() for r in records] == ["- /without", "a\\x22b /with"]


async def test_control_characters_cannot_forge_a_line(lines: Lines) -> None:
    async with serving(hello, access_log=True) as server, await open_raw(server) as stream:
        # %0A decodes to a newline in the scope's path: the line escapes it.
        await stream.send(b"GET /x%0Afake HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        text, fields = await lines.one()
    assert fields["path"] == "/x\nfake"
    assert "\n" not in text
    assert "/x%0Afake" in text  # {target}: as sent


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
async def test_an_ipv6_client_is_in_brackets(lines: Lines) -> None:
    async with serving(hello, access_log=True, bind=["[::1]:0"]) as server:
        async with httpx.AsyncClient() as client:
            await client.get(f"http://[::1]:{server.addresses[0].address[1]}/six")
        text, fields = await lines.one()
    assert fields["client"].startswith("[::1]:")
    assert text.startswith("[::1]:")
    assert fields["client"].rpartition(":")[2].isdigit()


async def test_json_lines_have_every_field_typed(lines: Lines) -> None:
    headers = {"x-request-id": "r1"}
    _, text, _ = await logged_get(lines, hello, "/j?k=v", headers=headers, access_log_json=True)
    line = json.loads(text)
    assert line["status"] == 200 and isinstance(line["status"], int)
    assert isinstance(line["duration_ms"], float)
    assert line["bytes"] == 5
    assert (line["path"], line["target"], line["query"]) == ("/j", "/j?k=v", "k=v")
    assert line["request_id"] == "r1"
    assert line["referer"] is None and line["close_code"] is None
    assert line["protocol"] == "HTTP/1.1" and line["outcome"] == "ok"
    assert line["time"].endswith("Z")
    assert line["client"].startswith("127.0.0.1:")


# --- responses cut short -------------------------------------------------------------------


async def test_http11_client_leaving_mid_body_is_logged_as_client_gone(lines: Lines) -> None:
    app = Streaming()
    async with serving(app, access_log=True) as server:
        stream = await open_raw(server)
        await stream.send(b"GET /stream HTTP/1.1\r\nHost: h\r\n\r\n")
        assert (await stream.receive()).startswith(b"HTTP/1.1 200 ")
        await stream.aclose()
        with anyio.fail_after(GUARD):
            await app.stopped.wait()
        text, fields = await lines.one()
    assert (fields["status"], fields["outcome"]) == (200, "client_gone")
    assert '"GET /stream HTTP/1.1" 200 ' in text and text.endswith(" client_gone")


async def test_http2_reset_mid_body_is_logged_as_client_gone(lines: Lines) -> None:
    app = Streaming()
    async with (
        serving(app, access_log=True) as server,
        h2_connection(server.host, server.port) as client,
    ):
        stream_id = await client.request("GET", "/h2stream")
        await client.wait_for(lambda f: f.kind == "HEADERS" and f.stream_id == stream_id)
        await client.reset(stream_id)
        with anyio.fail_after(GUARD):
            await app.stopped.wait()
        text, fields = await lines.one()
    assert (fields["status"], fields["protocol"], fields["outcome"]) == (
        200,
        "HTTP/2",
        "client_gone",
    )
    assert text.endswith(" client_gone")


async def test_client_leaving_before_any_response_gets_a_line_with_status_0(lines: Lines) -> None:
    app = LongPoll()
    async with serving(app, access_log=True) as server:
        stream = await request_started(server, "/poll", app.waiting)
        await stream.aclose()
        text, fields = await lines.one()
    assert (fields["status"], fields["bytes"], fields["outcome"]) == (0, 0, "client_gone")
    assert '"GET /poll HTTP/1.1" 0 0 ' in text


@pytest.mark.parametrize("http2", [False, True], ids=["http11", "http2"])
async def test_app_failing_after_the_start_is_logged_as_app_error(
    lines: Lines, http2: bool
) -> None:
    response, text, fields = await logged_get(lines, raise_after_start, "/half", http2=http2)
    assert isinstance(response, httpx.HTTPError)  # the body is cut: connection closed / reset
    assert (fields["status"], fields["bytes"], fields["outcome"]) == (200, 4, "app_error")
    assert text.endswith(" app_error")


async def test_app_failing_before_the_start_is_a_500_marked_app_error(lines: Lines) -> None:
    response, _, fields = await logged_get(lines, raise_before_start, "/boom")
    assert isinstance(response, httpx.Response) and response.status_code == 500
    assert (fields["status"], fields["outcome"]) == (500, "app_error")


async def test_the_shutdown_ending_a_long_poll_is_logged_as_shutdown(lines: Lines) -> None:
    app = LongPoll()
    async with serving(app, access_log=True) as server:
        stream = await request_started(server, "/poll", app.waiting)
        server.shutdown.set()
        with anyio.fail_after(GUARD):
            await app.disconnected.wait()
        text, fields = await lines.one()
        await stream.aclose()
    assert (fields["status"], fields["outcome"]) == (0, "shutdown")
    assert text.endswith(" shutdown")


class Stalled:
    """Starts a response, then neither sends nor receives: only a cancel ends it."""

    def __init__(self) -> None:
        self.started = anyio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        self.started.set()
        await anyio.sleep_forever()


async def test_a_response_cancelled_by_the_graceful_timeout_is_logged_as_shutdown(
    lines: Lines,
) -> None:
    app = Stalled()
    async with serving(app, access_log=True, graceful_timeout=0.2) as server:
        stream = await request_started(server, "/stalled", app.started)
        server.shutdown.set()
        text, fields = await lines.one()
        await stream.aclose()
    assert (fields["status"], fields["bytes"], fields["outcome"]) == (200, 5, "shutdown")
    assert text.endswith(" shutdown")


# --- requests the server refuses itself ----------------------------------------------------

#: Limits small enough for short bad heads.
LIMITS = {"max_request_line_size": 256, "max_head_size": 1024, "max_request_body_size": 1000}

#: A head the protocol answers itself, the status, and the method and target logged (None:
#: ``-``, the request line was not readable).
REFUSED_HEADS = [
    (b"GET /no-host HTTP/1.1\r\n\r\n", 400, "GET", "/no-host"),
    (b"POST /up?a=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n", 413, "POST", "/up?a=1"),
    (b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: h\r\n\r\n", 414, None, None),
    (b"GET /big HTTP/1.1\r\nHost: h\r\nX-Big: " + b"b" * 2000 + b"\r\n\r\n", 431, "GET", "/big"),
    (b"POST /te HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "POST", "/te"),
    (b"GET /v HTTP/2.0\r\nHost: h\r\n\r\n", 505, "GET", "/v"),
    (b"\x16\x03\x01\x00\x05hello\r\n\r\n", 400, None, None),  # TLS to a plain port
]
PARSERS = ["tricorn", "h11", "httptools"]


@pytest.mark.parametrize("parser", PARSERS)
async def test_refused_heads_get_a_rejected_line(lines: Lines, parser: str) -> None:
    async with serving(hello, access_log=True, http1_parser=parser, **LIMITS) as server:
        for request, status, method, target in REFUSED_HEADS:
            answer = await raw_exchange(server, request)
            assert answer.startswith(b"HTTP/1.1 %d " % status)
            text, fields = await lines.next()
            assert (fields["status"], fields["outcome"]) == (status, "rejected"), text
            assert (fields["method"], fields["target"]) == (method, target)
            assert fields["bytes"] == len(answer.partition(b"\r\n\r\n")[2])
            shown = f'"{method or "-"} {target or "-"} HTTP/1.1" {status} '
            assert shown in text and text.endswith(" rejected")
            assert fields["client"].startswith("127.0.0.1:")
        # Served as ever after them.
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{server.url}/after")).status_code == 200
        _, fields = await lines.next()
    assert (fields["target"], fields["outcome"]) == ("/after", "ok")


@pytest.mark.parametrize("parser", PARSERS)
async def test_a_late_head_gets_a_408_rejected_line(lines: Lines, parser: str) -> None:
    settings = {"http1_parser": parser, "header_read_timeout": 0.2}
    async with serving(hello, access_log=True, **settings) as server:
        # The request line and part of the fields, then nothing: the head timeout.
        assert (await raw_exchange(server, b"GET /slow HTTP/1.1\r\nHost: h\r\n")).startswith(
            b"HTTP/1.1 408 "
        )
        text, fields = await lines.next()
        # Not even a whole request line: no method or target to show.
        assert (await raw_exchange(server, b"GET /sl")).startswith(b"HTTP/1.1 408 ")
        _, partial = await lines.next()
    assert (fields["status"], fields["method"], fields["target"]) == (408, "GET", "/slow")
    assert fields["outcome"] == "rejected" and fields["path"] == "/slow"
    assert fields["duration_ms"] > 0
    assert '"GET /slow HTTP/1.1" 408 ' in text
    assert (partial["status"], partial["method"], partial["target"]) == (408, None, None)


class ReadsBody:
    """Reads the request body until the disconnect; records what it got."""

    def __init__(self) -> None:
        self.received = 0
        self.reading = anyio.Event()  # the first body bytes arrived
        self.ended = anyio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            while (message := await receive())["type"] == "http.request":
                self.received += len(message.get("body", b""))
                self.reading.set()
        finally:
            self.ended.set()


@pytest.mark.parametrize("parser", PARSERS)
async def test_a_chunked_body_over_the_limit_is_413_rejected_not_client_gone(
    lines: Lines, parser: str
) -> None:
    app = ReadsBody()
    settings = {"http1_parser": parser, "max_request_body_size": 100}
    async with serving(app, access_log=True, **settings) as server:
        async with await open_raw(server) as stream:
            await stream.send(
                b"POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"40\r\n" + b"x" * 64 + b"\r\n"
            )
            with anyio.fail_after(GUARD):
                await app.reading.wait()  # the app has started and reads the body
            await stream.send(b"40\r\n" + b"y" * 64 + b"\r\n")  # 128 > 100
            answer = await read_until_closed(stream)
        with anyio.fail_after(GUARD):
            await app.ended.wait()
        text, fields = await lines.one()
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert (fields["status"], fields["outcome"], fields["method"]) == (413, "rejected", "POST")
    assert '"POST /upload HTTP/1.1" 413 ' in text and text.endswith(" rejected")


async def test_http2_431_gets_a_rejected_line(lines: Lines) -> None:
    async with (
        serving(hello, access_log=True, h2_max_header_list_size=1024) as server,
        h2_connection(server.host, server.port) as client,
    ):
        # Over the list limit, under twice it (past that, HPACK refuses the connection).
        stream_id = await client.request("GET", "/h2big?x", [(b"x-big", b"b" * 1500)])
        response = await client.response(stream_id)
        text, fields = await lines.next()
        # The connection goes on.
        assert (await client.response(await client.request("GET", "/next"))).status == 200
        _, after = await lines.next()
    assert response.status == 431
    assert (fields["status"], fields["outcome"], fields["protocol"]) == (431, "rejected", "HTTP/2")
    assert (fields["method"], fields["target"]) == ("GET", "/h2big?x")
    assert '"GET /h2big?x HTTP/2" 431 ' in text
    assert (after["target"], after["outcome"]) == ("/next", "ok")


@pytest.mark.parametrize("http2", [False, True], ids=["http11", "http2"])
async def test_a_bad_websocket_handshake_gets_a_rejected_line(lines: Lines, http2: bool) -> None:
    async with serving(ws_apps.echo, access_log=True) as server:
        if http2:
            async with h2_connection(server.host, server.port) as client:
                # RFC 8441 needs :protocol; a plain CONNECT without it is not a WebSocket.
                head = [(b":protocol", b"chat"), (b"sec-websocket-version", b"13")]
                stream_id = await client.request("CONNECT", "/ws", head, end_stream=False)
                status = (await client.response(stream_id)).status
        else:
            request = (
                b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, close\r\n"
                b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n"  # no key
            )
            status = int((await raw_exchange(server, request)).split(b" ", 2)[1])
        text, fields = await lines.one()
    assert status >= 400
    assert (fields["status"], fields["outcome"]) == (status, "rejected")
    assert fields["target"] == "/ws" and text.endswith(" rejected")


# --- WebSocket lines -----------------------------------------------------------------------


async def test_websocket_session_over_http11_closed_with_1000(lines: Lines) -> None:
    async with serving(ws_apps.echo, access_log=True) as server:
        async with ws_connect(ws_url(server, "/chat?room=1")) as client:
            await client.send("one")
            assert await client.recv() == "one"
            await client.send("two")
            assert await client.recv() == "two"
            await ws_close(client)
        text, fields = await lines.one()
    assert fields["protocol"] == "WS/1.1"
    assert (fields["method"], fields["status"], fields["close_code"]) == ("GET", 101, 1000)
    assert (fields["messages_in"], fields["messages_out"]) == (2, 2)
    assert fields["outcome"] == "ok"
    assert fields["bytes"] > 0
    assert fields["target"] == "/chat?room=1" and fields["path"] == "/chat"
    assert '"GET /chat?room=1 WS/1.1" 101 ' in text
    assert text.endswith(" ok close=1000 messages=2/2")


async def test_websocket_session_over_http2(lines: Lines) -> None:
    async with serving(ws_apps.echo, access_log=True) as server, await open_raw(server) as raw:
        client = H2WebSocketClient(raw)
        await client.start()
        response = await client.connect(f"127.0.0.1:{server.port}", "/h2chat")
        assert dict(response.headers)[b":status"] == b"200"
        await client.ws_send(TextMessage("hi"))
        assert await client.ws_message() == "hi"
        await client.ws_send(CloseConnection(1000))
        assert isinstance(await client.ws_event(), CloseConnection)
        text, fields = await lines.one()
    assert (fields["protocol"], fields["method"], fields["status"]) == ("WS/2", "CONNECT", 200)
    assert (fields["close_code"], fields["outcome"]) == (1000, "ok")
    assert (fields["messages_in"], fields["messages_out"]) == (1, 1)
    assert '"CONNECT /h2chat WS/2" 200 ' in text


@pytest.mark.parametrize(
    ("app", "status"),
    [
        (ws_apps.close_before_accept, 403),
        (ws_apps.return_before_accept, 403),
        (ws_apps.deny_401, 401),
    ],
)
async def test_a_denied_websocket_logs_the_denial_status(
    lines: Lines, app: Any, status: int
) -> None:
    async with serving(app, access_log=True) as server:
        with pytest.raises(InvalidStatus):
            async with ws_connect(ws_url(server, "/denied")):
                pass
        text, fields = await lines.one()
    assert (fields["status"], fields["close_code"], fields["outcome"]) == (status, None, "ok")
    assert f'"GET /denied WS/1.1" {status} ' in text and " close=- " in text


async def test_a_websocket_dropped_without_close_is_1006_client_gone(lines: Lines) -> None:
    async with serving(ws_apps.echo, access_log=True) as server:
        async with RawWebSocket.open(server, "/drop") as client:
            await client.send(TextMessage("x"))
            assert isinstance(await client.next_event(), TextMessage)
            await client.stream.aclose()
        _, fields = await lines.one()
    assert (fields["status"], fields["close_code"], fields["outcome"]) == (101, 1006, "client_gone")
    assert fields["messages_in"] == 1


async def test_a_websocket_app_crash_is_1011_app_error(lines: Lines) -> None:
    async with serving(ws_apps.crash_after_accept, access_log=True) as server:
        async with RawWebSocket.open(server, "/crash") as client:
            await client.send(TextMessage("boom"))
            event = await client.next_event()
            assert isinstance(event, CloseConnection) and event.code == 1011
            await client.send(event.response())
        _, fields = await lines.one()
    assert (fields["close_code"], fields["outcome"]) == (1011, "app_error")
    assert fields["messages_in"] == 1


async def test_the_shutdown_closing_a_websocket_is_1001_shutdown(lines: Lines) -> None:
    async with (
        serving(ws_apps.echo, access_log=True) as server,
        RawWebSocket.open(server, "/long") as client,
    ):
        server.shutdown.set()
        event = await client.next_event()
        assert isinstance(event, CloseConnection) and event.code == 1001
        await client.send(event.response())
        _, fields = await lines.one()
    assert (fields["close_code"], fields["outcome"]) == (1001, "shutdown")


async def test_an_unanswered_keepalive_ping_is_1011_timeout(lines: Lines) -> None:
    async with (
        serving(ws_apps.echo, access_log=True, ws_ping_interval=0.1, ws_ping_timeout=0.1) as server,
        RawWebSocket.open(server, "/quiet") as raw,
    ):
        _, fields = await lines.one()  # written once the server gave up on the session
        await raw.stream.aclose()
    assert (fields["close_code"], fields["outcome"]) == (1011, "timeout")


async def test_a_websocket_protocol_error_is_logged_with_its_close_code(lines: Lines) -> None:
    async with serving(ws_apps.echo, access_log=True, ws_max_message_size=16) as server:
        async with RawWebSocket.open(server, "/big") as client:
            await client.send(TextMessage("x" * 64))
            event = await client.next_event()
            assert isinstance(event, CloseConnection) and event.code == 1009
            await client.send(event.response())
        _, fields = await lines.one()
    assert (fields["close_code"], fields["outcome"]) == (1009, "protocol_error")


# --- log_config, through the tricorn command -----------------------------------------------


def _log_config_file(folder: Path, access_file: Path) -> Path:
    config = {
        "version": 1,
        "formatters": {"plain": {"format": "ACCESS %(message)s"}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "filename": str(access_file),
                "formatter": "plain",
            }
        },
        "loggers": {"tricorn.access": {"handlers": ["file"], "propagate": False}},
    }
    path = folder / "logging.json"
    path.write_text(json.dumps(config))
    return path


@pytest.mark.parametrize(
    "options",
    [["--backend", "trio"], ["--backend", "asyncio"], ["--backend", "asyncio", "--workers", "2"]],
    ids=["trio", "asyncio", "asyncio-2-workers"],
)
def test_log_config_sends_the_access_log_to_a_file(tmp_path: Path, options: list[str]) -> None:
    access_file = tmp_path / "access.log"
    log_config = _log_config_file(tmp_path, access_file)
    with tricorn("tests.integration.apps:hello", "--log-config", str(log_config), *options) as (
        process,
        port,
    ):
        for path in ("/one", "/two?x=1", "/three"):
            with httpx.Client() as client:  # a new connection each: spread over the workers
                assert client.get(f"http://127.0.0.1:{port}{path}").status_code == 200
        status, out, err = stop(process, signal.SIGTERM)
    assert status == 0, err
    assert out == ""  # the access log left stdout for the file
    written = access_file.read_text().splitlines()
    assert len(written) == 3
    assert all(line.startswith("ACCESS 127.0.0.1:") for line in written)
    assert sum('"GET /two?x=1 HTTP/1.1" 200 13 ' in line for line in written) == 1
    assert "INFO:     " in err  # the error log is untouched: the defaults still apply


def _wait_for_lines(path: Path, text: str, count: int, timeout: float = 15.0) -> None:
    """Wait until ``path`` holds ``count`` lines containing ``text`` (it may not exist yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count(text) >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"{path}: fewer than {count} lines with {text!r}")


@pytest.mark.parametrize(
    "options",
    [["--backend", "trio"], ["--backend", "asyncio"], ["--backend", "asyncio", "--workers", "2"]],
    ids=["trio", "asyncio", "asyncio-2-workers"],
)
def test_sigusr1_reopens_the_log_files_after_logrotate_moved_them(
    tmp_path: Path, options: list[str]
) -> None:
    """gunicorn's SIGUSR1, for logrotate's postrotate (kill -USR1): the server keeps
    serving (SIGUSR1's default action would end it), and the lines after it go to new
    files of the same names, from the supervisor and from every worker."""
    access_file, error_file = tmp_path / "access.log", tmp_path / "error.log"
    config = {
        "version": 1,
        "formatters": {"plain": {"format": "%(process)d %(message)s"}},
        "handlers": {
            name: {"class": "logging.FileHandler", "filename": str(path), "formatter": "plain"}
            for name, path in (("access", access_file), ("error", error_file))
        },
        "loggers": {
            "tricorn.access": {"handlers": ["access"], "propagate": False},
            "tricorn.error": {"handlers": ["error"], "propagate": False},
        },
    }
    log_config = tmp_path / "logging.json"
    log_config.write_text(json.dumps(config))
    workers = 2 if "--workers" in options else 1
    with tricorn("tests.integration.apps:hello", "--log-config", str(log_config), *options) as (
        process,
        port,
    ):
        _wait_for_lines(error_file, "tricorn serving on", workers)
        for _ in range(4):
            assert httpx.get(f"http://127.0.0.1:{port}/before").status_code == 200
        access_file.rename(tmp_path / "access.log.1")  # what logrotate does, then USR1
        error_file.rename(tmp_path / "error.log.1")
        process.send_signal(signal.SIGUSR1)
        _wait_for_lines(error_file, "reopened the log files", 1 + (workers if workers > 1 else 0))
        for _ in range(4):
            assert httpx.get(f"http://127.0.0.1:{port}/after").status_code == 200
        assert process.poll() is None
        status, _, err = stop(process, signal.SIGTERM)
    assert status == 0, err
    old_access, new_access = (tmp_path / "access.log.1").read_text(), access_file.read_text()
    assert old_access.count("GET /before") == 4 and "/after" not in old_access
    assert new_access.count("GET /after") == 4 and "/before" not in new_access
    new_error = error_file.read_text()
    assert "Received SIGUSR1: reopened the log files" in new_error
    assert "Server stopped" in new_error
    assert "serving on" in (tmp_path / "error.log.1").read_text()
