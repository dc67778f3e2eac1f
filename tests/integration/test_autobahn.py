"""The Autobahn WebSocket fuzzing client against tricorn, on each backend.

Runs ``tests/autobahn/run_autobahn.py --ci`` in a subprocess (which starts tricorn, with its
default settings, serving the echo app and runs ``wstest -m fuzzingclient``): groups 1 to 10
whole and a sample of the compression groups 12 and 13 (``CI_CASES`` there), about a minute
per backend. It fails if any case is FAILED, UNIMPLEMENTED or NON-STRICT (INFORMATIONAL is
fine). ``bash scripts/conformance.sh`` runs all 517 cases (docs/autobahn.md). wstest
must be installed at ``.autobahn/bin/wstest`` (``bash scripts/install-autobahn.sh
.autobahn``); when it is missing the test fails and says so, it does not skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "tests" / "autobahn" / "run_autobahn.py"
WSTEST = ROOT / ".autobahn" / "bin" / "wstest"

#: wstest's own bound is set by the runner; this one only catches a runner that hangs.
TIMEOUT = 900


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_autobahn_fuzzingclient(backend: str, tmp_path: Path) -> None:
    assert os.access(WSTEST, os.X_OK), (
        f"wstest is not installed at {WSTEST}: run "
        f"'bash scripts/install-autobahn.sh' from the repository"
    )
    completed = subprocess.run(
        [
            sys.executable,
            str(RUNNER),
            *("--backend", backend, "--ci", "--wstest", str(WSTEST)),
            *("--reports", str(tmp_path)),  # a folder per run: runs at once share no index.json
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    report = completed.stdout + completed.stderr
    print(report)
    assert completed.returncode == 0, report
    assert "cases not OK:" not in completed.stdout
