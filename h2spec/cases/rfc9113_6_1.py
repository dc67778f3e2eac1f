"""RFC 9113 6.1: DATA frames."""

from __future__ import annotations

from h2spec import frames as f
from h2spec.cases.common import open_stream
from h2spec.connection import Connection
from h2spec.registry import case

S = "6.1"
PADDING = (
    "RFC 9113 6.1: If the length of the padding is the length of the frame payload or greater, "
    "the recipient MUST treat this as a connection error of type PROTOCOL_ERROR."
)


@case(
    S,
    "Sends a DATA frame with stream identifier 0",
    "GOAWAY(PROTOCOL_ERROR)",
    (
        "RFC 9113 6.1: If a DATA frame is received whose Stream Identifier field is 0x00, the "
        "recipient MUST respond with a connection error of type PROTOCOL_ERROR."
    ),
)
def data_stream_zero(conn: Connection) -> str:
    open_stream(conn)
    conn.send_data(0, b"test", end_stream=True)
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a DATA frame on a stream in the half-closed (remote) state",
    "RST_STREAM(STREAM_CLOSED) or GOAWAY(STREAM_CLOSED)",
    (
        "RFC 9113 6.1: If a DATA frame is received whose stream is not in the open or half-closed "
        "(local) state, the recipient MUST respond with a stream error of type STREAM_CLOSED."
    ),
)
def data_half_closed(conn: Connection) -> str:
    sid = conn.get()
    conn.send_data(sid, b"test", end_stream=True)
    return conn.expect_stream_error(sid, f.STREAM_CLOSED)


@case(
    S,
    "Sends a DATA frame whose padding length exceeds the payload",
    "GOAWAY(PROTOCOL_ERROR)",
    PADDING,
)
def data_padding_too_long(conn: Connection) -> str:
    sid = open_stream(conn)
    conn.send_frame(f.DATA, f.PADDED | f.END_STREAM, sid, bytes([6]) + b"test")
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a DATA frame whose padding length equals the payload length",
    "GOAWAY(PROTOCOL_ERROR)",
    PADDING,
)
def data_padding_equal(conn: Connection) -> str:
    sid = open_stream(conn)
    conn.send_frame(f.DATA, f.PADDED | f.END_STREAM, sid, bytes([5]) + b"test")
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a PADDED DATA frame with an empty payload (no Pad Length octet)",
    "GOAWAY or RST_STREAM (FRAME_SIZE_ERROR or PROTOCOL_ERROR)",
    (
        "RFC 9113 4.2: a frame too small to contain mandatory frame data is a FRAME_SIZE_ERROR; "
        "6.1: the Pad Length field is present when PADDED is set."
    ),
)
def data_padded_empty(conn: Connection) -> str:
    sid = open_stream(conn)
    conn.send_frame(f.DATA, f.PADDED | f.END_STREAM, sid, b"")
    return conn.expect_stream_error(sid, f.FRAME_SIZE_ERROR, f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a DATA frame with valid padding (255 octets)",
    "a response",
    (
        "RFC 9113 6.1: Padding octets MUST be set to zero when sending; padding is not part of the "
        "content."
    ),
)
def data_valid_padding(conn: Connection) -> str:
    sid = open_stream(conn)
    conn.send_data(sid, b"padded", end_stream=True, pad=255)
    return f"status {conn.expect_response(sid).status}"


@case(
    S,
    "Sends a DATA frame made only of padding (Pad Length = payload length - 1)",
    "a response",
    "RFC 9113 6.1: a DATA frame may carry only padding; padding smaller than the payload is valid.",
)
def data_only_padding(conn: Connection) -> str:
    sid = open_stream(conn)
    conn.send_frame(f.DATA, f.PADDED | f.END_STREAM, sid, bytes([10]) + b"\x00" * 10)
    return f"status {conn.expect_response(sid).status}"


@case(
    S,
    "Sends an empty DATA frame with END_STREAM to end a request",
    "a response",
    (
        "RFC 9113 6.1: END_STREAM on a DATA frame (of any length, including zero) closes the "
        "sending side."
    ),
)
def data_empty_end_stream(conn: Connection) -> str:
    sid = open_stream(conn)
    conn.send_data(sid, b"", end_stream=True)
    return f"status {conn.expect_response(sid).status}"
