"""HTTP/2 features on a real tricorn, driven frame by frame by a raw client (h2_client.py).

Trailers, server push, early hints, ``:authority``, disconnects, flow control both ways,
RFC 9218 priorities, graceful shutdown, TLS (scope, mTLS, bad keys, handshake timeout) and
the h2c upgrade. Every test runs on trio and on asyncio.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
import trustme
from hyperframe.frame import SettingsFrame

from tests.helpers import open_raw, read_response, read_until_closed, serving
from tests.integration.apps import echo, read_body, respond
from tests.integration.h2_client import (
    ENABLE_PUSH,
    INITIAL_WINDOW_SIZE,
    NO_ERROR,
    REFUSED_STREAM,
    ConnectionClosed,
    H2Client,
    Received,
    h2_connection,
    settings_payload,
)
from tricorn import Config, serve
from tricorn.errors import ConfigError
from tricorn.server.asgi_types import ASGI3App, Message, Receive, Scope, Send

pytestmark = pytest.mark.anyio

LINK_CSS = b"</style.css>; rel=preload; as=style"
LINK_JS = b"</app.js>; rel=preload; as=script"


def kinds(frames: list[Received]) -> list[str]:
    return [frame.kind for frame in frames]


def head_of(stream_id: int) -> Callable[[Received], bool]:
    return lambda frame: frame.kind == "HEADERS" and frame.stream_id == stream_id


def scope_recorder(scopes: list[Scope], body: bytes = b"ok") -> ASGI3App:
    """An app that keeps every scope it is called with and answers ``body``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        scopes.append(scope)
        await read_body(receive)
        await respond(send, 200, body)

    return app


# --- 1. trailers ----------------------------------------------------------------------


async def test_response_trailers_follow_the_data_and_end_the_stream() -> None:
    extensions: list[dict[str, Any]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        extensions.append(scope["extensions"])
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"trailer", b"x-checksum")],
                "trailers": True,
            }
        )
        await send({"type": "http.response.body", "body": b"part one,", "more_body": True})
        await send({"type": "http.response.body", "body": b"part two"})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc123")]})

    async with serving(app) as server, h2_connection(server.host, server.port) as client:
        stream_id = await client.request("GET", "/", [(b"te", b"trailers")])
        response = await client.response(stream_id)

    assert "http.response.trailers" in extensions[0]
    frames = response.frames
    assert frames[0].kind == "HEADERS" and frames[0].header(b":status") == b"200"
    assert frames[-1].kind == "HEADERS" and frames[-1].end_stream
    assert set(kinds(frames[1:-1])) == {"DATA"}
    assert not any(frame.end_stream for frame in frames[:-1])
    assert response.body == b"part one,part two"
    trailers = response.trailers
    assert trailers is not None and trailers.headers == [(b"x-checksum", b"abc123")]


async def test_request_trailers_are_accepted_and_the_body_arrives() -> None:
    messages: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        body = b"".join(message.get("body", b"") for message in messages)
        await respond(send, 200, body)

    async with serving(app) as server, h2_connection(server.host, server.port) as client:
        stream_id = await client.request("POST", "/upload", body=b"hello ", end_stream=False)
        await client.send_data(stream_id, b"world")
        await client.send_headers(stream_id, [(b"x-digest", b"sha-256=abc")], end_stream=True)
        response = await client.response(stream_id)

    assert response.status == 200
    assert response.body == b"hello world"
    assert {message["type"] for message in messages} == {"http.request"}
    assert [message["more_body"] for message in messages][-1] is False
    assert all(message["more_body"] for message in messages[:-1])


# --- 2. server push -----------------------------------------------------------------


def push_app(pushed: list[Scope]) -> ASGI3App:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/":
            await send(
                {
                    "type": "http.response.push",
                    "path": "/style.css",
                    "headers": [(b"accept", b"text/css")],
                }
            )
            await respond(send, 200, b"<html></html>", [(b"content-type", b"text/html")])
        else:
            pushed.append(scope)
            await respond(send, 200, b"body{}", [(b"content-type", b"text/css")])

    return app


