"""The atheris fuzz targets in the suite: every seed replays clean, and each target runs
under libFuzzer for a few seconds (FUZZ_SMOKE_SECONDS, default 8) from an empty corpus:
it exits cleanly, executed inputs, its coverage counters see our modules and grow.

scripts/test.sh installs the ``fuzz`` extra (atheris); without it these tests fail, as the
other tests of a tool the suite needs do. Long runs: scripts/fuzz.sh TARGET SECONDS.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parents[2]
SECONDS = int(os.environ.get("FUZZ_SMOKE_SECONDS") or 6)
STATS = re.compile(rb"^#(\d+)\s+(\w+)\s+cov: (\d+) ft: (\d+)", re.MULTILINE)
EXECUTED = re.compile(rb"^stat::number_of_executed_units: (\d+)", re.MULTILINE)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_seed_of_the_target_replays_clean(target: str) -> None:
    seeds = sorted((ROOT / "fuzz" / "corpus" / target).iterdir())
    assert seeds, f"no seed corpus for {target}"
    for seed in seeds:
        TARGETS[target](seed.read_bytes())


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_the_fuzz_target_runs_instrumented_and_its_coverage_grows(
    target: str, tmp_path: Path
) -> None:
    try:
        import atheris  # noqa: F401
    except ImportError:  # pragma: no cover - scripts/test.sh installs it
        pytest.fail("atheris is missing: pip install -e '.[test,fuzz]' (scripts/test.sh does)")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fuzz.run",
            target,
            str(corpus),
            f"-max_total_time={SECONDS}",
            "-rss_limit_mb=2048",
            "-timeout=20",
            f"-artifact_prefix={tmp_path}/",
            "-print_final_stats=1",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=SECONDS + 120,  # a hang guard
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:].decode(errors="replace")
    executed = EXECUTED.search(log)
    assert executed and int(executed.group(1)) > 0, log[-2000:]
    stats = STATS.findall(log)
    inited = next((int(cov), int(ft)) for _, kind, cov, ft in stats if kind == b"INITED")
    final = (int(stats[-1][2]), int(stats[-1][3]))
    # Instrumented: even the first (empty) input covers edges of our modules and the
    # libraries under them (8-250 by target: 8 for the small PROXY parser); uninstrumented,
    # a run reports 0-2.
    assert inited[0] >= 5, stats[:3]
    # Growth: new edges (cov) or at least new features (ft: edge hit counts) were found.
    assert final > inited, f"coverage did not grow in {SECONDS} s: {stats[-3:]}"
