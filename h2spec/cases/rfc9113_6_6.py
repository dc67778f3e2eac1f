"""RFC 9113 6.6: PUSH_PROMISE frames (a client cannot push)."""

from __future__ import annotations

import struct

from h2spec import frames as f
from h2spec.cases.common import open_stream
from h2spec.connection import Connection
from h2spec.registry import case

S = "6.6"
CLIENT_PUSH = (
    "RFC 9113 6.6: A client cannot push. Thus, servers MUST treat the receipt of a PUSH_PROMISE "
    "frame as a connection error of type PROTOCOL_ERROR."
)


def _push_promise(conn: Connection, stream_id: int, promised: int) -> None:
    block = conn.encode(conn.request_headers())
    payload = struct.pack("!I", promised) + block
    conn.send_frame(f.PUSH_PROMISE, f.END_HEADERS, stream_id, payload)


@case(S, "Sends a PUSH_PROMISE frame on an open stream", "GOAWAY(PROTOCOL_ERROR)", CLIENT_PUSH)
def push_promise_open_stream(conn: Connection) -> str:
    sid = open_stream(conn)
    _push_promise(conn, sid, 2)
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a PUSH_PROMISE frame on stream 0",
    "GOAWAY(PROTOCOL_ERROR)",
    CLIENT_PUSH + " The stream identifier of a PUSH_PROMISE MUST NOT be 0x00.",
)
def push_promise_stream_zero(conn: Connection) -> str:
    _push_promise(conn, 0, 2)
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a PUSH_PROMISE frame without END_HEADERS followed by CONTINUATION",
    "GOAWAY(PROTOCOL_ERROR)",
    CLIENT_PUSH,
)
def push_promise_with_continuation(conn: Connection) -> str:
    sid = open_stream(conn)
    block = conn.encode(conn.request_headers())
    conn.send_frame(f.PUSH_PROMISE, 0, sid, struct.pack("!I", 2) + block[:3])
    conn.send_continuation(sid, block[3:])
    return conn.expect_connection_error(f.PROTOCOL_ERROR)