async def test_server_push_promises_and_serves_the_pushed_path() -> None:
    pushed: list[Scope] = []
    async with (
        serving(push_app(pushed)) as server,
        h2_connection(server.host, server.port, settings={ENABLE_PUSH: 1}) as client,
    ):
        stream_id = await client.request("GET", "/", authority="example.test")
        promise = await client.wait_for(lambda frame: frame.kind == "PUSH_PROMISE")
        main = await client.response(stream_id)
        pushed_response = await client.response(promise.promised_stream_id)

    assert promise.stream_id == stream_id
    assert promise.promised_stream_id % 2 == 0
    assert promise.header(b":method") == b"GET"
    assert promise.header(b":path") == b"/style.css"
    assert promise.header(b":authority") == b"example.test"
    assert promise.header(b"accept") == b"text/css"
    # The promise comes before the response that refers to it (RFC 9113 8.4).
    assert main.frames[0].kind == "PUSH_PROMISE"
    assert main.status == 200 and main.body == b"<html></html>"
    assert pushed_response.status == 200
    assert pushed_response.body == b"body{}"
    assert pushed_response.final.header(b"content-type") == b"text/css"
    assert len(pushed) == 1
    assert pushed[0]["path"] == "/style.css"
    assert pushed[0]["method"] == "GET"
    assert (b"host", b"example.test") in pushed[0]["headers"]
    assert (b"accept", b"text/css") in pushed[0]["headers"]


async def test_no_push_when_the_client_disables_it() -> None:
    pushed: list[Scope] = []
    async with (
        serving(push_app(pushed)) as server,
        h2_connection(server.host, server.port, settings={ENABLE_PUSH: 0}) as client,
    ):
        stream_id = await client.request("GET", "/")
        main = await client.response(stream_id)
        await client.ping()  # anything the server still had to say has arrived by now

    assert main.status == 200 and main.body == b"<html></html>"
    assert "PUSH_PROMISE" not in kinds(client.frames)
    assert {frame.stream_id for frame in client.frames} <= {0, stream_id}
    assert pushed == []


# --- 3. early hints -----------------------------------------------------------------


async def early_hints_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.early_hint", "links": [LINK_CSS, LINK_JS]})
    await respond(send, 200, b"page")


async def test_early_hints_are_a_103_before_the_response() -> None:
    async with serving(early_hints_app) as server, h2_connection(server.host, server.port) as c:
        response = await c.response(await c.request("GET", "/"))

    assert [head.header(b":status") for head in response.heads] == [b"103", b"200"]
    hint = response.heads[0]
    assert not hint.end_stream
    assert [value for name, value in hint.headers if name == b"link"] == [LINK_CSS, LINK_JS]
    assert response.status == 200 and response.body == b"page"
    assert response.frames.index(hint) < response.frames.index(response.final)


async def test_early_hints_on_http11() -> None:
    async with serving(early_hints_app) as server:
        stream = await open_raw(server)
        async with stream:
            await stream.send(b"GET / HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n")
            data = await read_until_closed(stream)

    assert data.startswith(b"HTTP/1.1 103 ")
    hint, _, rest = data.partition(b"\r\n\r\n")
    assert b"link: " + LINK_CSS in hint.lower()
    assert b"link: " + LINK_JS in hint.lower()
    assert rest.startswith(b"HTTP/1.1 200 ")
    assert rest.endswith(b"\r\n\r\npage")


async def test_no_early_hints_for_an_http10_client() -> None:
    """RFC 9110 15.2: a server must not send a 1xx response to an HTTP/1.0 client."""
    async with serving(early_hints_app) as server:
        stream = await open_raw(server)
        async with stream:
            await stream.send(b"GET / HTTP/1.0\r\nHost: example.test\r\n\r\n")
            data = await read_until_closed(stream)
    assert data.startswith(b"HTTP/1.1 200 ")
    assert b" 103 " not in data and b"link:" not in data.lower()


# --- 4. :authority and disconnects --------------------------------------------------


async def test_authority_becomes_the_host_header() -> None:
    scopes: list[Scope] = []
    async with (
        serving(scope_recorder(scopes)) as server,
        h2_connection(server.host, server.port) as client,
    ):
        stream_id = await client.request("GET", "/", [(b"x-one", b"1")], authority="ex.test:8443")
        assert (await client.response(stream_id)).status == 200

    headers = scopes[0]["headers"]
    assert [value for name, value in headers if name == b"host"] == [b"ex.test:8443"]
    assert not any(name.startswith(b":") for name, _ in headers)
    assert (b"x-one", b"1") in headers
    assert scopes[0]["http_version"] == "2"
    assert scopes[0]["scheme"] == "http"


