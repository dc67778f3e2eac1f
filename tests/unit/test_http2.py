"""HTTP/2 protocol: bytes in, bytes out, with an h2 client connection on the other side."""

from __future__ import annotations

import struct
from typing import Any

import h2.events as h2e
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hpack import Encoder

from tricorn.errors import LocalProtocolError
from tricorn.protocols.events import (
    Body,
    ConnectionClosed,
    EndBody,
    Event,
    InformationalResponse,
    ProtocolError,
    PushPromise,
    Request,
    Response,
    StreamReset,
    Trailers,
    WindowUpdated,
)
from tricorn.protocols.http2 import PREFACE, HTTP2Protocol
from tricorn.protocols.http2_priority import PriorityScheduler, parse_priority_field

GET = [
    (b":method", b"GET"),
    (b":scheme", b"https"),
    (b":authority", b"example.com"),
    (b":path", b"/"),
]

#: An extended CONNECT (RFC 8441) opening a WebSocket.
WEBSOCKET_CONNECT = [
    (b":method", b"CONNECT"),
    (b":protocol", b"websocket"),
    (b":scheme", b"https"),
    (b":path", b"/chat"),
    (b":authority", b"example.com"),
]


def post(path: bytes = b"/upload", *extra: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return [
        (b":method", b"POST"),
        (b":scheme", b"https"),
        (b":authority", b"example.com"),
        (b":path", path),
        *extra,
    ]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def frame(frame_type: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    length = len(payload)
    return (
        struct.pack(">BHBBL", length >> 16, length & 0xFFFF, frame_type, flags, stream_id) + payload
    )


class Pair:
    """A tricorn server protocol wired to an h2 client; both sides speak through bytes."""

    def __init__(self, **options: Any) -> None:
        self.clock = Clock()
        self.server = HTTP2Protocol(clock=self.clock, **options)
        self.server.initiate()
        self.client = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.client.initiate_connection()
        self.client_events: list[Any] = []
        self.events = self.to_server()
        self.to_client()

    def to_server(self) -> list[Any]:
        data = self.client.data_to_send()
        return self.server.receive_data(data) if data else []

    def to_client(self) -> list[Any]:
        events = self.client.receive_data(self.server.data_to_send())
        self.client_events.extend(events)
        return events

    def request(
        self,
        headers: list[tuple[bytes, bytes]],
        body: bytes | None = None,
        *,
        end_stream: bool = True,
        **kw: Any,
    ) -> tuple[int, list[Any]]:
        """Open a stream; without ``body`` and with ``end_stream`` the request is complete."""
        stream_id = self.client.get_next_available_stream_id()
        self.client.send_headers(stream_id, headers, end_stream=end_stream and body is None, **kw)
        if body is not None:
            self.client.send_data(stream_id, body, end_stream=True)
        return stream_id, self.to_server()

    def raw(self, data: bytes) -> list[Any]:
        """Send bytes the h2 client would refuse to produce."""
        self.to_server()
        return self.server.receive_data(data)

    def server_frames(self) -> list[tuple[int, int, int, bytes]]:
        data = self.server.data_to_send()
        frames = []
        while data:
            high, low, frame_type, flags, stream_id = struct.unpack_from(">BHBBL", data)
            length = (high << 16) | low
            frames.append((frame_type, flags, stream_id & 0x7FFFFFFF, data[9 : 9 + length]))
            data = data[9 + length :]
        return frames


def goaway_code(frames: list[tuple[int, int, int, bytes]]) -> int | None:
    for frame_type, _, _, payload in frames:
        if frame_type == 7:
            return int(struct.unpack_from(">LL", payload)[1])
    return None


def rst_codes(frames: list[tuple[int, int, int, bytes]]) -> dict[int, int]:
    return {sid: struct.unpack(">L", p)[0] for t, _, sid, p in frames if t == 3}


def of(events: list[Any], kind: type) -> list[Any]:
    return [event for event in events if isinstance(event, kind)]


# --- requests and responses -------------------------------------------------------------


def test_get_request_becomes_a_request_event_with_host_first() -> None:
    pair = Pair()
    stream_id, events = pair.request([*GET, (b"accept", b"*/*")])
    assert events == [
        Request(
            stream_id=1,
            method=b"GET",
            target=b"/",
            headers=[(b"host", b"example.com"), (b"accept", b"*/*")],
            http_version="2",
            scheme=b"https",
            expects_body=False,
        )
    ]
    pair.server.send(Response(stream_id, 200, [(b"Content-Type", b"text/plain")]))
    pair.server.send(Body(stream_id, b"hello"))
    pair.server.send(EndBody(stream_id))
    got = pair.to_client()
    response = of(got, h2e.ResponseReceived)[0]
    assert response.headers == [(b":status", b"200"), (b"content-type", b"text/plain")]
    assert of(got, h2e.DataReceived)[0].data == b"hello"
    assert of(got, h2e.StreamEnded)
    assert pair.server.active_streams == 0


def test_request_body_and_trailers_arrive_as_events() -> None:
    pair = Pair()
    stream_id = pair.client.get_next_available_stream_id()
    pair.client.send_headers(stream_id, post(b"/u", (b"te", b"trailers")))
    pair.client.send_data(stream_id, b"abc")
    pair.client.send_headers(stream_id, [(b"x-checksum", b"1")], end_stream=True)
    events = pair.to_server()
    assert [type(e) for e in events] == [Request, Body, Trailers]
    assert events[0].expects_body
    assert events[1] == Body(stream_id, b"abc")
    assert events[2] == Trailers(stream_id, [(b"x-checksum", b"1")])


def test_request_body_ends_with_end_body() -> None:
    pair = Pair()
    _, events = pair.request(post(), b"data")
    assert [type(e) for e in events] == [Request, Body, EndBody]


def test_response_trailers_end_the_stream() -> None:
    pair = Pair()
    stream_id, _ = pair.request(GET)
    pair.server.send(Response(stream_id, 200, [(b"trailer", b"x-sum")]))
    pair.server.send(Body(stream_id, b"x"))
    pair.server.send(Trailers(stream_id, [(b"x-sum", b"42")]))
    got = pair.to_client()
    assert of(got, h2e.TrailersReceived)[0].headers == [(b"x-sum", b"42")]
    assert of(got, h2e.StreamEnded)


def test_streamed_response_is_split_into_frames_of_the_peer_max_size() -> None:
    pair = Pair()
    stream_id, _ = pair.request(GET)
    pair.server.send(Response(stream_id, 200))
    pair.server.data_to_send()
    pair.server.send_data(stream_id, b"x" * 40000)
    frames = pair.server_frames()
    assert [len(p) for t, _, _, p in frames if t == 0] == [16384, 16384, 7232]


def test_body_larger_than_sendable_raises() -> None:
    pair = Pair()
    stream_id, _ = pair.request(GET)
    pair.server.send(Response(stream_id, 200))
    assert pair.server.sendable(stream_id) == 65535
    with pytest.raises(LocalProtocolError, match="sendable"):
        pair.server.send(Body(stream_id, b"x" * 65536))


def test_misuse_raises_local_protocol_error() -> None:
    pair = Pair()
    stream_id, _ = pair.request(GET)
    with pytest.raises(LocalProtocolError, match="before the Response"):
        pair.server.send(Body(stream_id, b"x"))
    pair.server.send(Response(stream_id, 200))
    with pytest.raises(LocalProtocolError, match="second Response"):
        pair.server.send(Response(stream_id, 200))
    with pytest.raises(LocalProtocolError, match="not open"):
        pair.server.send(Response(99, 200))


def test_connection_specific_response_headers_are_dropped() -> None:
    pair = Pair()
    stream_id, _ = pair.request(GET)
    pair.server.send_response(
        stream_id, 204, [(b"connection", b"keep-alive"), (b"X-A", b"1")], end_stream=True
    )
    response = of(pair.to_client(), h2e.ResponseReceived)[0]
    assert response.headers == [(b":status", b"204"), (b"x-a", b"1")]


def test_cookie_crumbs_are_joined() -> None:
    pair = Pair()
    _, events = pair.request([*GET, (b"cookie", b"a=1"), (b"x", b"y"), (b"cookie", b"b=2")])
    assert events[0].headers == [(b"host", b"example.com"), (b"cookie", b"a=1; b=2"), (b"x", b"y")]


def test_early_hints_and_continue() -> None:
    pair = Pair()
    stream_id, events = pair.request([*post(), (b"expect", b"100-continue")], b"x")
    assert events[0].expect_continue
    pair.server.continue_request(stream_id)
    pair.server.send(InformationalResponse(stream_id, 103, [(b"link", b"</a.css>; rel=preload")]))
    got = pair.to_client()
    statuses = [dict(e.headers)[b":status"] for e in of(got, h2e.InformationalResponseReceived)]
    assert statuses == [b"100", b"103"]


# --- flow control -----------------------------------------------------------------------


def test_window_opens_only_when_the_app_acknowledges() -> None:
    pair = Pair(initial_window_size=65535, connection_window_size=65535)
    stream_id = pair.client.get_next_available_stream_id()
    pair.client.send_headers(stream_id, post())
    for _ in range(4):
        pair.client.send_data(stream_id, b"x" * 10000)
    events = pair.to_server()
    assert sum(len(e.data) for e in of(events, Body)) == 40000
    assert not any(t == 8 for t, *_ in pair.server_frames())
    pair.server.acknowledge_received(stream_id, 40000)
    updates = {sid: struct.unpack(">L", p)[0] for t, _, sid, p in pair.server_frames() if t == 8}
    assert updates[stream_id] == 40000
    assert updates[0] == 40000


def test_unacknowledged_bytes_beyond_the_window_are_a_flow_control_error() -> None:
    pair = Pair(initial_window_size=65535)
    stream_id, _ = pair.request(post(), end_stream=False)
    # The client honours windows; write frames by hand past the stream window.
    data = b"".join(frame(0, 0, stream_id, b"x" * 16384) for _ in range(4))
    data += frame(0, 0, stream_id, b"x" * 100)
    events = pair.raw(data)
    assert of(events, ConnectionClosed)
    assert goaway_code(pair.server_frames()) == ErrorCodes.FLOW_CONTROL_ERROR


def test_padding_is_acknowledged_at_once() -> None:
    pair = Pair()
    stream_id, _ = pair.request(post(), end_stream=False)
    pair.server.data_to_send()
    pair.client.send_data(stream_id, b"x" * 100, pad_length=200)
    assert of(pair.to_server(), Body)[0].data == b"x" * 100
    # The padding (and its length byte) is handed back before the app reads anything.
    assert pair.server._inbound_credit == 201


def test_window_updates_and_initial_window_changes_wake_senders() -> None:
    pair = Pair()
    stream_id, _ = pair.request(GET)
    pair.server.send(Response(stream_id, 200))
    pair.client.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 10})
    events = pair.to_server()
    assert pair.server.sendable(stream_id) == 10
    pair.client.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 100})
    events = pair.to_server()
    assert WindowUpdated(stream_id) in events
    assert pair.server.sendable(stream_id) == 100
    pair.client.increment_flow_control_window(1000, stream_id=stream_id)
    pair.client.increment_flow_control_window(1000)
    events = pair.to_server()
    assert WindowUpdated(stream_id) in events and WindowUpdated(0) in events
    assert pair.server.sendable(stream_id) == 1100


