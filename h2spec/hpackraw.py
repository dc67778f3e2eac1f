"""Hand-built HPACK representations (RFC 7541 sections 5 and 6).

The ``hpack`` package encodes valid header blocks; these helpers build the individual
representations byte by byte so that a case can send exactly the block it wants, valid or not.
"""

from __future__ import annotations

from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH

EOS_CODE = 0x3FFF_FFFF
EOS_BITS = 30


def integer(value: int, prefix_bits: int, first_byte: int = 0) -> bytes:
    """RFC 7541 5.1: an integer with an N-bit prefix; ``first_byte`` carries the pattern bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte | value])
    out = bytearray([first_byte | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def huffman_bits(data: bytes) -> tuple[int, int]:
    """The Huffman code of ``data`` as (bits, number of bits), without padding."""
    bits = 0
    count = 0
    for byte in data:
        length = REQUEST_CODES_LENGTH[byte]
        bits = (bits << length) | REQUEST_CODES[byte]
        count += length
    return bits, count


def bits_to_bytes(bits: int, count: int, pad_bit: int = 1) -> bytes:
    """Pad ``count`` bits to a whole number of octets with ``pad_bit`` and return the octets."""
    pad = (8 - count % 8) % 8
    bits = (bits << pad) | (((1 << pad) - 1) if pad_bit else 0)
    total = (count + pad) // 8
    return bits.to_bytes(total, "big") if total else b""


def huffman(data: bytes) -> bytes:
    """Valid Huffman encoding (padded with the most significant bits of EOS)."""
    return bits_to_bytes(*huffman_bits(data))


def string(value: bytes | str, *, use_huffman: bool = False) -> bytes:
    """RFC 7541 5.2: a string literal (H flag, length, octets)."""
    raw = value.encode() if isinstance(value, str) else value
    if use_huffman:
        coded = huffman(raw)
        return integer(len(coded), 7, 0x80) + coded
    return integer(len(raw), 7) + raw


def huffman_string_raw(coded: bytes) -> bytes:
    """A string literal with the H flag whose octets are given as is (possibly invalid)."""
    return integer(len(coded), 7, 0x80) + coded


def indexed(index: int) -> bytes:
    """RFC 7541 6.1: indexed header field representation."""
    return integer(index, 7, 0x80)


def _literal(
    pattern: int, prefix: int, name: int | str, value: str, use_huffman: bool = False
) -> bytes:
    if isinstance(name, int):
        return integer(name, prefix, pattern) + string(value, use_huffman=use_huffman)
    return (
        bytes([pattern])
        + string(name, use_huffman=use_huffman)
        + string(value, use_huffman=use_huffman)
    )


def literal_incremental(name: int | str, value: str, *, use_huffman: bool = False) -> bytes:
    """RFC 7541 6.2.1: literal header field with incremental indexing."""
    return _literal(0x40, 6, name, value, use_huffman)


def literal_without_indexing(name: int | str, value: str, *, use_huffman: bool = False) -> bytes:
    """RFC 7541 6.2.2: literal header field without indexing."""
    return _literal(0x00, 4, name, value, use_huffman)


def literal_never_indexed(name: int | str, value: str, *, use_huffman: bool = False) -> bytes:
    """RFC 7541 6.2.3: literal header field never indexed."""
    return _literal(0x10, 4, name, value, use_huffman)


def size_update(size: int) -> bytes:
    """RFC 7541 6.3: dynamic table size update."""
    return integer(size, 5, 0x20)


# Static table indexes used by the cases (RFC 7541 appendix A).
AUTHORITY = 1
METHOD_GET = 2
METHOD_POST = 3
PATH_ROOT = 4
SCHEME_HTTP = 6
SCHEME_HTTPS = 7
PATH_NAME = 4  # ":path" name (with value "/")
USER_AGENT = 58
STATIC_TABLE_SIZE = 61
