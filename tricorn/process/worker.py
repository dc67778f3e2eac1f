"""A worker process: ``python -m tricorn.process.worker --pipe FD --beat SECONDS``.

Started by the supervisor, never by hand. The configuration comes as JSON of the ``Config``
fields in the ``TRICORN_WORKER_CONFIG`` environment variable (not argv: ``ps`` shows argv
to every user, and the config may hold a key password), with ``bind`` already rewritten to
the inherited listening sockets (``fd://N``). The worker imports the app itself, so a
fresh worker runs the code deployed now.

The pipe protocol, one ASCII line per message on the inherited ``--pipe`` fd:

- ``ready``: the lifespan startup is done and the sockets accept connections;
- ``beat N``: sent every ``--beat`` seconds by a task of the event loop (a blocked loop
  stops beating); ``N`` is the number of HTTP requests and WebSockets served so far.

SIGTERM stops gracefully, a second SIGTERM at once. SIGUSR1 reopens the log files (the
supervisor relays it once the worker is ready). SIGINT, SIGHUP, SIGTTIN, SIGTTOU and
SIGQUIT are the supervisor's business and ignored here (a terminal's CTRL+C reaches the
whole process group; the supervisor then stops the workers in order). When the supervisor
goes away (the pipe breaks, or the parent pid changes) the worker shuts down gracefully.
Exit status: 0 after a clean stop, 2 for a configuration or app loading problem, 3 for a
lifespan failure.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import logging
import os
import signal
import sys
import traceback
from typing import Any

import anyio
from anyio.abc import TaskStatus

from tricorn.config import Config
from tricorn.config.logging import configure_logging, error_line, reopen_logs
from tricorn.constants import ERROR_LOGGER
from tricorn.errors import AppLoadError, ConfigError, TricornError
from tricorn.server.app import load_configured_app
from tricorn.server.asgi_types import ASGI3App, Receive, Scope, Send
from tricorn.server.gc_tuning import freeze_after_startup
from tricorn.server.listeners import BoundAddress

error_log = logging.getLogger(ERROR_LOGGER)

CONFIG_ENV = "TRICORN_WORKER_CONFIG"


def config_to_json(config: Config) -> str:
    return json.dumps({f.name: getattr(config, f.name) for f in dataclasses.fields(config)})


def config_from_json(text: str) -> Config:
    values: dict[str, Any] = json.loads(text)
    return Config(**values)


class CountingApp:
    """The app, counting each HTTP request and WebSocket it is called for."""

    def __init__(self, app: ASGI3App) -> None:
        self.app = app
        self.served = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            self.served += 1
        await self.app(scope, receive, send)


class Pipe:
    """The write end of the pipe to the supervisor; never blocks the event loop."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.broken = False
        os.set_blocking(fd, False)

    def send(self, line: str) -> None:
        if self.broken:
            return
        try:
            os.write(self.fd, line.encode() + b"\n")
        except BlockingIOError:
            pass  # the supervisor is behind: a lost beat, not a blocked loop
        except OSError as error:
            if error.errno in (errno.EPIPE, errno.EBADF):
                self.broken = True
            else:
                raise


async def _main(app: CountingApp, config: Config, pipe: Pipe, beat: float) -> None:
    from tricorn.process.metrics import MetricsPusher
    from tricorn.server.serve import serve

    pusher = MetricsPusher.from_environment(config)  # the supervisor collects metrics
    shutdown = anyio.Event()
    parent = os.getppid()
    async with anyio.create_task_group() as group:

        async def watch_signals() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGUSR1) as signals:
                async for signum in signals:
                    if signum == signal.SIGUSR1:  # from the supervisor, after its own
                        reopen_logs(f"Worker {os.getpid()}")
                        continue
                    if shutdown.is_set():
                        error_log.warning("Worker %d: second SIGTERM, stopping now", os.getpid())
                        group.cancel_scope.cancel()
                        return
                    shutdown.set()

        async def heartbeat() -> None:
            while True:
                pipe.send(f"beat {app.served}")
                if (pipe.broken or os.getppid() != parent) and not shutdown.is_set():
                    error_log.warning("Worker %d: the supervisor is gone, stopping", os.getpid())
                    shutdown.set()
                await anyio.sleep(beat)

        async def run_server(*, task_status: TaskStatus[list[BoundAddress]]) -> None:
            await serve(app, config, shutdown_trigger=shutdown.wait, task_status=task_status)
            if pusher is not None:
                pusher.send()  # the final counts, before the process exits
            group.cancel_scope.cancel()  # the graceful shutdown is done

        group.start_soon(watch_signals)
        if pusher is not None:
            pusher.install()  # before serve starts: it counts into the pusher's Metrics
        await group.start(run_server)
        pipe.send("ready")
        # The app has started (gc_freeze); no connection is served before this returns (no
        # await in between), and the supervisor hears "ready" without waiting for it.
        freeze_after_startup(config)
        group.start_soon(heartbeat)
        if pusher is not None:
            group.start_soon(pusher.run)


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tricorn.process.worker")
    parser.add_argument("--pipe", type=int, required=True)
    parser.add_argument("--beat", type=float, default=1.0)
    args = parser.parse_args(argv)
    # SIGUSR1 too until the event loop handles it: its default action would end the worker.
    ignored = (signal.SIGINT, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGQUIT)
    for signum in (*ignored, signal.SIGUSR1):
        signal.signal(signum, signal.SIG_IGN)
    config = config_from_json(os.environ.pop(CONFIG_ENV))
    try:
        configure_logging(config)
    except ConfigError as error:  # the supervisor checked it; the file may have changed since
        print(error_line(error), file=sys.stderr)
        return 2
    pipe = Pipe(args.pipe)
    try:
        loaded = load_configured_app(config)
    except AppLoadError as error:
        if error.__cause__ is not None:
            traceback.print_exception(error.__cause__, file=sys.stderr)
        error_log.error("%s", error)
        return 2
    from tricorn.server.backends import backend_options
    from tricorn.server.lifespan import LifespanFailure

    # The app is wrapped already; the counter must not be taken for a WSGI app.
    config = dataclasses.replace(config, interface="asgi3")
    try:
        backend, options, _ = backend_options(config)
        anyio.run(
            _main,
            CountingApp(loaded),
            config,
            pipe,
            args.beat,
            backend=backend,
            backend_options=options,
        )
    except KeyboardInterrupt:
        return 0
    except BaseException as error:
        leaves = _leaves(error)
        if len(leaves) == 1 and isinstance(leaves[0], TricornError):
            error_log.error("%s", leaves[0])
            return 3 if isinstance(leaves[0], LifespanFailure) else 2
        raise
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