async def test_rst_stream_delivers_http_disconnect_to_a_waiting_receive() -> None:
    waiting = anyio.Event()
    finished = anyio.Event()
    received: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] != "/wait":
            await respond(send, 200, b"still here")
            return
        waiting.set()
        received.append(await receive())
        finished.set()

    async with serving(app) as server, h2_connection(server.host, server.port) as client:
        stream_id = await client.request("POST", "/wait", end_stream=False)
        with anyio.fail_after(5):
            await waiting.wait()
        await client.reset(stream_id)
        with anyio.fail_after(5):
            await finished.wait()
        # The connection is unharmed: the next stream is served.
        other = await client.response(await client.request("GET", "/other"))

    assert received == [{"type": "http.disconnect"}]
    assert other.status == 200 and other.body == b"still here"


@pytest.mark.parametrize("waiting_in", ["receive", "send"])
async def test_app_returning_after_a_disconnect_is_not_logged_as_an_error(
    caplog: pytest.LogCaptureFixture, waiting_in: str
) -> None:
    """An app that stops once told of the disconnect (``http.disconnect`` from receive, or
    OSError from send) did nothing wrong: no ERROR line (Uvicorn and Hypercorn log none)."""
    finished = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            if waiting_in == "receive":
                while (await receive())["type"] != "http.disconnect":
                    pass
            else:
                await send({"type": "http.response.start", "status": 200, "headers": []})
                while True:
                    await send(
                        {"type": "http.response.body", "body": b"z" * 4096, "more_body": True}
                    )
        except OSError:
            pass
        finally:
            finished.set()

    async with serving(app) as server, h2_connection(server.host, server.port) as client:
        stream_id = await client.request("POST", "/", end_stream=False)
        await client.send_data(stream_id, b"some")
        if waiting_in == "send":
            await client.wait_for(lambda frame: frame.stream_id == stream_id)
        else:
            await client.ping()
        await client.reset(stream_id)
        with anyio.fail_after(5):
            await finished.wait()
        await client.ping()

    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


async def test_send_raises_oserror_once_the_client_reset_a_streaming_response() -> None:
    raised: list[BaseException] = []
    received_after: list[str] = []
    done = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] != "/stream":
            await respond(send, 200, b"next")
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            for _ in range(10_000):
                await send({"type": "http.response.body", "body": b"z" * 4096, "more_body": True})
        except OSError as error:
            raised.append(error)
            received_after.append((await receive())["type"])
        finally:
            done.set()

    async with serving(app) as server, h2_connection(server.host, server.port) as client:
        stream_id = await client.request("GET", "/stream")
        await client.wait_for(lambda frame: frame.kind == "DATA" and frame.stream_id == stream_id)
        await client.reset(stream_id)
        with anyio.fail_after(5):
            await done.wait()
        after = await client.response(await client.request("GET", "/next"))
        assert after.status == 200 and after.body == b"next"

    assert len(raised) == 1
    assert received_after == ["http.disconnect"]


# --- 5. flow control ----------------------------------------------------------------


@pytest.mark.parametrize("opened_by", ["window_update", "settings"])
async def test_response_send_returns_only_as_the_client_opens_windows(opened_by: str) -> None:
    chunk, chunks = 1024, 32
    progress = [0]
    finished = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        length = str(chunk * chunks).encode()
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", length)]}
        )
        for index in range(chunks):
            more = index < chunks - 1
            await send({"type": "http.response.body", "body": b"x" * chunk, "more_body": more})
            progress[0] += 1
        finished.set()

    async with (
        serving(app) as server,
        h2_connection(server.host, server.port, settings={INITIAL_WINDOW_SIZE: 1024}) as client,
    ):
        client.auto_window = False
        stream_id = await client.request("GET", "/big")
        await client.wait_for(lambda frame: frame.kind == "DATA" and frame.stream_id == stream_id)
        await client.ping()
        # Nothing can be awaited for "nothing happens": let every task run until it waits
        # (an app whose send() returned without window would overrun now), then one more
        # round trip for anything it wrote.
        await anyio.wait_all_tasks_blocked()
        await client.ping()
        received = sum(len(frame.data) for frame in client.stream_frames(stream_id))
        assert received == 1024  # exactly the stream window, not a byte more
        assert progress[0] <= 1, "send() returned for bytes the client has no window for"
        assert not finished.is_set()

        client.auto_window = True
        if opened_by == "window_update":
            await client.acknowledge(stream_id, received)
        else:  # a larger SETTINGS_INITIAL_WINDOW_SIZE opens every stream's window (6.9.2)
            await client.send_frame(SettingsFrame(0, settings={INITIAL_WINDOW_SIZE: 65535}))
        response = await client.response(stream_id)

    assert response.status == 200
    assert response.body == b"x" * chunk * chunks
    assert finished.is_set() and progress[0] == chunks


