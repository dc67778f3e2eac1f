"""WSGI (PEP 3333) apps served as ASGI 3 apps: one worker thread per request, streaming both ways.

``WSGIAdapter(app)`` is an ASGI 3 callable, so a WSGI app runs over HTTP/1.1, HTTP/2 and TLS
with no change to the connection layer. For each HTTP request:

- the environ is built from the scope (``build_environ``);
- the app runs in a worker thread for the whole request, bounded by one
  ``CapacityLimiter`` of ``max_threads`` tokens per event loop run: a ``ThreadPool`` of
  long-lived workers while the app's lifespan runs, else ``anyio.to_thread.run_sync``;
- ``wsgi.input`` asks the event loop for the next ``http.request`` message only when the app
  reads past what it holds (``anyio.from_thread.run(receive)``): the body is never buffered
  whole, and the connection's own backpressure holds back the client;
- each response chunk is sent with ``anyio.from_thread.run(send, ...)``, which returns once
  the server has taken it: a slow client holds a thread, not memory. The last chunk (when
  ``Content-Length`` is reached or a list/tuple is exhausted) and the end of the response are
  handed back to the event loop, so a small response costs no extra trip between threads;
- the iterable's ``close()`` is always called, also when the client went away mid-response
  (the next send raises ``ClientDisconnected`` and the iteration stops).

An exception from the app before the response head is sent becomes a 500 (the server logs
it); after, the connection is closed or the stream reset. An invalid status or header gets a
500 and one error log line.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Any, Final
from urllib.parse import unquote_to_bytes

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
from anyio.lowlevel import RunVar

from tricorn.constants import ERROR_LOGGER
from tricorn.errors import ClientDisconnected
from tricorn.server.asgi_types import Message, Receive, Scope, Send, send_complete_response
from tricorn.server.wsgi_threads import ThreadPool

error_log = logging.getLogger(ERROR_LOGGER)

#: Worker threads per server for WSGI requests: anyio's and trio's default thread limit, as
#: Hypercorn's WSGI worker uses too. A WSGI thread mostly waits (on a database, on a slow
#: client), so 40 keep two cores busy while a stuck handful cannot starve the rest.
DEFAULT_MAX_THREADS: Final = 40

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], None]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

# PEP 3333: "200 OK" (three digits, a space, a reason phrase that may be empty).
_STATUS = re.compile(r"([0-9]{3}) [^\x00-\x08\x0a-\x1f\x7f]*\Z")
# RFC 9110 5.1: a field name is a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# RFC 9110 5.5: no CR, LF or NUL in a field value (they would inject lines).
_BAD_VALUE = re.compile(r"[\x00\r\n]")
# PEP 3333 forbids hop-by-hop headers from the app; the server frames the response itself.
# ``connection`` is kept: the HTTP/1.1 layer honours "close", HTTP/2 drops it.
_HOP_BY_HOP = frozenset(
    (b"transfer-encoding", b"keep-alive", b"upgrade", b"te", b"trailer", b"proxy-connection")
)
_STATUS_500 = b"Internal Server Error"

HeaderList = list[tuple[bytes, bytes]]

_CONTENT_TYPE = b"content-type"
_CONTENT_LENGTH = b"content-length"


class InvalidResponse(Exception):
    """The app's status or headers break PEP 3333 / RFC 9110; the client gets a 500."""


# --- the environ ---------------------------------------------------------------------------


def _script_and_path(scope: Scope) -> tuple[str, str]:
    """SCRIPT_NAME and PATH_INFO: the raw path percent-decoded, as latin-1, root_path split off.

    tricorn's ``scope["path"]`` (and ``raw_path``) include ``root_path``, as Uvicorn's do;
    a scope whose path lacks the prefix (other servers') is taken as the path below it.
    """
    root = scope.get("root_path", "").encode("utf-8")
    raw = scope.get("raw_path")
    path = unquote_to_bytes(raw) if raw else scope["path"].encode("utf-8")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in (b"", b"/"):
        path = path[len(root) :]
    return root.decode("latin-1"), path.decode("latin-1")


