"""RFC 7541 2.3: indexing tables (static table, dynamic table, index address space)."""

from __future__ import annotations

from h2spec import hpackraw as h
from h2spec.cases.common import expect_compression_error, raw_request_prefix, send_raw_block
from h2spec.connection import Connection
from h2spec.registry import case

S = "hpack-2.3"
COMPRESSION = "GOAWAY(COMPRESSION_ERROR)"
BEYOND = (
    "RFC 7541 2.3.3: Indices strictly greater than the sum of the lengths of both tables MUST be "
    "treated as a decoding error; RFC 9113 4.3: a decoding error MUST be treated as a connection "
    "error of type COMPRESSION_ERROR."
)


@case(
    S,
    "Sends an indexed field with index 0",
    COMPRESSION,
    (
        "RFC 7541 6.1: The index value of 0 is not used. It MUST be treated as a decoding error if "
        "found in an indexed header field representation."
    ),
)
def index_zero(conn: Connection) -> str:
    return expect_compression_error(conn, raw_request_prefix(conn) + h.indexed(0))


@case(
    S, "Sends an indexed field with index 62 while the dynamic table is empty", COMPRESSION, BEYOND
)
def index_first_dynamic_empty(conn: Connection) -> str:
    return expect_compression_error(conn, raw_request_prefix(conn) + h.indexed(62))


@case(S, "Sends an indexed field with index 1000", COMPRESSION, BEYOND)
def index_far_beyond(conn: Connection) -> str:
    return expect_compression_error(conn, raw_request_prefix(conn) + h.indexed(1000))


@case(S, "Sends a literal field whose indexed name is beyond the tables", COMPRESSION, BEYOND)
def literal_name_beyond(conn: Connection) -> str:
    block = raw_request_prefix(conn) + h.literal_without_indexing(70, "value")
    return expect_compression_error(conn, block)


@case(
    S,
    "Refers to the two newest dynamic entries by index 62 and 63",
    "a response",
    "RFC 7541 2.3.3: the dynamic table is indexed from 62; the newest entry has the lowest index.",
)
def dynamic_index_order(conn: Connection) -> str:
    scheme = h.SCHEME_HTTPS if conn.target.tls else h.SCHEME_HTTP
    first = (
        h.literal_incremental(h.AUTHORITY, conn.target.authority)
        + h.literal_incremental(h.PATH_NAME, conn.target.path)
        + h.indexed(h.METHOD_GET)
        + h.indexed(scheme)
    )
    conn.expect_response(send_raw_block(conn, first))
    # 62 is :path (newest), 63 is :authority; swapping them would make the request invalid.
    second = h.indexed(h.METHOD_GET) + h.indexed(scheme) + h.indexed(62) + h.indexed(63)
    return f"status {conn.expect_response(send_raw_block(conn, second)).status}"


@case(
    S,
    "Sends a static table index (61, www-authenticate) as a request field",
    "a response",
    "RFC 7541 2.3.1/appendix A: the static table has 61 entries; index 61 is valid.",
)
def last_static_index(conn: Connection) -> str:
    block = raw_request_prefix(conn) + h.literal_without_indexing(61, "x")
    return f"status {conn.expect_response(send_raw_block(conn, block)).status}"
