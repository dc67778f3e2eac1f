"""A framework app served by a real ``python -m tricorn`` process, once per test module."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

from tests.e2e.server import ROOT, Server, run_tricorn

#: framework -> (its app, the backends it runs on besides the default: Starlette, FastAPI and
#: Litestar are on anyio, so trio and asyncio; Quart is asyncio-only, so asyncio and uvloop)
FRAMEWORKS: dict[str, tuple[str, list[str]]] = {
    "starlette": ("tests.e2e.apps.starlette_app:app", ["trio", "asyncio"]),
    "fastapi": ("tests.e2e.apps.fastapi_app:app", ["trio", "asyncio"]),
    "litestar": ("tests.e2e.apps.litestar_app:app", ["trio", "asyncio"]),
    "quart": ("tests.e2e.apps.quart_app:app", ["asyncio", "uvloop"]),
}


class Served:
    """One app on one backend. ``server()`` gives the running process, starting a new one
    when a test stopped the previous one (the lifespan-shutdown test does), so that tests
    never depend on their order."""

    def __init__(
        self,
        app: str,
        backend: str,
        base: Path,
        *args: str,
        cwd: Path = ROOT,
        env: dict[str, str] | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.app, self.backend, self.base, self.args = app, backend, base, args
        self.cwd, self.env, self.tls = cwd, env or {}, tls
        self.runs = 0
        self._stack = ExitStack()
        self._server: Server | None = None

    @property
    def shutdown_file(self) -> Path:
        return self.base / f"shutdown-{self.runs}.txt"

    def server(self) -> Server:
        if self._server is None or self._server.returncode is not None:
            self.runs += 1
            env = {**self.env, "E2E_SHUTDOWN_FILE": str(self.shutdown_file)}
            self._server = self._stack.enter_context(
                run_tricorn(
                    self.app,
                    *self.args,
                    log_dir=self.base / f"run-{self.runs}",
                    backend=self.backend,
                    cwd=self.cwd,
                    env=env,
                    tls=self.tls,
                )
            )
        return self._server

    def close(self) -> None:
        self._stack.close()


def serving(served: Served) -> Iterator[Served]:
    """A module fixture's body: ``yield from serving(Served(...))`` yields it, then stops
    the servers it started."""
    try:
        yield served
    finally:
        served.close()