def test_sendable_honours_the_connection_window() -> None:
    pair = Pair()
    first, _ = pair.request(GET)
    second, _ = pair.request(GET)
    for stream_id in (first, second):
        pair.server.send(Response(stream_id, 200))
    pair.server.send(Body(first, b"x" * 65535))
    assert pair.server.sendable(second) == 0


# --- priority ---------------------------------------------------------------------------


def test_priority_field_parsing() -> None:
    assert parse_priority_field(b"u=1, i") == (1, True)
    assert parse_priority_field(b"i=?0, u=7") == (7, False)
    assert parse_priority_field(b"u=9") is None
    assert parse_priority_field(b"foo") is None


def test_rfc9218_urgency_orders_streams_and_incremental_round_robins() -> None:
    pair = Pair()
    a, _ = pair.request([*GET, (b"priority", b"u=5")])
    b, _ = pair.request([*GET, (b"priority", b"u=1")])
    c, _ = pair.request(GET)
    d, _ = pair.request([*GET, (b"priority", b"u=3, i")])
    e, _ = pair.request([*GET, (b"priority", b"u=3, i")])
    assert pair.server.prioritized([a, b, c, d, e]) == [b, c, d, e, a]
    assert pair.server.prioritized([a, b, c, d, e]) == [b, c, e, d, a]


