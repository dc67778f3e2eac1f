"""HTTP/2 hardening: SETTINGS ranges, PRIORITY on stream 0, the preface timeout, the glitch
budget, frames on half-closed and reset streams, reset streams holding their slot."""

from __future__ import annotations

import base64
import struct
from typing import Any

import pytest
from h2.errors import ErrorCodes
from hpack import Encoder

from tests.unit.test_http2 import GET, Pair, frame, goaway_code, of, post, rst_codes
from tricorn.protocols.events import (
    Body,
    ConnectionClosed,
    EndBody,
    Event,
    ProtocolError,
    Request,
    StreamReset,
)
from tricorn.protocols.http2 import PREFACE, HTTP2Protocol
from tricorn.protocols.http2_limits import GlitchBudget

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 2, 3, 4, 6, 7, 8
END_STREAM, END_HEADERS = 0x1, 0x4
STREAM_CLOSED = 0x5


def settings(*pairs: tuple[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HL", k, v) for k, v in pairs))


def kinds(frames: list[tuple[int, int, int, bytes]]) -> list[int]:
    return [frame_type for frame_type, _, _, _ in frames]


# --- SETTINGS values and PRIORITY on stream 0 ------------------------------------------------

OUT_OF_RANGE = [
    (0x2, 2, ErrorCodes.PROTOCOL_ERROR),  # ENABLE_PUSH
    (0x4, 2**31, ErrorCodes.FLOW_CONTROL_ERROR),  # INITIAL_WINDOW_SIZE
    (0x5, 0, ErrorCodes.PROTOCOL_ERROR),  # MAX_FRAME_SIZE (CVE-2026-33814)
    (0x5, 16383, ErrorCodes.PROTOCOL_ERROR),
    (0x5, 2**24, ErrorCodes.PROTOCOL_ERROR),
    (0x8, 2, ErrorCodes.PROTOCOL_ERROR),  # ENABLE_CONNECT_PROTOCOL (RFC 8441)
    (0x9, 2, ErrorCodes.PROTOCOL_ERROR),  # NO_RFC7540_PRIORITIES (RFC 9218)
]


@pytest.mark.parametrize(("setting", "value", "code"), OUT_OF_RANGE)
def test_setting_out_of_range_is_a_connection_error(setting: int, value: int, code: int) -> None:
    pair = Pair()
    events = pair.raw(settings((setting, value)))
    assert of(events, ConnectionClosed)
    assert goaway_code(pair.server_frames()) == code


@pytest.mark.parametrize(("setting", "value", "code"), OUT_OF_RANGE)
def test_setting_out_of_range_in_http2_settings_header(setting: int, value: int, code: int) -> None:
    server = HTTP2Protocol(clock=lambda: 0.0)
    header = base64.urlsafe_b64encode(struct.pack(">HL", setting, value)).rstrip(b"=")
    request = Request(1, b"GET", b"/", [], "1.1", scheme=b"http", expects_body=False)
    events = server.initiate_upgrade(header, request)
    assert of(events, ConnectionClosed)
    assert server.closed


@pytest.mark.parametrize(
    ("setting", "value"),
    [(0x2, 0), (0x4, 2**31 - 1), (0x5, 16384), (0x5, 2**24 - 1), (0x8, 1), (0x9, 1), (0x1, 0)],
)
def test_setting_at_the_edge_of_its_range_is_fine(setting: int, value: int) -> None:
    pair = Pair()
    assert not of(pair.raw(settings((setting, value))), ConnectionClosed)


def test_priority_on_stream_0_depending_on_0_is_a_protocol_error() -> None:
    pair = Pair()
    events = pair.raw(frame(PRIORITY, 0, 0, struct.pack(">LB", 0, 15)))
    assert of(events, ConnectionClosed)
    assert goaway_code(pair.server_frames()) == ErrorCodes.PROTOCOL_ERROR


# --- the preface timeout --------------------------------------------------------------------


def test_preface_received_only_after_the_first_settings() -> None:
    server = HTTP2Protocol(clock=lambda: 0.0)
    server.initiate()
    assert not server.preface_received
    server.receive_data(PREFACE + frame(SETTINGS, 0, 0)[:5])
    assert not server.preface_received
    server.receive_data(frame(SETTINGS, 0, 0)[5:])
    assert server.preface_received
    assert server.preface_timeout() == []


def test_preface_timeout_is_a_protocol_error_goaway() -> None:
    server = HTTP2Protocol(clock=lambda: 0.0)
    server.initiate()
    server.data_to_send()
    server.receive_data(PREFACE[:10])
    events = server.preface_timeout()
    assert of(events, ConnectionClosed)
    assert server.closed
    data = server.data_to_send()
    assert data[3] == GOAWAY
    assert struct.unpack_from(">L", data, 13)[0] == ErrorCodes.PROTOCOL_ERROR


# --- the glitch budget ----------------------------------------------------------------------


def test_glitch_budget_leaks_at_limit_per_window() -> None:
    now = [0.0]
    budget = GlitchBudget(10, 10.0, lambda: now[0])
    assert not any(budget.charge() for _ in range(10))
    assert budget.charge()  # the 11th at once
    now[0] += 5.0  # half the window drains half the budget
    budget.level = 10.0
    assert not any(budget.charge() for _ in range(5))
    assert budget.charge()


FLOODS: dict[str, Any] = {
    "window-update": frame(WINDOW_UPDATE, 0, 0, struct.pack(">L", 1)),
    "settings": settings((0x1, 4096)),
    "ping": frame(PING, 0, 0, b"\x00" * 8),
    "priority": frame(PRIORITY, 0, 3, struct.pack(">LB", 0, 15)),
    "unknown-type": frame(0x42, 0, 0, b"grease"),
    "settings-ack": frame(SETTINGS, 1, 0),
}


@pytest.mark.parametrize("kind", list(FLOODS))
def test_each_useless_frame_is_charged_to_the_glitch_budget(kind: str) -> None:
    # The per-kind limits are lifted: only the shared budget answers.
    pair = Pair(
        max_glitches_per_window=50,
        max_pings_per_window=10**6,
        max_settings_per_window=10**6,
        max_priority_frames_per_window=10**6,
    )
    pair.to_client()
    pair.to_server()  # the client's ACK of our SETTINGS is due, not a glitch
    pair.server_frames()
    events = pair.raw(FLOODS[kind] * 49)
    assert not of(events, ConnectionClosed)
    events = pair.raw(FLOODS[kind] * 2)
    closed = of(events, ConnectionClosed)
    assert closed and closed[0].error_code == ErrorCodes.ENHANCE_YOUR_CALM
    assert "glitch" in closed[0].reason


def test_window_updates_after_data_sent_are_free() -> None:
    pair = Pair(max_glitches_per_window=5)
    stream_id, _ = pair.request(GET)
    pair.server.send_response(stream_id, 200, [])
    for _ in range(20):  # a download: one DATA, one WINDOW_UPDATE each way, over and over
        pair.server.send_data(stream_id, b"x" * 100)
        pair.to_client()
        pair.client.increment_flow_control_window(100)
        pair.client.increment_flow_control_window(100, stream_id)
        assert not of(pair.to_server(), ConnectionClosed)


def test_empty_data_frames_are_glitches() -> None:
    pair = Pair(max_glitches_per_window=20, max_empty_frames_per_window=10**6)
    stream_id, _ = pair.request(post(), end_stream=False)
    events = pair.raw(frame(DATA, 0, stream_id) * 21)
    assert of(events, ConnectionClosed)[0].error_code == ErrorCodes.ENHANCE_YOUR_CALM


# --- frames on half-closed (remote) and reset streams (CVE-2025-8671, "MadeYouReset") --------


def test_data_on_a_half_closed_stream_is_one_reset_then_ignored() -> None:
    pair = Pair()
    stream_id, _ = pair.request(GET)
    pair.server_frames()
    events = pair.raw(frame(DATA, 0, stream_id, b"x" * 100) * 5)
    assert [type(e) for e in events] == [ProtocolError, StreamReset]
    frames = pair.server_frames()
    assert rst_codes(frames) == {stream_id: STREAM_CLOSED}
    assert kinds(frames).count(RST_STREAM) == 1
    # The 500 ignored bytes are given back to the connection window in one update.
    updates = [p for t, _, sid, p in frames if t == WINDOW_UPDATE and sid == 0]
    assert [struct.unpack(">L", p)[0] for p in updates] == [500]


def test_headers_on_a_half_closed_stream_is_a_reset_and_hpack_stays_in_sync() -> None:
    pair = Pair()
    stream_id, _ = pair.request(GET)
    pair.server_frames()
    encoder = pair.client.encoder
    late = encoder.encode([(b"x-late", b"value")])  # indexed into the client's table
    events = pair.raw(frame(HEADERS, END_STREAM | END_HEADERS, stream_id, late))
    assert of(events, StreamReset)
    assert rst_codes(pair.server_frames()) == {stream_id: STREAM_CLOSED}
    # The next request refers to the new table entry: the server's decoder has it too.
    block = encoder.encode([*GET, (b"x-late", b"value")])
    events = pair.raw(frame(HEADERS, END_STREAM | END_HEADERS, stream_id + 2, block))
    assert of(events, Request)[0].headers[-1] == (b"x-late", b"value")


def test_made_you_reset_ends_in_goaway_within_the_reset_limit() -> None:
    pair = Pair(max_resets_per_window=20)
    encoder = Encoder()
    data = bytearray()
    for index in range(100):
        stream_id = 2 * index + 1
        data += frame(HEADERS, END_STREAM | END_HEADERS, stream_id, encoder.encode(GET))
        data += frame(DATA, 0, stream_id, b"x")
    pair.client.data_to_send()
    events = pair.server.receive_data(bytes(data))
    closed = of(events, ConnectionClosed)
    assert closed and closed[0].error_code == ErrorCodes.ENHANCE_YOUR_CALM
    frames = pair.server_frames()
    assert kinds(frames).count(RST_STREAM) <= 21
    assert goaway_code(frames) == ErrorCodes.ENHANCE_YOUR_CALM


def test_early_response_reads_and_discards_the_body_without_a_reset() -> None:
    pair = Pair()
    stream_id, _ = pair.request(post(), end_stream=False)
    pair.server.send_response(stream_id, 413, [], end_stream=True)
    assert not rst_codes(pair.server_frames())
    body = b"x" * 200_000
    sent = 0
    while sent < len(body):  # the client sends as the windows reopen
        size = min(pair.client.local_flow_control_window(stream_id), len(body) - sent, 16384)
        assert size > 0
        pair.client.send_data(
            stream_id, body[sent : sent + size], end_stream=sent + size == len(body)
        )
        sent += size
        assert not pair.to_server()  # nothing for the app: it has answered
        frames = pair.server_frames()
        assert RST_STREAM not in kinds(frames) and GOAWAY not in kinds(frames)
        pair.client.receive_data(b"".join(frame(*f) for f in frames))
    assert pair.server.active_streams == 0


def test_early_response_resets_once_past_the_discard_limit() -> None:
    pair = Pair(discard_body_limit=20_000)
    stream_id, _ = pair.request(post(), end_stream=False)
    pair.server.send_response(stream_id, 413, [], end_stream=True)
    pair.server_frames()
    # A stream window of DATA (65535 bytes) in flight, then trailers.
    in_flight = frame(DATA, 0, stream_id, b"x" * 16383) * 4 + frame(DATA, 0, stream_id, b"xxx")
    events = pair.raw(in_flight + frame(HEADERS, END_STREAM | END_HEADERS, stream_id, b"\x82"))
    assert not events
    frames = pair.server_frames()
    assert rst_codes(frames) == {stream_id: ErrorCodes.NO_ERROR}
    assert kinds(frames).count(RST_STREAM) == 1 and GOAWAY not in kinds(frames)
    credit = sum(struct.unpack(">L", p)[0] for t, _, sid, p in frames if t == 8 and sid == 0)
    # Discarded or ignored, every byte of the connection window comes back at once.
    assert credit == 65535
    # Other streams keep flowing.
    _, events = pair.request(post(), b"y" * 1000)
    assert of(events, Body)[0].data == b"y" * 1000
    assert of(events, EndBody)


def test_early_response_with_discarding_off_resets_at_once() -> None:
    pair = Pair(discard_body_limit=0)
    stream_id, _ = pair.request(post(), end_stream=False)
    pair.server.send_response(stream_id, 413, [], end_stream=True)
    assert rst_codes(pair.server_frames()) == {stream_id: ErrorCodes.NO_ERROR}
    assert not pair.raw(frame(DATA, 0, stream_id, b"x" * 1000) * 3)
    assert kinds(pair.server_frames()) == [WINDOW_UPDATE]


def test_frames_after_a_client_reset_get_one_stream_closed() -> None:
    pair = Pair()
    stream_id, _ = pair.request(post(), end_stream=False)
    pair.server_frames()
    events = pair.raw(frame(RST_STREAM, 0, stream_id, struct.pack(">L", 8)))
    assert of(events, StreamReset)
    events = pair.raw(frame(DATA, 0, stream_id, b"late") * 3)
    assert len(of(events, ProtocolError)) == 1
    assert kinds(pair.server_frames()) == [RST_STREAM, WINDOW_UPDATE]


# --- reset streams hold their slot until the app ends ---------------------------------------


def test_reset_streams_hold_their_slot_until_released() -> None:
    pair = Pair(max_concurrent_streams=2, hold_reset_slots=True)
    first, _ = pair.request(post(), end_stream=False)
    pair.request(post(), end_stream=False)
    pair.client.reset_stream(first)
    pair.to_server()
    pair.server_frames()
    block = pair.client.encoder.encode(GET)  # the h2 client would not open a third stream
    pair.raw(frame(HEADERS, END_STREAM | END_HEADERS, 5, block))
    assert rst_codes(pair.server_frames()) == {5: ErrorCodes.REFUSED_STREAM}
    pair.server.release(first)  # the app instance of the reset stream ended
    block = pair.client.encoder.encode(GET)
    events = pair.raw(frame(HEADERS, END_STREAM | END_HEADERS, 7, block))
    assert of(events, Request)[0].stream_id == 7


def test_without_hold_reset_slots_a_reset_frees_the_slot_at_once() -> None:
    pair = Pair(max_concurrent_streams=1)
    first, _ = pair.request(post(), end_stream=False)
    pair.client.reset_stream(first)
    pair.to_server()
    events: list[Event] = pair.request(GET)[1]
    assert of(events, Request)


# --- the buffering bound ------------------------------------------------------------------


def test_buffered_request_bytes_stay_within_streams_times_window_and_the_connection() -> None:
    pair = Pair(max_concurrent_streams=10, initial_window_size=1000)
    ids = []
    for _ in range(10):
        stream_id, _ = pair.request(post(), end_stream=False)
        ids.append(stream_id)
    pair.to_client()
    pair.to_server()  # our SETTINGS acknowledged: the 1000-byte windows apply
    for stream_id in ids:
        pair.client.send_data(stream_id, b"x" * 1000)
    pair.to_server()
    assert pair.server.buffered_request_bytes == 10 * 1000  # streams x stream window
    # Nothing was read: no window reopened, and one byte more is a flow-control error.
    assert not [t for t, *_ in pair.server_frames() if t == WINDOW_UPDATE]
    events = pair.raw(frame(DATA, 0, ids[0], b"x"))
    assert of(events, ConnectionClosed)[0].error_code == ErrorCodes.FLOW_CONTROL_ERROR


def test_buffered_request_bytes_are_capped_by_the_connection_window() -> None:
    pair = Pair(initial_window_size=60000, connection_window_size=65535)
    first, _ = pair.request(post(), end_stream=False)
    second, _ = pair.request(post(), end_stream=False)
    pair.to_client()
    pair.to_server()
    for _ in range(3):
        pair.client.send_data(first, b"x" * 16384)
    pair.client.send_data(second, b"x" * (65535 - 16384 * 3))
    pair.to_server()
    assert pair.server.buffered_request_bytes == 65535
    events = pair.raw(frame(DATA, 0, second, b"x"))
    assert of(events, ConnectionClosed)[0].error_code == ErrorCodes.FLOW_CONTROL_ERROR
