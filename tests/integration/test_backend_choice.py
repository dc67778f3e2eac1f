"""``backend = "auto"``: an app written for asyncio runs on asyncio, one written for trio on
trio, with no flags; ``--backend`` still forces one. Real processes, real requests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.integration.test_process import stop, tricorn

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("app", "body", "line"),
    [
        (
            "tests.integration.asyncio_only_app:app",
            "asyncio-ok",
            "Running on asyncio (backend = auto: the app does not import trio)",
        ),
        (
            "tests.integration.trio_only_app:app",
            "trio-ok",
            "Running on trio (backend = auto: the app imports trio)",
        ),
    ],
)
def test_auto_backend_follows_the_app(app: str, body: str, line: str) -> None:
    with tricorn(app) as (process, port):
        response = httpx.get(f"http://127.0.0.1:{port}/")
        status, _, err = stop(process)
    assert (response.status_code, response.text) == (200, body)
    assert line in err
    assert status == 0


def test_forced_backend_is_named_with_its_reason() -> None:
    with tricorn("tests.integration.asyncio_only_app:app", "--backend", "asyncio") as (
        process,
        port,
    ):
        response = httpx.get(f"http://127.0.0.1:{port}/")
        _, _, err = stop(process)
    assert response.text == "asyncio-ok"
    assert "Running on asyncio (backend = asyncio)" in err


def test_tricorn_itself_never_imports_trio_before_the_app() -> None:
    """The auto rule reads "trio was imported" as "the app uses trio": keep it true."""
    code = (
        "import sys, tricorn, tricorn.cli, tricorn.server.serve, tricorn.config.loader;"
        "tricorn.config.loader.load_config(['x:y']);"
        "print('trio' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_asyncio_code_forced_onto_trio_gets_a_500_and_a_hint() -> None:
    with tricorn("tests.integration.asyncio_only_app:app", "--backend", "trio") as (
        process,
        port,
    ):
        response = httpx.get(f"http://127.0.0.1:{port}/")
        status, out, err = stop(process)
    assert response.status_code == 500
    assert (
        "Exception in ASGI app (GET /): the app called asyncio-only code while running on trio: "
        "serve it with --backend asyncio" in err
    )
    assert '"GET / HTTP/1.1" 500' in out
    assert status == 0
