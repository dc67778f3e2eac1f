"""The fuzz targets: name -> the oracle one input goes through (``fuzz/harness.py``).

``fuzz/run.py NAME`` runs one under atheris, ``scripts/fuzz.sh NAME SECONDS`` wraps that,
and ``tests/property/test_fuzz_targets.py`` replays every seed corpus and runs each target
briefly. A new protocol object gets its oracle in the harness, one line here, its instrumented
modules in ``fuzz/run.py`` and seeds from ``fuzz/make_corpus.py``.
"""

from __future__ import annotations

from collections.abc import Callable

from fuzz import harness
from tricorn.protocols.http11 import HTTP11Protocol
from tricorn.protocols.http11_h11 import H11Protocol


def http11(data: bytes) -> None:
    harness.check_http11(HTTP11Protocol, data)


def http11_h11(data: bytes) -> None:
    harness.check_http11(H11Protocol, data)


def http2(data: bytes) -> None:
    harness.check_http2(data)


TARGETS: dict[str, Callable[[bytes], object]] = {
    "http11": http11,
    "http11_h11": http11_h11,
    "http1_diff": harness.check_http1_differential,
    "http2": http2,
    "hpack": harness.check_hpack_block,
    "websocket": harness.check_websocket,
    "proxy": harness.check_proxy,
    "http3": harness.check_http3,
}
