"""The case modules, one per RFC section; :func:`load` imports them in suite order."""

from __future__ import annotations

import importlib

MODULES = (
    "generic",
    "rfc9113_3_4",
    "rfc9113_4_1",
    "rfc9113_4_2",
    "rfc9113_4_3",
    "rfc9113_5_1",
    "rfc9113_5_1_1",
    "rfc9113_5_1_2",
    "rfc9113_5_3",
    "rfc9113_5_4",
    "rfc9113_5_5",
    "rfc9113_6_1",
    "rfc9113_6_2",
    "rfc9113_6_3",
    "rfc9113_6_4",
    "rfc9113_6_5",
    "rfc9113_6_6",
    "rfc9113_6_7",
    "rfc9113_6_8",
    "rfc9113_6_9",
    "rfc9113_6_10",
    "rfc9113_7",
    "rfc9113_8_1",
    "rfc9113_8_2",
    "rfc9113_8_3",
    "rfc9113_8_4",
    "rfc9113_8_5",
    "hpack_2_3",
    "hpack_4",
    "hpack_5",
    "hpack_6",
)


def load() -> None:
    """Import every case module (registering its cases), in suite order."""
    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}")
