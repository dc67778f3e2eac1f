"""``gc_freeze``: a real ``python -m tricorn`` (one process, and each of two workers) freezes
what its app's lifespan startup made, not what serving makes; ``--no-gc-freeze`` leaves the
collector as Python has it."""

from __future__ import annotations

import signal

import httpx
import pytest

from tests.integration.test_process import stop, tricorn

APP = "tests.integration.gc_apps:app"
BACKENDS = ["asyncio", "trio"]


def _report(port: int) -> dict[str, object]:
    with httpx.Client() as client:
        response = client.get(f"http://127.0.0.1:{port}/")
    assert response.status_code == 200
    report: dict[str, object] = response.json()
    return report


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("workers", ["1", "2"])
def test_objects_of_the_started_app_are_frozen(backend: str, workers: str) -> None:
    with tricorn(APP, "--backend", backend, "--workers", workers) as (process, port):
        report = _report(port)
        status, _, err = stop(process, signal.SIGTERM)
    assert report["startup_object_frozen"] is True
    assert report["request_object_frozen"] is False
    assert isinstance(report["freeze_count"], int) and report["freeze_count"] > 1000
    assert report["gc_enabled"] is True  # frozen objects aside, the collector still runs
    assert status == 0, err


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_gc_freeze_freezes_nothing(backend: str) -> None:
    with tricorn(APP, "--backend", backend, "--no-gc-freeze") as (process, port):
        report = _report(port)
        status, _, err = stop(process, signal.SIGTERM)
    assert report["freeze_count"] == 0
    assert report["startup_object_frozen"] is False
    assert status == 0, err
