"""RFC 9113 6.3: PRIORITY frames."""

from __future__ import annotations

from h2spec import frames as f
from h2spec.cases.common import open_stream
from h2spec.connection import Connection
from h2spec.registry import case

S = "6.3"
LENGTH = (
    "RFC 9113 6.3: A PRIORITY frame with a length other than 5 octets MUST be treated as a "
    "stream error of type FRAME_SIZE_ERROR."
)


@case(
    S,
    "Sends a PRIORITY frame with stream identifier 0",
    "GOAWAY(PROTOCOL_ERROR)",
    (
        "RFC 9113 6.3: If a PRIORITY frame is received with a stream identifier of 0x00, the "
        "recipient MUST respond with a connection error of type PROTOCOL_ERROR."
    ),
)
def priority_stream_zero(conn: Connection) -> str:
    conn.send_frame(f.PRIORITY, 0, 0, f.priority_payload(1, 16))
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a PRIORITY frame with stream identifier 0 that depends on stream 0",
    "GOAWAY(PROTOCOL_ERROR)",
    (
        "RFC 9113 6.3: If a PRIORITY frame is received with a stream identifier of 0x00, the "
        "recipient MUST respond with a connection error of type PROTOCOL_ERROR (a dependency on "
        "itself does not make it a stream error: there is no stream 0 to reset)."
    ),
)
def priority_stream_zero_on_zero(conn: Connection) -> str:
    conn.send_frame(f.PRIORITY, 0, 0, f.priority_payload(0, 16))
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a PRIORITY frame with a length of 4",
    "RST_STREAM(FRAME_SIZE_ERROR) or GOAWAY(FRAME_SIZE_ERROR)",
    LENGTH,
)
def priority_length_4(conn: Connection) -> str:
    sid = open_stream(conn)
    conn.send_frame(f.PRIORITY, 0, sid, f.priority_payload(0, 16)[:4])
    return conn.expect_stream_error(sid, f.FRAME_SIZE_ERROR)


@case(
    S,
    "Sends a PRIORITY frame with a length of 6",
    "RST_STREAM(FRAME_SIZE_ERROR) or GOAWAY(FRAME_SIZE_ERROR)",
    LENGTH,
)
def priority_length_6(conn: Connection) -> str:
    sid = open_stream(conn)
    conn.send_frame(f.PRIORITY, 0, sid, f.priority_payload(0, 16) + b"\x00")
    return conn.expect_stream_error(sid, f.FRAME_SIZE_ERROR)


@case(
    S,
    "Sends a PRIORITY frame on an idle stream, then opens that stream",
    "a response",
    (
        "RFC 9113 6.3: The PRIORITY frame can be sent on a stream in any state, including idle or "
        "closed streams; it does not change the stream state."
    ),
)
def priority_then_open(conn: Connection) -> str:
    conn.send_frame(f.PRIORITY, 0, 3, f.priority_payload(0, 16))
    conn.send_headers(3)
    return f"status {conn.expect_response(3).status}"


@case(
    S,
    "Sends a PRIORITY frame on an open stream",
    "a response",
    "RFC 9113 6.3: The PRIORITY frame can be sent on a stream in any state.",
)
def priority_open_stream(conn: Connection) -> str:
    sid = open_stream(conn)
    conn.send_frame(f.PRIORITY, 0, sid, f.priority_payload(0, 255))
    conn.send_data(sid, b"x", end_stream=True)
    return f"status {conn.expect_response(sid).status}"