def test_rfc7540_tree_orders_streams_without_a_priority_header() -> None:
    pair = Pair()
    a, _ = pair.request(GET)
    b, _ = pair.request(GET, priority_weight=256, priority_depends_on=0)
    c, _ = pair.request(GET, priority_weight=1, priority_depends_on=0)
    assert pair.server.prioritized([c, b]) == [b, c]
    pair.client.prioritize(c, weight=256, depends_on=0, exclusive=True)
    pair.to_server()
    assert pair.server.prioritized([b, c])[0] == c
    assert pair.server.prioritized([a]) == [a]


def test_scheduler_forgets_streams() -> None:
    scheduler = PriorityScheduler()
    scheduler.set_field(1, b"u=0")
    scheduler.set_tree(3, 0, 200, False)
    scheduler.remove(1)
    scheduler.remove(3)
    assert scheduler.order([5, 3, 1]) == [1, 3, 5]


def test_priority_frame_depending_on_itself_is_a_stream_error() -> None:
    pair = Pair()
    stream_id, _ = pair.request(post(), end_stream=False)
    pair.server.data_to_send()
    payload = struct.pack(">LB", stream_id, 15)
    events = pair.raw(frame(2, 0, stream_id, payload))
    assert of(events, ProtocolError)[0].error_code == ErrorCodes.PROTOCOL_ERROR
    assert StreamReset(stream_id, ErrorCodes.PROTOCOL_ERROR) in events
    assert rst_codes(pair.server_frames()) == {stream_id: ErrorCodes.PROTOCOL_ERROR}


