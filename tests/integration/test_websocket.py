"""WebSocket on a real tricorn, driven by real clients, on both backends.

- the ``websockets`` library (its trio client under trio, its asyncio client under asyncio)
  over ws:// and wss://, with and without permessage-deflate;
- a raw wsproto client over a raw socket where the test must misbehave (never answer pings,
  push without limit, never read);
- RFC 8441: an h2 client opening a WebSocket with extended CONNECT over h2c, next to a plain
  HTTP/2 request on the same connection.
"""

from __future__ import annotations

import json
import socket
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest
import sniffio
import websockets.asyncio.client
import websockets.trio.client
from anyio.abc import SocketAttribute, SocketStream
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection as WSFrameConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate

from tests.helpers import (
    Certificates,
    RunningServer,
    issue_certificates,
    open_raw,
    read_until_closed,
    serving,
)
from tests.integration import ws_apps
from tests.integration.h2_client import H2Client
from tests.integration.ws_apps import Probe

pytestmark = pytest.mark.anyio

Client = websockets.asyncio.client.ClientConnection | websockets.trio.client.ClientConnection


# --- clients -------------------------------------------------------------------------------


@asynccontextmanager
async def ws_connect(url: str, **options: Any) -> AsyncIterator[Client]:
    """A ``websockets`` client on the running backend: its trio client or its asyncio one."""
    options.setdefault("proxy", None)
    options.setdefault("open_timeout", 5)
    options.setdefault("close_timeout", 5)
    if sniffio.current_async_library() == "trio":
        async with websockets.trio.client.connect(url, **options) as trio_client:
            yield trio_client
    else:
        async with websockets.asyncio.client.connect(url, **options) as asyncio_client:
            yield asyncio_client


async def ws_close(client: Client, code: int = 1000, reason: str = "") -> None:
    """Close handshake (the trio client calls it ``aclose``, the asyncio one ``close``)."""
    if isinstance(client, websockets.trio.client.ClientConnection):
        await client.aclose(code, reason)
    else:
        await client.close(code, reason)


def handshake_headers(client: Client) -> Headers:
    """The headers of the server's handshake response."""
    assert client.response is not None
    return client.response.headers


def ws_url(server: RunningServer, path: str = "/", scheme: str = "ws") -> str:
    return f"{scheme}://127.0.0.1:{server.port}{path}"


class RawWebSocket:
    """A wsproto client on a raw socket: every frame is the test's business (pings too)."""

    def __init__(self, stream: SocketStream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)
        self._events: list[Event] = []

    @classmethod
    @asynccontextmanager
    async def open(
        cls, server: RunningServer, path: str = "/", *, deflate: bool = False
    ) -> AsyncIterator[RawWebSocket]:
        stream = await open_raw(server)
        async with stream:
            client = cls(stream)
            extensions = [PerMessageDeflate()] if deflate else []
            await client.send(
                Request(host=f"127.0.0.1:{server.port}", target=path, extensions=extensions)
            )
            event = await client.next_event()
            assert isinstance(event, AcceptConnection), event
            yield client

    async def send(self, event: Event) -> None:
        await self.stream.send(self.ws.send(event))

    async def next_event(self, timeout: float = 5.0) -> Event:
        with anyio.fail_after(timeout):
            while not self._events:
                try:
                    data: bytes | None = await self.stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    data = None
                self.ws.receive_data(data)
                self._events.extend(self.ws.events())
                if data is None and not self._events:
                    raise AssertionError("the server closed the connection without an event")
            return self._events.pop(0)


# --- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return issue_certificates(tmp_path_factory.mktemp("ws-tls"))


# --- echo, TLS, compression, subprotocols ------------------------------------------------------


async def _echo_round_trips(client: Client) -> None:
    await client.send("hello")
    assert await client.recv() == "hello"
    await client.send(b"\x00\x01binary\xff")
    assert await client.recv() == b"\x00\x01binary\xff"
    big = "é" * 100_000  # 200 kB of UTF-8: several reads, compressible
    await client.send(big)
    assert await client.recv() == big
    await client.send([b"frag", b"mented", b"!"])  # one message in three frames
    assert await client.recv() == b"fragmented!"


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_echo_over_ws(compression: str | None) -> None:
    async with (
        serving(ws_apps.echo) as server,
        ws_connect(ws_url(server), compression=compression) as client,
    ):
        extensions = handshake_headers(client).get("Sec-WebSocket-Extensions")
        if compression:
            assert extensions is not None
            assert "permessage-deflate" in extensions
        else:
            assert extensions is None
        await _echo_round_trips(client)
        await ws_close(client)
        assert client.close_code == 1000


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_echo_over_wss(certificates: Certificates, compression: str | None) -> None:
    settings = certificates.settings()
    async with (
        serving(ws_apps.echo, **settings) as server,
        ws_connect(
            ws_url(server, scheme="wss"),
            ssl=certificates.client_context(),
            compression=compression,
        ) as client,
    ):
        assert ("Sec-WebSocket-Extensions" in handshake_headers(client)) == bool(compression)
        await _echo_round_trips(client)
    async with (
        serving(ws_apps.scope_dump, **settings) as server,
        ws_connect(ws_url(server, scheme="wss"), ssl=certificates.client_context()) as client,
    ):
        scope = json.loads(await client.recv())
        assert scope["scheme"] == "wss"
        assert "tls" in scope["extensions"]


