"""RFC 9113 6.10: CONTINUATION frames."""

from __future__ import annotations

from h2spec import frames as f
from h2spec.connection import Connection
from h2spec.registry import case

S = "6.10"
PRECEDED = (
    "RFC 9113 6.10: A CONTINUATION frame MUST be preceded by a HEADERS, PUSH_PROMISE or "
    "CONTINUATION frame without the END_HEADERS flag set. A recipient that observes violation of "
    "this rule MUST respond with a connection error of type PROTOCOL_ERROR."
)
FOLLOWED = (
    "RFC 9113 6.10: If the END_HEADERS flag is not set, this frame MUST be followed by another "
    "CONTINUATION frame. A receiver MUST treat the receipt of any other type of frame or a frame "
    "on a different stream as a connection error of type PROTOCOL_ERROR."
)


def _split(conn: Connection, parts: int) -> tuple[int, list[bytes]]:
    block = conn.encode(conn.request_headers(extra=[("x-h2spec", "continuation" * 4)]))
    size = len(block) // parts + 1
    return conn.new_stream_id(), [block[i : i + size] for i in range(0, len(block), size)]


@case(
    S,
    "Sends a HEADERS frame followed by one CONTINUATION frame",
    "a response",
    (
        "RFC 9113 6.10: CONTINUATION frames continue a field block; END_HEADERS on the last one "
        "ends it."
    ),
)
def one_continuation(conn: Connection) -> str:
    sid, chunks = _split(conn, 2)
    conn.send_headers(sid, chunks[0], end_headers=False)
    conn.send_continuation(sid, b"".join(chunks[1:]))
    return f"status {conn.expect_response(sid).status}"


@case(
    S,
    "Sends a HEADERS frame followed by several CONTINUATION frames",
    "a response",
    (
        "RFC 9113 6.10: Any number of CONTINUATION frames can be sent, as long as the preceding "
        "frame is on the same stream and is a HEADERS, PUSH_PROMISE, or CONTINUATION frame without "
        "END_HEADERS."
    ),
)
def several_continuations(conn: Connection) -> str:
    sid, chunks = _split(conn, 5)
    conn.send_headers(sid, chunks[0], end_headers=False)
    for index, chunk in enumerate(chunks[1:], start=2):
        conn.send_continuation(sid, chunk, end_headers=index == len(chunks))
    return f"status {conn.expect_response(sid).status}"


@case(
    S,
    "Sends an empty CONTINUATION frame to end a field block",
    "a response",
    "RFC 9113 6.10: a CONTINUATION frame carries any field block fragment, which may be empty.",
)
def empty_continuation(conn: Connection) -> str:
    sid, chunks = _split(conn, 1)
    conn.send_headers(sid, chunks[0], end_headers=False)
    conn.send_continuation(sid, b"")
    return f"status {conn.expect_response(sid).status}"


@case(
    S,
    "Sends a CONTINUATION frame after a HEADERS frame with END_HEADERS",
    "GOAWAY(PROTOCOL_ERROR)",
    PRECEDED,
)
def after_end_headers(conn: Connection) -> str:
    sid = conn.new_stream_id()
    conn.send_headers(sid, conn.request_headers("POST"), end_stream=False)
    conn.send_continuation(sid, conn.encode([("x-extra", "1")]))
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a CONTINUATION frame after a CONTINUATION with END_HEADERS",
    "GOAWAY(PROTOCOL_ERROR)",
    PRECEDED,
)
def after_ended_continuation(conn: Connection) -> str:
    sid, chunks = _split(conn, 2)
    conn.send_headers(sid, chunks[0], end_stream=False, end_headers=False)
    conn.send_continuation(sid, b"".join(chunks[1:]))
    conn.send_continuation(sid, conn.encode([("x-extra", "1")]))
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(S, "Sends a CONTINUATION frame after a DATA frame", "GOAWAY(PROTOCOL_ERROR)", PRECEDED)
def after_data(conn: Connection) -> str:
    sid = conn.new_stream_id()
    conn.send_headers(sid, conn.request_headers("POST"), end_stream=False)
    conn.send_data(sid, b"data", end_stream=False)
    conn.send_continuation(sid, conn.encode([("x-extra", "1")]))
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a CONTINUATION frame with stream identifier 0",
    "GOAWAY(PROTOCOL_ERROR)",
    (
        "RFC 9113 6.10: If a CONTINUATION frame is received with a Stream Identifier field of "
        "0x00, the recipient MUST respond with a connection error of type PROTOCOL_ERROR."
    ),
)
def stream_zero(conn: Connection) -> str:
    sid, chunks = _split(conn, 2)
    conn.send_headers(sid, chunks[0], end_headers=False)
    conn.send_continuation(0, b"".join(chunks[1:]))
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a CONTINUATION frame without END_HEADERS followed by a DATA frame",
    "GOAWAY(PROTOCOL_ERROR)",
    FOLLOWED,
)
def continuation_then_data(conn: Connection) -> str:
    sid, chunks = _split(conn, 3)
    conn.send_headers(sid, chunks[0], end_stream=False, end_headers=False)
    conn.send_continuation(sid, chunks[1], end_headers=False)
    conn.send_data(sid, b"data", end_stream=True)
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a CONTINUATION frame without END_HEADERS followed by a CONTINUATION of another stream",
    "GOAWAY(PROTOCOL_ERROR)",
    FOLLOWED,
)
def continuation_other_stream(conn: Connection) -> str:
    sid, chunks = _split(conn, 3)
    conn.send_headers(sid, chunks[0], end_headers=False)
    conn.send_continuation(sid, chunks[1], end_headers=False)
    conn.send_continuation(sid + 2, b"".join(chunks[2:]))
    return conn.expect_connection_error(f.PROTOCOL_ERROR)
