"""RFC 9113 5.1.1: stream identifiers."""

from __future__ import annotations

from h2spec import frames as f
from h2spec.cases.common import open_stream
from h2spec.connection import Connection
from h2spec.registry import case

S = "5.1.1"
UNEXPECTED = (
    "RFC 9113 5.1.1: Streams initiated by a client MUST use odd-numbered stream identifiers; "
    "the identifier of a newly established stream MUST be numerically greater than all streams "
    "that the initiating endpoint has opened or reserved. An endpoint that receives an "
    "unexpected stream identifier MUST respond with a connection error of type PROTOCOL_ERROR."
)


@case(
    S,
    "Sends a HEADERS frame with an even-numbered stream identifier",
    "GOAWAY(PROTOCOL_ERROR)",
    UNEXPECTED,
)
def even_stream_id(conn: Connection) -> str:
    conn.send_headers(2)
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a HEADERS frame with a stream identifier lower than one already used",
    "GOAWAY(PROTOCOL_ERROR)",
    UNEXPECTED,
)
def decreasing_stream_id(conn: Connection) -> str:
    conn.send_headers(5)
    conn.expect_response(5)
    conn.send_headers(3)
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a DATA frame on a lower stream implicitly closed by a higher one",
    "GOAWAY or RST_STREAM (PROTOCOL_ERROR or STREAM_CLOSED)",
    (
        "RFC 9113 5.1.1: The first use of a new stream identifier implicitly closes all streams in "
        "the idle state that might have been initiated by that peer with a lower-valued stream "
        "identifier; 5.1/6.1: frames on a closed stream are a STREAM_CLOSED error."
    ),
)
def implicitly_closed(conn: Connection) -> str:
    conn.send_headers(5, conn.request_headers("POST"), end_stream=False)
    conn.send_data(3, b"data", end_stream=True)
    return conn.expect_stream_error(3, f.PROTOCOL_ERROR, f.STREAM_CLOSED)


@case(
    S,
    "Opens streams with gaps between their identifiers (1 then 7)",
    "two responses",
    (
        "RFC 9113 5.1.1: identifiers only need to increase; unused lower identifiers are "
        "implicitly closed, not an error."
    ),
)
def gaps_allowed(conn: Connection) -> str:
    conn.send_headers(1)
    conn.send_headers(7)
    conn.expect_responses([1, 7])
    return "two responses"


@case(
    S,
    "Opens a stream with the largest stream identifier, 2^31-1",
    "a response",
    "RFC 9113 5.1.1: stream identifiers are 31-bit integers; 2^31-1 is a valid client identifier.",
)
def largest_stream_id(conn: Connection) -> str:
    sid = 2**31 - 1
    conn.send_headers(sid)
    return f"status {conn.expect_response(sid).status}"


@case(
    S,
    "Sends a HEADERS frame reusing the identifier of an open stream without END_STREAM",
    "GOAWAY or RST_STREAM (PROTOCOL_ERROR)",
    (
        "RFC 9113 8.1: a HEADERS frame without END_STREAM after the request head makes the request "
        "malformed (PROTOCOL_ERROR)."
    ),
)
def second_headers_on_open_stream(conn: Connection) -> str:
    sid = open_stream(conn)
    conn.send_headers(sid, conn.request_headers("POST"), end_stream=False)
    return conn.expect_stream_error(sid, f.PROTOCOL_ERROR)
