"""The benchmark harness keeps working: its smoke mode must get answers from tricorn.

``benchmarks/run.py --smoke`` starts tricorn on trio and runs wrk (hello world) and the paced
latency client for 2 s each. A benchmark is not a test: no figure is asserted here, only
that the harness ran end to end and the server answered.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_benchmark_harness_smoke_run(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.fail("wrk is not installed (scripts/test.sh installs it from Debian)")
    output = tmp_path / "smoke.md"
    result = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--smoke", "--output", str(output)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "smoke: OK" in result.stdout
    report = output.read_text()
    assert "| tricorn-trio |" in report
