"""The WSGI app every server runs in the WSGI benchmark (benchmarks/wsgi.py).

- ``GET /`` -> 200 ``Hello, world!`` (text/plain, with Content-Length), as benchmarks/apps.py
- anything else -> 404

Plain PEP 3333, no framework, so every server runs the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

HELLO = b"Hello, world!"
_HELLO_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))]
_NOT_FOUND_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", "9")]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/":
        start_response("200 OK", _HELLO_HEADERS)
        return [HELLO]
    start_response("404 Not Found", _NOT_FOUND_HEADERS)
    return [b"Not Found"]