async def test_compression_is_off_when_the_server_says_so() -> None:
    async with (
        serving(ws_apps.echo, ws_compression=False) as server,
        ws_connect(ws_url(server)) as client,  # offers permessage-deflate
    ):
        assert "Sec-WebSocket-Extensions" not in handshake_headers(client)
        await _echo_round_trips(client)


async def test_subprotocol_chosen_by_the_app() -> None:
    async with serving(ws_apps.echo) as server:
        async with ws_connect(ws_url(server), subprotocols=["chat.v0", "chat.v1"]) as client:
            assert client.subprotocol == "chat.v1"
            assert handshake_headers(client)["Sec-WebSocket-Protocol"] == "chat.v1"
        async with ws_connect(ws_url(server), subprotocols=["chat.v0"]) as client:
            assert client.subprotocol is None
            assert "Sec-WebSocket-Protocol" not in handshake_headers(client)
            await client.send("still works")
            assert await client.recv() == "still works"


async def test_scope() -> None:
    async with (
        serving(ws_apps.scope_dump) as server,
        ws_connect(
            ws_url(server, "/chat/room%201?a=1&b=%20"),
            subprotocols=["chat.v2", "chat.v1"],
            additional_headers={"X-Custom": "yes"},
        ) as client,
    ):
        scope = json.loads(await client.recv())
        local_port = client.local_address[1]
    assert scope["type"] == "websocket"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/chat/room 1"
    assert scope["raw_path"] == "/chat/room%201"
    assert scope["query_string"] == "a=1&b=%20"
    assert scope["root_path"] == ""
    assert scope["client"] == ["127.0.0.1", local_port]
    assert scope["server"] == ["127.0.0.1", server.port]
    assert scope["subprotocols"] == ["chat.v2", "chat.v1"]
    assert scope["state"] == {"ready": True}
    assert "method" not in scope
    assert "websocket.http.response" in scope["extensions"]
    headers = {name: value for name, value in scope["headers"]}
    assert headers["host"] == f"127.0.0.1:{server.port}"
    assert headers["x-custom"] == "yes"
    assert headers["sec-websocket-protocol"] == "chat.v2, chat.v1"
    assert all(name == name.lower() for name in headers)


# --- closing -----------------------------------------------------------------------------


async def test_app_closes_with_a_code_and_reason() -> None:
    async with serving(ws_apps.close_with_bye) as server, ws_connect(ws_url(server)) as client:
        await client.send("go")
        with pytest.raises(ConnectionClosedError) as closed:
            await client.recv()
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4000, "bye")
        assert closed.value.sent is not None  # the client answered: a clean close handshake
        assert client.close_code == 4000


async def test_client_close_code_reaches_the_app() -> None:
    probe = Probe()
    async with serving(ws_apps.recording(probe)) as server:
        async with ws_connect(ws_url(server)) as client:
            await client.send("one")
            await client.send(b"two")
            await ws_close(client, 4001, "client leaves")
        with anyio.fail_after(5):
            await probe.done.wait()
    assert probe.messages == [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "one"},
        {"type": "websocket.receive", "bytes": b"two"},
        {"type": "websocket.disconnect", "code": 4001, "reason": "client leaves"},
    ]


async def test_client_vanishing_gives_the_app_1006() -> None:
    probe = Probe()
    async with serving(ws_apps.recording(probe)) as server:
        async with RawWebSocket.open(server) as raw:
            await raw.send(TextMessage("hi"))
        with anyio.fail_after(5):
            await probe.done.wait()
    assert probe.messages[-1]["type"] == "websocket.disconnect"
    assert probe.messages[-1]["code"] == 1006


@pytest.mark.parametrize("app", [ws_apps.close_before_accept, ws_apps.return_before_accept])
async def test_app_refusing_before_accept_is_403(app: Any) -> None:
    async with serving(app) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with ws_connect(ws_url(server)):
                pass
    assert refused.value.response.status_code == 403


async def test_denial_response() -> None:
    async with serving(ws_apps.deny_401) as server:
        with pytest.raises(InvalidStatus) as denied:
            async with ws_connect(ws_url(server)):
                pass
        response = denied.value.response
        assert response.status_code == 401
        assert response.body == ws_apps.DENIAL_BODY
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="tricorn"'
        # The same through wsproto: a RejectConnection with its body, then the stream ends.
        async with await open_raw(server) as stream:
            client = RawWebSocket(stream)
            await client.send(Request(host=f"127.0.0.1:{server.port}", target="/"))
            rejection = await client.next_event()
            assert isinstance(rejection, RejectConnection)
            assert rejection.status_code == 401
            assert rejection.has_body
            body = b""
            while True:
                data = await client.next_event()
                assert isinstance(data, RejectData)
                body += data.data
                if data.body_finished:
                    break
            assert body == ws_apps.DENIAL_BODY


async def test_app_exception_after_accept_closes_1011() -> None:
    async with (
        serving(ws_apps.crash_after_accept) as server,
        ws_connect(ws_url(server)) as client,
    ):
        await client.send("boom")
        with pytest.raises(ConnectionClosedError) as closed:
            await client.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1011


async def test_app_exception_before_accept_is_500() -> None:
    async with serving(ws_apps.crash_before_accept) as server:
        with pytest.raises(InvalidStatus) as failed:
            async with ws_connect(ws_url(server)):
                pass
        assert failed.value.response.status_code == 500
        assert b"RuntimeError" not in (failed.value.response.body or b"")


