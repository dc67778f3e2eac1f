"""Logging set-up: the error log on stderr, the access log on stdout, both from ``Config``.

``tricorn.error`` carries start-up messages, warnings and app tracebacks, formatted like
Uvicorn's (``INFO:     message``); ``tricorn.access`` carries one line per HTTP response and
per WebSocket session, already formatted from ``Config.access_log_format`` (or
``ws_access_log_format``), or one JSON object per line with ``access_log_json``.

``Config.log_config`` names a ``logging.config.dictConfig`` file (JSON, TOML, or YAML when
PyYAML is installed), applied after these defaults: it may redefine both loggers, their
handlers and formatters, and configure any other logger (the app's, the root).
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import sys
import tomllib
from contextlib import suppress
from typing import TYPE_CHECKING, Any, TextIO

from tricorn.constants import ACCESS_LOGGER, ERROR_LOGGER
from tricorn.errors import ConfigError

if TYPE_CHECKING:
    from tricorn.config import Config

#: What every access log field means (in order); the keys are the template fields.
ACCESS_LOG_FIELDS: dict[str, str] = {
    "time": "when the line was written, ISO 8601 in UTC with milliseconds",
    "client": "the client as HOST:PORT, IPv6 in brackets ([::1]:56924); - when unknown "
    "(a unix socket peer)",
    "method": "the request method (CONNECT for a WebSocket over HTTP/2)",
    "path": "the decoded path, without the query string (with root_path in front)",
    "target": "the request target as the client sent it: raw path and ?query",
    "query": "the query string, without the ?",
    "status": "the response status sent (the handshake's for a WebSocket: 101 on "
    "HTTP/1.1, 200 on HTTP/2, or the denial's); 0 if no response head was sent",
    "bytes": "response body bytes sent (WebSocket: frame bytes sent after the handshake)",
    "duration_ms": "milliseconds from the request head to the end of the response "
    "(WebSocket: of the session)",
    "protocol": "HTTP/1.0, HTTP/1.1, HTTP/2, or WS/1.1 and WS/2 for WebSockets",
    "user_agent": "the User-Agent header; - when absent",
    "referer": "the Referer header; - when absent",
    "request_id": "the X-Request-ID header, passed through; - when absent",
    "outcome": "ok when the app's response went out complete (WebSocket: closed with a "
    "close frame); else client_gone, app_error, shutdown, timeout, protocol_error or "
    "cancelled; rejected when the server refused the request itself (a bad or late head, a "
    "body over the limit), method and target - when unreadable",
    "close_code": "the WebSocket close code (the first close frame, either side's; 1006 "
    "when the connection dropped); - for HTTP lines and denied handshakes",
    "messages_in": "WebSocket messages received from the client; 0 for HTTP lines",
    "messages_out": "WebSocket messages sent to the client; 0 for HTTP lines",
}

#: The fields an access log template may use, with values of the types the server passes.
ACCESS_LOG_SAMPLE: dict[str, Any] = {
    "time": "2026-12-01T22:40:00.123Z",
    "client": "127.0.0.1:51000",
    "method": "GET",
    "path": "/index.html",
    "target": "/index.html?page=2",
    "query": "page=2",
    "status": 200,
    "bytes": 1024,
    "duration_ms": 1.5,
    "protocol": "HTTP/1.1",
    "user_agent": "curl/8.5.0",
    "referer": "-",
    "request_id": "-",
    "outcome": "ok",
    "close_code": "-",
    "messages_in": 0,
    "messages_out": 0,
}

#: Other shapes of lines a template must also format: a WebSocket session, and an HTTP
#: line with every optional field absent (``-``) and no response sent.
ACCESS_LOG_OTHER_SAMPLES: tuple[dict[str, Any], ...] = (
    {
        **ACCESS_LOG_SAMPLE,
        "client": "[::1]:56924",
        "path": "/chat",
        "target": "/chat",
        "query": "",
        "status": 101,
        "protocol": "WS/1.1",
        "request_id": "7f9c0a4e",
        "close_code": 1000,
        "messages_in": 3,
        "messages_out": 5,
    },
    {
        **ACCESS_LOG_SAMPLE,
        "client": "-",
        "status": 0,
        "bytes": 0,
        "user_agent": "-",
        "outcome": "client_gone",
    },
    {
        **ACCESS_LOG_SAMPLE,
        "method": "-",
        "path": "-",
        "target": "-",
        "query": "-",
        "status": 414,
        "bytes": 11,
        "user_agent": "-",
        "outcome": "rejected",
    },
)

#: The file kinds ``log_config`` reads, by extension.
LOG_CONFIG_KINDS = {".json": "JSON", ".toml": "TOML", ".yaml": "YAML", ".yml": "YAML"}


def access_log_format_problem(template: str) -> str | None:
    """None if ``template`` formats the sample access log fields, else what was expected."""
    fields = ", ".join(ACCESS_LOG_SAMPLE)
    try:
        for sample in (ACCESS_LOG_SAMPLE, *ACCESS_LOG_OTHER_SAMPLES):
            template.format_map(sample)
    except KeyError as error:
        return f"a str.format template using only the fields {fields} (unknown field {error})"
    except (IndexError, ValueError, TypeError, AttributeError) as error:
        return (
            f"a valid str.format template over the fields {fields}, for every kind of line "
            f"(close_code may be -, status 0) ({error})"
        )
    return None


def error_line(message: object) -> str:
    """``ERROR:    message``: a start-up error as the error log writes it by default."""
    return f"{'ERROR:':<10}{message}"


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


#: The default error log formatter, by the name a ``log_config`` file may use as ``()``.
LevelPrefixFormatter = _LevelPrefixFormatter


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


class LogConfigError(ConfigError):
    """The ``log_config`` file cannot be read, parsed or applied; ``problem`` says why."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"config: log_config = {json.dumps(path)}: {problem}")
        self.problem = problem