def build_environ(scope: Scope, wsgi_input: IO[bytes] | WSGIInput) -> dict[str, Any]:
    """The PEP 3333 environ for an ASGI HTTP ``scope``, reading the body from ``wsgi_input``."""
    script_name, path_info = _script_and_path(scope)
    server = scope.get("server")
    scheme = scope.get("scheme", "http")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": wsgi_input,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": FileWrapper,
    }
    if server is not None:
        environ["SERVER_NAME"] = str(server[0])
        environ["SERVER_PORT"] = str(server[1]) if server[1] is not None else ""
    client = scope.get("client")
    if client is not None:
        environ["REMOTE_ADDR"] = str(client[0])
        environ["REMOTE_PORT"] = str(client[1])
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1")
        value = raw_value.decode("latin-1")
        if name == "content-type":
            key = "CONTENT_TYPE"
        elif name == "content-length":
            key = "CONTENT_LENGTH"
        elif "_" in name:
            # "x_forwarded_for" would pose as X-Forwarded-For (HTTP_X_FORWARDED_FOR): dropped,
            # as nginx and gunicorn do.
            continue
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
        if key in environ:
            # RFC 9110 5.3: repeated fields join with commas; cookies with "; " (RFC 6265 5.4,
            # RFC 9113 8.2.3), since a cookie value may itself hold a comma.
            separator = "; " if key == "HTTP_COOKIE" else ", "
            environ[key] = environ[key] + separator + value
        else:
            environ[key] = value
    if "SERVER_NAME" not in environ:  # a unix socket: the Host header names the server
        host = environ.get("HTTP_HOST", "localhost")
        name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if not name or not port.isdigit():
            name, port = host, ""
        environ["SERVER_NAME"] = name
        environ["SERVER_PORT"] = port or ("443" if scheme == "https" else "80")
    return environ


class WSGIInput:
    """``wsgi.input``: the request body, fetched from the event loop one message at a time.

    Holds at most one ``http.request`` message plus what a ``read(n)``/``readline(n)`` asked
    for. ``read()`` with no size reads to the end (the app asked for the whole body).
    Raises ``ClientDisconnected`` (an ``OSError``) when the client left before the end.
    """

    __slots__ = ("_chunk", "_first", "_more", "_offset", "_receive", "_token")

    def __init__(
        self,
        receive: Receive,
        first: Message | None = None,
        token: anyio.lowlevel.EventLoopToken | None = None,
    ) -> None:
        self._receive = receive
        self._token = token  # the event loop to read from (None: this anyio worker's)
        self._first = first
        self._chunk = b""
        self._offset = 0
        self._more = True

    def _fill(self) -> bool:
        """Get the next non-empty chunk into the buffer; False at the end of the body."""
        while self._offset >= len(self._chunk):
            if not self._more:
                return False
            if self._first is not None:
                message, self._first = self._first, None
            else:
                message = anyio.from_thread.run(self._next_message, token=self._token)
            if message["type"] != "http.request":
                self._more = False
                self._chunk, self._offset = b"", 0
                raise ClientDisconnected("the client went away before the request body ended")
            self._chunk = bytes(message.get("body", b""))
            self._offset = 0
            self._more = bool(message.get("more_body", False))
        return True

    async def _next_message(self) -> Message:
        return await self._receive()

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while self._fill():
                parts.append(self._chunk[self._offset :] if self._offset else self._chunk)
                self._offset = len(self._chunk)
            return b"".join(parts)
        parts = []
        wanted = size
        while wanted > 0 and self._fill():
            end = min(self._offset + wanted, len(self._chunk))
            parts.append(self._chunk[self._offset : end])
            wanted -= end - self._offset
            self._offset = end
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readline(self, size: int | None = -1) -> bytes:
        limit = -1 if size is None else size
        parts = []
        taken = 0
        while (limit < 0 or taken < limit) and self._fill():
            start = self._offset
            stop = len(self._chunk) if limit < 0 else min(len(self._chunk), start + limit - taken)
            newline = self._chunk.find(b"\n", start, stop)
            end = stop if newline < 0 else newline + 1
            parts.append(self._chunk[start:end])
            taken += end - start
            self._offset = end
            if newline >= 0:
                break
        return b"".join(parts)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    def close(self) -> None:
        """Nothing to release: the server owns the connection."""


class FileWrapper:
    """``wsgi.file_wrapper``: a file-like object iterated in blocks (PEP 3333)."""

    __slots__ = ("blksize", "filelike")

    def __init__(self, filelike: Any, blksize: int = 65536) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while block := read(self.blksize):
            yield block

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


# --- the response --------------------------------------------------------------------------


