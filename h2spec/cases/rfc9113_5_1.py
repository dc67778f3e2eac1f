"""RFC 9113 5.1: stream states (idle, open, half-closed (remote), closed)."""

from __future__ import annotations

from h2spec import frames as f
from h2spec.cases.common import complete_exchange, open_stream
from h2spec.connection import Connection
from h2spec.registry import case

S = "5.1"
IDLE = (
    "RFC 9113 5.1 idle: Receiving any frame other than HEADERS or PRIORITY on a stream in this "
    "state MUST be treated as a connection error of type PROTOCOL_ERROR."
)
HALF_CLOSED = (
    "RFC 9113 5.1 half-closed (remote): If an endpoint receives additional frames, other than "
    "WINDOW_UPDATE, PRIORITY, or RST_STREAM, for a stream that is in this state, it MUST respond "
    "with a stream error of type STREAM_CLOSED. (If the server already closed the stream, 5.1 "
    "closed and 6.1 give STREAM_CLOSED as well.)"
)
HALF_CLOSED_OK = (
    "RFC 9113 5.1 half-closed (remote): WINDOW_UPDATE, PRIORITY and RST_STREAM frames can be "
    "received in this state."
)
CLOSED = (
    "RFC 9113 5.1 closed: An endpoint MAY treat receipt of any other type of frame [than "
    "PRIORITY] on a closed stream as a connection error of type STREAM_CLOSED; 6.1: DATA on a "
    "stream that is not open or half-closed (local) is a stream error of type STREAM_CLOSED."
)


@case(S, "idle: Sends a DATA frame", "GOAWAY(PROTOCOL_ERROR)", IDLE)
def idle_data(conn: Connection) -> str:
    conn.send_data(1, b"test", end_stream=True)
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(S, "idle: Sends a RST_STREAM frame", "GOAWAY(PROTOCOL_ERROR)", IDLE)
def idle_rst_stream(conn: Connection) -> str:
    conn.send_frame(f.RST_STREAM, 0, 1, f.rst_payload(f.CANCEL))
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(S, "idle: Sends a WINDOW_UPDATE frame", "GOAWAY(PROTOCOL_ERROR)", IDLE)
def idle_window_update(conn: Connection) -> str:
    conn.send_frame(f.WINDOW_UPDATE, 0, 1, f.window_update_payload(100))
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(S, "idle: Sends a CONTINUATION frame", "GOAWAY(PROTOCOL_ERROR)", IDLE)
def idle_continuation(conn: Connection) -> str:
    conn.send_continuation(1, conn.encode(conn.request_headers()))
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S,
    "idle: Sends a PRIORITY frame",
    "no error (PING ACK)",
    "RFC 9113 5.1 idle: HEADERS and PRIORITY frames can be received on an idle stream.",
)
def idle_priority(conn: Connection) -> str:
    conn.send_frame(f.PRIORITY, 0, 1, f.priority_payload(0, 16))
    return conn.expect_alive()


@case(
    S,
    "open: Sends HEADERS, DATA and a final DATA with END_STREAM",
    "a response",
    (
        "RFC 9113 5.1 open: a stream in the open state may be used by both peers to send frames of "
        "any type."
    ),
)
def open_exchange(conn: Connection) -> str:
    sid = open_stream(conn)
    conn.send_data(sid, b"one", end_stream=False)
    conn.send_data(sid, b"two", end_stream=True)
    return f"status {conn.expect_response(sid).status}"


@case(
    S,
    "open: Sends RST_STREAM(CANCEL) on an open stream",
    "no connection error (PING ACK)",
    (
        "RFC 9113 5.1 open: either endpoint can send a RST_STREAM frame from this state, causing "
        "it to transition immediately to closed."
    ),
)
def open_rst_stream(conn: Connection) -> str:
    sid = open_stream(conn)
    conn.send_frame(f.RST_STREAM, 0, sid, f.rst_payload(f.CANCEL))
    return conn.expect_alive()


@case(
    S,
    "half-closed (remote): Sends a DATA frame after END_STREAM",
    "RST_STREAM(STREAM_CLOSED) or GOAWAY(STREAM_CLOSED)",
    HALF_CLOSED,
)
def half_closed_data(conn: Connection) -> str:
    sid = open_stream(conn)
    conn.send_data(sid, b"", end_stream=True)
    conn.send_data(sid, b"more", end_stream=True)
    return conn.expect_stream_error(sid, f.STREAM_CLOSED)


