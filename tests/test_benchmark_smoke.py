"""The benchmark harness keeps working: its smoke mode must get answers from tricorn.

``benchmarks/run.py --smoke`` starts tricorn on trio and runs wrk (hello world) and the paced
latency client for 2 s each; ``benchmarks/h3.py --smoke`` does the same for HTTP/3 with our
aioquic load client. A benchmark is not a test: no figure is asserted here, only
that the harness ran end to end and the server answered.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _smoke(script: str, output: Path) -> None:
    """Run ``script --smoke``; it must say "smoke: OK" and write a tricorn-trio row."""
    result = subprocess.run(
        [sys.executable, script, "--smoke", "--output", str(output)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "smoke: OK" in result.stdout
    assert "| tricorn-trio |" in output.read_text()


def test_benchmark_harness_smoke_run(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.fail("wrk is not installed (scripts/test.sh installs it from Debian)")
    _smoke("benchmarks/run.py", tmp_path / "smoke.md")


def test_h3_benchmark_smoke_run(tmp_path: Path) -> None:
    """``benchmarks/h3.py --smoke``: tricorn on trio with a QUIC bind, our aioquic load
    client for 2 s of hello requests and one 10 MiB download, every response 200."""
    _smoke("benchmarks/h3.py", tmp_path / "h3.md")


def test_upload_reads_h2load_durations_in_every_unit() -> None:
    # benchmarks/upload.py's "TLS h2" column printed 0.000 s: an upload over a second is
    # shown by h2load in seconds ("1.23s"), which was read as microseconds.
    sys.path.insert(0, str(REPO))
    from benchmarks.upload import h2load_seconds

    assert h2load_seconds("812us") == pytest.approx(0.000812)
    assert h2load_seconds("663.89ms") == pytest.approx(0.66389)
    assert h2load_seconds("1.23s") == pytest.approx(1.23)