async def test_request_body_window_opens_only_as_the_app_reads() -> None:
    window = 16384
    size = 100_000
    gate = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/slow-reader":
            await gate.wait()
            body = await read_body(receive)
            await respond(send, 200, str(len(body)).encode())
        else:
            await respond(send, 200, b"other")

    async with (
        serving(app, h2_initial_window_size=window) as server,
        h2_connection(server.host, server.port) as client,
    ):
        slow = await client.request("POST", "/slow-reader", end_stream=False)
        assert client.sendable(slow) == window
        await client.send_data(slow, b"a" * window)
        assert client.sendable(slow) == 0

        # The stalled stream does not hold up the connection: another stream is served.
        other = await client.response(await client.request("GET", "/other"))
        assert other.status == 200 and other.body == b"other"
        await client.ping()
        assert not [f for f in client.frames if f.kind == "WINDOW_UPDATE" and f.stream_id == slow]
        assert client.sendable(slow) == 0

        gate.set()  # the app starts reading: windows open, the rest of the body goes
        await client.send_body(slow, b"a" * (size - window))
        response = await client.response(slow)

    assert response.status == 200
    assert response.body == str(size).encode()
    assert "GOAWAY" not in kinds(client.frames)


# --- 6. priority --------------------------------------------------------------------


@pytest.mark.parametrize("signal", ["header", "priority_update"])
async def test_urgent_streams_get_the_connection_window_first(signal: str) -> None:
    filler = 65535  # the client's whole connection window
    size = 2000

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/filler":
            await respond(send, 200, b"f" * filler)
        else:
            await respond(send, 200, scope["path"][-1:].encode() * size)

    urgencies = {"/a": b"u=5", "/b": b"u=0", "/c": b"u=5", "/d": b"u=0", "/e": b"u=3"}
    async with serving(app) as server, h2_connection(server.host, server.port) as client:
        client.auto_window = False  # received DATA is not acknowledged: the window runs dry
        filled = await client.response(await client.request("GET", "/filler"))
        assert len(filled.body) == filler
        streams: dict[int, str] = {}
        for path, urgency in urgencies.items():
            if signal == "header":
                streams[await client.request("GET", path, [(b"priority", urgency)])] = path
            else:  # no header; PRIORITY_UPDATE frames set the urgency once the stream is open
                stream_id = await client.request("GET", path, [(b"priority", b"u=7")])
                await client.priority_update(stream_id, urgency)
                streams[stream_id] = path
        # All responses are ready (their heads are sent) but none may send a byte.
        for stream_id in streams:
            await client.wait_for(head_of(stream_id), include_seen=True)
        await client.ping()
        assert not [frame for frame in client.frames if frame.stream_id in streams and frame.data]

        start = len(client.frames)
        await client.open_window(0, size * len(streams))
        responses = [await client.response(stream_id) for stream_id in streams]

    assert all(r.status == 200 and len(r.body) == size for r in responses)
    first_data: list[str] = []
    for frame in client.frames[start:]:
        if frame.kind == "DATA" and streams[frame.stream_id] not in first_data:
            first_data.append(streams[frame.stream_id])
    assert first_data == ["/b", "/d", "/e", "/a", "/c"]


# --- 7. graceful shutdown -----------------------------------------------------------