def test_headers_depending_on_itself_is_a_stream_error() -> None:
    pair = Pair()
    encoder = Encoder()
    payload = struct.pack(">LB", 1, 15) + encoder.encode(GET)
    events = pair.raw(frame(1, 0x1 | 0x4 | 0x20, 1, payload))
    assert of(events, ProtocolError) and not of(events, Request)
    assert rst_codes(pair.server_frames()) == {1: ErrorCodes.PROTOCOL_ERROR}
    events = pair.raw(frame(1, 0x5, 3, encoder.encode(GET)))  # the connection carries on
    assert of(events, Request)


# --- push, upgrade, CONNECT -------------------------------------------------------------


def test_push_returns_the_promised_request() -> None:
    pair = Pair()
    stream_id, _ = pair.request(GET)
    pushed = pair.server.push(PushPromise(stream_id, b"/style.css", [(b"accept", b"text/css")]))
    assert pushed is not None
    assert pushed.stream_id == 2 and pushed.target == b"/style.css" and not pushed.expects_body
    assert pushed.headers == [(b"host", b"example.com"), (b"accept", b"text/css")]
    pair.server.send_response(2, 200, [], end_stream=True)
    got = pair.to_client()
    promise = of(got, h2e.PushedStreamReceived)[0]
    assert (b":path", b"/style.css") in promise.headers
    assert of(got, h2e.ResponseReceived)[0].stream_id == 2


def test_push_is_refused_when_the_client_disables_it() -> None:
    pair = Pair()
    pair.client.update_settings({SettingCodes.ENABLE_PUSH: 0})
    stream_id, _ = pair.request(GET)
    assert pair.server.push(PushPromise(stream_id, b"/x")) is None


def test_h2c_upgrade_makes_the_request_stream_1() -> None:
    server = HTTP2Protocol(clock=Clock())
    client = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    settings = client.initiate_upgrade_connection()
    assert settings is not None
    request = Request(
        1,
        b"GET",
        b"/x",
        [(b"host", b"example.com"), (b"connection", b"Upgrade"), (b"http2-settings", settings)],
        "1.1",
    )
    events: list[Any] = server.initiate_upgrade(settings, request)
    assert events[0].stream_id == 1
    assert events[0].headers == [(b"host", b"example.com")]
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.send_response(1, 200, [], end_stream=True)
    assert of(client.receive_data(server.data_to_send()), h2e.ResponseReceived)