def response_head(status: object, headers: object) -> tuple[int, HeaderList, int | None]:
    """The ASGI status and headers for a WSGI status line and header list, and Content-Length.

    Raises ``InvalidResponse`` naming what is wrong. Hop-by-hop headers are dropped.
    """
    if not isinstance(status, str):
        raise InvalidResponse(f"status must be a str, not {type(status).__name__}: {status!r}")
    match = _STATUS.match(status)
    if match is None or int(match[1]) < 200:
        raise InvalidResponse(f"status {status[:80]!r} is not a final status like '200 OK'")
    if not isinstance(headers, list | tuple):
        raise InvalidResponse(f"headers must be a list of (name, value), not {headers!r:.80}")
    result: HeaderList = []
    length: int | None = None
    for pair in headers:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise InvalidResponse(f"header {pair!r:.80} is not a (name, value) tuple")
        name, value = pair
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise InvalidResponse(f"header name {name!r:.80} is not a token")
        if not isinstance(value, str) or _BAD_VALUE.search(value):
            raise InvalidResponse(f"header {name}: value {value!r:.80} is not a str without CR/LF")
        try:
            # RFC 9110 5.5: whitespace around a value is not part of it (Django's Set-Cookie
            # starts with a space; HTTP/2 refuses that).
            raw_value = value.strip(" \t").encode("latin-1")
        except UnicodeEncodeError:
            raise InvalidResponse(f"header {name}: value {value!r:.80} is not latin-1") from None
        raw_name = name.lower().encode("ascii")
        if raw_name in _HOP_BY_HOP:
            continue
        if raw_name == _CONTENT_LENGTH:
            if not raw_value.isdigit() or (length is not None and int(raw_value) != length):
                raise InvalidResponse(f"Content-Length {value!r:.80} is not one number")
            length = int(raw_value)
        result.append((raw_name, raw_value))
    return int(match[1]), result, length


@dataclass(slots=True, eq=False)
class _Request:
    """The state of one WSGI request: ``start_response``, ``write`` and the iteration.

    Everything but ``finish`` runs in the worker thread.
    """

    app: WSGIApp
    scope: Scope
    environ: dict[str, Any]
    send: Send
    token: anyio.lowlevel.EventLoopToken | None = None
    #: What the app gave ``start_response``, not checked yet.
    status: object = field(default=None, init=False)
    headers: object = field(default=None, init=False)
    #: The http.response.start message, once valid.
    head: Message | None = field(default=None, init=False)
    head_sent: bool = field(default=False, init=False)
    is_head: bool = field(init=False)
    #: Content-Length bytes still to send.
    remaining: int | None = field(default=None, init=False)
    #: The final chunk, left for the event loop to send.
    last: bytes | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.is_head = self.scope["method"] == "HEAD"

    # --- in the worker thread ---------------------------------------------------------

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # PEP 3333: no reference cycle through the traceback
        elif self.status is not None:
            raise RuntimeError("start_response called a second time without exc_info")
        self.status, self.headers, self.head = status, headers, None
        return self.write

    def _make_head(self) -> Message:
        if self.head is None:
            if self.status is None:
                raise RuntimeError(
                    "the WSGI app did not call start_response before its body or its end"
                )
            status, headers, length = response_head(self.status, self.headers)
            self.remaining = length
            self.head = {"type": "http.response.start", "status": status, "headers": headers}
        return self.head

    def write(self, data: bytes) -> None:
        """The ``write`` callable of ``start_response`` (and each chunk of the iterable)."""
        if not isinstance(data, bytes | bytearray):
            raise TypeError(f"WSGI body data must be bytes, not {type(data).__name__}")
        head = self._make_head()
        if self.remaining is not None:
            if len(data) >= self.remaining:
                # Content-Length reached: what is left is for the event loop to send.
                self.last = bytes(data[: self.remaining])
                return
            self.remaining -= len(data)
        if not data:
            return
        if self.head_sent:
            anyio.from_thread.run(self._send_more, bytes(data), token=self.token)
        else:
            self.head_sent = True
            anyio.from_thread.run(self._send_first, head, bytes(data), token=self.token)

    async def _send_more(self, data: bytes) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": True})

    async def _send_first(self, head: Message, data: bytes) -> None:
        await self.send(head)
        await self.send({"type": "http.response.body", "body": data, "more_body": True})

    def run(self) -> None:
        """Call the app and iterate its response; always ``close()`` it."""
        result = self.app(self.environ, self.start_response)
        try:
            if isinstance(result, list | tuple):
                count = len(result)
                for index, chunk in enumerate(result):
                    if index == count - 1:  # the last: the event loop sends it with the end
                        self._make_head()
                        if self.last is None:
                            self.last = bytes(chunk)
                            if self.remaining is not None:
                                self.last = self.last[: self.remaining]
                    elif chunk:
                        self.write(chunk)
                    if self.last is not None or (self.is_head and self.head_sent):
                        break
            else:
                for chunk in result:
                    if chunk:
                        self.write(chunk)
                    if self.last is not None or (self.is_head and self.head_sent):
                        break  # Content-Length reached, or a HEAD response that has its head
            self._make_head()
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    # --- in the event loop ------------------------------------------------------------

    async def finish(self) -> None:
        """Send what the thread left: the head if not sent, the last chunk, the end."""
        body = self.last or b""
        head = self.head
        assert head is not None
        if not self.head_sent:
            self.head_sent = True
            await self.send(head)
        missing = 0 if self.remaining is None else self.remaining - len(body)
        if missing > 0 and not self.is_head and head["status"] not in (204, 304):
            # Fewer bytes than the Content-Length announced: the client must not take the
            # response as complete, so it is cut (connection closed, or stream reset).
            error_log.error(
                "WSGI app's response to %s %s is %d bytes short of its Content-Length; "
                "cutting the connection",
                self.scope["method"],
                self.scope["path"],
                missing,
            )
            if body:
                await self.send({"type": "http.response.body", "body": body, "more_body": True})
            return
        await self.send({"type": "http.response.body", "body": body, "more_body": False})


