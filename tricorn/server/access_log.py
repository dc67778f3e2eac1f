"""Access log lines: one per HTTP response and one per WebSocket session.

Each line is formatted from a ``str.format`` template (``access_log_format`` for HTTP,
``ws_access_log_format`` for WebSockets) or, with ``access_log_json``, written as one JSON
object with typed values. The fields are listed and explained in
``tricorn.config.logging.ACCESS_LOG_FIELDS``.

In text lines, values that come from the client (path, target, headers) have their control
characters, ``"`` and ``\\`` written as ``\\xHH``, so a request cannot forge a line or break
the quoting; absent values are ``-``. In JSON lines absent values are ``null``.
The record also carries the typed fields as ``record.access`` for a ``log_config``
formatter of one's own.
"""

from __future__ import annotations

import json
import logging
import string
import time
from typing import Any, NotRequired, TypedDict, Unpack

from tricorn.constants import ACCESS_LOGGER
from tricorn.server.asgi_types import Scope

access_log = logging.getLogger(ACCESS_LOGGER)

#: The outcome of a response that went out as the app meant it.
OK = "ok"
#: The client closed the connection or reset the stream (HTTP/2) before the end; for a
#: WebSocket, the connection dropped without a close frame.
CLIENT_GONE = "client_gone"
#: The app raised, returned early or broke the ASGI rules: the server answered 500 or cut
#: the response (connection closed, stream reset); WebSocket: closed with 1011.
APP_ERROR = "app_error"
#: The server's graceful shutdown ended it (http.disconnect, WebSocket close 1001).
SHUTDOWN = "shutdown"
#: A server timeout ended it: the request body came too slowly (408 or a reset), or a
#: WebSocket keepalive ping got no pong.
TIMEOUT = "timeout"
#: The WebSocket client broke the protocol (a bad frame, a broken limit).
PROTOCOL_ERROR = "protocol_error"
#: The stream's task was cancelled with the response unfinished (its connection torn down).
CANCELLED = "cancelled"
#: The server refused the request itself for breaking the protocol or a limit, and answered
#: with the line's status (400, 408, 413, 414, 431, 501, 505; a bad WebSocket handshake), or
#: cut the connection when the app's response had started. Mostly before any app ran (a bad
#: head: method and target ``-`` when the request line itself was unreadable); also a
#: request body the app was reading that broke a limit (over max_request_body_size: 413).
REJECTED = "rejected"

_ESCAPED = {code: f"\\x{code:02x}" for code in (*range(32), 127, ord('"'), ord("\\"))}