async def test_graceful_shutdown_sends_goaway_and_finishes_in_flight_streams() -> None:
    started = anyio.Event()
    release = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/slow":
            started.set()
            await release.wait()
        await respond(send, 200, b"done")

    async with serving(app) as server, h2_connection(server.host, server.port) as client:
        in_flight = await client.request("GET", "/slow")
        with anyio.fail_after(5):
            await started.wait()
        server.shutdown.set()
        # RFC 9113 6.8: first GOAWAY(2^31-1) and a PING; the PING is not read (so not
        # answered) yet when the next request goes out, as if the two had crossed.
        goaway = await client.wait_for(lambda frame: frame.kind == "GOAWAY")
        assert goaway.error_code == NO_ERROR
        assert goaway.last_stream_id == 2**31 - 1
        crossed = await client.request("GET", "/crossed")
        served = await client.response(crossed)  # the PING ACK went out after its HEADERS
        final = await client.wait_for(
            lambda frame: frame.kind == "GOAWAY" and frame.last_stream_id < 2**31 - 1,
            include_seen=True,
        )
        assert final.error_code == NO_ERROR and final.last_stream_id == crossed

        late = await client.request("GET", "/late")
        refused = await client.response(late)
        assert not client.stream_frames(in_flight)  # still in the app after the GOAWAY
        release.set()
        response = await client.response(in_flight)
        rest = await client.read_until_closed()

    assert served.status == 200 and served.body == b"done"
    assert refused.reset is not None and refused.reset.error_code == REFUSED_STREAM
    assert response.status == 200 and response.body == b"done"
    assert client.frames.index(goaway) < client.frames.index(response.frames[-1])
    assert client.closed
    assert not [frame for frame in rest if frame.stream_id == in_flight]


async def test_graceful_shutdown_closes_an_idle_connection_after_goaway() -> None:
    async with serving(scope_recorder([])) as server, h2_connection(server.host, server.port) as c:
        served = await c.response(await c.request("GET", "/"))
        server.shutdown.set()
        frames = await c.read_until_closed()
    assert served.status == 200
    assert [(f.kind, f.error_code, f.last_stream_id) for f in frames] == [
        ("GOAWAY", NO_ERROR, 2**31 - 1),
        ("PING", 0, 0),
        ("GOAWAY", NO_ERROR, 1),
    ]


# --- 8. TLS -------------------------------------------------------------------------


@dataclass
class Certificates:
    ca_file: Path
    certfile: Path
    keyfile: Path
    other_keyfile: Path
    authority: trustme.CA
    client_cert: trustme.LeafCert

    def client_context(self, *, with_cert: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.set_alpn_protocols(["h2", "http/1.1"])
        if with_cert:
            self.client_cert.configure_cert(context)
        return context

    def settings(self, **more: Any) -> dict[str, Any]:
        return {"certfile": str(self.certfile), "keyfile": str(self.keyfile), **more}


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Certificates]:
    folder = tmp_path_factory.mktemp("tls-features")
    authority = trustme.CA()
    server_cert = authority.issue_cert("127.0.0.1", "localhost")
    other = authority.issue_cert("other.example.test")
    client_cert = authority.issue_cert("client.example.test", common_name="test-client")
    files = Certificates(
        folder / "ca.pem",
        folder / "cert.pem",
        folder / "key.pem",
        folder / "other-key.pem",
        authority,
        client_cert,
    )
    authority.cert_pem.write_to_path(str(files.ca_file))
    server_cert.cert_chain_pems[0].write_to_path(str(files.certfile))
    server_cert.private_key_pem.write_to_path(str(files.keyfile))
    other.private_key_pem.write_to_path(str(files.other_keyfile))
    yield files


async def test_tls_scope_has_https_and_the_tls_extension(certificates: Certificates) -> None:
    scopes: list[Scope] = []
    context = certificates.client_context()
    async with (
        serving(scope_recorder(scopes), **certificates.settings()) as server,
        h2_connection(server.host, server.port, ssl_context=context) as client,
    ):
        assert client.alpn_protocol == "h2"
        response = await client.response(await client.request("GET", "/", scheme="https"))

    assert response.status == 200
    scope = scopes[0]
    assert scope["scheme"] == "https"
    assert scope["http_version"] == "2"
    tls = scope["extensions"]["tls"]
    assert tls["tls_version"] in (0x0303, 0x0304)
    assert tls["cipher_suite"] is None or isinstance(tls["cipher_suite"], int)
    assert tls["client_cert_chain"] == []
    assert tls["client_cert_name"] is None


