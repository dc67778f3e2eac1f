"""Hypothesis profiles for the protocol properties.

``ci`` (the default): few examples per property, derandomized (the same examples on every
run of the same code) and without an example database, so the whole set stays well under a
minute on a loaded 2-core machine. ``TRICORN_FUZZ_EXAMPLES=N`` selects the ``long`` profile:
N examples per property, random, with the database in .hypothesis/ (gitignored), e.g.
``TRICORN_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest tests/property -q``.
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

CI_EXAMPLES = 40

settings.register_profile(
    "ci",
    max_examples=CI_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=timedelta(seconds=30),  # a hang guard on a loaded machine, not a benchmark
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile(
    "long",
    max_examples=int(os.environ.get("TRICORN_FUZZ_EXAMPLES") or CI_EXAMPLES),
    deadline=timedelta(seconds=30),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile("long" if os.environ.get("TRICORN_FUZZ_EXAMPLES") else "ci")
