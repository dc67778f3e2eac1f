"""RFC 9113 7: error codes (unknown codes trigger no special behaviour)."""

from __future__ import annotations

from h2spec import frames as f
from h2spec.cases.common import expect_no_error_after_goaway, open_stream
from h2spec.connection import Connection
from h2spec.registry import case

S = "7"
UNKNOWN = (
    "RFC 9113 7: Unknown or unsupported error codes MUST NOT trigger any special behavior. These "
    "MAY be treated by an implementation as being equivalent to INTERNAL_ERROR."
)


@case(
    S,
    "Sends a RST_STREAM frame with an unknown error code",
    "no connection error (PING ACK)",
    UNKNOWN,
)
def rst_unknown_code(conn: Connection) -> str:
    sid = open_stream(conn)
    conn.send_frame(f.RST_STREAM, 0, sid, f.rst_payload(0xFF))
    return conn.expect_alive()


@case(
    S,
    "Sends a GOAWAY frame with an unknown error code",
    "no error in response (GOAWAY(NO_ERROR), PING ACK or close)",
    UNKNOWN,
)
def goaway_unknown_code(conn: Connection) -> str:
    conn.send_frame(f.GOAWAY, 0, 0, f.goaway_payload(0, 0xFF))
    return expect_no_error_after_goaway(conn)


@case(S, "Sends a RST_STREAM with an unknown error code, then a new request", "a response", UNKNOWN)
def rst_unknown_then_request(conn: Connection) -> str:
    sid = open_stream(conn)
    conn.send_frame(f.RST_STREAM, 0, sid, f.rst_payload(0xDEAD_BEEF))
    return f"status {conn.roundtrip().status}"