async def test_mutual_tls_puts_the_client_certificate_in_the_scope(
    certificates: Certificates,
) -> None:
    scopes: list[Scope] = []
    settings = certificates.settings(verify_mode="required", ca_certs=str(certificates.ca_file))
    async with serving(scope_recorder(scopes), **settings) as server:
        context = certificates.client_context(with_cert=True)
        async with h2_connection(server.host, server.port, ssl_context=context) as client:
            response = await client.response(await client.request("GET", "/", scheme="https"))
        assert response.status == 200
        tls = scopes[0]["extensions"]["tls"]
        assert len(tls["client_cert_chain"]) >= 1
        assert tls["client_cert_chain"][0].startswith("-----BEGIN CERTIFICATE-----")
        assert tls["client_cert_name"] is not None
        assert "test-client" in tls["client_cert_name"]

        # Without a client certificate the handshake fails; the server carries on.
        with pytest.raises((ConnectionClosed, ssl.SSLError, anyio.BrokenResourceError, OSError)):
            bare = certificates.client_context()
            async with h2_connection(server.host, server.port, ssl_context=bare) as client:
                await client.response(await client.request("GET", "/", scheme="https"))
        assert len(scopes) == 1

        async with h2_connection(server.host, server.port, ssl_context=context) as client:
            response = await client.response(await client.request("GET", "/", scheme="https"))
        assert response.status == 200
        assert len(scopes) == 2


async def test_optional_client_certificate_may_be_omitted(certificates: Certificates) -> None:
    scopes: list[Scope] = []
    settings = certificates.settings(verify_mode="optional", ca_certs=str(certificates.ca_file))
    async with serving(scope_recorder(scopes), **settings) as server:
        for with_cert in (False, True):
            context = certificates.client_context(with_cert=with_cert)
            async with h2_connection(server.host, server.port, ssl_context=context) as client:
                response = await client.response(await client.request("GET", "/", scheme="https"))
            assert response.status == 200
    without, with_ = (scope["extensions"]["tls"] for scope in scopes)
    assert without["client_cert_chain"] == [] and without["client_cert_name"] is None
    assert len(with_["client_cert_chain"]) >= 1 and with_["client_cert_name"]


async def test_client_cert_name_is_an_rfc4514_string(certificates: Certificates) -> None:
    """ASGI TLS extension: client_cert_name is the subject DN as RFC 4514 ("CN=...")."""
    scopes: list[Scope] = []
    settings = certificates.settings(verify_mode="required", ca_certs=str(certificates.ca_file))
    async with serving(scope_recorder(scopes), **settings) as server:
        context = certificates.client_context(with_cert=True)
        async with h2_connection(server.host, server.port, ssl_context=context) as client:
            await client.response(await client.request("GET", "/", scheme="https"))
    name = scopes[0]["extensions"]["tls"]["client_cert_name"]
    # RFC 4514 2.1: the most specific RDN first, with the short attribute types.
    assert name.startswith("CN=test-client,"), name
    assert "O=" in name and "commonName" not in name, name


async def test_keyfile_that_does_not_match_the_certificate_is_a_config_error(
    certificates: Certificates,
) -> None:
    config = Config(
        bind=["127.0.0.1:0"],
        certfile=str(certificates.certfile),
        keyfile=str(certificates.other_keyfile),
    )
    with pytest.raises(ConfigError, match="keyfile") as raised:
        await serve(early_hints_app, config)
    assert str(certificates.other_keyfile) in str(raised.value)
    assert "\n" not in str(raised.value)