def test_extended_connect_for_websocket() -> None:
    pair = Pair(enable_connect_protocol=True)
    assert pair.client.remote_settings[SettingCodes.ENABLE_CONNECT_PROTOCOL] == 1
    stream_id = pair.client.get_next_available_stream_id()
    pair.client.send_headers(stream_id, WEBSOCKET_CONNECT)
    pair.client.send_data(stream_id, b"\x81\x02hi")
    events = pair.to_server()
    assert events[0].protocol == b"websocket" and events[0].target == b"/chat"
    assert events[1] == Body(stream_id, b"\x81\x02hi")
    pair.server.send(Response(stream_id, 200))
    pair.server.send(Body(stream_id, b"\x81\x02yo"))
    got = pair.to_client()
    assert of(got, h2e.DataReceived)[0].data == b"\x81\x02yo"
    assert not of(got, h2e.StreamEnded)


def test_protocol_pseudo_header_without_the_setting_is_malformed() -> None:
    pair = Pair(enable_connect_protocol=False)
    headers = [(b":method", b"CONNECT"), (b":protocol", b"websocket"), *GET[1:]]
    _, events = pair.request(headers)
    assert of(events, ProtocolError) and not of(events, Request)


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        [*GET, (b"Upper", b"x")],
        [*GET, (b"connection", b"close")],
        [*GET, (b"te", b"gzip")],
        [*GET, (b":status", b"200")],
        [*GET, (b":method", b"GET")],
        [GET[0], GET[1], GET[2]],
        [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"")],
        [GET[0], (b"x", b"y"), *GET[1:]],
        [*GET, (b"x", b" padded")],
        [*GET, (b"host", b"other.example")],
    ],
    ids=[
        "uppercase",
        "connection",
        "te",
        "response-pseudo",
        "duplicate-pseudo",
        "missing-path",
        "empty-path",
        "pseudo-after-regular",
        "whitespace",
        "host-mismatch",
    ],
)
def test_malformed_requests_are_stream_errors(headers: list[tuple[bytes, bytes]]) -> None:
    pair = Pair()
    stream_id = 1
    pair.client.config.validate_outbound_headers = False
    pair.client.config.normalize_outbound_headers = False
    pair.client.send_headers(stream_id, headers, end_stream=True)
    events = pair.to_server()
    assert [type(e) for e in events] == [ProtocolError]
    assert rst_codes(pair.server_frames()) == {stream_id: ErrorCodes.PROTOCOL_ERROR}
    _, events = pair.request(GET)
    assert of(events, Request)


def test_content_length_mismatch_is_a_stream_error() -> None:
    pair = Pair()
    stream_id, _ = pair.request(post(b"/", (b"content-length", b"3")), end_stream=False)
    pair.server.data_to_send()
    events = pair.raw(frame(0, 1, stream_id, b"toolong"))
    assert of(events, ProtocolError)[0].error_code == ErrorCodes.PROTOCOL_ERROR
    assert StreamReset(stream_id, ErrorCodes.PROTOCOL_ERROR) in events
    frames = pair.server_frames()
    assert rst_codes(frames) == {stream_id: ErrorCodes.PROTOCOL_ERROR}
    assert any(t == 8 and sid == 0 for t, _, sid, _ in frames)  # connection window returned


def test_short_body_against_content_length_is_a_stream_error() -> None:
    pair = Pair()
    stream_id, _ = pair.request(post(b"/", (b"content-length", b"10")), end_stream=False)
    events = pair.raw(frame(0, 0, stream_id, b"12") + frame(0, 1, stream_id, b"3"))
    assert of(events, Body) and StreamReset(stream_id, ErrorCodes.PROTOCOL_ERROR) in events


def test_invalid_hpack_is_a_compression_error() -> None:
    pair = Pair()
    events = pair.raw(frame(1, 0x5, 1, b"\xff\xff\xff\xff\x0f"))
    assert of(events, ProtocolError)[0].error_code == ErrorCodes.COMPRESSION_ERROR
    assert goaway_code(pair.server_frames()) == ErrorCodes.COMPRESSION_ERROR


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(3, 0, 5, struct.pack(">L", 8)), ErrorCodes.PROTOCOL_ERROR),  # RST idle
        (frame(4, 1, 0, b"\x00" * 6), ErrorCodes.FRAME_SIZE_ERROR),  # SETTINGS ACK + data
        (frame(9, 4, 1, b""), ErrorCodes.PROTOCOL_ERROR),  # naked CONTINUATION
        (frame(5, 4, 1, b"\x00\x00\x00\x02"), ErrorCodes.PROTOCOL_ERROR),  # client push
        (frame(0, 0, 1, b"x" * 16385), ErrorCodes.FRAME_SIZE_ERROR),
        (frame(6, 0, 1, b"\x00" * 8), ErrorCodes.PROTOCOL_ERROR),  # PING on a stream
        (frame(0, 0, 7, b"x"), ErrorCodes.PROTOCOL_ERROR),  # DATA on idle stream
    ],
    ids=["rst-idle", "settings-ack", "continuation", "push", "too-big", "ping", "data-idle"],
)
def test_connection_errors_queue_goaway(data: bytes, code: int) -> None:
    pair = Pair()
    events = pair.raw(data)
    assert of(events, ProtocolError)[0].error_code == code
    assert of(events, ConnectionClosed)
    assert goaway_code(pair.server_frames()) == code
    assert pair.server.receive_data(frame(6, 0, 0, b"\x00" * 8)) == []


