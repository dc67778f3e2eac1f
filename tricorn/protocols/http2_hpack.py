"""HPACK with memory: the same header block costs one dictionary look-up the second time.

Most of what an HTTP/2 server decodes and encodes repeats: a load tool or a browser sends the
same request head many times (after the first, it is a few bytes of indexes into the dynamic
table), and an app answers with the same response head. hpack decodes and encodes each
field each time, in Python.

``CachingDecoder`` and ``CachingEncoder`` are hpack's ``Decoder`` and ``Encoder`` that
remember the results of the calls that left the dynamic table as it was (a block of indexed
fields and literals without indexing: decoding or encoding it again, with the table in the
same state, gives the same result). Any call that changes the table (a field added, an
eviction, a size update) empties the memory, since a remembered result may name entries that
have moved. The table is "the same" when its newest entry is the same object, its length and
size limit are the same and no size change is pending: entries are only ever added at the
front (a new tuple each time) and evicted from the back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hpack import Decoder, Encoder
from hpack.table import HeaderTable

__all__ = ["CachingDecoder", "CachingEncoder"]

#: Remembered blocks per connection (a few request or response shapes are the common case).
CACHE_ENTRIES = 16
#: Larger blocks are not remembered (they are rare, and memory is per connection).
MAX_BLOCK = 1024

_Stamp = tuple[object, int, int, bool, int, int]


def _stamp(table: HeaderTable, limit_a: int, limit_b: int) -> _Stamp:
    entries = table.dynamic_entries
    return (
        entries[0] if entries else None,
        len(entries),
        table.maxsize,
        table.resized,
        limit_a,
        limit_b,
    )


def _same(a: _Stamp, b: _Stamp) -> bool:
    return a[0] is b[0] and a[1:] == b[1:]


class CachingDecoder(Decoder):
    """hpack's ``Decoder``; a block decoded without touching the table is remembered."""

    def __init__(self, max_header_list_size: int) -> None:
        super().__init__(max_header_list_size)
        self._cache: dict[bytes, list[Any]] = {}
        self._cache_stamp: _Stamp | None = None

    def decode(self, data: bytes, raw: bool = False) -> Iterable[Any]:
        stamp = _stamp(self.header_table, self.max_header_list_size, self.max_allowed_table_size)
        cache = self._cache
        if raw and cache:
            if self._cache_stamp is not None and _same(stamp, self._cache_stamp):
                hit = cache.get(bytes(data))
                if hit is not None:
                    return list(hit)
            else:
                cache.clear()
        headers = super().decode(data, raw)  # raises on a bad block: nothing remembered
        after = _stamp(self.header_table, self.max_header_list_size, self.max_allowed_table_size)
        if not _same(stamp, after):
            cache.clear()
        elif raw and len(data) <= MAX_BLOCK:
            if len(cache) >= CACHE_ENTRIES:
                cache.clear()
            if not cache:
                self._cache_stamp = after
            cache[bytes(data)] = list(headers)
        return headers


class CachingEncoder(Encoder):
    """hpack's ``Encoder``; a header list encoded without touching the table is remembered."""

    def __init__(self) -> None:
        super().__init__()
        self._cache: dict[tuple[Any, ...], bytes] = {}
        self._cache_stamp: _Stamp | None = None

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        table = self.header_table
        stamp = _stamp(table, len(self.table_size_changes), 0)
        cache = self._cache
        key: tuple[Any, ...] | None = None
        if huffman and type(headers) is list and len(headers) <= CACHE_ENTRIES * 2:
            key = tuple(headers)
            if cache:
                if self._cache_stamp is not None and _same(stamp, self._cache_stamp):
                    try:
                        hit = cache.get(key)
                    except TypeError:  # a field that is not a tuple of bytes: not remembered
                        key = hit = None
                    if hit is not None:
                        return hit
                else:
                    cache.clear()
        block = super().encode(headers, huffman)
        after = _stamp(table, len(self.table_size_changes), 0)
        if not _same(stamp, after):
            cache.clear()
        elif key is not None and len(block) <= MAX_BLOCK:
            try:
                hash(key)
            except TypeError:
                return block
            if len(cache) >= CACHE_ENTRIES:
                cache.clear()
            if not cache:
                self._cache_stamp = after
            cache[key] = block
        return block
