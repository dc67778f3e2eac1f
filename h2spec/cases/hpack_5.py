"""RFC 7541 5: primitive type representations (integers, string literals, Huffman)."""

from __future__ import annotations

from h2spec import hpackraw as h
from h2spec.cases.common import expect_compression_error, raw_request_prefix, send_raw_block
from h2spec.connection import Connection
from h2spec.registry import case

S1 = "hpack-5.1"
S2 = "hpack-5.2"
COMPRESSION = "GOAWAY(COMPRESSION_ERROR)"
HUFFMAN = "RFC 7541 5.2: "


@case(
    S1,
    "Sends an indexed field whose index integer overflows 64 bits",
    COMPRESSION,
    (
        "RFC 7541 5.1: Integer encodings that exceed implementation limits -- in value or octet "
        "length -- MUST be treated as decoding errors."
    ),
)
def integer_overflow(conn: Connection) -> str:
    return expect_compression_error(
        conn, raw_request_prefix(conn) + b"\xff" + b"\xff" * 10 + b"\x7f"
    )


@case(
    S1,
    "Sends a block ending in the middle of a multi-octet integer",
    COMPRESSION,
    (
        "RFC 7541 5.1: an integer continues while the most significant bit is set; a block that "
        "ends before the integer does is a decoding error."
    ),
)
def integer_truncated(conn: Connection) -> str:
    return expect_compression_error(conn, raw_request_prefix(conn) + b"\xff\x80")


@case(
    S1,
    "Sends a string literal whose length is 2^32",
    COMPRESSION,
    (
        "RFC 7541 5.1: Integer encodings that exceed implementation limits MUST be treated as "
        "decoding errors; the string cannot be that long."
    ),
)
def string_length_huge(conn: Connection) -> str:
    block = raw_request_prefix(conn) + b"\x00" + h.integer(2**32, 7) + b"abc"
    return expect_compression_error(conn, block)


@case(
    S2,
    "Sends a string literal longer than the remaining field block",
    COMPRESSION,
    (
        "RFC 7541 5.2: the string literal is its length followed by that many octets; a block too "
        "short for them is a decoding error."
    ),
)
def string_past_block(conn: Connection) -> str:
    block = raw_request_prefix(conn) + b"\x00" + h.integer(100, 7) + b"x-short"
    return expect_compression_error(conn, block)


@case(
    S2,
    "Sends a Huffman-encoded string containing the EOS symbol",
    COMPRESSION,
    HUFFMAN
    + (
        "A Huffman-encoded string literal containing the EOS symbol MUST be treated as a decoding "
        "error."
    ),
)
def huffman_eos(conn: Connection) -> str:
    bits, count = h.huffman_bits(b"ab")
    bits = (bits << h.EOS_BITS) | h.EOS_CODE
    coded = h.bits_to_bytes(bits, count + h.EOS_BITS)
    block = raw_request_prefix(conn) + b"\x00" + h.string("x-h2spec") + h.huffman_string_raw(coded)
    return expect_compression_error(conn, block)


@case(
    S2,
    "Sends a Huffman-encoded string with more than 7 bits of padding",
    COMPRESSION,
    HUFFMAN + "A padding strictly longer than 7 bits MUST be treated as a decoding error.",
)
def huffman_long_padding(conn: Connection) -> str:
    coded = h.huffman(b"a") + b"\xff"  # 'a' is 5 bits: 3 + 8 padding bits
    block = raw_request_prefix(conn) + b"\x00" + h.string("x-h2spec") + h.huffman_string_raw(coded)
    return expect_compression_error(conn, block)


@case(
    S2,
    "Sends a Huffman-encoded string padded with zeros instead of EOS bits",
    COMPRESSION,
    HUFFMAN
    + (
        "A padding not corresponding to the most significant bits of the code for the EOS symbol "
        "MUST be treated as a decoding error."
    ),
)
def huffman_zero_padding(conn: Connection) -> str:
    coded = h.bits_to_bytes(*h.huffman_bits(b"a"), pad_bit=0)
    block = raw_request_prefix(conn) + b"\x00" + h.string("x-h2spec") + h.huffman_string_raw(coded)
    return expect_compression_error(conn, block)


@case(
    S2,
    "Sends valid Huffman-encoded names and values (7 bits of padding)",
    "a response",
    HUFFMAN
    + (
        "the Huffman code is padded to an octet boundary with the most significant bits of EOS (up "
        "to 7 bits)."
    ),
)
def huffman_valid(conn: Connection) -> str:
    # '0' has a 5-bit code: five of them take 25 bits, leaving 7 bits of padding.
    value = next(v for v in (b"0" * n for n in range(1, 9)) if h.huffman_bits(v)[1] % 8 == 1)
    block = raw_request_prefix(conn) + b"\x00" + h.string("x-h2spec", use_huffman=True)
    block += h.huffman_string_raw(h.huffman(value))
    return f"status {conn.expect_response(send_raw_block(conn, block)).status}"


@case(
    S2,
    "Sends an empty Huffman-encoded string value",
    "a response",
    HUFFMAN + "a zero-length Huffman string carries no octets and no padding.",
)
def huffman_empty(conn: Connection) -> str:
    block = raw_request_prefix(conn) + b"\x00" + h.string("x-h2spec") + h.huffman_string_raw(b"")
    return f"status {conn.expect_response(send_raw_block(conn, block)).status}"
