"""Every bug the fuzzers found, as its minimized input: each test fails on the code before
its fix (checked against main at the time) and names what was wrong.

Found by fuzz/ (atheris) and tests/property (Hypothesis); docs/fuzzing.md lists them.
"""

from __future__ import annotations

import struct
import zlib

import hpack
import pytest

from fuzz import harness
from tricorn.protocols.events import (
    Event,
    ProtocolError,
    Request,
    Response,
    StreamReset,
)
from tricorn.protocols.http2 import HTTP2Protocol
from tricorn.protocols.http11 import HTTP11Protocol
from tricorn.protocols.http11_h11 import H11Protocol
from tricorn.protocols.websocket import DeflateParameters, WebSocketProtocol

PREAMBLE = harness.PREFACE + harness.CLIENT_SETTINGS
parsers = pytest.mark.parametrize(
    "parser", [HTTP11Protocol, H11Protocol], ids=lambda cls: cls.__name__
)


def frame(frame_type: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    length = len(payload)
    header = struct.pack(">BHBBL", length >> 16, length & 0xFFFF, frame_type, flags, stream_id)
    return header + payload


def statuses(parser: type[harness.HTTP1], pieces: list[bytes], **limits: int) -> int | None:
    return harness.drive_http1(parser, pieces, limits).error


# --- HTTP/1.1 ------------------------------------------------------------------------------


@parsers
def test_a_bad_byte_before_the_line_limit_is_400_however_the_line_arrives(
    parser: type[harness.HTTP1],
) -> None:
    """Was 414 whole (the line-length check ran first) and 400 when cut after byte 1."""
    data = b"\x00" * 18  # request line limit 16: over it, and a NUL at its first byte
    assert statuses(parser, [data], max_request_line_size=16) == 400
    assert statuses(parser, [data[:1], data[1:]], max_request_line_size=16) == 400


@parsers
def test_a_long_request_line_before_a_bad_byte_is_414_however_the_head_arrives(
    parser: type[harness.HTTP1],
) -> None:
    """Was 400 whole (the complete head's byte check ran first) and 414 when cut."""
    data = b"GET /" + b"a" * 20 + b" HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n"
    assert statuses(parser, [data], max_request_line_size=16) == 414
    assert statuses(parser, [data[:20], data[20:]], max_request_line_size=16) == 414


@parsers
def test_a_head_over_the_size_limit_before_a_bad_byte_is_431_however_it_arrives(
    parser: type[harness.HTTP1],
) -> None:
    data = b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + b"v" * 60 + b"\r\nX: \x01\r\n\r\n"
    assert statuses(parser, [data], max_head_size=64) == 431
    assert statuses(parser, [data[:70], data[70:]], max_head_size=64) == 431


@parsers
def test_the_h2c_preface_after_an_empty_line_is_found_however_the_cr_arrives(
    parser: type[harness.HTTP1],
) -> None:
    """An empty line, then the HTTP/2 preface: h2c whole, but 505 (the preface read as a
    request line) when the first CR came alone: its preface check had given up."""
    data = b"\r\n" + harness.PREFACE + harness.CLIENT_SETTINGS
    for pieces in ([data], [data[:1], data[1:]]):
        transcript = harness.drive_http1(parser, pieces, {})
        assert transcript.requests == [("h2c",), ("switched", data[2:])], pieces


# --- HTTP/2 --------------------------------------------------------------------------------


def h2_server() -> HTTP2Protocol:
    protocol = HTTP2Protocol(clock=lambda: 0.0)
    protocol.initiate()
    protocol.data_to_send()
    return protocol


def types_and_codes(output: bytes) -> list[tuple[int, int, int]]:
    """(type, flags, stream) of each frame written."""
    return [(kind, flags, stream) for kind, flags, stream, _ in harness.parse_frames(output)]


@pytest.mark.parametrize("split", [False, True])
def test_frames_before_a_connection_error_in_the_same_read_are_still_handled(split: bool) -> None:
    """A PING, then a frame over SETTINGS_MAX_FRAME_SIZE: the PING was never given to h2 when
    both came in one read (no PING ACK before the GOAWAY); read apart it was."""
    ping = frame(6, 0, 0, b"12345678")
    oversized = b"\x01\x00\x00\x00\x00\x00\x00\x00\x01"  # a 64 KiB HEADERS header
    protocol = h2_server()
    if split:
        protocol.receive_data(PREAMBLE + ping)
        protocol.receive_data(oversized)
    else:
        protocol.receive_data(PREAMBLE + ping + oversized)
    frames = types_and_codes(protocol.data_to_send())
    assert (6, 1, 0) in frames  # the PING ACK
    assert frames[-1] == (7, 0, 0)  # then the GOAWAY


def test_goaway_debug_data_carries_no_object_address() -> None:
    """hpack's message quoted ``<memory at 0x7f...>``: an address on the wire."""
    protocol = h2_server()
    events = protocol.receive_data(PREAMBLE + frame(1, 0x5, 1, b"\xff\xc6"))  # a cut integer
    goaway = harness.parse_frames(protocol.data_to_send())[-1]
    assert goaway[0] == 7
    assert b" at 0x" not in goaway[3] and b"<memory" not in goaway[3]
    errors = [event for event in events if isinstance(event, ProtocolError)]
    assert errors and " at 0x" not in errors[0].message


REQUEST_BLOCK = bytes.fromhex("828684410f7777772e6578616d706c652e636f6d")  # RFC 7541 C.3.1
GOAWAY_FROM_CLIENT = frame(7, 0, 0, b"\x00" * 8)


def test_responding_after_the_clients_goaway_in_the_same_read_does_not_raise() -> None:
    """h2 refuses to send once it read a GOAWAY; its ProtocolError escaped from send()."""
    protocol = h2_server()
    events = protocol.receive_data(PREAMBLE + frame(1, 0x5, 1, REQUEST_BLOCK) + GOAWAY_FROM_CLIENT)
    assert any(isinstance(event, Request) for event in events)
    protocol.send(Response(1, 200, []))  # dropped: the connection is over
    protocol.send(StreamReset(1, 8))
    assert protocol.closed


def test_the_reset_of_a_malformed_request_read_with_the_clients_goaway_is_sent() -> None:
    """h2 drops its unsent output on reading a GOAWAY: the RST_STREAM was lost."""
    bad_authority = bytes.fromhex("828684") + b"\x41\x02a\x00"  # :authority "a\x00"
    protocol = h2_server()
    events = protocol.receive_data(PREAMBLE + frame(1, 0x5, 1, bad_authority) + GOAWAY_FROM_CLIENT)
    error = next(event for event in events if isinstance(event, ProtocolError))
    assert error.stream_id == 1
    frames = harness.parse_frames(protocol.data_to_send())
    assert (3, 0, 1, struct.pack(">L", 1)) in frames  # RST_STREAM(PROTOCOL_ERROR)


# --- WebSocket -----------------------------------------------------------------------------


def masked(first: int, payload: bytes, key: bytes = b"\x37\xfa\x21\x3d") -> bytes:
    body = bytes(byte ^ key[index % 4] for index, byte in enumerate(payload))
    return bytes([first, 0x80 | len(payload)]) + key + body


def ws_events(data: bytes, pieces: int, **options: object) -> list[Event]:
    protocol = WebSocketProtocol(**options)  # type: ignore[arg-type]
    size = max(1, -(-len(data) // pieces))
    events: list[Event] = []
    for start in range(0, len(data), size):
        events += protocol.receive_data(data[start : start + size])
    return events


def failure(events: list[Event]) -> tuple[int | None, str]:
    error = next(event for event in events if isinstance(event, ProtocolError))
    return error.error_code, error.message


def test_the_invalid_utf8_close_reason_does_not_depend_on_the_chunking() -> None:
    """wsproto's codec message counted the bad byte's position from the piece it decoded."""
    data = masked(0x81, b"ab\xff")
    assert failure(ws_events(data, 1)) == failure(ws_events(data, len(data)))
    assert failure(ws_events(data, 1)) == (1007, "invalid UTF-8 in a text message")


@pytest.mark.parametrize("length_bytes", [2, 8])
def test_a_non_minimal_length_is_1002_before_the_mask_arrives(length_bytes: int) -> None:
    """The fast path (websocket_fast) waited for the mask before reading an extended
    length, so a non-minimal one with the rest not yet sent was no error when the bytes
    came whole but 1002 when cut after a fast-path message (wsproto checks the length as
    soon as it has it). Found by the websocket fuzz target after the fast path's merge."""
    length = (100 if length_bytes == 2 else 255).to_bytes(length_bytes, "big")
    data = masked(0x81, b"i") + bytes([0x81, 0x80 | (126 if length_bytes == 2 else 127)]) + length
    for pieces in (1, 2, len(data)):
        events = ws_events(data, pieces)
        assert failure(events)[0] == 1002, pieces
        assert "would have sufficed" in failure(events)[1]


def deflated(data: bytes) -> bytes:
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


DEFLATE = DeflateParameters(client_max_window_bits=15)


@pytest.mark.parametrize("pieces", [1, 4, 1000])
def test_a_data_frame_inside_a_fragmented_message_is_1002_at_its_header(pieces: int) -> None:
    """A BINARY frame (bad deflate data) after an unfinished compressed text frame: 1007
    when whole (its payload was inflated first), 1002 when cut (wsproto's check ran)."""
    data = masked(0x41, deflated(b"Hel")) + masked(0xC2, b"\xff\xff\xff\xff\xff\xff")
    events = ws_events(data, pieces, deflate=DEFLATE)
    assert failure(events)[0] == 1002


@pytest.mark.parametrize("pieces", [1, 3, 1000])
def test_compressed_invalid_utf8_before_the_size_limit_is_1007_however_it_arrives(
    pieces: int,
) -> None:
    """Inflated bad UTF-8 past max_message_size: 1009 whole (the size check ran before
    wsproto's UTF-8 check), 1007 in pieces."""
    data = masked(0xC1, deflated(b"\xf0\x13" + b"x" * 40))
    events = ws_events(data, pieces, deflate=DEFLATE, max_message_size=16)
    assert failure(events)[0] == 1007


def test_a_header_list_over_the_limit_is_a_431_head_on_the_wire() -> None:
    """Not a protocol bug: the oracle wanted an error code, but this ProtocolError carries
    the status it answered instead; its HEADERS frame decodes to :status 431."""
    big = hpack.Encoder().encode(
        [
            (":method", "GET"),
            (":path", "/"),
            (":scheme", "https"),
            (":authority", "a"),
            ("x-big", "v" * 300),
        ]
    )
    protocol = HTTP2Protocol(clock=lambda: 0.0, max_header_list_size=256)
    protocol.initiate()
    events = protocol.receive_data(PREAMBLE + frame(1, 0x5, 3, big))
    error = next(event for event in events if isinstance(event, ProtocolError))
    assert (error.stream_id, error.status, error.error_code) == (3, 431, None)
    statuses = harness._response_statuses(harness.parse_frames(protocol.data_to_send()))
    assert statuses == {3: [b"431"]}


def test_an_empty_cookie_crumb_does_not_leave_trailing_whitespace() -> None:
    """RFC 9113 8.2.3 joins cookie fields with "; ": "a" and "" gave "a; " to the app, a
    value ending in a space (found by test_http2_work_and_memory_stay_bounded)."""
    block = hpack.Encoder().encode(
        [
            (":method", "GET"),
            (":path", "/"),
            (":scheme", "https"),
            (":authority", "a"),
            ("cookie", "a=1"),
            ("cookie", ""),
            ("cookie", "b=2"),
        ]
    )
    events = h2_server().receive_data(PREAMBLE + frame(1, 0x5, 1, block))
    request = next(event for event in events if isinstance(event, Request))
    assert (b"cookie", b"a=1; b=2") in request.headers
