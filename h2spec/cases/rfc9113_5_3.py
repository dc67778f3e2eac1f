"""RFC 9113 5.3: prioritization (RFC 7540 priority signals are still parsed)."""

from __future__ import annotations

from h2spec import frames as f
from h2spec.cases.common import open_stream
from h2spec.connection import Connection
from h2spec.registry import case

S = "5.3"
SELF = (
    "RFC 9113 5.3.1: A stream cannot depend on itself. An endpoint MUST treat this as a stream "
    "error of type PROTOCOL_ERROR."
)


@case(
    S,
    "Sends a HEADERS frame whose priority depends on its own stream",
    "RST_STREAM(PROTOCOL_ERROR) or GOAWAY(PROTOCOL_ERROR)",
    SELF,
)
def headers_self_dependency(conn: Connection) -> str:
    sid = conn.new_stream_id()
    conn.send_headers(sid, priority=f.priority_payload(sid, 16))
    return conn.expect_stream_error(sid, f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a PRIORITY frame that makes an open stream depend on itself",
    "RST_STREAM(PROTOCOL_ERROR) or GOAWAY(PROTOCOL_ERROR)",
    SELF,
)
def priority_self_dependency(conn: Connection) -> str:
    sid = open_stream(conn)
    conn.send_frame(f.PRIORITY, 0, sid, f.priority_payload(sid, 16))
    return conn.expect_stream_error(sid, f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a HEADERS frame with a valid priority (exclusive, weight 256)",
    "a response",
    (
        "RFC 9113 5.3.2: priority signals are advisory; a server MAY ignore them but must process "
        "the request."
    ),
)
def headers_with_priority(conn: Connection) -> str:
    sid = conn.new_stream_id()
    conn.send_headers(sid, priority=f.priority_payload(0, 255, exclusive=True))
    return f"status {conn.expect_response(sid).status}"


@case(
    S,
    "Sends a PRIORITY frame depending on a stream that does not exist",
    "no error (PING ACK)",
    (
        "RFC 9113 5.3.1 (RFC 7540 5.3.1): a dependency on a stream that is not in the tree gives "
        "the stream a default priority; it is not an error."
    ),
)
def priority_unknown_parent(conn: Connection) -> str:
    sid = open_stream(conn)
    conn.send_frame(f.PRIORITY, 0, sid, f.priority_payload(99, 16))
    conn.send_data(sid, b"", end_stream=True)
    conn.expect_response(sid)
    return conn.expect_alive()


@case(
    S,
    "Builds a dependency chain between three open streams",
    "three responses",
    (
        "RFC 9113 5.3.2: a server MAY ignore priority signals; a valid dependency tree must not "
        "break the requests."
    ),
)
def dependency_chain(conn: Connection) -> str:
    first = open_stream(conn)
    second = open_stream(conn)
    third = open_stream(conn)
    conn.send_frame(f.PRIORITY, 0, second, f.priority_payload(first, 50))
    conn.send_frame(f.PRIORITY, 0, third, f.priority_payload(second, 10, exclusive=True))
    conn.send_frame(f.PRIORITY, 0, first, f.priority_payload(third, 10))  # reprioritise: cycle
    for sid in (first, second, third):
        conn.send_data(sid, b"", end_stream=True)
    conn.expect_responses([first, second, third])
    return "three responses"
