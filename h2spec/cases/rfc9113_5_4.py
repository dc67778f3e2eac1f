"""RFC 9113 5.4: error handling."""

from __future__ import annotations

from h2spec import frames as f
from h2spec.cases.common import complete_exchange, open_stream
from h2spec.connection import CaseFailed, Connection, ConnectionClosed
from h2spec.registry import case

S = "5.4"


@case(
    S,
    "Causes a connection error (PING on stream 1)",
    "GOAWAY(PROTOCOL_ERROR), then the connection is closed",
    (
        "RFC 9113 5.4.1: An endpoint that encounters a connection error SHOULD first send a GOAWAY "
        "frame ... After sending the GOAWAY frame for an error condition, the endpoint MUST close "
        "the TCP connection."
    ),
)
def closes_after_goaway(conn: Connection) -> str:
    conn.send_frame(f.PING, 0, 1, b"\x00" * 8)
    result = conn.expect_connection_error(f.PROTOCOL_ERROR)
    if result == "connection closed":
        return result
    return result + ", then " + conn.expect_closed()


@case(
    S,
    "Completes a request, then causes a connection error",
    "GOAWAY whose last stream identifier covers the completed stream",
    (
        "RFC 9113 5.4.1/6.8: the GOAWAY carries the identifier of the last peer-initiated stream "
        "that was or might be processed."
    ),
)
def goaway_last_stream_id(conn: Connection) -> str:
    sid = complete_exchange(conn)
    conn.send_frame(f.PING, 0, 1, b"\x00" * 8)
    conn.history.clear()
    try:
        for frame in conn.frames():
            if frame.type == f.GOAWAY:
                if frame.last_stream_id < sid:
                    raise CaseFailed(f"{frame.describe()} does not cover stream {sid}")
                return frame.describe()
    except TimeoutError as exc:
        raise CaseFailed(f"no GOAWAY; got {conn.history}") from exc
    except ConnectionClosed as exc:
        raise CaseFailed("connection closed without GOAWAY") from exc
    raise AssertionError("unreachable")


@case(
    S,
    "Sends RST_STREAM on an open stream",
    "no RST_STREAM in response",
    (
        "RFC 9113 5.4.2: an endpoint MUST NOT send a RST_STREAM in response to a RST_STREAM frame, "
        "to avoid looping."
    ),
)
def no_rst_for_rst(conn: Connection) -> str:
    sid = open_stream(conn)
    conn.send_frame(f.RST_STREAM, 0, sid, f.rst_payload(f.CANCEL))
    return conn.expect_alive()


@case(
    S,
    "Causes a stream error (PRIORITY of length 4), then sends a new request",
    "RST_STREAM, then the connection stays usable",
    (
        "RFC 9113 5.4.2: a stream error terminates only the stream; the connection remains usable "
        "(unless the endpoint chooses to treat it as a connection error)."
    ),
)
def stream_error_then_request(conn: Connection) -> str:
    sid = open_stream(conn)
    conn.send_frame(f.PRIORITY, 0, sid, b"\x00\x00\x00\x00")
    result = conn.expect_stream_error(sid, f.FRAME_SIZE_ERROR)
    if not result.startswith("RST_STREAM"):
        return result
    return f"{result}; status {conn.roundtrip().status}"