def test_oversized_frame_is_refused_before_its_body_arrives() -> None:
    pair = Pair()
    events = pair.raw(frame(0, 0, 1, b"")[:0] + struct.pack(">BHBBL", 1, 0, 0, 0, 1))
    assert goaway_code(pair.server_frames()) == ErrorCodes.FRAME_SIZE_ERROR
    assert of(events, ConnectionClosed)


def test_bad_preface_is_a_connection_error() -> None:
    server = HTTP2Protocol(clock=Clock())
    server.initiate()
    events = server.receive_data(b"GET / HTTP/1.1\r\n\r\n" + b"x" * 10)
    assert of(events, ConnectionClosed)


def test_preface_may_arrive_in_pieces() -> None:
    server = HTTP2Protocol(clock=Clock())
    server.initiate()
    assert server.receive_data(PREFACE[:5]) == []
    assert server.receive_data(PREFACE[5:] + frame(4, 0, 0)) == []
    assert any(t == 4 and f == 1 for t, f, *_ in _frames(server.data_to_send()))


def _frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    out = []
    while data:
        high, low, frame_type, flags, stream_id = struct.unpack_from(">BHBBL", data)
        length = (high << 16) | low
        out.append((frame_type, flags, stream_id, data[9 : 9 + length]))
        data = data[9 + length :]
    return out


def test_peer_reset_and_goaway_become_events() -> None:
    pair = Pair()
    stream_id, _ = pair.request(post(), end_stream=False)
    pair.client.reset_stream(stream_id, ErrorCodes.CANCEL)
    assert pair.to_server() == [StreamReset(stream_id, ErrorCodes.CANCEL)]
    pair.client.close_connection()
    events = pair.to_server()
    assert of(events, ConnectionClosed)
    assert pair.server.closed


def test_peer_close_is_connection_closed() -> None:
    pair = Pair()
    assert pair.server.receive_data(b"") == [
        ConnectionClosed(None, "the client closed the connection")
    ]


def test_sends_after_a_peer_reset_are_dropped() -> None:
    pair = Pair()
    stream_id, _ = pair.request(GET)
    pair.client.reset_stream(stream_id)  # NO_ERROR, h2's default
    assert pair.to_server() == [StreamReset(stream_id, ErrorCodes.NO_ERROR)]
    pair.server_frames()  # whatever was queued before the reset
    # A whole response after the reset: no error, and nothing of it reaches the wire.
    pair.server.send(Response(stream_id, 200, [(b"content-length", b"4")]))
    pair.server.send(Body(stream_id, b"late"))
    pair.server.send(EndBody(stream_id))
    assert pair.server.sendable(stream_id) == 0
    assert [frame for frame in pair.server_frames() if frame[2] == stream_id] == []
    # The connection is unharmed: the next stream is answered.
    next_id, events = pair.request(GET)
    assert of(events, Request)
    pair.server.send(Response(next_id, 200))
    pair.server.send(EndBody(next_id))
    assert of(pair.to_client(), h2e.ResponseReceived)[0].stream_id == next_id


# --- limits ---------------------------------------------------------------------------------


def test_streams_over_the_concurrency_limit_are_refused() -> None:
    pair = Pair(max_concurrent_streams=2)
    assert pair.client.remote_settings.max_concurrent_streams == 2
    pair.request(post(), end_stream=False)
    pair.request(post(), end_stream=False)
    stream_id = 5  # the h2 client would refuse to open it: write the frame by hand
    events = pair.raw(frame(1, 0x5, stream_id, pair.client.encoder.encode(GET)))
    assert of(events, ProtocolError)[0].error_code == ErrorCodes.REFUSED_STREAM
    assert not of(events, Request)
    assert rst_codes(pair.server_frames()) == {stream_id: ErrorCodes.REFUSED_STREAM}


