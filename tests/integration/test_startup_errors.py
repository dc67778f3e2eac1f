"""Every start-up error is one line, ``ERROR:    ...`` on stderr, exit status 2: bad
flags, bad config files and values, bad app paths, bind failures, bad ``log_config`` files.

Real ``python -m tricorn`` processes; the form is the error log's default (the one every
error after start-up already has).
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tricorn", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--bogus"], "ERROR:    config: unknown option --bogus (on the command line)"),
        (["--log-config", "no/such.json"], 'ERROR:    config: log_config = "no/such.json"'),
        (["tests.integration.apps:nope"], 'ERROR:    app "tests.integration.apps:nope": '),
        (["--config", "no/such.toml"], 'ERROR:    config: --config "no/such.toml": no such file'),
    ],
    ids=["bad-flag", "missing-log-config", "bad-app-path", "missing-config-file"],
)
def test_a_bad_start_is_one_error_line_and_exit_2(args: list[str], line: str) -> None:
    result = _run(*args)
    assert result.returncode == 2
    [only] = result.stderr.splitlines()
    assert only.startswith(line)


def test_a_bad_value_in_a_config_file_is_the_same_form(tmp_path: Path) -> None:
    path = tmp_path / "tricorn.toml"
    path.write_text("backlog = 0\n")
    result = _run("--config", str(path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"ERROR:    config: backlog = 0 (from {path}): expected an integer >= 1"
    ]


def test_a_bind_failure_is_the_same_form() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run("tests.integration.apps:hello", "--bind", f"127.0.0.1:{port}")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("ERROR:    ")]
    assert len(errors) == 1
    assert errors[0].startswith(f"ERROR:    config: bind = '127.0.0.1:{port}': cannot listen")
    assert all(line.startswith(("INFO:     ", "ERROR:    ")) for line in lines)
