"""The remembering HPACK coder (``protocols/http2_hpack.py``) gives hpack's answers, byte for
byte, also when the dynamic table changes between repeated blocks."""

from __future__ import annotations

import random
from typing import Any

from hpack import Decoder, Encoder

from tricorn.protocols.http2_hpack import CachingDecoder, CachingEncoder

HEADS = [
    [(b":status", b"200"), (b"content-type", b"text/plain"), (b"content-length", b"13")],
    [(b":status", b"200"), (b"content-type", b"text/html"), (b"x-a", b"1" * 300)],
    [(b":status", b"404"), (b"content-length", b"0")],
    [(b":status", b"200"), (b"date", b"Wed, 02 Dec 2026 01:00:00 GMT")],
    [(b":status", b"200"), (b"date", b"Wed, 02 Dec 2026 01:00:01 GMT")],
]


def test_encoder_and_decoder_agree_with_hpack_over_a_random_sequence() -> None:
    rng = random.Random(7)
    plain, caching = Encoder(), CachingEncoder()
    plain_decoder, caching_decoder = Decoder(), CachingDecoder(65536)
    for step in range(3000):
        if step % 97 == 0:  # the peer's SETTINGS_HEADER_TABLE_SIZE changes now and then
            size = rng.choice([0, 256, 4096])
            plain.header_table_size = caching.header_table_size = size
        headers = list(rng.choice(HEADS))
        block = plain.encode(headers)
        assert caching.encode(list(headers)) == block
        decoded = plain_decoder.decode(block, raw=True)
        assert caching_decoder.decode(block, raw=True) == decoded
        assert list(caching.header_table.dynamic_entries) == list(
            plain.header_table.dynamic_entries
        )
        assert list(caching_decoder.header_table.dynamic_entries) == list(
            plain_decoder.header_table.dynamic_entries
        )


def test_a_repeated_block_is_remembered_and_a_table_change_forgets_it() -> None:
    decoder = CachingDecoder(65536)
    encoder = Encoder()
    first = encoder.encode([(b":method", b"GET"), (b"user-agent", b"load")])
    second = encoder.encode([(b":method", b"GET"), (b"user-agent", b"load")])
    decoder.decode(first, raw=True)  # adds user-agent to the table: not remembered
    assert not decoder._cache
    assert decoder.decode(second, raw=True) == [(b":method", b"GET"), (b"user-agent", b"load")]
    assert bytes(second) in decoder._cache
    result: Any = decoder.decode(second, raw=True)
    result.append((b"x", b"y"))  # a caller's change does not reach the remembered list
    assert decoder.decode(second, raw=True) == [(b":method", b"GET"), (b"user-agent", b"load")]
    decoder.decode(encoder.encode([(b"x-new", b"1")]), raw=True)
    assert not decoder._cache


def test_unhashable_fields_are_encoded_but_not_remembered() -> None:
    plain, caching = Encoder(), CachingEncoder()
    for _ in range(3):
        headers: Any = [[b":status", b"200"], [b"x", b"1"]]
        assert caching.encode(headers) == plain.encode(headers)
    assert not caching._cache