def read_log_config(path: str) -> dict[str, Any]:
    """The ``dictConfig`` dictionary in the file at ``path`` (by its extension: .json,
    .toml, or .yaml/.yml with PyYAML installed); ``ConfigError`` naming the file and the
    problem when it cannot be read, parsed, or is not a dictConfig mapping with version 1."""
    extension = os.path.splitext(path)[1].lower()
    kind = LOG_CONFIG_KINDS.get(extension)
    if kind is None:
        raise LogConfigError(path, "a name ending in .json, .toml, .yaml or .yml")
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        raise LogConfigError(path, "no such file") from None
    except OSError as error:
        raise LogConfigError(path, f"cannot read it ({error.strerror or error})") from None
    try:
        if kind == "JSON":
            loaded: Any = json.loads(data)
        elif kind == "TOML":
            loaded = tomllib.loads(data.decode())
        else:
            try:
                import yaml  # type: ignore[import-untyped, unused-ignore]
            except ImportError:
                raise LogConfigError(
                    path,
                    "a YAML file needs PyYAML (pip install 'tricorn[yaml]'); or use .json or .toml",
                ) from None
            loaded = yaml.safe_load(data)
    except LogConfigError:
        raise
    except UnicodeDecodeError as error:
        raise LogConfigError(path, f"not valid {kind}: not UTF-8 ({error.reason})") from None
    except Exception as error:  # each parser has its own error class
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise LogConfigError(path, f"not valid {kind}: {first}") from None
    if not isinstance(loaded, dict):
        raise LogConfigError(path, "not a mapping of dictConfig keys at the top level")
    if loaded.get("version") != 1:
        raise LogConfigError(path, "no version = 1 key (the dictConfig schema version)")
    return loaded


def apply_log_config(path: str) -> None:
    """Apply the dictConfig file at ``path`` over the current logging set-up.

    Loggers the file does not name keep working (``disable_existing_loggers`` is false
    unless the file says otherwise). ``ConfigError`` with one line if it fails.
    """
    settings = read_log_config(path)
    settings.setdefault("disable_existing_loggers", False)
    try:
        logging.config.dictConfig(settings)
    except (ValueError, TypeError, AttributeError, ImportError, OSError) as error:
        # dictConfig wraps the cause: "Unable to configure handler 'file'" from the OSError.
        cause = error.__cause__
        detail = f"{error}: {cause}" if cause is not None else str(error)
        raise LogConfigError(path, f"cannot apply it: {detail}") from None


def configure_logging(config: Config) -> None:
    """Send ``tricorn.error`` to stderr at ``config.log_level`` and ``tricorn.access`` to
    stdout at INFO (disabled when ``config.access_log`` is false), then apply
    ``config.log_config`` if set.

    Idempotent: calling it again replaces the handlers it installed before. Raises
    ``ConfigError`` (one line) for a ``log_config`` file that cannot be read or applied.
    """
    _install(
        ERROR_LOGGER, "stderr", _LevelPrefixFormatter(), getattr(logging, config.log_level.upper())
    )
    _install(ACCESS_LOGGER, "stdout", logging.Formatter("%(message)s"), logging.INFO)
    if config.log_config:
        apply_log_config(config.log_config)
    logging.getLogger(ACCESS_LOGGER).disabled = not config.access_log


def reopen_logs(cause: str) -> None:
    """SIGUSR1 (as with gunicorn): reopen the log files, and say so in the new ones;
    ``cause`` starts the line ("Received SIGUSR1")."""
    failed = reopen_log_files()
    error_log = logging.getLogger(ERROR_LOGGER)
    error_log.info("%s: reopened the log files", cause)
    for path in failed:
        error_log.warning("%s: cannot reopen the log file %s", cause, path)


def reopen_log_files() -> list[str]:
    """Reopen the file of every ``logging.FileHandler`` (``WatchedFileHandler``,
    ``RotatingFileHandler``...) of every logger, as gunicorn does on SIGUSR1: after
    logrotate has moved a file away, the lines go to a new file of the same name.

    Returns the paths that could not be opened (each such handler tries again at its
    next record). A handler opened in "w" mode is reopened in "a" mode: a reopen must not
    truncate a file that was not moved. Handlers writing to a stream are left as they are.
    """
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    handlers = {
        handler
        for logger in loggers
        for handler in logger.handlers
        if isinstance(handler, logging.FileHandler)
    }
    failed: list[str] = []
    for handler in handlers:
        handler.acquire()
        try:
            old = handler.stream
            if handler.mode == "w":
                handler.mode = "a"
            try:
                handler.stream = handler._open()
            except OSError:
                handler.stream = None  # emit() tries to open it again
                failed.append(handler.baseFilename)
            if old is not None:
                with suppress(OSError, ValueError):
                    old.flush()
                    old.close()
        finally:
            handler.release()
    return failed
