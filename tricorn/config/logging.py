"""Logging set-up: the error log on stderr, the access log on stdout, both from ``Config``.

``tricorn.error`` carries start-up messages, warnings and app tracebacks, formatted like
Uvicorn's (``INFO:     message``); ``tricorn.access`` carries one line per response,
already formatted from ``Config.access_log_format``.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any, TextIO

from tricorn.constants import ACCESS_LOGGER, ERROR_LOGGER

if TYPE_CHECKING:
    from tricorn.config import Config

#: The fields an access log template may use, with values of the types the server passes.
ACCESS_LOG_SAMPLE: dict[str, Any] = {
    "client": "127.0.0.1:51000",
    "method": "GET",
    "path": "/index.html?page=2",
    "query": "page=2",
    "status": 200,
    "bytes": 1024,
    "duration_ms": 1.5,
    "protocol": "HTTP/1.1",
    "user_agent": "curl/8.5.0",
    "referer": "-",
}


def access_log_format_problem(template: str) -> str | None:
    """None if ``template`` formats the sample access log fields, else what was expected."""
    fields = ", ".join(ACCESS_LOG_SAMPLE)
    try:
        template.format_map(ACCESS_LOG_SAMPLE)
    except KeyError as error:
        return f"a str.format template using only the fields {fields} (unknown field {error})"
    except (IndexError, ValueError, TypeError, AttributeError) as error:
        return f"a valid str.format template over the fields {fields} ({error})"
    return None


class _LevelPrefixFormatter(logging.Formatter):
    """``INFO:     message``: the level name and a colon, padded so messages line up."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"{record.levelname}:".ljust(10)
        text = f"{prefix}{record.getMessage()}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text = f"{text}\n{record.exc_text}"
        if record.stack_info:
            text = f"{text}\n{self.formatStack(record.stack_info)}"
        return text


class _StandardStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``sys.stderr`` or ``sys.stdout`` as they are at the time of each record.

    Looking the stream up late keeps the handler right when the stream is replaced after
    set-up (test capture, a process manager redirecting output).
    """

    def __init__(self, stream_name: str) -> None:
        logging.Handler.__init__(self)
        self.stream_name = stream_name

    @property
    def stream(self) -> TextIO:
        return getattr(sys, self.stream_name)  # type: ignore[no-any-return]

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # the stream is always looked up on sys


def _install(name: str, stream_name: str, formatter: logging.Formatter, level: int) -> None:
    logger = logging.getLogger(name)
    for handler in list(logger.handlers):
        if isinstance(handler, _StandardStreamHandler):
            logger.removeHandler(handler)
    handler = _StandardStreamHandler(stream_name)
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # an app's own root handler must not print our lines twice


def configure_logging(config: Config) -> None:
    """Send ``tricorn.error`` to stderr at ``config.log_level`` and ``tricorn.access`` to
    stdout at INFO (disabled when ``config.access_log`` is false).

    Idempotent: calling it again replaces the handlers it installed before.
    """
    _install(
        ERROR_LOGGER, "stderr", _LevelPrefixFormatter(), getattr(logging, config.log_level.upper())
    )
    _install(ACCESS_LOGGER, "stdout", logging.Formatter("%(message)s"), logging.INFO)
    logging.getLogger(ACCESS_LOGGER).disabled = not config.access_log