def _clean(text: str) -> str:
    """``text`` with control characters, quotes and backslashes as ``\\xHH``."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        return text
    return text.translate(_ESCAPED)


#: The request headers a line shows, by field name; one pass over the headers finds them.
_HEADER_FIELDS = {b"user-agent": "user_agent", b"referer": "referer", b"x-request-id": "request_id"}
#: Text fields that come from the client: escaped in text lines.
_CLIENT_TEXT = ("path", "target", "query", "user_agent", "referer", "request_id")
#: Other fields that may be absent (None): ``-`` in text lines.
_MAYBE_ABSENT = ("time", "client", "close_code")


def format_client(client: Any) -> str | None:
    """``host:port``, IPv6 hosts in brackets (``[::1]:56924``); None for no client."""
    if not client:
        return None
    host, port = client[0], client[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _utc_now() -> str:
    now = time.time()
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    return f"{seconds}.{int(now % 1 * 1000):03d}Z"


def _template_fields(template: str) -> set[str]:
    names = set()
    for _, name, _, _ in string.Formatter().parse(template):
        if name:
            names.add(name.partition(".")[0].partition("[")[0])
    return names


class Entry(TypedDict):
    """What the server knows of one response or WebSocket session, beyond its scope."""

    target: bytes  # the request target as sent (path and query)
    status: int  # 0: no response head was sent
    size: int  # body bytes sent
    duration: float  # seconds
    outcome: NotRequired[str]  # OK, or why the response was cut short
    method: NotRequired[str | None]  # instead of the scope's (WebSocket: GET or CONNECT)
    close_code: NotRequired[int | None]  # WebSocket
    messages_in: NotRequired[int]  # WebSocket
    messages_out: NotRequired[int]  # WebSocket


class AccessLogger:
    """Formats and writes access log lines; fields are documented on ``Config``."""

    __slots__ = ("_absent", "_escaped", "_formats", "_json", "_time")

    def __init__(
        self, template: str, ws_template: str | None = None, *, json: bool = False
    ) -> None:
        self._formats = {"http": template, "websocket": ws_template or template}
        self._json = json
        used = _template_fields(template) | _template_fields(ws_template or template)
        # Work a line does not show is skipped: the clock, escaping, dashes.
        self._time = json or "time" in used
        self._escaped = tuple(name for name in _CLIENT_TEXT if name in used)
        self._absent = tuple(name for name in _MAYBE_ABSENT if name in used)

    def fields(self, scope: Scope, **entry: Unpack[Entry]) -> dict[str, Any]:
        """The typed fields of one line: None where a value is absent."""
        return self._fields(scope, entry)

    def _fields(self, scope: Scope, entry: Entry) -> dict[str, Any]:
        websocket = scope["type"] == "websocket"
        version = scope["http_version"]
        found: dict[str, str | None] = {"user_agent": None, "referer": None, "request_id": None}
        for key, value in scope["headers"]:
            name = _HEADER_FIELDS.get(key)
            if name is not None and found[name] is None:
                found[name] = value.decode("latin-1")
        return {
            "time": _utc_now() if self._time else None,
            "client": format_client(scope.get("client")),
            "method": entry.get("method") or scope.get("method", "GET"),
            "path": scope["path"],
            "target": entry["target"].decode("latin-1"),
            "query": scope["query_string"].decode("latin-1"),
            "status": entry["status"],
            "bytes": entry["size"],
            "duration_ms": round(entry["duration"] * 1000.0, 3),
            "protocol": f"WS/{version}" if websocket else f"HTTP/{version}",
            "user_agent": found["user_agent"],
            "referer": found["referer"],
            "request_id": found["request_id"],
            "outcome": entry.get("outcome", OK),
            "close_code": entry.get("close_code"),
            "messages_in": entry.get("messages_in", 0),
            "messages_out": entry.get("messages_out", 0),
        }

    def render(self, fields: dict[str, Any], kind: str = "http") -> str:
        """The line for ``fields``: JSON, or the template of ``kind`` ('http', 'websocket')."""
        if self._json:
            return json.dumps(fields, separators=(",", ":"))
        shown = fields.copy()
        for name in self._escaped:
            value = shown[name]
            shown[name] = "-" if value is None else _clean(value)
        for name in self._absent:
            if shown[name] is None:
                shown[name] = "-"
        return self._formats[kind].format_map(shown)

    def log_rejected(
        self,
        *,
        client: Any,
        protocol: str,
        method: str | None,
        target: str | None,
        status: int,
        size: int,
        duration: float,
    ) -> None:
        """The line of a request the server refused before a stream existed (a bad head):
        outcome ``rejected``, ``-`` for what the request did not let us read."""
        if not access_log.isEnabledFor(logging.INFO):
            return
        path, _, query = (None, "", None) if target is None else target.partition("?")
        fields = {
            "time": _utc_now() if self._time else None,
            "client": format_client(client),
            "method": method,
            "path": path,
            "target": target,
            "query": query,
            "status": status,
            "bytes": size,
            "duration_ms": round(duration * 1000.0, 3),
            "protocol": protocol,
            "user_agent": None,
            "referer": None,
            "request_id": None,
            "outcome": REJECTED,
            "close_code": None,
            "messages_in": 0,
            "messages_out": 0,
        }
        # The method is the client's too here (HTTP/2's :method is not checked before a 431).
        shown = fields if self._json else {**fields, "method": _clean(method or "-")}
        access_log.info(self.render(shown), extra={"access": fields})

    def log(self, scope: Scope, **entry: Unpack[Entry]) -> None:
        if not access_log.isEnabledFor(logging.INFO):
            return
        fields = self._fields(scope, entry)
        line = self.render(fields, scope["type"])
        access_log.info(line, extra={"access": fields})
