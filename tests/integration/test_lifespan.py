"""ASGI lifespan: startup before serving, shutdown after, state shared into requests."""

from __future__ import annotations

import logging
import signal
import subprocess
from typing import Any

import anyio
import httpx
import pytest

from tests.helpers import serving
from tests.integration import apps
from tests.integration.test_process import ROOT, TRICORN, stop, tricorn
from tricorn.server.asgi_types import Receive, Scope, Send
from tricorn.server.lifespan import LifespanFailure

pytestmark = pytest.mark.anyio


class LifespanApp:
    def __init__(self, startup: str = "complete", shutdown: str = "complete") -> None:
        self.startup = startup
        self.shutdown = shutdown
        self.events: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            self.events.append(message["type"])  # the test checks it was lifespan.startup
            scope["state"]["db"] = "connected"
            if self.startup == "raise":
                raise RuntimeError("cannot start")
            if self.startup == "hang":
                await anyio.sleep_forever()
            await send({"type": f"lifespan.startup.{self.startup}", "message": "no database"})
            message = await receive()
            self.events.append(message["type"])
            await send({"type": f"lifespan.shutdown.{self.shutdown}", "message": "dirty"})
            return
        self.events.append(f"request state={scope['state'].get('db')}")
        scope["state"]["db"] = "changed by a request"  # a request's copy only
        await apps.respond(send, 200, b"ok")


async def test_startup_then_requests_then_shutdown_with_state() -> None:
    app = LifespanApp()
    async with serving(app) as server, httpx.AsyncClient() as client:
        assert app.events == ["lifespan.startup"]
        await client.get(server.url)
        await client.get(server.url)
    assert app.events == [
        "lifespan.startup",
        "request state=connected",
        "request state=connected",
        "lifespan.shutdown",
    ]


async def test_startup_failed_stops_serving() -> None:
    with pytest.raises(LifespanFailure, match="no database"):
        async with serving(LifespanApp(startup="failed")):
            pytest.fail("served despite a failed startup")


async def test_shutdown_failed_is_reported() -> None:
    with pytest.raises(LifespanFailure, match="dirty"):
        async with serving(LifespanApp(shutdown="failed")):
            pass


async def test_auto_mode_serves_an_app_without_lifespan_support(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An app that refuses the lifespan scope type before asking for an event: no lifespan."""
    caplog.set_level(logging.INFO, logger="tricorn.error")
    async with serving(apps.rejects_lifespan) as server, httpx.AsyncClient() as client:
        assert (await client.get(server.url)).text == "served"
    messages = [record.getMessage() for record in caplog.records]
    assert any("ASGI lifespan not supported by the app" in line for line in messages)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_auto_mode_startup_that_raises_is_a_failed_startup(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An app that took the startup event and raised speaks lifespan: its startup failed."""
    caplog.set_level(logging.INFO, logger="tricorn.error")
    with pytest.raises(LifespanFailure, match=r"lifespan startup failed.*cannot reach"):
        async with serving(apps.startup_raises):
            pytest.fail("served despite a startup that raised")
    messages = [record.getMessage() for record in caplog.records]
    assert not any("not supported" in line for line in messages)
    assert any(
        "Exception in the app's lifespan" in r.getMessage() and r.exc_info for r in caplog.records
    )


async def test_on_mode_requires_lifespan() -> None:
    with pytest.raises(LifespanFailure, match="startup failed"):
        async with serving(apps.rejects_lifespan, lifespan="on"):
            pytest.fail("served an app that rejects lifespan with lifespan = on")


async def test_on_mode_startup_that_raises_is_a_failed_startup() -> None:
    with pytest.raises(LifespanFailure, match=r"startup failed.*cannot start"):
        async with serving(LifespanApp(startup="raise"), lifespan="on"):
            pytest.fail("served despite a startup that raised")


async def test_off_mode_never_calls_lifespan() -> None:
    app = LifespanApp()
    async with serving(app, lifespan="off") as server, httpx.AsyncClient() as client:
        await client.get(server.url)
    assert app.events == ["request state=None"]


async def test_startup_timeout() -> None:
    with pytest.raises(LifespanFailure, match="did not complete"):
        async with serving(LifespanApp(startup="hang"), startup_timeout=0.2):
            pytest.fail("served despite a startup that never completed")


async def test_embedding_returns_bound_addresses_and_stops_on_cancel() -> None:
    from tricorn import Config, serve

    config = Config(bind=["127.0.0.1:0"], access_log=False)
    async with anyio.create_task_group() as group:
        addresses: Any = await group.start(serve, apps.hello, config)
        host, port = addresses[0].address
        assert port != 0
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://{host}:{port}/")).text == "Hello, world!"
        group.cancel_scope.cancel()


# --- the command line: what a user of ``tricorn module:app`` sees -----------------------


def test_cli_startup_that_raises_says_startup_failed_and_exits_3() -> None:
    result = subprocess.run(
        [*TRICORN, "--bind", "127.0.0.1:0", "tests.integration.apps:startup_raises"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 3, result.stderr
    lines = result.stderr.splitlines()
    assert any(
        "the app's lifespan startup failed" in line and "cannot reach the database" in line
        for line in lines
    ), result.stderr
    assert "not supported" not in result.stderr
    assert "tricorn serving on" not in result.stderr


def test_cli_app_rejecting_lifespan_is_not_supported_and_served() -> None:
    with tricorn("--lifespan", "auto", "tests.integration.apps:rejects_lifespan") as (
        process,
        port,
    ):
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "served"
        status, _, err = stop(process, signal.SIGTERM)
    assert status == 0, err
    assert "ASGI lifespan not supported by the app" in err
    assert "startup failed" not in err