def test_header_list_over_the_limit_is_answered_431() -> None:
    pair = Pair(max_header_list_size=1000)
    _, events = pair.request([*GET, (b"x-big", b"v" * 1000)])
    assert of(events, ProtocolError)[0].status == 431
    got = pair.to_client()
    assert dict(of(got, h2e.ResponseReceived)[0].headers)[b":status"] == b"431"
    _, events = pair.request(GET)
    assert of(events, Request)


def test_hpack_bomb_is_bounded() -> None:
    pair = Pair(max_header_list_size=4096)
    encoder = Encoder()
    first = encoder.encode([*GET, (b"x-bomb", b"b" * 3000)])
    pair.raw(frame(1, 0x5, 1, first))
    # Each repeat of the indexed entry costs one byte on the wire and 3 KB when decoded.
    again = encoder.encode([*GET, *([(b"x-bomb", b"b" * 3000)] * 2000)])
    events = pair.raw(frame(1, 0x5, 3, again))
    assert of(events, ConnectionClosed)
    assert goaway_code(pair.server_frames()) == ErrorCodes.ENHANCE_YOUR_CALM


def test_too_many_continuation_frames_is_enhance_your_calm() -> None:
    pair = Pair(max_continuation_frames=4)
    block = Encoder().encode(GET)
    data = frame(1, 0, 1, block[:1]) + b"".join(frame(9, 0, 1, b"") for _ in range(5))
    events = pair.raw(data)
    assert of(events, ConnectionClosed)
    assert goaway_code(pair.server_frames()) == ErrorCodes.ENHANCE_YOUR_CALM


def test_continuation_frames_within_the_limit_are_fine() -> None:
    pair = Pair()
    block = Encoder().encode([*GET, (b"x", b"y" * 100)])
    data = frame(1, 1, 1, block[:10]) + frame(9, 0, 1, block[10:20]) + frame(9, 4, 1, block[20:])
    events = pair.raw(data)
    assert of(events, Request)[0].headers[1] == (b"x", b"y" * 100)


def test_rapid_reset_is_enhance_your_calm() -> None:
    pair = Pair(max_resets_per_window=10)
    events: list[Event] = []
    for _ in range(11):
        stream_id, _ = pair.request(GET)
        pair.client.reset_stream(stream_id)
        events += pair.to_server()
    assert of(events, ConnectionClosed)
    assert goaway_code(pair.server_frames()) == ErrorCodes.ENHANCE_YOUR_CALM


def test_resets_spread_over_windows_are_fine() -> None:
    pair = Pair(max_resets_per_window=3, rate_window_seconds=1.0)
    for _ in range(9):
        pair.clock.now += 0.5
        stream_id, _ = pair.request(GET)
        pair.client.reset_stream(stream_id)
        assert not of(pair.to_server(), ConnectionClosed)


@pytest.mark.parametrize(
    ("option", "flood"),
    [
        ("max_pings_per_window", frame(6, 0, 0, b"\x00" * 8)),
        ("max_settings_per_window", frame(4, 0, 0)),
        ("max_empty_frames_per_window", b"DATA"),
        ("max_priority_frames_per_window", frame(2, 0, 3, struct.pack(">LB", 0, 15))),
    ],
)
def test_floods_are_enhance_your_calm(option: str, flood: bytes) -> None:
    pair = Pair(**{option: 5})
    if flood == b"DATA":
        stream_id, _ = pair.request(post(), end_stream=False)
        flood = frame(0, 0, stream_id)
    events = pair.raw(flood * 6)
    assert of(events, ConnectionClosed)
    assert goaway_code(pair.server_frames()) == ErrorCodes.ENHANCE_YOUR_CALM


