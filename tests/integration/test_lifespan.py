"""ASGI lifespan: startup before serving, shutdown after, state shared into requests."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from tests.helpers import serving
from tests.integration import apps
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
            assert message["type"] == "lifespan.startup"
            self.events.append("startup")
            scope["state"]["db"] = "connected"
            if self.startup == "raise":
                raise RuntimeError("cannot start")
            if self.startup == "hang":
                await anyio.sleep_forever()
            await send({"type": f"lifespan.startup.{self.startup}", "message": "no database"})
            message = await receive()
            assert message["type"] == "lifespan.shutdown"
            self.events.append("shutdown")
            await send({"type": f"lifespan.shutdown.{self.shutdown}", "message": "dirty"})
            return
        self.events.append(f"request state={scope['state'].get('db')}")
        scope["state"]["db"] = "changed by a request"  # a request's copy only
        await apps.respond(send, 200, b"ok")


async def test_startup_then_requests_then_shutdown_with_state() -> None:
    app = LifespanApp()
    async with serving(app) as server, httpx.AsyncClient() as client:
        assert app.events == ["startup"]
        await client.get(server.url)
        await client.get(server.url)
    assert app.events == [
        "startup",
        "request state=connected",
        "request state=connected",
        "shutdown",
    ]


async def test_startup_failed_stops_serving() -> None:
    with pytest.raises(LifespanFailure, match="no database"):
        async with serving(LifespanApp(startup="failed")):
            pytest.fail("served despite a failed startup")


async def test_shutdown_failed_is_reported() -> None:
    with pytest.raises(LifespanFailure, match="dirty"):
        async with serving(LifespanApp(shutdown="failed")):
            pass


async def test_auto_mode_serves_an_app_without_lifespan_support() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http", "no lifespan here"
        await apps.respond(send, 200, b"ok")

    async with serving(app) as server, httpx.AsyncClient() as client:
        assert (await client.get(server.url)).status_code == 200


async def test_on_mode_requires_lifespan() -> None:
    with pytest.raises(LifespanFailure):
        async with serving(LifespanApp(startup="raise"), lifespan="on"):
            pass


async def test_off_mode_never_calls_lifespan() -> None:
    app = LifespanApp()
    async with serving(app, lifespan="off") as server, httpx.AsyncClient() as client:
        await client.get(server.url)
    assert app.events == ["request state=None"]


async def test_startup_timeout() -> None:
    with pytest.raises(LifespanFailure, match="did not complete"):
        async with serving(LifespanApp(startup="hang"), startup_timeout=0.2):
            pass


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
