"""Settings as data: the one ``Config`` dataclass, with every field typed and documented.

The TOML keys are the field names; the CLI flags are the same names with dashes.
Precedence: defaults < TOML file < CLI flags (see ``tricorn.config.loader``).
Each field's ``metadata`` carries its one-line help and the bounds the loader checks, so
the CLI, the validation and the configuration reference are all generated from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Backend = Literal["trio", "asyncio", "uvloop"]
Lifespan = Literal["auto", "on", "off"]
LogLevel = Literal["critical", "error", "warning", "info", "debug"]

DEFAULT_ACCESS_LOG_FORMAT = '{client} - "{method} {path} {protocol}" {status} {bytes} {duration_ms:.1f}ms'


def setting(
    default: Any,
    help: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    group: str = "server",
) -> Any:
    """A ``Config`` field: its default, one line of help, and optional numeric bounds."""
    metadata = {"help": help, "minimum": minimum, "maximum": maximum, "group": group}
    if isinstance(default, list):
        items = list(default)
        return field(default_factory=lambda: list(items), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(slots=True)
class Config:
    """Every setting of tricorn. Build it directly, or with ``tricorn.config.loader``."""

    # --- application ---------------------------------------------------------------
    app: str = setting(
        "",
        "The ASGI app as 'module:attribute'; empty serves the built-in demo app.",
        group="app",
    )
    factory: bool = setting(
        False, "Treat the app as a factory: call it with no arguments to get the app.", group="app"
    )
    app_dir: str = setting(
        ".", "Directory put first on sys.path before the app is imported.", group="app"
    )
    lifespan: Lifespan = setting(
        "auto",
        "ASGI lifespan: 'on' requires it, 'off' skips it, 'auto' uses it if the app supports it.",
        group="app",
    )
    startup_timeout: float = setting(
        60.0, "Seconds the app's lifespan startup may take.", minimum=0, group="app"
    )
    shutdown_timeout: float = setting(
        60.0, "Seconds the app's lifespan shutdown may take.", minimum=0, group="app"
    )
    root_path: str = setting(
        "", "The ASGI root_path: the prefix under which the app is mounted.", group="app"
    )

    # --- binding and running -------------------------------------------------------
    bind: list[str] = setting(
        ["127.0.0.1:8000"],
        "Addresses to listen on: 'HOST:PORT', '[V6]:PORT'; repeat for several. Port 0 picks one.",
    )
    backend: Backend = setting(
        "trio", "Event loop: 'trio', 'asyncio', or 'uvloop' (asyncio with uvloop installed)."
    )
    backlog: int = setting(2048, "Listen backlog of each socket.", minimum=1)
    server_header: str = setting(
        "tricorn", "Value of the Server response header; empty to send none."
    )
    date_header: bool = setting(True, "Send a Date header on every response.")

    # --- time ----------------------------------------------------------------------
    keep_alive_timeout: float = setting(
        5.0, "Seconds an idle keep-alive connection is kept open.", minimum=0, group="limits"
    )
    header_read_timeout: float = setting(
        10.0,
        "Seconds a client has to send a complete request head (slowloris guard).",
        minimum=0,
        group="limits",
    )
    graceful_timeout: float = setting(
        30.0,
        "Seconds in-flight requests get to finish on shutdown before they are cancelled.",
        minimum=0,
        group="limits",
    )

    # --- HTTP/1.1 limits -----------------------------------------------------------
    max_request_line_size: int = setting(
        8192, "Longest request line accepted (else 414).", minimum=16, group="limits"
    )
    max_head_size: int = setting(
        16384, "Largest request head accepted, in bytes (else 431).", minimum=64, group="limits"
    )
    max_headers: int = setting(
        100, "Most header fields accepted in one request (else 431).", minimum=1, group="limits"
    )
    max_request_body_size: int = setting(
        0,
        "Largest request body accepted, in bytes (else 413); 0 for no limit.",
        minimum=0,
        group="limits",
    )
    max_body_buffer: int = setting(
        65536,
        "Request body bytes buffered per stream before the server stops reading.",
        minimum=1,
        group="limits",
    )

    # --- logging -------------------------------------------------------------------
    log_level: LogLevel = setting("info", "Level of the error log.", group="logging")
    access_log: bool = setting(True, "Write an access log line per response to stdout.", group="logging")
    access_log_format: str = setting(
        DEFAULT_ACCESS_LOG_FORMAT,
        "Access log line, a str.format template; fields: client, method, path, query, "
        "status, bytes, duration_ms, protocol, user_agent, referer.",
        group="logging",
    )
