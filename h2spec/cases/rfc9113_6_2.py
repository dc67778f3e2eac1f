"""RFC 9113 6.2: HEADERS frames."""

from __future__ import annotations

from h2spec import frames as f
from h2spec.connection import Connection
from h2spec.registry import case

S = "6.2"
FOLLOWED = (
    "RFC 9113 6.2: A HEADERS frame without the END_HEADERS flag set MUST be followed by a "
    "CONTINUATION frame for the same stream. A receiver MUST treat the receipt of any other type "
    "of frame or a frame on a different stream as a connection error of type PROTOCOL_ERROR."
)
PADDING = (
    "RFC 9113 6.2: Padding that exceeds the size remaining for the field block fragment MUST be "
    "treated as a PROTOCOL_ERROR."
)


@case(
    S,
    "Sends a HEADERS frame with stream identifier 0",
    "GOAWAY(PROTOCOL_ERROR)",
    (
        "RFC 9113 6.2: If a HEADERS frame is received whose Stream Identifier field is 0x00, the "
        "recipient MUST respond with a connection error of type PROTOCOL_ERROR."
    ),
)
def headers_stream_zero(conn: Connection) -> str:
    conn.send_headers(0)
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a HEADERS frame whose padding length exceeds the payload",
    "GOAWAY(PROTOCOL_ERROR) or RST_STREAM(PROTOCOL_ERROR)",
    PADDING,
)
def headers_padding_too_long(conn: Connection) -> str:
    block = conn.encode(conn.request_headers())
    sid = conn.new_stream_id()
    payload = bytes([len(block) + 1]) + block
    conn.send_frame(f.HEADERS, f.PADDED | f.END_HEADERS | f.END_STREAM, sid, payload)
    return conn.expect_stream_error(sid, f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a HEADERS frame with PRIORITY and PADDED whose padding exceeds the payload",
    "GOAWAY(PROTOCOL_ERROR) or RST_STREAM(PROTOCOL_ERROR)",
    PADDING,
)
def headers_priority_padding_too_long(conn: Connection) -> str:
    block = conn.encode(conn.request_headers())
    sid = conn.new_stream_id()
    payload = bytes([len(block) + 2]) + f.priority_payload(0, 16) + block
    flags = f.PADDED | f.PRIORITY_FLAG | f.END_HEADERS | f.END_STREAM
    conn.send_frame(f.HEADERS, flags, sid, payload)
    return conn.expect_stream_error(sid, f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a HEADERS frame with valid padding",
    "a response",
    (
        "RFC 9113 6.2: the PADDED flag indicates that the Pad Length field and any padding are "
        "present."
    ),
)
def headers_valid_padding(conn: Connection) -> str:
    sid = conn.new_stream_id()
    conn.send_headers(sid, pad=100)
    return f"status {conn.expect_response(sid).status}"


@case(
    S,
    "Sends a HEADERS frame with PRIORITY and PADDED set (valid)",
    "a response",
    (
        "RFC 9113 6.2: Pad Length, then the priority fields, then the field block fragment and "
        "padding."
    ),
)
def headers_priority_and_padding(conn: Connection) -> str:
    sid = conn.new_stream_id()
    conn.send_headers(sid, pad=7, priority=f.priority_payload(0, 100))
    return f"status {conn.expect_response(sid).status}"


@case(
    S,
    "Sends a HEADERS frame without END_HEADERS followed by a DATA frame",
    "GOAWAY(PROTOCOL_ERROR)",
    FOLLOWED,
)
def headers_then_data(conn: Connection) -> str:
    block = conn.encode(conn.request_headers("POST"))
    sid = conn.new_stream_id()
    conn.send_headers(sid, block, end_stream=False, end_headers=False)
    conn.send_data(sid, b"test", end_stream=True)
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a HEADERS frame without END_HEADERS followed by a CONTINUATION of another stream",
    "GOAWAY(PROTOCOL_ERROR)",
    FOLLOWED,
)
def headers_then_other_continuation(conn: Connection) -> str:
    block = conn.encode(conn.request_headers())
    sid = conn.new_stream_id()
    conn.send_headers(sid, block[:4], end_headers=False)
    conn.send_continuation(sid + 2, block[4:])
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a HEADERS frame with the PRIORITY flag but only 3 octets of payload",
    "GOAWAY(FRAME_SIZE_ERROR)",
    (
        "RFC 9113 4.2: a frame too small to contain mandatory frame data is a FRAME_SIZE_ERROR, "
        "and for frames carrying a field block it MUST be a connection error."
    ),
)
def headers_priority_too_short(conn: Connection) -> str:
    conn.send_frame(f.HEADERS, f.PRIORITY_FLAG | f.END_HEADERS | f.END_STREAM, 1, b"\x00\x00\x00")
    return conn.expect_connection_error(f.FRAME_SIZE_ERROR, f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a request whose HEADERS frame has END_STREAM and an empty DATA follows",
    "RST_STREAM(STREAM_CLOSED) or GOAWAY(STREAM_CLOSED)",
    (
        "RFC 9113 6.2: END_STREAM on HEADERS means the field block is the last the endpoint will "
        "send for the stream; 6.1: DATA on a half-closed (remote) stream is a STREAM_CLOSED error."
    ),
)
def headers_end_stream_then_data(conn: Connection) -> str:
    sid = conn.get()
    conn.send_data(sid, b"", end_stream=True)
    return conn.expect_stream_error(sid, f.STREAM_CLOSED)
