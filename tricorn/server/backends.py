"""Which event loop runs the server: the ``backend`` setting, its name for users, and the
one-line hint when an app written for asyncio is run on trio."""

from __future__ import annotations

import sys
from typing import Any

import sniffio

from tricorn.config import Config
from tricorn.errors import ConfigError

#: What asyncio-only code raises when it runs under trio: asyncio's own "no running event
#: loop", and trio's answer to an awaited asyncio future.
_ASYNCIO_ON_TRIO = ("no running event loop", "trio.run received unrecognized yield message")

ASYNCIO_ON_TRIO_HINT = (
    "the app called asyncio-only code while running on trio: serve it with --backend asyncio "
    "(or backend = 'auto', the default, which picks asyncio unless the app imports trio)"
)


def app_uses_trio() -> bool:
    """Whether the program has imported trio: tricorn itself never does before it runs.

    The CLI loads the app first, so when this is true it was the app (or a library it uses)
    that imported trio. ``tests/integration/test_backend_choice.py`` guards that tricorn's
    own import chain leaves trio out.
    """
    return "trio" in sys.modules


def backend_options(config: Config) -> tuple[str, dict[str, Any], str]:
    """The anyio backend name and options for ``config.backend``, and why it was chosen.

    ``auto`` picks trio when the app imports trio and plain asyncio otherwise: an app written
    for asyncio (Django, Quart, most of the ecosystem) must never land on trio, and an app
    that uses only anyio (Starlette, FastAPI) runs on either. uvloop is used only when asked
    for (``backend = "uvloop"``): it measured within 2% of plain asyncio for tricorn
    (benchmarks/RESULTS.md), and the standard loop is the most compatible one.
    """
    if config.http1_parser == "httptools":  # checked here: both start-up paths call this
        try:
            import httptools  # noqa: F401
        except ImportError:
            raise ConfigError(
                "config: http1_parser = 'httptools': httptools is not installed "
                "(pip install 'tricorn[httptools]')"
            ) from None
    if config.backend == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            raise ConfigError(
                "config: backend = 'uvloop': uvloop is not installed "
                "(pip install 'tricorn[uvloop]')"
            ) from None
        return "asyncio", {"use_uvloop": True}, "backend = uvloop"
    if config.backend == "auto":
        if app_uses_trio():
            return "trio", {}, "backend = auto: the app imports trio"
        return "asyncio", {}, "backend = auto: the app does not import trio"
    return config.backend, {}, f"backend = {config.backend}"


def backend_name() -> str:
    """The running backend, as shown to users: "trio", "asyncio" or "asyncio with uvloop"."""
    name = sniffio.current_async_library()
    if name == "asyncio":
        import asyncio

        if type(asyncio.get_running_loop()).__module__.startswith("uvloop"):
            return "asyncio with uvloop"
    return name


def is_asyncio_on_trio(error: BaseException) -> bool:
    """Whether ``error`` is asyncio-only code failing under trio (the hint applies)."""
    if not isinstance(error, RuntimeError | TypeError):
        return False
    message = str(error)
    return any(sign in message for sign in _ASYNCIO_ON_TRIO) and (
        sniffio.current_async_library() == "trio"
    )


def app_error_headline(headline: str, error: BaseException) -> str:
    """The log line for an app's exception: ``headline``, plus the backend hint if it applies.

    Any ``%`` in ``headline`` is escaped: the result is a logging format string.
    """
    headline = headline.replace("%", "%%")
    if is_asyncio_on_trio(error):
        return f"{headline}: {ASYNCIO_ON_TRIO_HINT}"
    return headline