async def test_tls_handshake_timeout_drops_a_silent_client(
    certificates: Certificates, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tricorn.error")
    settings = certificates.settings(tls_handshake_timeout=0.3)
    async with serving(scope_recorder([]), **settings) as server:
        silent = await open_raw(server)
        port = silent.extra(anyio.abc.SocketAttribute.local_port)
        async with silent:
            # Default timeout is 10 s: being closed within 5 s shows the setting applies.
            assert await read_until_closed(silent, timeout=5.0) == b""
        # ... and it was the handshake's timeout that closed it, not another failure (logged
        # just after the close: let the connection's task finish first), in one line naming
        # the client as the access log does (host:port, not a tuple).
        await anyio.wait_all_tasks_blocked()
        failures = [r.getMessage() for r in caplog.records if "TLS handshake" in r.getMessage()]
        assert failures == [f"TLS handshake with 127.0.0.1:{port} failed: TimeoutError"]

        context = certificates.client_context()
        async with h2_connection(server.host, server.port, ssl_context=context) as client:
            response = await client.response(await client.request("GET", "/", scheme="https"))
        assert response.status == 200


# --- 9. h2c upgrade -----------------------------------------------------------------


async def test_h2c_upgrade_answers_on_stream_1_and_http11_still_works() -> None:
    scopes: list[Scope] = []
    async with serving(scope_recorder(scopes, b"hello h2c")) as server:
        stream = await open_raw(server)
        async with stream:
            settings = settings_payload({ENABLE_PUSH: 0, INITIAL_WINDOW_SIZE: 65535})
            await stream.send(
                b"GET /upgraded?x=1 HTTP/1.1\r\n"
                b"Host: 127.0.0.1\r\n"
                b"Connection: Upgrade, HTTP2-Settings\r\n"
                b"Upgrade: h2c\r\n"
                b"HTTP2-Settings: " + settings.encode() + b"\r\n\r\n"
            )
            data = b""
            with anyio.fail_after(5):
                while b"\r\n\r\n" not in data:
                    data += await stream.receive()
            head, _, rest = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101 "), head
            assert b"upgrade: h2c" in head.lower()

            client = H2Client(stream, rest, first_stream_id=3)
            with anyio.fail_after(5):
                await client.start()
            upgraded = await client.response(1)
            again = await client.response(await client.request("GET", "/again"))

        async with await open_raw(server) as plain:
            await plain.send(b"GET /plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            http11 = await read_until_closed(plain)

    assert upgraded.status == 200 and upgraded.body == b"hello h2c"
    assert again.status == 200 and again.body == b"hello h2c"
    assert http11.startswith(b"HTTP/1.1 200 ") and http11.endswith(b"hello h2c")
    upgraded_scope, again_scope, plain_scope = scopes
    assert upgraded_scope["http_version"] == "2"
    assert upgraded_scope["path"] == "/upgraded"
    assert upgraded_scope["query_string"] == b"x=1"
    upgraded_headers = dict(upgraded_scope["headers"])
    assert upgraded_headers[b"host"] == b"127.0.0.1"
    assert b"http2-settings" not in upgraded_headers
    assert b"upgrade" not in upgraded_headers
    assert again_scope["http_version"] == "2" and again_scope["path"] == "/again"
    assert plain_scope["http_version"] == "1.1"


async def test_h2c_upgrade_with_a_request_body_is_served_as_http11() -> None:
    """RFC 7540 3.2 lets the server ignore the upgrade; the body must not be lost."""
    async with serving(echo) as server:
        stream = await open_raw(server)
        async with stream:
            await stream.send(
                b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                b"HTTP2-Settings: " + settings_payload({}).encode() + b"\r\n\r\nhello"
            )
            response = await read_response(stream)
    assert response.startswith(b"HTTP/1.1 200 ")
    assert response.endswith(b"\r\n\r\nhello")


async def test_h2c_upgrade_is_ignored_over_tls(certificates: Certificates) -> None:
    """h2c is HTTP/2 over cleartext TCP (RFC 7540 3.2, 3.3): on TLS the request is served
    as HTTP/1.1, as ALPN is the only way to HTTP/2 there."""
    context = ssl.create_default_context(cafile=str(certificates.ca_file))
    context.set_alpn_protocols(["http/1.1"])
    async with serving(scope_recorder([], b"tls"), **certificates.settings()) as server:
        stream = await anyio.connect_tcp(
            server.host, server.port, ssl_context=context, tls_standard_compatible=False
        )
        async with stream:
            await stream.send(
                b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                b"Upgrade: h2c\r\nHTTP2-Settings: " + settings_payload({}).encode() + b"\r\n\r\n"
            )
            response = await read_response(stream)
    assert response.startswith(b"HTTP/1.1 200 "), response
    assert response.endswith(b"\r\n\r\ntls")