# --- limits --------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_message_over_the_size_limit_closes_1009(compression: str | None) -> None:
    async with (
        serving(ws_apps.echo, ws_max_message_size=1024) as server,
        ws_connect(ws_url(server), compression=compression) as client,
    ):
        await client.send(b"a" * 1024)  # exactly the limit: fine
        assert await client.recv() == b"a" * 1024
        await client.send(b"b" * 2048)
        with pytest.raises(ConnectionClosedError) as closed:
            await client.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009


async def test_size_limit_counts_decompressed_bytes() -> None:
    async with (
        serving(ws_apps.echo, ws_max_message_size=65536) as server,
        ws_connect(ws_url(server)) as client,
    ):
        assert "permessage-deflate" in handshake_headers(client)["Sec-WebSocket-Extensions"]
        await client.send(b"\x00" * (1 << 20))  # 1 MiB that deflates to about 1 kB
        with pytest.raises(ConnectionClosedError) as closed:
            await client.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009


async def test_too_many_fragments_closes_1008() -> None:
    async with (
        serving(ws_apps.echo, ws_max_fragments=4) as server,
        ws_connect(ws_url(server), compression=None) as client,
    ):
        # websockets ends a fragmented message with an empty final frame, which is not
        # counted: 4 fragments are 5 frames, and within the limit.
        await client.send([b"1", b"2", b"3", b"4"])
        assert await client.recv() == b"1234"
        with pytest.raises(ConnectionClosedError) as closed:
            await client.send([b"%d" % i for i in range(10)])  # may fail already
            await client.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008


# --- backpressure --------------------------------------------------------------------------


async def _until_stalled(probe: Probe, quiet: float, limit: float = 30.0) -> None:
    """Return once ``probe`` has not ticked for ``quiet`` seconds (fails after ``limit``)."""
    with anyio.fail_after(limit):
        while True:
            progress = probe.progress
            with anyio.move_on_after(quiet) as waited:
                await progress.wait()
            if waited.cancelled_caught:
                return


async def test_app_that_does_not_receive_stops_the_server_reading() -> None:
    """The client can push only what the socket buffers hold until the app receives."""
    probe = Probe()
    pusher = Probe()
    message, count = 1 << 20, 48  # 48 MiB offered
    async with serving(ws_apps.lazy_reader(probe)) as server, RawWebSocket.open(server) as raw:
        sock = raw.stream.extra(SocketAttribute.raw_socket)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)
        frame = raw.ws.send(BytesMessage(b"m" * message))

        async def push() -> None:
            for _ in range(count):
                await raw.stream.send(frame)
                pusher.tick(len(frame))
            await raw.send(CloseConnection(1000))
            pusher.done.set()

        async with anyio.create_task_group() as group:
            group.start_soon(push)
            await _until_stalled(pusher, quiet=1.0)
            stalled_at = pusher.size
            assert probe.count == 0
            assert not pusher.done.is_set(), "the whole 48 MiB went through"
            assert stalled_at < 16 * message, f"{stalled_at} bytes went in before the stall"
            probe.release.set()  # the app starts receiving: the rest flows
            with anyio.fail_after(30):
                await pusher.done.wait()
                await probe.done.wait()
    assert probe.count == count
    assert probe.size == count * message
    assert probe.messages == [{"type": "websocket.disconnect", "code": 1000, "reason": ""}]


async def test_client_that_does_not_read_blocks_the_apps_send() -> None:
    """``await send()`` returns as bytes leave: a non-reading client costs bounded memory."""
    probe = Probe()
    chunk, total = 1 << 16, 64 << 20  # 64 MiB the app would send
    async with serving(ws_apps.eager_sender(probe, chunk, total)) as server:
        async with RawWebSocket.open(server) as raw:
            sock = raw.stream.extra(SocketAttribute.raw_socket)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
            await _until_stalled(probe, quiet=1.0)
            assert not probe.done.is_set()
            assert probe.size < 16 << 20, f"the app sent {probe.size} bytes into a closed window"
            stalled_at = probe.size
        # The client is gone: the blocked send fails and the app ends.
        with anyio.fail_after(10):
            await probe.done.wait()
    assert stalled_at < total
    assert probe.messages and probe.messages[0]["type"] == "error"


# --- keepalive -----------------------------------------------------------------------------


async def test_keepalive_closes_1011_when_pings_go_unanswered() -> None:
    async with (
        serving(ws_apps.echo, ws_ping_interval=0.2, ws_ping_timeout=0.2) as server,
        RawWebSocket.open(server) as raw,
    ):
        event = await raw.next_event()
        assert isinstance(event, Ping), event  # not answered
        event = await raw.next_event()
        assert isinstance(event, CloseConnection), event
        assert event.code == 1011
        # The peer is unresponsive, so the server need not wait for our close frame: it
        # may already have closed the TCP connection (then our close frame draws a reset).
        with anyio.fail_after(5):
            try:
                await raw.send(event.response())
                while await raw.stream.receive():
                    pass
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass


async def test_keepalive_keeps_an_answering_client() -> None:
    async with (
        serving(ws_apps.echo, ws_ping_interval=0.1, ws_ping_timeout=0.5) as server,
        RawWebSocket.open(server) as raw,
    ):
        for _ in range(3):  # several ping rounds, each seen on the wire and answered
            event = await raw.next_event()
            assert isinstance(event, Ping), event
            assert event.payload == b"tricorn"
            await raw.send(event.response())
        await raw.send(TextMessage("still here"))
        event = await raw.next_event()
        while isinstance(event, Ping):  # a round may come before the echo
            await raw.send(event.response())
            event = await raw.next_event()
        assert isinstance(event, TextMessage), event
        assert event.data == "still here"


