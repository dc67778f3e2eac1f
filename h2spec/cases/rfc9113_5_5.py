"""RFC 9113 5.5: extending HTTP/2 (unknown frames and settings are ignored)."""

from __future__ import annotations

from h2spec import frames as f
from h2spec.cases.common import open_stream
from h2spec.connection import Connection
from h2spec.registry import case

S = "5.5"
IGNORE = (
    "RFC 9113 5.5: Implementations MUST ignore unknown or unsupported values in all extensible "
    "protocol elements. Implementations MUST discard frames that have unknown or unsupported types."
)


@case(S, "Sends an unknown extension frame on stream 0", "the frame is ignored (PING ACK)", IGNORE)
def unknown_frame_connection(conn: Connection) -> str:
    conn.send_frame(0x7F, 0xFF, 0, b"\x01\x02\x03\x04")
    return conn.expect_alive()


@case(S, "Sends an unknown extension frame on an open stream", "a response", IGNORE)
def unknown_frame_on_stream(conn: Connection) -> str:
    sid = open_stream(conn)
    conn.send_frame(f.UNKNOWN_TYPE, 0x1, sid, b"extension")
    conn.send_data(sid, b"", end_stream=True)
    return f"status {conn.expect_response(sid).status}"


@case(
    S,
    "Sends a SETTINGS frame with an unknown setting identifier",
    "a SETTINGS ACK",
    IGNORE
    + (
        " 6.5.2: An endpoint that receives a SETTINGS frame with any unknown or unsupported "
        "identifier MUST ignore that setting."
    ),
)
def unknown_setting(conn: Connection) -> str:
    conn.send_frame(f.SETTINGS, 0, 0, f.settings_payload((f.SETTINGS_UNKNOWN, 12345)))
    conn.expect_settings_ack()
    return conn.expect_alive()


@case(
    S,
    "Sends an unknown extension frame in the middle of a field block",
    "GOAWAY(PROTOCOL_ERROR)",
    (
        "RFC 9113 5.5: Extension frames that appear in the middle of a field block are not "
        "permitted; these MUST be treated as a connection error of type PROTOCOL_ERROR."
    ),
)
def unknown_frame_inside_block(conn: Connection) -> str:
    block = conn.encode(conn.request_headers())
    sid = conn.new_stream_id()
    conn.send_headers(sid, block[:3], end_headers=False)
    conn.send_frame(f.UNKNOWN_TYPE, 0, sid, b"extension")
    conn.send_continuation(sid, block[3:])
    return conn.expect_connection_error(f.PROTOCOL_ERROR)
