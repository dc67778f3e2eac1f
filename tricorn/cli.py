"""The ``tricorn`` command: flags and TOML -> ``Config`` -> load the app -> run the server."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from tricorn.config import Config
from tricorn.config.loader import load_config, parse_bind, show_value
from tricorn.config.logging import configure_logging, error_line
from tricorn.constants import ERROR_LOGGER
from tricorn.errors import AppLoadError, ConfigError
from tricorn.server.app import load_configured_app

DEMO_MESSAGE = "No app given: serving the built-in demo app. Serve yours with: tricorn module:app"


def _fail(message: object) -> int:
    """A start-up error before logging is set up: ``ERROR:    message``, as the error log
    writes it, on stderr; exit status 2."""
    print(error_line(message), file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Run ``tricorn`` with ``argv`` (``sys.argv[1:]`` when None); return the exit status.

    0 after a clean shutdown (and for ``--help``/``--version``); 2 with one line on stderr
    for a configuration or app loading problem; otherwise what the server's ``run`` returns.
    """
    try:
        config = load_config(argv)
    except ConfigError as error:
        return _fail(error)
    except SystemExit as done:  # --help and --version print and exit
        return done.code if isinstance(done.code, int) else 0
    try:
        configure_logging(config)
    except ConfigError as error:
        return _fail(error)
    if config.workers > 1 or config.reload:
        for value in config.quic_bind:
            if parse_bind(value)[1] == 0:
                # Each worker binds quic_bind itself (SO_REUSEPORT): port 0 would give each
                # its own port, and clients would be told of one of them.
                return _fail(
                    ConfigError(
                        f"config: quic_bind = {show_value(value)}: port 0 with workers > 1 "
                        "or reload: every worker binds the port itself; name a port"
                    )
                )
    with _pid_file(config.pid_file):
        if config.workers > 1 or config.reload:
            from tricorn.process.supervisor import Supervisor

            return Supervisor(config, sys.argv[1:] if argv is None else list(argv)).run()
        return _run_here(config)


@contextmanager
def _pid_file(path: str) -> Iterator[None]:
    """Write this process's pid to ``path`` (when set) for as long as it runs."""
    if not path:
        yield
        return
    with open(path, "w") as file:
        file.write(f"{os.getpid()}\n")
    try:
        yield
    finally:
        with suppress(FileNotFoundError):
            os.unlink(path)


def _run_here(config: Config) -> int:
    """Serve in this process (workers = 1)."""
    if not config.app:
        logging.getLogger(ERROR_LOGGER).info(DEMO_MESSAGE)
    try:
        app = load_configured_app(config)
    except AppLoadError as error:
        if error.__cause__ is not None:
            # The app's own code failed: its traceback says where.
            traceback.print_exception(error.__cause__, file=sys.stderr)
        logging.getLogger(ERROR_LOGGER).error("%s", error)  # logging is set up by now
        return 2
    from tricorn.server.serve import run

    return run(app, config)
