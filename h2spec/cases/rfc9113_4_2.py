"""RFC 9113 4.2: frame size."""

from __future__ import annotations

from h2spec import frames as f
from h2spec.cases.common import open_stream
from h2spec.connection import Connection
from h2spec.registry import case

S = "4.2"
TOO_LARGE = (
    "RFC 9113 4.2: An endpoint MUST send an error code of FRAME_SIZE_ERROR if a frame exceeds "
    "the size defined in SETTINGS_MAX_FRAME_SIZE."
)
CONNECTION_LEVEL = (
    "RFC 9113 4.2: A frame size error in a frame that could alter the state of the entire "
    "connection MUST be treated as a connection error; this includes any frame carrying a field "
    "block (HEADERS, PUSH_PROMISE, CONTINUATION), SETTINGS, and any frame with a stream "
    "identifier of 0."
)


@case(
    S,
    "Sends a DATA frame of exactly SETTINGS_MAX_FRAME_SIZE octets",
    "a response",
    (
        "RFC 9113 4.2: endpoints MUST be capable of receiving frames up to the "
        "SETTINGS_MAX_FRAME_SIZE they advertised."
    ),
)
def data_max_size(conn: Connection) -> str:
    size = min(conn.max_frame_size, conn.initial_window, conn.send_window)
    sid = open_stream(conn)
    conn.send_data(sid, b"a" * size, end_stream=True)
    return f"{size} octets, status {conn.expect_response(sid).status}"


@case(
    S,
    "Sends a DATA frame larger than SETTINGS_MAX_FRAME_SIZE",
    "RST_STREAM(FRAME_SIZE_ERROR) or GOAWAY(FRAME_SIZE_ERROR)",
    TOO_LARGE,
)
def data_too_large(conn: Connection) -> str:
    sid = open_stream(conn)
    conn.send_data(sid, b"a" * (conn.max_frame_size + 1), end_stream=True)
    return conn.expect_stream_error(sid, f.FRAME_SIZE_ERROR)


@case(
    S,
    "Sends a HEADERS frame larger than SETTINGS_MAX_FRAME_SIZE",
    "GOAWAY(FRAME_SIZE_ERROR)",
    CONNECTION_LEVEL,
)
def headers_too_large(conn: Connection) -> str:
    extra = [("x-large", "a" * conn.max_frame_size)]
    block = conn.encode(conn.request_headers(extra=extra), huffman=False)
    conn.send_headers(conn.new_stream_id(), block)
    return conn.expect_connection_error(f.FRAME_SIZE_ERROR)


@case(
    S,
    "Sends a PING frame larger than SETTINGS_MAX_FRAME_SIZE",
    "GOAWAY(FRAME_SIZE_ERROR)",
    CONNECTION_LEVEL,
)
def ping_too_large(conn: Connection) -> str:
    conn.send_frame(f.PING, 0, 0, b"\x00" * (conn.max_frame_size + 1))
    return conn.expect_connection_error(f.FRAME_SIZE_ERROR)


@case(
    S,
    "Sends a SETTINGS frame larger than SETTINGS_MAX_FRAME_SIZE",
    "GOAWAY(FRAME_SIZE_ERROR)",
    CONNECTION_LEVEL,
)
def settings_too_large(conn: Connection) -> str:
    count = conn.max_frame_size // 6 + 1
    conn.send_frame(f.SETTINGS, 0, 0, f.settings_payload(*[(f.SETTINGS_UNKNOWN, 1)] * count))
    return conn.expect_connection_error(f.FRAME_SIZE_ERROR)