@case(
    S,
    "half-closed (remote): Sends a HEADERS frame after END_STREAM",
    "RST_STREAM(STREAM_CLOSED) or GOAWAY(STREAM_CLOSED)",
    HALF_CLOSED,
)
def half_closed_headers(conn: Connection) -> str:
    sid = conn.new_stream_id()
    conn.send_headers(sid, conn.request_headers(), end_stream=True)
    conn.send_headers(sid, [("x-trailer", "late")], end_stream=True)
    return conn.expect_stream_error(sid, f.STREAM_CLOSED)


@case(
    S,
    "half-closed (remote): Sends a CONTINUATION frame after END_STREAM",
    "GOAWAY(STREAM_CLOSED or PROTOCOL_ERROR) or RST_STREAM(STREAM_CLOSED)",
    HALF_CLOSED
    + (
        " RFC 9113 6.10: a CONTINUATION not preceded by a field block frame without END_HEADERS is "
        "a connection error of type PROTOCOL_ERROR."
    ),
)
def half_closed_continuation(conn: Connection) -> str:
    sid = conn.new_stream_id()
    conn.send_headers(sid, conn.request_headers(), end_stream=True)
    conn.send_continuation(sid, conn.encode([("x-late", "1")]))
    return conn.expect_stream_error(sid, f.STREAM_CLOSED, f.PROTOCOL_ERROR)


@case(
    S,
    "half-closed (remote): Sends a WINDOW_UPDATE frame",
    "a response and no error",
    HALF_CLOSED_OK,
)
def half_closed_window_update(conn: Connection) -> str:
    sid = conn.get()
    conn.send_frame(f.WINDOW_UPDATE, 0, sid, f.window_update_payload(1000))
    conn.expect_response(sid)
    return conn.expect_alive()


@case(S, "half-closed (remote): Sends a PRIORITY frame", "a response and no error", HALF_CLOSED_OK)
def half_closed_priority(conn: Connection) -> str:
    sid = conn.get()
    conn.send_frame(f.PRIORITY, 0, sid, f.priority_payload(0, 200))
    conn.expect_response(sid)
    return conn.expect_alive()


@case(
    S,
    "half-closed (remote): Sends a RST_STREAM frame",
    "no connection error (PING ACK)",
    HALF_CLOSED_OK,
)
def half_closed_rst_stream(conn: Connection) -> str:
    sid = conn.get()
    conn.send_frame(f.RST_STREAM, 0, sid, f.rst_payload(f.CANCEL))
    return conn.expect_alive(allow_rst=True)


@case(
    S,
    "closed: Sends a DATA frame on a stream whose exchange is complete",
    "RST_STREAM(STREAM_CLOSED) or GOAWAY(STREAM_CLOSED)",
    CLOSED,
)
def closed_data(conn: Connection) -> str:
    sid = complete_exchange(conn)
    conn.send_data(sid, b"late", end_stream=True)
    return conn.expect_stream_error(sid, f.STREAM_CLOSED)


@case(
    S,
    "closed: Sends a HEADERS frame on a stream whose exchange is complete",
    "GOAWAY(STREAM_CLOSED or PROTOCOL_ERROR) or RST_STREAM(STREAM_CLOSED)",
    CLOSED + " 5.1.1: a new stream identifier MUST be greater than all identifiers already used.",
)
def closed_headers(conn: Connection) -> str:
    sid = complete_exchange(conn)
    conn.send_headers(sid, conn.request_headers(), end_stream=True)
    return conn.expect_stream_error(sid, f.STREAM_CLOSED, f.PROTOCOL_ERROR)


@case(
    S,
    "closed: Sends a PRIORITY frame on a stream whose exchange is complete",
    "no error (PING ACK)",
    (
        "RFC 9113 5.1 closed: An endpoint MUST NOT send frames other than PRIORITY on a closed "
        "stream (so PRIORITY is allowed); 6.3: PRIORITY can be sent in any stream state."
    ),
)
def closed_priority(conn: Connection) -> str:
    sid = complete_exchange(conn)
    conn.send_frame(f.PRIORITY, 0, sid, f.priority_payload(0, 50))
    return conn.expect_alive()


@case(
    S,
    "closed: Sends a DATA frame after resetting the stream with RST_STREAM",
    "RST_STREAM(STREAM_CLOSED) or GOAWAY(STREAM_CLOSED)",
    CLOSED,
)
def closed_after_reset_data(conn: Connection) -> str:
    sid = open_stream(conn)
    conn.send_frame(f.RST_STREAM, 0, sid, f.rst_payload(f.CANCEL))
    conn.send_data(sid, b"late", end_stream=True)
    return conn.expect_stream_error(sid, f.STREAM_CLOSED)
