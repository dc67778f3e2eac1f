"""RFC 7541 4: dynamic table management (maximum size, size updates, eviction)."""

from __future__ import annotations

from h2spec import hpackraw as h
from h2spec.cases.common import expect_compression_error, raw_request_prefix, send_raw_block
from h2spec.connection import Connection
from h2spec.registry import case

S2 = "hpack-4.2"
S4 = "hpack-4.4"
COMPRESSION = "GOAWAY(COMPRESSION_ERROR)"


@case(
    S2,
    "Sends a dynamic table size update larger than SETTINGS_HEADER_TABLE_SIZE",
    COMPRESSION,
    (
        "RFC 7541 4.2: The new maximum size MUST be lower than or equal to the limit determined by "
        "the protocol using HPACK. A value that exceeds this limit MUST be treated as a decoding "
        "error; RFC 9113 6.5.2: SETTINGS_HEADER_TABLE_SIZE is that limit."
    ),
)
def size_update_too_large(conn: Connection) -> str:
    block = h.size_update(conn.header_table_size + 1) + raw_request_prefix(conn)
    return expect_compression_error(conn, block)


@case(
    S2,
    "Sends a dynamic table size update after a field representation",
    COMPRESSION,
    (
        "RFC 7541 4.2: This dynamic table size update MUST occur at the beginning of the first "
        "header block following the change to the dynamic table size; a size update later in a "
        "block is a decoding error."
    ),
)
def size_update_not_first(conn: Connection) -> str:
    return expect_compression_error(conn, raw_request_prefix(conn) + h.size_update(0))


@case(
    S2,
    "Sends two dynamic table size updates at the start of a block",
    "a response",
    (
        "RFC 7541 4.2: several size updates can occur between two header blocks; they are all "
        "signalled at the start of the next block."
    ),
)
def two_size_updates(conn: Connection) -> str:
    block = h.size_update(0) + h.size_update(conn.header_table_size) + raw_request_prefix(conn)
    return f"status {conn.expect_response(send_raw_block(conn, block)).status}"


@case(
    S2,
    "Sends a size update equal to SETTINGS_HEADER_TABLE_SIZE",
    "a response",
    (
        "RFC 7541 4.2: the new maximum size MUST be lower than or equal to the limit (equal is "
        "allowed)."
    ),
)
def size_update_at_limit(conn: Connection) -> str:
    block = h.size_update(conn.header_table_size) + raw_request_prefix(conn)
    return f"status {conn.expect_response(send_raw_block(conn, block)).status}"


@case(
    S2,
    "Sends a size update to 0, then a literal with incremental indexing",
    "a response",
    "RFC 7541 4.4: an entry larger than the maximum size empties the table; this is not an error.",
)
def size_zero_then_incremental(conn: Connection) -> str:
    block = h.size_update(0) + raw_request_prefix(conn) + h.literal_incremental("x-h2spec", "a")
    return f"status {conn.expect_response(send_raw_block(conn, block)).status}"


@case(
    S4,
    "Refers to an entry evicted by a size update to 0",
    COMPRESSION,
    (
        "RFC 7541 4.3: reducing the maximum size evicts entries; 2.3.3: indices greater than the "
        "table lengths MUST be treated as a decoding error."
    ),
)
def evicted_by_size_update(conn: Connection) -> str:
    first = raw_request_prefix(conn) + h.literal_incremental("x-h2spec", "evicted")
    conn.expect_response(send_raw_block(conn, first))
    block = h.size_update(0) + h.size_update(conn.header_table_size) + raw_request_prefix(conn)
    return expect_compression_error(conn, block + h.indexed(62))


@case(
    S4,
    "Fills a 100-octet table with three 36-octet entries and refers to the survivors",
    "a response",
    (
        "RFC 7541 4.4: before a new entry is added, entries are evicted from the end of the table "
        "until the size is at most the maximum; the entry size is name + value + 32."
    ),
)
def eviction_survivors(conn: Connection) -> str:
    first = h.size_update(100) + raw_request_prefix(conn)
    for name in ("x-a", "x-b", "x-c"):
        first += h.literal_incremental(name, "1")  # 32 + 3 + 1 = 36 octets each
    conn.expect_response(send_raw_block(conn, first))
    second = raw_request_prefix(conn) + h.indexed(62) + h.indexed(63)
    return f"status {conn.expect_response(send_raw_block(conn, second)).status}"


@case(
    S4,
    "Fills a 100-octet table with three 36-octet entries and refers to the evicted one",
    COMPRESSION,
    (
        "RFC 7541 4.4: the oldest entry is evicted when the table is full; 2.3.3: an index beyond "
        "the table MUST be treated as a decoding error."
    ),
)
def eviction_oldest_gone(conn: Connection) -> str:
    first = h.size_update(100) + raw_request_prefix(conn)
    for name in ("x-a", "x-b", "x-c"):
        first += h.literal_incremental(name, "1")
    conn.expect_response(send_raw_block(conn, first))
    return expect_compression_error(conn, raw_request_prefix(conn) + h.indexed(64))


@case(
    S4,
    "Adds an entry larger than the table (after a size update to 40)",
    "a response",
    (
        "RFC 7541 4.4: an attempt to add an entry larger than the maximum size causes the table to "
        "be emptied of all existing entries and results in an empty table. This is not an error."
    ),
)
def entry_larger_than_table(conn: Connection) -> str:
    block = h.size_update(40) + raw_request_prefix(conn)
    block += h.literal_incremental("x-h2spec-large", "v" * 100)
    return f"status {conn.expect_response(send_raw_block(conn, block)).status}"
