"""RFC 9113 6.4: RST_STREAM frames."""

from __future__ import annotations

from h2spec import frames as f
from h2spec.cases.common import open_stream
from h2spec.connection import Connection
from h2spec.registry import case

S = "6.4"
LENGTH = (
    "RFC 9113 6.4: A RST_STREAM frame with a length other than 4 octets MUST be treated as a "
    "connection error of type FRAME_SIZE_ERROR."
)


@case(
    S,
    "Sends a RST_STREAM frame with stream identifier 0",
    "GOAWAY(PROTOCOL_ERROR)",
    (
        "RFC 9113 6.4: If a RST_STREAM frame is received with a stream identifier of 0x00, the "
        "recipient MUST treat this as a connection error of type PROTOCOL_ERROR."
    ),
)
def rst_stream_zero(conn: Connection) -> str:
    conn.send_frame(f.RST_STREAM, 0, 0, f.rst_payload(f.CANCEL))
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a RST_STREAM frame on an idle stream",
    "GOAWAY(PROTOCOL_ERROR)",
    (
        "RFC 9113 6.4: If a RST_STREAM frame identifying an idle stream is received, the recipient "
        "MUST treat this as a connection error of type PROTOCOL_ERROR."
    ),
)
def rst_idle(conn: Connection) -> str:
    conn.send_frame(f.RST_STREAM, 0, 5, f.rst_payload(f.CANCEL))
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(S, "Sends a RST_STREAM frame with a length of 3", "GOAWAY(FRAME_SIZE_ERROR)", LENGTH)
def rst_length_3(conn: Connection) -> str:
    sid = open_stream(conn)
    conn.send_frame(f.RST_STREAM, 0, sid, b"\x00\x00\x08")
    return conn.expect_connection_error(f.FRAME_SIZE_ERROR)


@case(S, "Sends a RST_STREAM frame with a length of 5", "GOAWAY(FRAME_SIZE_ERROR)", LENGTH)
def rst_length_5(conn: Connection) -> str:
    sid = open_stream(conn)
    conn.send_frame(f.RST_STREAM, 0, sid, f.rst_payload(f.CANCEL) + b"\x00")
    return conn.expect_connection_error(f.FRAME_SIZE_ERROR)


@case(
    S,
    "Sends a RST_STREAM frame with each defined error code on open streams",
    "no connection error (PING ACK)",
    (
        "RFC 9113 6.4: the RST_STREAM frame allows for immediate termination of a stream; any "
        "error code is valid."
    ),
)
def rst_every_code(conn: Connection) -> str:
    for code in range(0x0, 0xE):
        sid = open_stream(conn)
        conn.send_frame(f.RST_STREAM, 0, sid, f.rst_payload(code))
    return conn.expect_alive()