# --- RFC 8441 over HTTP/2 ------------------------------------------------------------------


class H2WebSocketClient:
    """An h2 client (h2c by prior knowledge) with one WebSocket stream framed by wsproto.

    Events of the WebSocket stream become wsproto events in ``ws_events``; everything else
    goes to ``other`` for the test to look at. Sends respect HTTP/2 flow control.
    """

    def __init__(self, stream: SocketStream) -> None:
        self.stream = stream
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.frames = WSFrameConnection(ConnectionType.CLIENT)
        self.ws_stream = 0
        self.ws_accepted = False  # a 200 to the CONNECT: DATA carries WebSocket frames
        self.ws_ended = False
        self.auto_ack = True  # WINDOW_UPDATE for the WebSocket's DATA as it arrives
        self.unacknowledged = 0
        self.ws_events: list[Event] = []
        self.other: list[h2.events.Event] = []

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            await self.stream.send(data)

    async def start(self) -> dict[int, int]:
        """Send the preface; return the server's first SETTINGS."""
        self.conn.initiate_connection()
        await self.flush()
        settings = await self.wait_for(h2.events.RemoteSettingsChanged, None)
        return {code: change.new_value for code, change in settings.changed_settings.items()}

    async def connect(self, authority: str, path: str, *extra: tuple[str, str]) -> Any:
        """Extended CONNECT (RFC 8441 4) for a WebSocket; return the response event."""
        self.ws_stream = self.conn.get_next_available_stream_id()
        self.conn.send_headers(
            self.ws_stream,
            [
                (":method", "CONNECT"),
                (":protocol", "websocket"),
                (":scheme", "http"),
                (":path", path),
                (":authority", authority),
                ("sec-websocket-version", "13"),
                *extra,
            ],
        )
        await self.flush()
        return await self.wait_for(h2.events.ResponseReceived, self.ws_stream)

    async def pump(self) -> None:
        """Read once from the socket and route the events."""
        data = await self.stream.receive()
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == self.ws_stream:
                self.ws_accepted = dict(event.headers)[b":status"] == b"200"
            if (
                isinstance(event, h2.events.DataReceived)
                and event.stream_id == self.ws_stream
                and self.ws_accepted
            ):
                if self.auto_ack:
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                else:
                    self.unacknowledged += event.flow_controlled_length
                if event.data:  # not the empty DATA that carries END_STREAM
                    self.frames.receive_data(event.data)
                    self.ws_events.extend(self.frames.events())
                continue
            if isinstance(event, h2.events.StreamEnded) and event.stream_id == self.ws_stream:
                self.ws_ended = True
            if isinstance(event, h2.events.StreamReset):
                # After its END_STREAM a server may reset the stream with NO_ERROR instead of
                # waiting for the client's END_STREAM (RFC 9113 8.1); nothing else is fine.
                assert event.stream_id == self.ws_stream, event
                assert self.ws_ended, event
                assert event.error_code == h2.errors.ErrorCodes.NO_ERROR, event
            self.other.append(event)
        await self.flush()  # SETTINGS ACKs, WINDOW_UPDATEs

    async def acknowledge(self) -> None:
        """Open the windows for all the WebSocket DATA held back; acknowledge from now on."""
        self.auto_ack = True
        if self.unacknowledged:
            self.conn.acknowledge_received_data(self.unacknowledged, self.ws_stream)
            self.unacknowledged = 0
        await self.flush()

    async def wait_for(self, kind: type[h2.events.Event], stream_id: int | None) -> Any:
        with anyio.fail_after(5):
            while True:
                for event in self.other:
                    if isinstance(event, kind) and getattr(event, "stream_id", None) == stream_id:
                        return event
                await self.pump()

    async def ws_event(self) -> Event:
        with anyio.fail_after(5):
            while not self.ws_events:
                await self.pump()
            return self.ws_events.pop(0)

    async def ws_message(self) -> str | bytes:
        """One whole WebSocket message, however the server framed it."""
        parts: list[Any] = []
        while True:
            event = await self.ws_event()
            assert isinstance(event, TextMessage | BytesMessage), event
            parts.append(event.data)
            if event.message_finished:
                return "".join(parts) if isinstance(event, TextMessage) else b"".join(parts)

    async def ws_send(self, event: Event) -> None:
        await self.ws_send_bytes(self.frames.send(event))

    async def ws_send_bytes(self, frames: bytes) -> None:
        """WebSocket frame bytes as DATA on the WebSocket stream, as flow control allows."""
        data = memoryview(frames)
        with anyio.fail_after(5):
            while data:
                size = min(
                    len(data),
                    self.conn.local_flow_control_window(self.ws_stream),
                    self.conn.max_outbound_frame_size,
                )
                if size == 0:
                    await self.pump()  # until a WINDOW_UPDATE
                    continue
                self.conn.send_data(self.ws_stream, data[:size].tobytes())
                data = data[size:]
                await self.flush()


