"""RFC 9113 6.8: GOAWAY frames."""

from __future__ import annotations

from h2spec import frames as f
from h2spec.cases.common import expect_no_error_after_goaway
from h2spec.connection import Connection
from h2spec.registry import case

S = "6.8"


@case(
    S,
    "Sends a GOAWAY frame with a stream identifier other than 0",
    "GOAWAY(PROTOCOL_ERROR)",
    (
        "RFC 9113 6.8: An endpoint MUST treat a GOAWAY frame with a stream identifier other than "
        "0x00 as a connection error of type PROTOCOL_ERROR."
    ),
)
def goaway_on_stream(conn: Connection) -> str:
    conn.send_frame(f.GOAWAY, 0, 1, f.goaway_payload(0, f.NO_ERROR))
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a GOAWAY frame with a length of 7",
    "GOAWAY(FRAME_SIZE_ERROR)",
    (
        "RFC 9113 4.2: An endpoint MUST send an error code of FRAME_SIZE_ERROR if a frame ... is "
        "too small to contain mandatory frame data; a frame with stream identifier 0 makes it a "
        "connection error."
    ),
)
def goaway_too_short(conn: Connection) -> str:
    conn.send_frame(f.GOAWAY, 0, 0, f.goaway_payload(0, f.NO_ERROR)[:7])
    return conn.expect_connection_error(f.FRAME_SIZE_ERROR)


@case(
    S,
    "Sends a GOAWAY(NO_ERROR) frame with debug data",
    "no error in response (GOAWAY(NO_ERROR), PING ACK or close)",
    (
        "RFC 9113 6.8: a GOAWAY frame may carry additional debug data; receiving it is not an "
        "error, and the server MUST NOT open new streams."
    ),
)
def goaway_with_debug_data(conn: Connection) -> str:
    conn.send_frame(f.GOAWAY, 0, 0, f.goaway_payload(0, f.NO_ERROR, b"h2spec says goodbye"))
    return expect_no_error_after_goaway(conn)