def test_input_pauses_while_output_is_not_drained() -> None:
    pair = Pair(max_output_buffer=200)
    pair.server.data_to_send()
    events = pair.raw(frame(6, 0, 0, b"\x00" * 8) * 30)
    assert events == []
    assert pair.server.paused
    assert pair.server.pending_output_size <= 200
    acks = len(pair.server_frames())
    rounds = 0
    while pair.server.paused:
        pair.server.resume()
        acks += len(pair.server_frames())
        rounds += 1
    assert acks == 30 and rounds > 1
    # Once drained, input flows again.
    _, events = pair.request(GET)
    assert of(events, Request)


# --- shutdown ---------------------------------------------------------------------------


def test_graceful_goaway_lets_streams_finish_and_refuses_new_ones() -> None:
    pair = Pair()
    stream_id, _ = pair.request(post(), end_stream=False)
    pair.server.goaway()
    frames = pair.server_frames()
    assert goaway_code(frames) == ErrorCodes.NO_ERROR
    assert struct.unpack_from(">L", next(p for t, _, _, p in frames if t == 7))[0] == stream_id
    assert not pair.server.shutdown_complete
    new_id, events = pair.request(GET)
    assert not of(events, Request)
    assert rst_codes(pair.server_frames()) == {new_id: ErrorCodes.REFUSED_STREAM}
    pair.client.send_data(stream_id, b"late body", end_stream=True)
    events = pair.to_server()
    assert Body(stream_id, b"late body") in events
    pair.server.send_response(stream_id, 200, [], end_stream=True)
    assert pair.server.shutdown_complete


def test_draining_goaway_serves_crossed_streams_until_the_ping_ack() -> None:
    """RFC 9113 6.8: GOAWAY(2^31-1) and a PING; a stream the client opened before it saw
    them is served; the PING's ACK sends the final GOAWAY, and later streams are refused."""
    pair = Pair()
    first, _ = pair.request(GET)
    pair.server.goaway(drain=True)
    assert pair.server.draining and not pair.server.shutdown_complete
    crossed, events = pair.request(GET)  # sent before the client read the GOAWAY
    assert [event.stream_id for event in of(events, Request)] == [crossed]
    frames = pair.server_frames()
    goaways = [struct.unpack(">LL", p) for t, _, _, p in frames if t == 7]
    assert goaways == [(2**31 - 1, ErrorCodes.NO_ERROR)]
    (ping,) = [p for t, flags, _, p in frames if t == 6 and not flags & 1]
    pair.raw(frame(6, 1, 0, b"12345678"))  # another PING's ACK changes nothing
    assert pair.server.draining
    pair.raw(frame(6, 1, 0, ping))
    assert not pair.server.draining
    goaways = [struct.unpack(">LL", p) for t, _, _, p in pair.server_frames() if t == 7]
    assert goaways == [(crossed, ErrorCodes.NO_ERROR)]
    late, events = pair.request(GET)
    assert not of(events, Request)
    assert rst_codes(pair.server_frames()) == {late: ErrorCodes.REFUSED_STREAM}
    for stream_id in (first, crossed):
        pair.server.send_response(stream_id, 200, [], end_stream=True)
    assert pair.server.shutdown_complete


def test_invalid_http2_settings_header_closes_the_connection() -> None:
    server = HTTP2Protocol(clock=Clock())
    events = server.initiate_upgrade(b"AAAA", Request(1, b"GET", b"/", [], "1.1"))
    assert of(events, ConnectionClosed)


def test_preface_must_be_followed_by_settings() -> None:
    server = HTTP2Protocol(clock=Clock())
    server.initiate()
    events = server.receive_data(PREFACE + frame(6, 0, 0, b"\x00" * 8))
    assert of(events, ProtocolError)[0].error_code == ErrorCodes.PROTOCOL_ERROR
    assert goaway_code(_frames(server.data_to_send())) == ErrorCodes.PROTOCOL_ERROR


def test_window_update_reserved_bit_is_ignored() -> None:
    pair = Pair()
    events = pair.raw(frame(8, 0, 0, struct.pack(">L", 0x80000000 | 100)))
    assert events == [WindowUpdated(0)]


def test_head_response_carries_no_content() -> None:
    pair = Pair()
    stream_id, _ = pair.request([(b":method", b"HEAD"), *GET[1:]])
    pair.server.send(Response(stream_id, 200, [(b"content-length", b"5")]))
    pair.server.send_data(stream_id, b"hello", end_stream=True)
    got = pair.to_client()
    assert not any(e.data for e in of(got, h2e.DataReceived)) and of(got, h2e.StreamEnded)
