"""RFC 9113 4.3: field section compression and decompression."""

from __future__ import annotations

from h2spec import frames as f
from h2spec import hpackraw as h
from h2spec.connection import Connection
from h2spec.registry import case

S = "4.3"
DECODING = (
    "RFC 9113 4.3: A decoding error in a field block MUST be treated as a connection error of "
    "type COMPRESSION_ERROR."
)
CONTIGUOUS = (
    "RFC 9113 4.3: Field blocks MUST be transmitted as a contiguous sequence of frames, with no "
    "interleaved frames of any other type or from any other stream."
)


@case(S, "Sends a HEADERS frame with an invalid field block", "GOAWAY(COMPRESSION_ERROR)", DECODING)
def invalid_block(conn: Connection) -> str:
    # An indexed field with index 0 followed by a truncated literal.
    conn.send_headers(conn.new_stream_id(), b"\x80\x40\x7f")
    return conn.expect_connection_error(f.COMPRESSION_ERROR)


@case(
    S,
    "Sends a PRIORITY frame between HEADERS and CONTINUATION",
    "GOAWAY(PROTOCOL_ERROR)",
    CONTIGUOUS,
)
def priority_inside_block(conn: Connection) -> str:
    block = conn.encode(conn.request_headers())
    sid = conn.new_stream_id()
    conn.send_headers(sid, block[:3], end_headers=False)
    conn.send_frame(f.PRIORITY, 0, sid, f.priority_payload(0, 16))
    conn.send_continuation(sid, block[3:])
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a HEADERS frame of another stream between HEADERS and CONTINUATION",
    "GOAWAY(PROTOCOL_ERROR)",
    CONTIGUOUS,
)
def headers_inside_block(conn: Connection) -> str:
    block = conn.encode(conn.request_headers())
    sid = conn.new_stream_id()
    conn.send_headers(sid, block[:3], end_headers=False)
    conn.send_headers(conn.new_stream_id(), conn.request_headers())
    conn.send_continuation(sid, block[3:])
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S,
    "Sends a DATA frame of the same stream between HEADERS and CONTINUATION",
    "GOAWAY(PROTOCOL_ERROR)",
    CONTIGUOUS,
)
def data_inside_block(conn: Connection) -> str:
    block = conn.encode(conn.request_headers("POST"))
    sid = conn.new_stream_id()
    conn.send_headers(sid, block[:3], end_stream=False, end_headers=False)
    conn.send_data(sid, b"x", end_stream=False)
    conn.send_continuation(sid, block[3:])
    return conn.expect_connection_error(f.PROTOCOL_ERROR)


@case(
    S,
    "Sends two requests whose second field block refers to dynamic table entries of the first",
    "two responses",
    (
        "RFC 9113 4.3.1: the compression context is one per connection; a field block can "
        "reference entries added by earlier blocks."
    ),
)
def shared_dynamic_table(conn: Connection) -> str:
    scheme = h.SCHEME_HTTPS if conn.target.tls else h.SCHEME_HTTP
    first = (
        h.indexed(h.METHOD_GET)
        + h.indexed(scheme)
        + h.literal_incremental(h.PATH_NAME, conn.target.path)
        + h.literal_incremental(h.AUTHORITY, conn.target.authority)
        + h.literal_incremental("x-h2spec", "dynamic")
    )
    # Dynamic table now: 62 x-h2spec, 63 :authority, 64 :path.
    second = h.indexed(h.METHOD_GET) + h.indexed(scheme) + h.indexed(64) + h.indexed(63)
    second += h.indexed(62)
    for block in (first, second):
        sid = conn.new_stream_id()
        conn.send_headers(sid, block)
        conn.expect_response(sid)
    return "two responses"


@case(
    S,
    "Sends a HEADERS frame without END_HEADERS followed by a PING",
    "GOAWAY(PROTOCOL_ERROR)",
    CONTIGUOUS,
)
def ping_inside_block(conn: Connection) -> str:
    sid = conn.new_stream_id()
    block = conn.encode(conn.request_headers())
    conn.send_headers(sid, block[:4], end_headers=False)
    conn.ping()
    conn.send_continuation(sid, block[4:])
    return conn.expect_connection_error(f.PROTOCOL_ERROR)
