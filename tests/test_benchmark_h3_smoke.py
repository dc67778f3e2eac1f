"""The HTTP/3 benchmark keeps working: its smoke mode must get answers from tricorn.

``benchmarks/h3.py --smoke`` starts tricorn on trio with a QUIC bind and runs our aioquic
load client (``benchmarks/h3_load.py``) for the hello requests (2 s) and one 10 MiB
download. No figure is asserted, only that it ran end to end with every response 200.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_h3_benchmark_smoke_run(tmp_path: Path) -> None:
    output = tmp_path / "h3.md"
    result = subprocess.run(
        [sys.executable, "benchmarks/h3.py", "--smoke", "--output", str(output)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "smoke: OK" in result.stdout
    assert "| tricorn-trio |" in output.read_text()
