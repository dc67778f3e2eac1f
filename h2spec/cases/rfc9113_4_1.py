"""RFC 9113 4.1: frame format (unknown types, unused flags, the reserved bit)."""

from __future__ import annotations

from h2spec import frames as f
from h2spec.connection import Connection
from h2spec.registry import case

S = "4.1"


@case(
    S,
    "Sends a frame of unknown type",
    "the frame is ignored (PING ACK)",
    "RFC 9113 4.1: Implementations MUST ignore and discard frames of unknown types.",
)
def unknown_type(conn: Connection) -> str:
    conn.send_frame(f.UNKNOWN_TYPE, 0, 0, b"unknown payload")
    return conn.expect_alive()


@case(
    S,
    "Sends a PING frame with undefined flags set",
    "a PING ACK with the same payload",
    (
        "RFC 9113 4.1: Flags that have no defined semantics for a particular frame type MUST be "
        "ignored."
    ),
)
def ping_undefined_flags(conn: Connection) -> str:
    conn.send_frame(f.PING, 0xFE, 0, b"flags!!!")
    return conn.expect_ping_ack(b"flags!!!")


@case(
    S,
    "Sends a PING frame with the reserved bit of the stream identifier set",
    "a PING ACK",
    (
        "RFC 9113 4.1: the reserved bit MUST remain unset when sending and MUST be ignored when "
        "receiving."
    ),
)
def ping_reserved_bit(conn: Connection) -> str:
    conn.send_frame(f.PING, 0, 0, b"reserved", reserved_bit=True)
    return conn.expect_ping_ack(b"reserved")


@case(
    S,
    "Sends a HEADERS frame with the reserved bit of the stream identifier set",
    "a response on the stream",
    "RFC 9113 4.1: the reserved bit of the stream identifier MUST be ignored when receiving.",
)
def headers_reserved_bit(conn: Connection) -> str:
    sid = conn.new_stream_id()
    conn.send_headers(sid, reserved_bit=True)
    return f"status {conn.expect_response(sid).status}"


@case(
    S,
    "Sends HEADERS and DATA frames with undefined flags set",
    "a response",
    (
        "RFC 9113 4.1: Flags that have no defined semantics for a particular frame type MUST be "
        "ignored."
    ),
)
def undefined_flags_on_request(conn: Connection) -> str:
    sid = conn.new_stream_id()
    conn.send_headers(sid, conn.request_headers("POST"), end_stream=False, flags=0x10 | 0x40 | 0x80)
    conn.send_data(sid, b"data", end_stream=True, flags=0x2 | 0x4 | 0x10 | 0x20)
    return f"status {conn.expect_response(sid).status}"
