"""The ``tricorn`` command's own paths: errors (exit 2, one line), help, and the hand-off to run."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import restored_loggers
from tests.unit.apps import kinds
from tricorn import cli
from tricorn.config import Config
from tricorn.server import demo, serve
from tricorn.server.asgi_types import ASGI3App

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def restore_process_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``main`` configures the tricorn loggers and may extend sys.path: undo both."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    with restored_loggers():
        yield


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[ASGI3App, Config]]:
    """Replace the server's ``run``: record what it was given, return exit status 0."""
    calls: list[tuple[ASGI3App, Config]] = []

    def fake_run(app: ASGI3App, config: Config) -> int:
        calls.append((app, config))
        return 0

    monkeypatch.setattr(serve, "run", fake_run)
    return calls


def single_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("ERROR:    ")
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--backlog", "two"], 'backlog = "two" (from the command line): expected an integer'),
        (["--keep-alive-timeout", "-1"], "keep_alive_timeout = -1"),
        (["--bind", "localhost"], 'bind = "localhost"'),
        (["--no-such-flag"], "unknown option --no-such-flag"),
        (["--config", "no/such.toml"], 'config: --config "no/such.toml": no such file'),
        (
            ["tests.unit.apps.no_such_module:app"],
            "no module named 'tests.unit.apps.no_such_module'",
        ),
        (["tests.unit.apps.kinds:nothing"], "has no attribute 'nothing'"),
        (["tests.unit.apps.kinds:settings"], "not an ASGI app"),
        (["myapp"], "expected 'module:attribute'"),
    ],
)
def test_a_bad_start_exits_2_with_one_line(
    argv: list[str],
    expected: str,
    capsys: pytest.CaptureFixture[str],
    runs: list[tuple[ASGI3App, Config]],
) -> None:
    assert cli.main(argv) == 2
    assert expected in single_error_line(capsys)
    assert runs == []


def test_a_bad_value_in_the_config_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], runs: list[tuple[ASGI3App, Config]]
) -> None:
    path = tmp_path / "tricorn.toml"
    path.write_text("keep_alive_timeout = -1\n")
    assert cli.main(["--config", str(path)]) == 2
    assert single_error_line(capsys) == (
        f"ERROR:    config: keep_alive_timeout = -1 (from {path}): expected a number >= 0"
    )


def test_an_error_inside_the_app_module_shows_its_traceback_then_one_line(
    capsys: pytest.CaptureFixture[str], runs: list[tuple[ASGI3App, Config]]
) -> None:
    assert cli.main(["tests.unit.apps.raises_on_import:app"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert 'raise RuntimeError("settings file missing")' in err
    assert err.splitlines()[-1] == (
        'ERROR:    app "tests.unit.apps.raises_on_import:app": error while importing '
        "module 'tests.unit.apps.raises_on_import': RuntimeError: settings file missing"
    )


def test_help_exits_0_and_lists_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: tricorn [OPTIONS] [APP]")
    assert "--keep-alive-timeout" in out


def test_version_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("tricorn 0.")


def test_the_app_and_config_are_handed_to_run(runs: list[tuple[ASGI3App, Config]]) -> None:
    assert cli.main(["tests.unit.apps.kinds:asgi3_function", "--no-access-log"]) == 0
    [(app, config)] = runs
    assert app is kinds.asgi3_function
    assert config.access_log is False
    assert config.app == "tests.unit.apps.kinds:asgi3_function"


def test_the_exit_status_of_run_is_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve, "run", lambda app, config: 3)
    assert cli.main(["tests.unit.apps.kinds:asgi3_function"]) == 3


def test_no_app_serves_the_demo_and_says_how_to_serve_yours(
    capsys: pytest.CaptureFixture[str], runs: list[tuple[ASGI3App, Config]]
) -> None:
    assert cli.main([]) == 0
    [(app, _)] = runs
    assert app is demo.app
    assert capsys.readouterr().err == (
        "INFO:     No app given: serving the built-in demo app. "
        "Serve yours with: tricorn module:app\n"
    )


def test_python_m_tricorn_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tricorn", "--help"],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("usage: tricorn")
    assert result.stderr == ""


def test_python_m_tricorn_bad_flag_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tricorn", "--backend", "gevent"],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        'ERROR:    config: backend = "gevent" (from the command line): '
        'expected one of "auto", "trio", "asyncio", "uvloop"'
    ]
