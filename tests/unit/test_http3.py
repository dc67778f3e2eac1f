"""HTTP3Protocol with no sockets: an aioquic client connection and our server protocol pass
datagrams in memory, with a made-up clock. What the QUIC layer lets a client make us hold."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from aioquic.buffer import Buffer  # type: ignore[attr-defined]
from aioquic.h3 import events as h3_events
from aioquic.h3.connection import H3_ALPN, H3Connection, Setting
from aioquic.quic import events as quic_events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import pull_quic_header

from tricorn.protocols.events import (
    Body,
    ConnectionClosed,
    EndBody,
    Event,
    ProtocolError,
    Request,
    StreamReset,
)
from tricorn.protocols.http3 import HTTP3Protocol, server_configuration

CLIENT = ("127.0.0.1", 40000)
SERVER = ("127.0.0.1", 4433)
WINDOW = 16384


@pytest.fixture(scope="module")
def cert_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    folder: Path = tmp_path_factory.mktemp("h3unit")
    authority = trustme.CA()
    cert = authority.issue_cert("localhost")
    cert.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    yield str(folder / "cert.pem"), str(folder / "key.pem")


class Pair:
    """A connected client (aioquic, with its H3 layer) and server (HTTP3Protocol)."""

    def __init__(
        self,
        cert_files: tuple[str, str],
        *,
        connection_window: int = 1 << 20,
        streams: int = 100,
        resets: int = 200,
        body_limit: int = 0,
    ) -> None:
        self.now = 1000.0
        configuration = QuicConfiguration(
            is_client=True, alpn_protocols=H3_ALPN, server_name="localhost"
        )
        configuration.verify_mode = ssl.CERT_NONE
        self.client = QuicConnection(configuration=configuration)
        self.client_h3 = H3Connection(self.client)
        self.client.connect(SERVER, self.now)
        first = self.client.datagrams_to_send(self.now)
        header = pull_quic_header(Buffer(data=first[0][0]), host_cid_length=8)
        self.server = HTTP3Protocol(
            server_configuration(
                certfile=cert_files[0],
                keyfile=cert_files[1],
                password=None,
                idle_timeout=30,
                stream_window=WINDOW,
                connection_window=connection_window,
            ),
            original_destination_connection_id=header.destination_cid,
            max_concurrent_streams=streams,
            max_resets_per_window=resets,
            max_request_body_size=body_limit,
        )
        self.events: list[Event] = []
        self.client_events: list[quic_events.QuicEvent] = []
        self.responses: list[h3_events.H3Event] = []
        for data, _ in first:
            self.events += self.server.receive_datagram(data, CLIENT, self.now)
        self.pump()

    def pump(self) -> None:
        """Exchange datagrams until neither side has any to send."""
        quiet = 0
        for _ in range(2000):
            self.now += 0.005
            moved = False
            for data, _ in self.server.datagrams_to_send(self.now):
                self.client.receive_datagram(data, SERVER, self.now)
                moved = True
            while (event := self.client.next_event()) is not None:
                self.client_events.append(event)
                self.responses += self.client_h3.handle_event(event)
            for data, _ in self.client.datagrams_to_send(self.now):
                self.events += self.server.receive_datagram(data, CLIENT, self.now)
                moved = True
            quiet = 0 if moved else quiet + 1
            if quiet >= 3:
                return
        raise AssertionError("the exchange did not settle")

    def request(self, path: str, body: bytes | None, *, end: bool = True) -> int:
        stream_id = self.client.get_next_available_stream_id()
        head = [
            (b":method", b"POST" if body is not None else b"GET"),
            (b":scheme", b"https"),
            (b":authority", b"localhost"),
            (b":path", path.encode()),
        ]
        self.client_h3.send_headers(stream_id, head, end_stream=body is None)
        if body is not None:
            self.client_h3.send_data(stream_id, body, end_stream=end)
        return stream_id

    def errors(self) -> list[ProtocolError]:
        return [e for e in self.events if isinstance(e, ProtocolError)]

    def response_heads(self) -> list[list[tuple[bytes, bytes]]]:
        return [e.headers for e in self.responses if isinstance(e, h3_events.HeadersReceived)]

    def body_received(self, stream_id: int | None = None) -> int:
        return sum(
            len(e.data)
            for e in self.events
            if isinstance(e, Body) and (stream_id is None or e.stream_id == stream_id)
        )


def test_a_request_body_is_held_to_the_stream_window_until_the_app_reads(
    cert_files: tuple[str, str],
) -> None:
    pair = Pair(cert_files)
    stream_id = pair.request("/upload", b"x" * (1 << 20))
    pair.pump()
    assert any(isinstance(e, Request) for e in pair.events)
    held = pair.body_received(stream_id)
    assert 0 < held <= WINDOW  # aioquic alone would have doubled its window again and again
    read = 0
    for _ in range(3):
        pair.server.acknowledge_received(stream_id, held - read)
        read = held
        pair.pump()
        held = pair.body_received(stream_id)
        assert read < held <= read + WINDOW
    while not any(isinstance(e, EndBody) for e in pair.events):
        pair.server.acknowledge_received(stream_id, held - read)
        read = held
        pair.pump()
        held = pair.body_received(stream_id)
    assert held == 1 << 20


def test_the_connection_window_bounds_all_unread_streams(cert_files: tuple[str, str]) -> None:
    pair = Pair(cert_files, connection_window=3 * WINDOW)
    for n in range(8):
        pair.request(f"/{n}", b"y" * 100_000)
    pair.pump()
    assert sum(isinstance(e, Request) for e in pair.events) == 8
    assert pair.body_received() <= 3 * WINDOW


def test_max_concurrent_streams_is_the_quic_stream_limit(cert_files: tuple[str, str]) -> None:
    pair = Pair(cert_files, streams=2)
    for n in range(3):
        pair.request(f"/{n}", None)
    pair.pump()
    requests = [e for e in pair.events if isinstance(e, Request)]
    assert len(requests) == 2  # the third waits in the client for MAX_STREAMS
    first = requests[0].stream_id
    pair.server.send_response(first, 200, [], end_stream=True)
    pair.server.release(first)
    pair.pump()
    assert sum(isinstance(e, Request) for e in pair.events) == 3


def test_a_client_reset_is_a_stream_reset_event(cert_files: tuple[str, str]) -> None:
    pair = Pair(cert_files)
    stream_id = pair.request("/upload", b"part", end=False)
    pair.pump()
    pair.client.reset_stream(stream_id, 0x10C)
    pair.pump()
    assert StreamReset(stream_id, 0x10C) in pair.events
    assert not pair.server.is_open(stream_id)


def test_after_goaway_new_requests_are_rejected(cert_files: tuple[str, str]) -> None:
    pair = Pair(cert_files)
    first = pair.request("/first", None)
    pair.pump()
    pair.server.goaway()
    pair.pump()
    late = pair.request("/late", None)
    pair.pump()
    paths = [e.target for e in pair.events if isinstance(e, Request)]
    assert paths == [b"/first"]
    assert quic_events.StreamReset(stream_id=late, error_code=0x10B) in pair.client_events
    pair.server.send_response(first, 200, [(b"connection", b"close")], end_stream=True)
    pair.pump()
    heads = [e for e in pair.responses if isinstance(e, h3_events.HeadersReceived)]
    assert heads[0].headers == [(b":status", b"200")]  # connection-specific field dropped


def test_an_idle_connection_ends_after_the_idle_timeout(cert_files: tuple[str, str]) -> None:
    pair = Pair(cert_files)
    assert not pair.server.terminated
    timer = pair.server.get_timer()
    assert timer is not None
    pair.events.clear()
    pair.events += pair.server.handle_timer(pair.now + 31)  # quic_idle_timeout 30 s
    while not pair.server.terminated and (timer := pair.server.get_timer()) is not None:
        pair.events += pair.server.handle_timer(timer)
    assert pair.server.terminated
    assert any(isinstance(e, ConnectionClosed) for e in pair.events)


def test_a_stream_the_client_reset_gives_its_slot_back(cert_files: tuple[str, str]) -> None:
    """RESET_STREAM alone (no STOP_SENDING): once the app has ended, our half is reset too,
    so the QUIC stream finishes and MAX_STREAMS lets the client open the next one."""
    pair = Pair(cert_files, streams=1)
    first = pair.request("/upload", b"part", end=False)
    pair.pump()
    pair.client.reset_stream(first, 0x10C)
    pair.pump()
    assert StreamReset(first, 0x10C) in pair.events
    pair.request("/next", None)
    pair.pump()
    assert [e.target for e in pair.events if isinstance(e, Request)] == [b"/upload"]
    pair.server.release(first)  # the app ended
    pair.pump()
    assert quic_events.StreamReset(stream_id=first, error_code=0x10C) in pair.client_events
    assert [e.target for e in pair.events if isinstance(e, Request)] == [b"/upload", b"/next"]


def test_an_early_response_declines_the_rest_of_the_body(cert_files: tuple[str, str]) -> None:
    pair = Pair(cert_files, streams=1)
    first = pair.request("/upload", b"part", end=False)
    pair.pump()
    pair.server.send_response(first, 413, [], end_stream=True)
    pair.server.release(first)
    pair.pump()
    stops = [e for e in pair.client_events if isinstance(e, quic_events.StopSendingReceived)]
    assert [(e.stream_id, e.error_code) for e in stops] == [(first, 0x100)]  # H3_NO_ERROR
    pair.request("/next", None)
    pair.pump()
    assert [e.target for e in pair.events if isinstance(e, Request)] == [b"/upload", b"/next"]


def test_a_reset_flood_closes_the_connection(cert_files: tuple[str, str]) -> None:
    """Rapid reset: requests opened and reset past the limit per window close the
    connection with H3_EXCESSIVE_LOAD."""
    pair = Pair(cert_files, resets=5)
    for n in range(8):
        stream_id = pair.request(f"/{n}", b"x", end=False)
        pair.pump()
        pair.client.reset_stream(stream_id, 0x10C)
        pair.pump()
        if pair.server.terminated:
            break
    errors = [e for e in pair.events if isinstance(e, ProtocolError) and e.stream_id is None]
    assert [e.error_code for e in errors] == [0x107]
    assert sum(isinstance(e, StreamReset) for e in pair.events) == 6  # the sixth is one too many
    pair.client.handle_timer(pair.now + 60)  # the client's draining period ends
    closed = []
    while (event := pair.client.next_event()) is not None:
        if isinstance(event, quic_events.ConnectionTerminated):
            closed.append(event.error_code)
    assert closed == [0x107]


def test_refused_requests_leave_nothing_behind(cert_files: tuple[str, str]) -> None:
    """Malformed heads (host differing from :authority) are reset one by one, and the
    protocol keeps no state for them; a good request still gets through after."""
    pair = Pair(cert_files, streams=5)
    for n in range(20):
        stream_id = pair.client.get_next_available_stream_id()
        head = [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", b"localhost"),
            (b":path", b"/%d" % n),
            (b"host", b"elsewhere"),
        ]
        pair.client_h3.send_headers(stream_id, head, end_stream=True)
        pair.pump()
    errors = [e for e in pair.events if isinstance(e, ProtocolError)]
    assert len(errors) == 20
    assert {e.error_code for e in errors} == {0x10E}
    assert not pair.server._streams
    pair.request("/good", None)
    pair.pump()
    assert [e.target for e in pair.events if isinstance(e, Request)] == [b"/good"]


def connect_head(protocol: bytes | None) -> list[tuple[bytes, bytes]]:
    head = [(b":method", b"CONNECT")]
    if protocol is not None:
        head += [(b":protocol", protocol), (b":scheme", b"https"), (b":path", b"/ws")]
    return [*head, (b":authority", b"localhost"), (b"sec-websocket-version", b"13")]


def test_extended_connect_is_offered_and_is_a_request(cert_files: tuple[str, str]) -> None:
    """RFC 9220 3: SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 in our SETTINGS, and a CONNECT with
    :protocol is a request (the connection runs a WebSocket for it); no body limit applies
    to its stream."""
    pair = Pair(cert_files, body_limit=10)
    settings = pair.client_h3.received_settings
    assert settings is not None and settings[Setting.ENABLE_CONNECT_PROTOCOL] == 1
    stream_id = pair.client.get_next_available_stream_id()
    pair.client_h3.send_headers(stream_id, connect_head(b"websocket"))
    pair.client_h3.send_data(stream_id, b"x" * 100, end_stream=False)
    pair.pump()
    [request] = [e for e in pair.events if isinstance(e, Request)]
    assert (request.method, request.target, request.protocol) == (b"CONNECT", b"/ws", b"websocket")
    assert request.http_version == "3"
    assert pair.body_received(stream_id) == 100
    assert not pair.errors()


def test_a_plain_connect_is_answered_501(cert_files: tuple[str, str]) -> None:
    pair = Pair(cert_files)
    stream_id = pair.client.get_next_available_stream_id()
    pair.client_h3.send_headers(stream_id, connect_head(None))
    pair.pump()
    [error] = pair.errors()
    assert (error.stream_id, error.status) == (stream_id, 501)
    assert pair.response_heads() == [[(b":status", b"501")]]
    assert not pair.server._streams


def test_a_content_length_over_the_limit_is_answered_413(cert_files: tuple[str, str]) -> None:
    pair = Pair(cert_files, body_limit=1000)
    stream_id = pair.client.get_next_available_stream_id()
    head = [
        (b":method", b"POST"),
        (b":scheme", b"https"),
        (b":authority", b"localhost"),
        (b":path", b"/up"),
        (b"content-length", b"1001"),
    ]
    pair.client_h3.send_headers(stream_id, head)
    pair.pump()
    assert not [e for e in pair.events if isinstance(e, Request)]  # no app sees it
    [error] = pair.errors()
    assert (error.stream_id, error.status, error.method, error.target) == (
        stream_id,
        413,
        b"POST",
        b"/up",
    )
    assert pair.response_heads() == [[(b":status", b"413")]]
    stops = [e for e in pair.client_events if isinstance(e, quic_events.StopSendingReceived)]
    assert [(e.stream_id, e.error_code) for e in stops] == [(stream_id, 0x100)]  # H3_NO_ERROR


@pytest.mark.parametrize("responded", [False, True])
def test_a_body_growing_past_the_limit(cert_files: tuple[str, str], responded: bool) -> None:
    """No response started: 413 (the piece past the limit is not handed on); the response
    began: both halves reset with H3_REQUEST_CANCELLED. Either way what the app sends next
    is dropped, and the stream is gone once the app ends."""
    pair = Pair(cert_files, body_limit=1000)
    stream_id = pair.request("/up", b"x" * 600, end=False)
    pair.pump()
    if responded:
        pair.server.send_response(stream_id, 200, [])
    pair.client_h3.send_data(stream_id, b"x" * 600, end_stream=False)
    pair.pump()
    assert pair.body_received(stream_id) == 600
    [error] = pair.errors()
    resets = [e for e in pair.client_events if isinstance(e, quic_events.StreamReset)]
    if responded:
        assert (error.stream_id, error.status, error.error_code) == (stream_id, None, 0x10C)
        assert [(e.stream_id, e.error_code) for e in resets] == [(stream_id, 0x10C)]
    else:
        assert (error.stream_id, error.status) == (stream_id, 413)
        assert pair.response_heads() == [[(b":status", b"413")]]
        assert not resets
    assert not pair.server.is_open(stream_id)
    pair.server.release(stream_id)  # the app ends
    pair.pump()
    assert pair.server.settled()
