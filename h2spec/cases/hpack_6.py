"""RFC 7541 6: binary format (indexed, literal with/without indexing, never indexed)."""

from __future__ import annotations

from h2spec import hpackraw as h
from h2spec.cases.common import expect_compression_error, raw_request_prefix, send_raw_block
from h2spec.connection import Connection
from h2spec.registry import case

S1 = "hpack-6.1"
S2 = "hpack-6.2"
S3 = "hpack-6.3"
COMPRESSION = "GOAWAY(COMPRESSION_ERROR)"


def _status(conn: Connection, block: bytes) -> str:
    return f"status {conn.expect_response(send_raw_block(conn, block)).status}"


@case(
    S1,
    "Sends a request using only static table indexed fields (plus :authority)",
    "a response",
    (
        "RFC 7541 6.1: an indexed header field representation identifies an entry in the static or "
        "dynamic table."
    ),
)
def all_indexed(conn: Connection) -> str:
    scheme = h.SCHEME_HTTPS if conn.target.tls else h.SCHEME_HTTP
    block = h.indexed(h.METHOD_GET) + h.indexed(scheme) + h.indexed(h.PATH_ROOT)
    block += h.literal_without_indexing(h.AUTHORITY, conn.target.authority)
    return _status(conn, block)


@case(
    S1,
    "Sends an indexed field with a multi-octet index (a dynamic entry at 62+)",
    "a response",
    (
        "RFC 7541 6.1/5.1: the index is an integer with a 7-bit prefix; 127 and above use "
        "continuation octets."
    ),
)
def multi_octet_index(conn: Connection) -> str:
    block = raw_request_prefix(conn)
    for i in range(70):
        block += h.literal_incremental(f"x-{i:02d}", "v")
    conn.expect_response(send_raw_block(conn, block))
    # 70 entries: 62..131; index 131 (the oldest) needs a continuation octet.
    return _status(conn, raw_request_prefix(conn) + h.indexed(131))


@case(
    S2,
    "Sends literal fields with incremental indexing and an indexed name",
    "a response",
    "RFC 7541 6.2.1: literal header field with incremental indexing, indexed name.",
)
def incremental_indexed_name(conn: Connection) -> str:
    return _status(conn, raw_request_prefix(conn) + h.literal_incremental(h.USER_AGENT, "h2spec"))


@case(
    S2,
    "Sends literal fields with incremental indexing and a new name",
    "a response",
    "RFC 7541 6.2.1: literal header field with incremental indexing, new name.",
)
def incremental_new_name(conn: Connection) -> str:
    return _status(conn, raw_request_prefix(conn) + h.literal_incremental("x-h2spec", "new"))


@case(
    S2,
    "Sends literal fields without indexing (indexed name and new name)",
    "a response",
    "RFC 7541 6.2.2: literal header field without indexing.",
)
def without_indexing(conn: Connection) -> str:
    block = raw_request_prefix(conn) + h.literal_without_indexing(h.USER_AGENT, "h2spec")
    return _status(conn, block + h.literal_without_indexing("x-h2spec", "plain"))


@case(
    S2,
    "Sends literal fields never indexed (indexed name and new name)",
    "a response",
    "RFC 7541 6.2.3: literal header field never indexed.",
)
def never_indexed(conn: Connection) -> str:
    block = raw_request_prefix(conn) + h.literal_never_indexed(h.USER_AGENT, "h2spec")
    return _status(conn, block + h.literal_never_indexed("x-secret", "hidden"))


@case(
    S2,
    "Refers to a field sent without indexing as if it were in the dynamic table",
    COMPRESSION,
    (
        "RFC 7541 6.2.2: a literal without indexing does not alter the dynamic table; 2.3.3: an "
        "index beyond the tables MUST be treated as a decoding error."
    ),
)
def without_indexing_not_added(conn: Connection) -> str:
    block = raw_request_prefix(conn) + h.literal_without_indexing("x-h2spec", "plain")
    return expect_compression_error(conn, block + h.indexed(62))


@case(
    S2,
    "Refers to a never-indexed field as if it were in the dynamic table",
    COMPRESSION,
    (
        "RFC 7541 6.2.3: a never-indexed literal does not alter the dynamic table; 2.3.3: an index "
        "beyond the tables MUST be treated as a decoding error."
    ),
)
def never_indexed_not_added(conn: Connection) -> str:
    block = raw_request_prefix(conn) + h.literal_never_indexed("x-h2spec", "secret")
    return expect_compression_error(conn, block + h.indexed(62))


@case(
    S2,
    "Refers to a field added with incremental indexing in the same block",
    "a response",
    (
        "RFC 7541 6.2.1: a literal with incremental indexing is appended to the dynamic table as "
        "soon as it is decoded."
    ),
)
def incremental_used_in_same_block(conn: Connection) -> str:
    block = raw_request_prefix(conn) + h.literal_incremental("x-h2spec", "again") + h.indexed(62)
    return _status(conn, block)


@case(
    S3,
    "Sends a dynamic table size update with a multi-octet size beyond any limit",
    COMPRESSION,
    (
        "RFC 7541 6.3: the new maximum size MUST be lower than or equal to the limit "
        "(SETTINGS_HEADER_TABLE_SIZE); 4.2: exceeding it is a decoding error."
    ),
)
def size_update_huge(conn: Connection) -> str:
    return expect_compression_error(conn, h.size_update(2**31) + raw_request_prefix(conn))
