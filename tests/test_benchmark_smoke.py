"""The benchmark harness keeps working: its smoke mode must get answers from tricorn.

``benchmarks/run.py --smoke`` starts tricorn on trio and runs wrk (hello world) and the paced
latency client for 2 s each; ``benchmarks/workers.py --smoke`` runs tricorn with one and
with two workers; ``benchmarks/h3.py --smoke`` runs HTTP/3 hello requests and a download with
our aioquic load client. A benchmark is not a test: no figure is asserted here, only that
the harness ran end to end and the server answered.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def smoke_run(script: str, output: Path, *, needs_wrk: bool = True) -> str:
    """Run ``benchmarks/SCRIPT --smoke --output OUTPUT``; its stdout, once it exited 0."""
    if needs_wrk and shutil.which("wrk") is None:
        pytest.fail("wrk is not installed (scripts/test.sh installs it from Debian)")
    result = subprocess.run(
        [sys.executable, f"benchmarks/{script}", "--smoke", "--output", str(output)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_benchmark_harness_smoke_run(tmp_path: Path) -> None:
    output = tmp_path / "smoke.md"
    assert "smoke: OK" in smoke_run("run.py", output)
    report = output.read_text()
    assert "| tricorn-trio |" in report


def test_h3_benchmark_smoke_run(tmp_path: Path) -> None:
    """``benchmarks/h3.py --smoke``: tricorn on trio with a QUIC bind, our aioquic load
    client for 2 s of hello requests and one 10 MiB download, every response 200."""
    output = tmp_path / "h3.md"
    assert "smoke: OK" in smoke_run("h3.py", output, needs_wrk=False)
    assert "| tricorn-trio |" in output.read_text()


def test_upload_reads_h2load_durations_in_every_unit() -> None:
    # benchmarks/upload.py's "TLS h2" column printed 0.000 s: an upload over a second is
    # shown by h2load in seconds ("1.23s"), which was read as microseconds.
    sys.path.insert(0, str(REPO))
    from benchmarks.upload import h2load_seconds

    assert h2load_seconds("812us") == pytest.approx(0.000812)
    assert h2load_seconds("663.89ms") == pytest.approx(0.66389)
    assert h2load_seconds("1.23s") == pytest.approx(1.23)


def test_workers_benchmark_smoke_run(tmp_path: Path) -> None:
    """``benchmarks/workers.py --smoke``: tricorn-asyncio with one and with two workers."""
    output = tmp_path / "workers.md"
    smoke_run("workers.py", output)
    rows = [line for line in output.read_text().splitlines() if line.startswith("| tricorn")]
    assert [row.split("|")[2].strip() for row in rows] == ["1", "2"]
    assert all("failed" not in row for row in rows)


def test_wrk_latency_report_is_read_in_every_unit() -> None:
    sys.path.insert(0, str(REPO))
    from benchmarks.scenarios import wrk_latency_ms

    out = """
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    14.90ms   13.29ms   1.66s    93.52%
    Req/Sec     4.74k     1.07k    7.85k    76.29%
  Latency Distribution
     50%  812.00us
     75%   13.00ms
     90%   20.00ms
     99%   82.65ms
"""
    assert wrk_latency_ms(out) == pytest.approx({"max": 1660.0, "p50": 0.812, "p99": 82.65})