async def _answer_500(send: Send) -> None:
    await send_complete_response(send, 500, b"text/plain; charset=utf-8", _STATUS_500)


def _expects_continue(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    return any(name == b"expect" for name, _ in headers)


class WSGIAdapter:
    """Serves a WSGI app (``app(environ, start_response)``) as an ASGI 3 app.

    At most ``max_threads`` requests run at once (one ``CapacityLimiter`` per event loop
    run, made on first use: ``limiter()``); the others wait for a thread, in order. While
    the app's lifespan runs, requests go to a ``ThreadPool`` of long-lived workers; without
    lifespan (``lifespan = "off"``), each request is one ``anyio.to_thread.run_sync``.
    """

    __slots__ = ("_limiter", "_pool", "app", "max_threads")

    def __init__(self, app: WSGIApp, max_threads: int = DEFAULT_MAX_THREADS) -> None:
        self.app = app
        self.max_threads = max_threads
        self._limiter: RunVar[anyio.CapacityLimiter] = RunVar("tricorn.wsgi.limiter")
        self._pool: RunVar[ThreadPool | None] = RunVar("tricorn.wsgi.pool", None)

    def __repr__(self) -> str:
        return f"WSGIAdapter({self.app!r}, max_threads={self.max_threads})"

    def limiter(self) -> anyio.CapacityLimiter:
        """The thread limiter of the running event loop (made on first use)."""
        try:
            return self._limiter.get()
        except LookupError:
            limiter = anyio.CapacityLimiter(self.max_threads)
            self._limiter.set(limiter)
            return limiter

    def pool(self) -> ThreadPool | None:
        """The worker pool of the running event loop, while the lifespan runs."""
        return self._pool.get()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1000, "reason": ""})
        else:
            raise ValueError(f"WSGI apps serve HTTP only, not {kind!r} scopes")

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The first body message is usually there already (a GET's empty body, a small POST):
        # take it here, saving the worker thread a trip back to the event loop. Not when the
        # client waits for "100 Continue": that is sent only once the app reads the body.
        first = None if _expects_continue(scope["headers"]) else await receive()
        token = anyio.lowlevel.current_token()
        environ = build_environ(scope, WSGIInput(receive, first, token))
        request = _Request(self.app, scope, environ, send, token)
        pool = self._pool.get()
        try:
            if pool is not None and not pool.closed:
                await pool.run(request.run)
            else:
                await anyio.to_thread.run_sync(
                    request.run, limiter=self.limiter(), abandon_on_cancel=True
                )
        except InvalidResponse as error:
            error_log.error(
                "WSGI app gave an invalid response to %s %s: %s; answering 500",
                scope["method"],
                scope["path"],
                error,
            )
            if not request.head_sent:
                await _answer_500(send)
                return
            raise
        await request.finish()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """WSGI has no lifespan: answer at once; meanwhile host the worker pool."""
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        async with anyio.create_task_group() as group:
            pool = ThreadPool(group, self.limiter())
            self._pool.set(pool)
            await send({"type": "lifespan.startup.complete"})
            try:
                while (await receive())["type"] != "lifespan.shutdown":
                    pass
            finally:
                pool.close()
                self._pool.set(None)
                group.cancel_scope.cancel()  # a _grow task still waiting
        await send({"type": "lifespan.shutdown.complete"})
