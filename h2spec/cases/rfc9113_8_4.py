"""RFC 9113 8.4: server push (a client cannot push; a disabled push is never used)."""

from __future__ import annotations

import struct

from h2spec import frames as f
from h2spec.connection import Connection
from h2spec.registry import case

S = "8.4"


@case(
    S,
    "Sends a PUSH_PROMISE frame on an idle stream",
    "GOAWAY(PROTOCOL_ERROR)",
    (
        "RFC 9113 8.4: A client cannot push. Thus, servers MUST treat the receipt of a "
        "PUSH_PROMISE frame as a connection error of type PROTOCOL_ERROR."
    ),
)
def push_promise_idle(conn: Connection) -> str:
    block = conn.encode(conn.request_headers())
    conn.send_frame(f.PUSH_PROMISE, f.END_HEADERS, 1, struct.pack("!I", 2) + block)
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a PUSH_PROMISE frame after enabling push (SETTINGS_ENABLE_PUSH=1)",
    "GOAWAY(PROTOCOL_ERROR)",
    (
        "RFC 9113 8.4: servers MUST treat the receipt of a PUSH_PROMISE frame as a connection "
        "error of type PROTOCOL_ERROR, whatever the settings."
    ),
    settings=[(f.SETTINGS_ENABLE_PUSH, 1)],
)
def push_promise_push_enabled(conn: Connection) -> str:
    sid = conn.new_stream_id()
    conn.send_headers(sid, conn.request_headers("POST"), end_stream=False)
    block = conn.encode(conn.request_headers())
    conn.send_frame(f.PUSH_PROMISE, f.END_HEADERS, sid, struct.pack("!I", 2) + block)
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S,
    "Sends requests with SETTINGS_ENABLE_PUSH=0",
    "responses and no PUSH_PROMISE",
    (
        "RFC 9113 8.4: A server MUST NOT send a PUSH_PROMISE if the client has set "
        "SETTINGS_ENABLE_PUSH to 0 (6.5.2: a PUSH_PROMISE then is a connection error)."
    ),
)
def no_push_when_disabled(conn: Connection) -> str:
    for _ in range(3):
        conn.roundtrip()
    return conn.expect_alive()