async def test_rfc8441_websocket_over_http2() -> None:
    async with serving(ws_apps.echo) as server, await open_raw(server) as stream:
        client = H2WebSocketClient(stream)
        settings = await client.start()
        assert settings[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL] == 1
        authority = f"127.0.0.1:{server.port}"
        response = await client.connect(authority, "/chat", ("sec-websocket-protocol", "chat.v1"))
        headers = dict(response.headers)
        assert headers[b":status"] == b"200"
        assert headers[b"sec-websocket-protocol"] == b"chat.v1"
        assert b"sec-websocket-accept" not in headers  # RFC 8441 5: no key, no accept

        await client.ws_send(TextMessage("hello over h2"))
        assert await client.ws_message() == "hello over h2"

        # A normal request on the same connection while the WebSocket stays open.
        get_stream = client.conn.get_next_available_stream_id()
        client.conn.send_headers(
            get_stream,
            [
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/plain"),
                (":authority", authority),
            ],
            end_stream=True,
        )
        await client.flush()
        payload = b"\x00binary over h2\xff" * 10_000  # 170 kB: over the 64 kB windows
        await client.ws_send(BytesMessage(payload))
        assert await client.ws_message() == payload
        get_response = await client.wait_for(h2.events.ResponseReceived, get_stream)
        assert dict(get_response.headers)[b":status"] == b"200"
        await client.wait_for(h2.events.StreamEnded, get_stream)
        body = b"".join(
            event.data
            for event in client.other
            if isinstance(event, h2.events.DataReceived) and event.stream_id == get_stream
        )
        assert body == b"http ok"

        # Close handshake: ours, the server's answer, then the server ends the stream.
        await client.ws_send(CloseConnection(1000, "done"))
        closing = await client.ws_event()
        assert isinstance(closing, CloseConnection)
        assert closing.code == 1000
        await client.wait_for(h2.events.StreamEnded, client.ws_stream)
        assert client.ws_ended
        # The connection is still good for more requests.
        again = client.conn.get_next_available_stream_id()
        client.conn.send_headers(
            again,
            [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", authority)],
            end_stream=True,
        )
        await client.flush()
        await client.wait_for(h2.events.StreamEnded, again)


async def test_rfc8441_scope_and_denial() -> None:
    async with serving(ws_apps.scope_dump) as server, await open_raw(server) as stream:
        client = H2WebSocketClient(stream)
        await client.start()
        authority = f"127.0.0.1:{server.port}"
        response = await client.connect(authority, "/over/h2?x=1")
        assert dict(response.headers)[b":status"] == b"200"
        scope = json.loads(await client.ws_message())
        assert scope["type"] == "websocket"
        assert scope["http_version"] == "2"
        assert scope["scheme"] == "ws"
        assert (scope["path"], scope["query_string"]) == ("/over/h2", "x=1")
        assert ["host", authority] in scope["headers"]  # ASGI: :authority becomes host
        assert all(not name.startswith(":") for name, _ in scope["headers"])
        await client.ws_send(CloseConnection(1000))
        closing = await client.ws_event()
        assert isinstance(closing, CloseConnection)
    async with serving(ws_apps.deny_401) as server, await open_raw(server) as stream:
        client = H2WebSocketClient(stream)
        await client.start()
        response = await client.connect(f"127.0.0.1:{server.port}", "/")
        assert dict(response.headers)[b":status"] == b"401"
        await client.wait_for(h2.events.StreamEnded, client.ws_stream)
        body = b"".join(
            event.data
            for event in client.other
            if isinstance(event, h2.events.DataReceived) and event.stream_id == client.ws_stream
        )
        assert body == ws_apps.DENIAL_BODY


async def test_rfc8441_ping_while_the_stream_window_is_closed() -> None:
    """A client ping while the server waits for window must not stall the connection."""
    async with serving(ws_apps.echo) as server, await open_raw(server) as stream:
        client = H2WebSocketClient(stream)
        await client.start()
        authority = f"127.0.0.1:{server.port}"
        response = await client.connect(authority, "/")
        assert dict(response.headers)[b":status"] == b"200"
        client.auto_ack = False
        payload = b"w" * 200_000
        await client.ws_send(BytesMessage(payload))
        with anyio.fail_after(5):
            while client.unacknowledged < 65535 - 100:  # the echo fills the stream window
                await client.pump()
        await client.ws_send(Ping(b"are you there"))  # the server must answer: but no window
        await client.acknowledge()
        get_stream = client.conn.get_next_available_stream_id()
        client.conn.send_headers(
            get_stream,
            [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", authority)],
            end_stream=True,
        )
        await client.flush()
        got: list[Event] = []
        echoed = b""
        with anyio.fail_after(5):
            while len(echoed) < len(payload) or not any(isinstance(e, Pong) for e in got):
                event = await client.ws_event()
                got.append(event)
                if isinstance(event, BytesMessage):
                    echoed += event.data
        assert echoed == payload
        await client.wait_for(h2.events.StreamEnded, get_stream)
        await client.ws_send(CloseConnection(1000))
        closing = await client.ws_event()
        assert isinstance(closing, CloseConnection)


# --- server shutdown -------------------------------------------------------------------------


async def test_shutdown_closes_an_open_websocket_with_1001() -> None:
    """Graceful shutdown does not wait out graceful_timeout for an idle WebSocket: the
    server closes it with 1001 (Going Away), the app is told, and the server stops."""
    probe = Probe()
    # A hang guard well under graceful_timeout: the server must stop once the WebSocket is
    # closed, not when the 30 s run out.
    with anyio.fail_after(10):
        async with (
            serving(ws_apps.recording(probe), graceful_timeout=30) as server,
            RawWebSocket.open(server) as raw,
        ):
            server.shutdown.set()
            await probe.done.wait()
            close = await raw.next_event()
            assert isinstance(close, CloseConnection), close
            assert (close.code, close.reason) == (1001, "server shutting down")
            await raw.send(close.response())
            # The handshake is complete: the server closes the connection (RFC 6455 7.1.1).
            assert await read_until_closed(raw.stream) == b""
    assert probe.messages[-1] == {
        "type": "websocket.disconnect",
        "code": 1001,
        "reason": "server shutting down",
    }


async def test_shutdown_closes_a_websocket_over_http2_with_1001() -> None:
    """The same over RFC 8441: GOAWAY, then the close frame on the still-open stream (the
    raw frame client reads on after GOAWAY, which h2's client state machine will not)."""
    probe = Probe()
    # A hang guard well under graceful_timeout (see the test above).
    with anyio.fail_after(10):
        async with (
            serving(ws_apps.recording(probe), graceful_timeout=30) as server,
            await open_raw(server) as stream,
        ):
            await _shutdown_over_http2(server, stream, probe)
    assert probe.messages[-1]["code"] == 1001


async def _shutdown_over_http2(server: RunningServer, stream: SocketStream, probe: Probe) -> None:
    """Shut down with a WebSocket open over HTTP/2; see the test."""
    client = H2Client(stream)
    await client.start()
    ws = await client.request(
        "CONNECT",
        "/",
        [(b":protocol", b"websocket"), (b"sec-websocket-version", b"13")],
        end_stream=False,
        authority=f"127.0.0.1:{server.port}",
    )
    head = await client.wait_for(lambda f: f.kind == "HEADERS" and f.stream_id == ws)
    assert head.header(b":status") == b"200"
    server.shutdown.set()
    frames = WSFrameConnection(ConnectionType.CLIENT)
    close: CloseConnection | None = None
    with anyio.fail_after(5):
        while close is None:
            frame = await client.wait_for(lambda f: f.kind == "DATA" and f.stream_id == ws)
            frames.receive_data(frame.data)
            close = next((e for e in frames.events() if isinstance(e, CloseConnection)), None)
    assert close.code == 1001
    assert any(f.kind == "GOAWAY" for f in client.frames)
    await client.send_data(ws, frames.send(close.response()))
    await client.response(ws)  # the server ends the stream
    await probe.done.wait()
    # The server stops: with its last stream done it closes the connection.
    while True:
        try:
            await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            break


# --- limits and protocol errors, over HTTP/1.1 and over HTTP/2 (RFC 8441) -------------------
#
# Each test runs on both backends (the anyio_backend fixture) and both transports: the limits
# live in the sans-IO protocol, but what feeds it (socket reads or DATA frames under flow
# control) and how the close ends the transport (TCP close or END_STREAM) differ. Each one
# reads the close code off the wire with a raw wsproto client and checks that a bystander
# WebSocket on the same server keeps being served.

TRANSPORTS = ["http/1.1", "h2"]

TEXT, BINARY, CONTINUATION, PING = 0x1, 0x2, 0x0, 0x9
RSV1, RSV2 = 0x40, 0x20


def client_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0) -> bytes:
    """A masked client frame built by hand: any opcode, flags and length (wsproto's own
    client refuses to send what these tests need to send)."""
    first = (0x80 if fin else 0) | rsv | opcode
    size = len(payload)
    if size < 126:
        header = bytes((first, 0x80 | size))
    elif size < 65536:
        header = bytes((first, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((first, 0x80 | 127)) + size.to_bytes(8, "big")
    return header + b"\x00\x00\x00\x00" + payload  # a zero mask: the payload as it is


def fragmented(opcode: int, pieces: list[bytes], *, empty_final: bool = False) -> bytes:
    """One message as one frame per piece (and, as websockets sends it, an empty final one)."""
    frames = [
        client_frame(opcode if i == 0 else CONTINUATION, piece, fin=False)
        for i, piece in enumerate(pieces)
    ]
    if empty_final:
        frames.append(client_frame(CONTINUATION, b""))
    else:
        last = frames.pop()
        frames.append(last[:0] + bytes((last[0] | 0x80,)) + last[1:])
    return b"".join(frames)


class Peer:
    """A raw WebSocket client on one transport: bytes out, wsproto events in."""

    async def send_bytes(self, data: bytes) -> None:
        raise NotImplementedError

    async def event(self) -> Event:
        raise NotImplementedError

    async def ended(self) -> None:
        """Return once the server has ended the WebSocket's transport (fails after 5 s)."""
        raise NotImplementedError

    async def message(self) -> str | bytes:
        """One whole message, however the server framed it."""
        parts: list[Any] = []
        while True:
            event = await self.event()
            assert isinstance(event, TextMessage | BytesMessage), event
            parts.append(event.data)
            if event.message_finished:
                return "".join(parts) if isinstance(event, TextMessage) else b"".join(parts)

    async def close_code(self) -> int:
        """The code of the server's close frame, skipping nothing else: the close must be
        the next thing on the wire."""
        event = await self.event()
        assert isinstance(event, CloseConnection), event
        return int(event.code)


class H1Peer(Peer):
    def __init__(self, raw: RawWebSocket) -> None:
        self.raw = raw

    async def send_bytes(self, data: bytes) -> None:
        await self.raw.stream.send(data)

    async def event(self) -> Event:
        return await self.raw.next_event()

    async def ended(self) -> None:
        await read_until_closed(self.raw.stream)


class H2Peer(Peer):
    def __init__(self, client: H2WebSocketClient) -> None:
        self.client = client

    async def send_bytes(self, data: bytes) -> None:
        await self.client.ws_send_bytes(data)

    async def event(self) -> Event:
        return await self.client.ws_event()

    async def ended(self) -> None:
        await self.client.wait_for(h2.events.StreamEnded, self.client.ws_stream)


@asynccontextmanager
async def ws_peer(
    server: RunningServer, transport: str, *, deflate: bool = False
) -> AsyncIterator[Peer]:
    """A raw WebSocket to ``server`` over ``transport`` ("http/1.1" or "h2")."""
    if transport == "http/1.1":
        async with RawWebSocket.open(server, deflate=deflate) as raw:
            yield H1Peer(raw)
        return
    async with await open_raw(server) as stream:
        client = H2WebSocketClient(stream)
        await client.start()
        extra = [("sec-websocket-extensions", "permessage-deflate")] if deflate else []
        response = await client.connect(f"127.0.0.1:{server.port}", "/", *extra)
        assert dict(response.headers)[b":status"] == b"200"
        if deflate:
            assert b"permessage-deflate" in dict(response.headers)[b"sec-websocket-extensions"]
        yield H2Peer(client)


@asynccontextmanager
async def bystander(server: RunningServer) -> AsyncIterator[None]:
    """Another WebSocket on the same server (``/bystander``: ``echo`` on every app these
    tests serve, see ``ws_apps.with_bystander``), served before and after the body runs."""
    async with ws_connect(ws_url(server, "/bystander"), compression=None) as client:
        await client.send("before")
        assert await client.recv() == "before"
        yield
        await client.send("after")
        assert await client.recv() == "after"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_fragment_limit(transport: str) -> None:
    """ws_max_fragments frames are accepted (an empty final frame not counted); one more
    closes with 1008."""
    async with (
        serving(ws_apps.echo, ws_max_fragments=4) as server,
        bystander(server),
        ws_peer(server, transport) as peer,
    ):
        await peer.send_bytes(fragmented(BINARY, [b"1", b"2", b"3", b"4"], empty_final=True))
        assert await peer.message() == b"1234"
        await peer.send_bytes(fragmented(TEXT, [b"a", b"b", b"c", b"d"]))
        assert await peer.message() == "abcd"
        await peer.send_bytes(fragmented(BINARY, [b"1", b"2", b"3", b"4", b"5"]))
        assert await peer.close_code() == 1008
        await peer.ended()


async def test_the_default_fragment_limit_takes_what_websockets_sends() -> None:
    """Autobahn 9.3.1's shape with the defaults: 65,536 fragments (websockets adds an empty
    final frame, 65,537 frames in all) are one message; one fragment more is 1008."""
    async with (
        serving(ws_apps.echo) as server,
        bystander(server),
        ws_connect(ws_url(server), compression=None, max_size=None) as client,
    ):
        await client.send([b"f"] * 65536)
        assert await client.recv() == b"f" * 65536
        with pytest.raises(ConnectionClosedError) as closed:
            await client.send([b"g"] * 65537)  # the trio client may see the close here
            await client.recv()  # and the asyncio client here
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_empty_non_final_fragments_count(transport: str) -> None:
    """Only the empty *final* frame is free: empty frames that do not end the message count,
    so a stream of them is cut off like any other."""
    async with (
        serving(ws_apps.echo, ws_max_fragments=4) as server,
        bystander(server),
        ws_peer(server, transport) as peer,
    ):
        await peer.send_bytes(fragmented(BINARY, [b"x", b"", b"", b"", b""], empty_final=True))
        assert await peer.close_code() == 1008
        await peer.ended()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_message_size_limit(transport: str) -> None:
    async with (
        serving(ws_apps.echo, ws_max_message_size=1024) as server,
        bystander(server),
        ws_peer(server, transport) as peer,
    ):
        await peer.send_bytes(client_frame(BINARY, b"a" * 1024))  # exactly the limit: fine
        assert await peer.message() == b"a" * 1024
        await peer.send_bytes(fragmented(TEXT, [b"b" * 1000, b"c" * 25]))  # 1025 in two
        assert await peer.close_code() == 1009
        await peer.ended()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_message_size_limit_counts_decompressed_bytes(transport: str) -> None:
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    bomb = compressor.compress(b"\x00" * (1 << 20)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    bomb = bomb[:-4]  # RFC 7692 7.2.1: without the empty block's tail
    assert len(bomb) < 2048  # 1 MiB of zeros on the wire as about 1 kB
    async with (
        serving(ws_apps.echo, ws_max_message_size=65536) as server,
        bystander(server),
        ws_peer(server, transport, deflate=True) as peer,
    ):
        await peer.send_bytes(client_frame(BINARY, bomb, rsv=RSV1))
        assert await peer.close_code() == 1009
        await peer.ended()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_control_frame_over_125_bytes_closes_1002(transport: str) -> None:
    async with (
        serving(ws_apps.echo) as server,
        bystander(server),
        ws_peer(server, transport) as peer,
    ):
        await peer.send_bytes(client_frame(PING, b"p" * 126))
        assert await peer.close_code() == 1002
        await peer.ended()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_invalid_utf8_in_text_closes_1007(transport: str) -> None:
    async with (
        serving(ws_apps.echo) as server,
        bystander(server),
        ws_peer(server, transport) as peer,
    ):
        await peer.send_bytes(fragmented(TEXT, ["κόσμε".encode(), b"\xed\xa0\x80"]))
        assert await peer.close_code() == 1007
        await peer.ended()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_close_timeout_drops_a_client_that_never_answers(transport: str) -> None:
    """The app closes; the client never sends its close frame: after ws_close_timeout the
    server gives up on it (ends the transport) and the app's close returns."""
    probe = Probe()
    async with (
        serving(ws_apps.with_bystander(ws_apps.closing(probe)), ws_close_timeout=0.2) as server,
        bystander(server),
        ws_peer(server, transport) as peer,
    ):
        await peer.send_bytes(client_frame(TEXT, b"close please"))
        assert await peer.close_code() == 4000
        await peer.ended()  # without our close frame
        with anyio.fail_after(5):
            await probe.done.wait()
        assert probe.messages == [{"type": "closed"}]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_app_close_completes_when_the_client_answers(transport: str) -> None:
    """With a long ws_close_timeout, the app's close returns when the client answers."""
    probe = Probe()
    async with (
        serving(ws_apps.with_bystander(ws_apps.closing(probe)), ws_close_timeout=60) as server,
        bystander(server),
        ws_peer(server, transport) as peer,
    ):
        await peer.send_bytes(client_frame(TEXT, b"close please"))
        assert await peer.close_code() == 4000
        assert probe.messages == []  # the app's close waits for our answer
        await peer.send_bytes(client_frame(0x8, (4000).to_bytes(2, "big")))
        with anyio.fail_after(5):  # a hang guard, far under the 60 s timeout
            await probe.done.wait()
        assert probe.messages == [{"type": "closed"}]
        await peer.ended()


# A valid message, a bad frame and a ping in one write, as Autobahn's cases 3.2-3.4, 4.1.3-4.2.5
# and 5.15 send them: the message is echoed, then the close comes; the ping is not answered.
BAD_AFTER_VALID = {
    "rsv2": client_frame(TEXT, b"bad", rsv=RSV2),
    "reserved-opcode": client_frame(0x5, b""),
    "continuation-without-start": client_frame(CONTINUATION, b"orphan", fin=False),
}


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("bad", sorted(BAD_AFTER_VALID))
async def test_messages_before_a_protocol_error_are_answered_before_the_close(
    transport: str, bad: str
) -> None:
    async with serving(ws_apps.echo) as server, bystander(server):
        for _ in range(5):  # the same every time: it does not depend on scheduling
            async with ws_peer(server, transport) as peer:
                await peer.send_bytes(
                    client_frame(TEXT, b"valid")
                    + fragmented(BINARY, [b"frag", b"mented"])
                    + BAD_AFTER_VALID[bad]
                    + client_frame(PING, b"unanswered")
                )
                assert await peer.message() == "valid"
                assert await peer.message() == b"fragmented"
                assert await peer.close_code() == 1002  # no pong before it
                await peer.ended()


async def test_the_close_after_a_protocol_error_waits_for_the_app_a_bounded_time() -> None:
    """An app that does not take the messages from before the error does not hold the close
    back: it goes out after ws_close_timeout; the app later gets the message and 1002."""
    probe = Probe()
    async with (
        serving(ws_apps.lazy_reader(probe), ws_close_timeout=0.2) as server,
        ws_peer(server, "http/1.1") as peer,
    ):
        await peer.send_bytes(client_frame(BINARY, b"valid") + client_frame(0x5))
        assert await peer.close_code() == 1002  # while the app still has not received
        probe.release.set()
        with anyio.fail_after(5):
            await probe.done.wait()
        await peer.ended()
    assert (probe.count, probe.size) == (1, len(b"valid"))
    assert probe.messages == [{"type": "websocket.disconnect", "code": 1002, "reason": ""}]


@pytest.mark.parametrize("level", [0, 9])
async def test_compression_level_reaches_the_wire(level: int) -> None:
    """ws_compression_level is what permessage-deflate uses: level 0 sends stored (BTYPE 00)
    deflate blocks, the size of the message; level 9 compresses it."""
    message = b"tricorn " * 512
    async with (
        serving(ws_apps.echo, ws_compression_level=level) as server,
        RawWebSocket.open(server, deflate=True) as raw,
    ):
        await raw.stream.send(client_frame(BINARY, message))  # uncompressed in: RFC 7692 allows
        data = b""
        with anyio.fail_after(5):
            while len(data) < 4 or len(data) < _frame_end(data):
                data += await raw.stream.receive()
    assert data[0] == 0xC2  # FIN + RSV1 (compressed) + binary
    body = data[_frame_end(data) - _payload_length(data) : _frame_end(data)]
    assert zlib.decompressobj(-15).decompress(body + b"\x00\x00\xff\xff") == message
    if level == 0:
        assert body[0] & 0b110 == 0  # a stored block
        assert len(body) > len(message)
    else:
        assert len(body) < len(message) // 20


def _payload_length(frame: bytes) -> int:
    """The payload length of an unmasked server frame (7-bit or 16-bit form)."""
    short = frame[1] & 0x7F
    return int.from_bytes(frame[2:4], "big") if short == 126 else short


def _frame_end(frame: bytes) -> int:
    return (4 if frame[1] & 0x7F == 126 else 2) + _payload_length(frame)
