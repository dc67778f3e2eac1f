"""ASGI lifespan: run the app's startup before serving and its shutdown after."""

from __future__ import annotations

import logging
from typing import Any

import anyio
from anyio.abc import TaskGroup

from tricorn.constants import ERROR_LOGGER
from tricorn.errors import TricornError
from tricorn.server.asgi_types import ASGI3App, Message
from tricorn.server.backends import app_error_headline

error_log = logging.getLogger(ERROR_LOGGER)


class LifespanFailure(TricornError):
    """The app's lifespan startup or shutdown failed; the server exits with status 3."""


class Lifespan:
    """Talks the ASGI lifespan protocol with one app instance that lives as long as the server.

    ``mode`` is the ``lifespan`` setting: with ``"auto"`` an app that raises (or returns)
    before it asks for the startup event, rejecting the ``lifespan`` scope type, is taken not
    to support lifespan, and serving goes on. An app that raises once it has the startup
    event has a failed startup, in every mode.
    """

    def __init__(
        self,
        app: ASGI3App,
        mode: str,
        *,
        startup_timeout: float,
        shutdown_timeout: float,
    ) -> None:
        self.app = app
        self.mode = mode
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self.state: dict[str, Any] = {}
        self.supported = mode != "off"
        self._to_app_send, self._to_app = anyio.create_memory_object_stream[Message](2)
        self._from_app_send, self._from_app = anyio.create_memory_object_stream[Message](2)
        self._app_done = anyio.Event()
        self._app_error: BaseException | None = None
        self._received = False  # the app asked for an event: it speaks lifespan

    async def _run_app(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            await self.app(scope, self._receive, self._send)
        except Exception as error:
            self._app_error = error
            if self.mode == "auto" and not self._received:
                error_log.info("ASGI lifespan not supported by the app (it raised %r)", error)
            else:
                headline = app_error_headline("Exception in the app's lifespan", error)
                error_log.error(headline, exc_info=error)
        finally:
            self._app_done.set()
            self._from_app_send.close()

    async def _receive(self) -> Message:
        self._received = True
        return await self._to_app.receive()

    async def _send(self, message: Message) -> None:
        await self._from_app_send.send(message)

    async def _exchange(self, phase: str, timeout: float) -> None:
        await self._to_app_send.send({"type": f"lifespan.{phase}"})
        with anyio.move_on_after(timeout) as scope:
            try:
                message = await self._from_app.receive()
            except anyio.EndOfStream:
                message = None
        if scope.cancelled_caught:
            raise LifespanFailure(f"lifespan {phase} did not complete within {timeout:g} s")
        if message is None:
            # "auto": an app that rejected the scope before asking for an event, or one that
            # returned quietly, does not do lifespan; one that raised on startup failed.
            rejected = not self._received or self._app_error is None
            if self.mode == "auto" and phase == "startup" and rejected:
                self.supported = False
                return
            if phase == "startup" or self._app_error is not None:
                raise LifespanFailure(f"the app's lifespan {phase} failed: {self._app_error!r}")
            return  # The app returned after startup: nothing to shut down.
        kind = message.get("type")
        if kind == f"lifespan.{phase}.complete":
            return
        if kind == f"lifespan.{phase}.failed":
            reason = message.get("message", "")
            raise LifespanFailure(f"the app's lifespan {phase} failed: {reason}")
        raise LifespanFailure(f"the app sent {kind!r} during lifespan {phase}")

    async def startup(self, task_group: TaskGroup) -> None:
        """Start the app's lifespan task and wait for startup; raise LifespanFailure."""
        if not self.supported:
            return
        task_group.start_soon(self._run_app)
        await self._exchange("startup", self.startup_timeout)

    async def shutdown(self) -> None:
        """Send shutdown and wait for the app to answer; raise LifespanFailure."""
        if not self.supported or self._app_done.is_set():
            return
        await self._exchange("shutdown", self.shutdown_timeout)
