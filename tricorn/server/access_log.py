"""Access log lines: one per response, formatted from a ``str.format`` template."""

from __future__ import annotations

import logging
from typing import Any

from tricorn.constants import ACCESS_LOGGER
from tricorn.server.asgi_types import Scope

access_log = logging.getLogger(ACCESS_LOGGER)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return "-"


class AccessLogger:
    """Formats and writes access log lines; fields are documented on ``Config``."""

    __slots__ = ("_format",)

    def __init__(self, template: str) -> None:
        self._format = template

    def fields(self, scope: Scope, status: int, size: int, duration: float) -> dict[str, Any]:
        client = scope.get("client")
        query = scope["query_string"].decode("latin-1")
        return {
            "client": f"{client[0]}:{client[1]}" if client else "-",
            "method": scope.get("method", "-"),
            "path": scope["path"] + (f"?{query}" if query else ""),
            "query": query,
            "status": status,
            "bytes": size,
            "duration_ms": duration * 1000.0,
            "protocol": f"HTTP/{scope['http_version']}",
            "user_agent": _header(scope, b"user-agent"),
            "referer": _header(scope, b"referer"),
        }

    def log(self, scope: Scope, status: int, size: int, duration: float) -> None:
        if access_log.isEnabledFor(logging.INFO):
            line = self._format.format_map(self.fields(scope, status, size, duration))
            access_log.info(line)
