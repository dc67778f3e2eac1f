"""One HTTP request <-> one ASGI app instance: the scope, ``receive`` and ``send``.

The stream is protocol-neutral: it talks to its connection through ``StreamOwner`` (HTTP/1.1
and HTTP/2 connections both implement it), so the ASGI rules live here once.
"""

from __future__ import annotations

import io
import logging
import math
import os
from collections import deque
from collections.abc import Iterable
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import unquote

import anyio
import anyio.to_thread

from tricorn.constants import ERROR_LOGGER
from tricorn.errors import ClientDisconnected, TricornError
from tricorn.protocols.events import Headers, Request
from tricorn.server import access_log as outcomes
from tricorn.server.access_log import AccessLogger
from tricorn.server.asgi_types import ASGI3App, Message, Scope
from tricorn.server.backends import app_error_headline
from tricorn.server.sendfile import FileCutShort
from tricorn.server.state import ServerState

error_log = logging.getLogger(ERROR_LOGGER)

#: Bytes of a ``http.response.pathsend`` file read (in a worker thread) per body message:
#: 1 MiB measured 0.51-0.82x of sending from memory, 256 KiB 0.45-0.68x (RESULTS.md).
PATHSEND_CHUNK = 1024 * 1024

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}


class ASGIMessageError(TricornError):
    """The app sent a message that breaks the ASGI HTTP spec."""


class StreamOwner(Protocol):
    """What an ``HTTPStream`` needs from its connection."""

    async def send_response(
        self, stream_id: int, status: int, headers: Headers, body: bytes, end: bool
    ) -> None:
        """Send the response head, the first body bytes and maybe the end, in one write."""

    async def send_body(self, stream_id: int, body: bytes, end: bool) -> None:
        """Send more body bytes; return once they fit the transport (backpressure)."""

    async def send_informational(self, stream_id: int, status: int, headers: Headers) -> None:
        """Send a 1xx response (103 Early Hints)."""

    #: Whether ``send_file`` can send file bodies itself (HTTP/1.1 over a plain socket).
    sends_files: bool

    async def send_file(self, stream_id: int, fd: int, offset: int, count: int) -> int:
        """Send ``count`` bytes of the open file ``fd`` from ``offset`` as body bytes, zero
        copy (``os.sendfile``), after the head; return how many were sent (fewer when it
        stopped working: the stream sends the rest). Raises ``ClientDisconnected``."""

    async def send_trailers(self, stream_id: int, headers: Headers) -> None:
        """Send trailers, ending the response (only where the trailers extension is offered)."""

    async def push(self, stream_id: int, path: bytes, headers: Headers) -> None:
        """Server push (only where the push extension is offered)."""

    async def request_body(self, stream_id: int) -> None:
        """The app waits for the request body: send ``100 Continue`` if the client asked."""

    def body_consumed(self, stream_id: int, size: int) -> None:
        """The app took ``size`` buffered body bytes: the connection may read more."""

    def body_deadline(self, stream_id: int, deadline: float) -> None:
        """The app waits for body bytes: call ``check_body_pace`` once ``deadline`` passes
        (or earlier: it answers with the next deadline)."""

    def body_blocked(self, stream_id: int) -> bool:
        """True while the server itself keeps the client from sending more of the body (an
        HTTP/2 receive window that is closed): that waiting does not count against it."""

    async def body_timed_out(self, stream_id: int, reason: str) -> bool:
        """The client sent the request body too slowly (``reason``): log it, answer ``408`` if
        no response has started (HTTP/1.1; return True then), close the connection or reset
        the stream."""

    async def abort(self, stream_id: int) -> None:
        """The response cannot be completed: close the connection or reset the stream."""

    def stream_done(self, stream_id: int) -> None:
        """The app instance ended; the connection forgets the stream."""


OwnerT = TypeVar("OwnerT", bound=StreamOwner)


class AppStream(Generic[OwnerT]):
    """What every stream that runs an app (``HTTPStream``, ``WSStream``) begins with: the
    facts of the request it serves, set once, and what its access line will say.

    The connection (``owner``, which the stream calls) finds a stream by ``stream_id``;
    ``start_time`` is when it began (the access line's duration); ``_status``,
    ``_bytes_sent`` and ``_outcome`` are the line's status, size and what cut it short."""

    __slots__ = (
        "_bytes_sent",
        "_outcome",
        "_owner",
        "_status",
        "app",
        "request",
        "scope",
        "server_state",
        "start_time",
        "stream_id",
    )

    def __init__(
        self,
        owner: OwnerT,
        request: Request,
        scope: Scope,
        app: ASGI3App,
        server_state: ServerState,
    ) -> None:
        self._owner = owner
        self.request = request
        self.stream_id = request.stream_id
        self.scope = scope
        self.app = app
        self.server_state = server_state
        self.start_time = server_state.clock()
        self._status = 0
        self._bytes_sent = 0
        self._outcome: str | None = None

    def _cut(self, outcome: str | None) -> None:
        """Note what cut the stream short (the first cause is the one logged)."""
        if self._outcome is None:
            self._outcome = outcome


def build_scope(
    request: Request,
    *,
    scheme: str,
    client: tuple[str, int] | None,
    server: tuple[str, int] | None,
    root_path: str,
    state: dict[str, Any],
    extensions: dict[str, Any],
) -> Scope:
    """The ASGI HTTP scope for a request head (ASGI HTTP spec 2.4)."""
    target = request.target
    raw_path, _, query_string = target.partition(b"?")
    if raw_path[:1] != b"/" and raw_path != b"*":  # a slice: startswith costs 3x as much
        # absolute-form (RFC 9112 3.2.2): keep only the path of "http://host/path".
        after_scheme = raw_path.partition(b"://")[2]
        slash = after_scheme.find(b"/")
        raw_path = after_scheme[slash:] if slash >= 0 else b"/"
    path = raw_path.decode("ascii", "replace")
    if "%" in path:  # unquote's own test, without its call
        path = unquote(path)
    return {
        "type": "http",
        "asgi": ASGI_VERSION,
        "http_version": request.http_version,
        "method": request.method.decode("ascii"),
        # The connection's own (or the PROXY header's), never h2's ``:scheme``: a client
        # must not choose it, and HTTP/1.1 and HTTP/2 through one proxy must agree.
        "scheme": scheme,
        "path": root_path + path,
        "raw_path": root_path.encode() + raw_path if root_path else raw_path,
        "query_string": query_string,
        "root_path": root_path,
        "headers": request.headers,
        "client": client,
        "server": server,
        "state": dict(state),
        "extensions": extensions,
    }


def _check_headers(value: Any) -> Headers:
    # A list or tuple (what apps send) skips the ABC check, a cost per response.
    if type(value) not in (list, tuple) and (
        not isinstance(value, Iterable) or isinstance(value, bytes | str)
    ):
        raise ASGIMessageError(f"response headers must be an iterable of pairs, not {value!r}")
    headers: Headers = []
    for pair in value:
        try:
            name, header_value = pair
        except (TypeError, ValueError):
            raise ASGIMessageError(
                f"response header {pair!r} is not a (name, value) pair"
            ) from None
        if not isinstance(name, bytes) or not isinstance(header_value, bytes):
            raise ASGIMessageError(f"response header {pair!r}: name and value must be bytes")
        headers.append((name.lower(), header_value))
    return headers


def _open_for_pathsend(path: str) -> tuple[io.FileIO, int]:
    """The opened file and its size (run in a worker thread: it may touch the disk)."""
    file = io.FileIO(path, "r")
    try:
        return file, os.fstat(file.fileno()).st_size
    except BaseException:
        file.close()
        raise


def raised_for_disconnect(error: BaseException) -> bool:
    """Whether ``error`` is, or was raised while handling, our ``ClientDisconnected``.

    Frameworks turn the ``OSError`` that ``send`` raises after a disconnect (ASGI 2.4) into
    their own exception (Starlette's ``ClientDisconnect``): that is the app stopping as it
    should, not an app error.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        if isinstance(current, ClientDisconnected):
            return True
        seen.add(id(current))
        if isinstance(current, BaseExceptionGroup):
            # A framework's task group (Litestar's streaming response on anyio) wraps it.
            pending.extend(current.exceptions)
        pending.append(current.__cause__ or current.__context__)
    return False


class HTTPStream(AppStream[StreamOwner]):
    """Runs the ASGI app for one request and translates its messages for the connection."""

    __slots__ = (
        "_access_log",
        "_app_done",
        "_body",
        "_body_complete",
        "_body_idle",
        "_body_received",
        "_body_requested",
        "_body_sent",
        "_body_waited",
        "_closing",
        "_disconnected",
        "_final_body_delivered",
        "_log_held",
        "_logged",
        "_pending_headers",
        "_response_complete",
        "_started",
        "_trailers",
        "_trailers_expected",
        "_wait_started",
        "_wakeup",
        "buffered_body_size",
    )

    def __init__(
        self,
        owner: StreamOwner,
        request: Request,
        scope: Scope,
        app: ASGI3App,
        server_state: ServerState,
        access_log: AccessLogger | None,
    ) -> None:
        super().__init__(owner, request, scope, app, server_state)
        self._access_log = access_log
        self._body: deque[bytes] = deque()
        #: The bytes in ``_body`` (the app has not taken them yet): kept, not summed, as the
        #: connection asks after every read (backpressure, ``max_body_buffer``).
        self.buffered_body_size = 0
        self._body_complete = not request.expects_body
        self._body_requested = False
        # Request-body pacing (body_read_timeout, body_min_rate): the bytes received, the
        # seconds the app has waited for the body, and those since the app last got bytes.
        self._body_received = 0
        self._body_waited = 0.0
        self._body_idle = 0.0
        self._wait_started: float | None = None
        self._disconnected = False
        self._closing = False  # the server shuts down gracefully
        self._final_body_delivered = False
        self._wakeup: anyio.Event | None = None
        self._started = False
        self._trailers_expected = False
        self._trailers: Headers = []
        self._pending_headers: Headers | None = None
        self._response_complete = False
        self._body_sent = False
        # The access log: written once, when the response ends or the app does; _outcome is
        # what cut it short, if something did (first cause wins).
        self._logged = False
        self._log_held = False  # while a body timeout's 408 is being written
        self._app_done = False

    # --- fed by the connection ---------------------------------------------------

    def feed_body(self, data: bytes) -> None:
        if data:
            self._body.append(data)
            self._body_received += len(data)
            self.buffered_body_size += len(data)
            self._wake()

    def feed_end(self) -> None:
        self._body_complete = True
        self._wake()

    def feed_disconnect(self) -> None:
        self._disconnected = True
        self._wake()

    def begin_shutdown(self) -> None:
        """Graceful shutdown: an app that has its whole request body and waits in
        ``receive()`` (an event stream, a long poll: it waits only for the disconnect) gets
        ``http.disconnect`` now, rather than holding the shutdown for ``graceful_timeout``."""
        self._closing = True
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None

    async def _wait(self) -> None:
        self._wakeup = event = anyio.Event()
        await event.wait()

    # --- running the app ---------------------------------------------------------

    async def run(self) -> None:
        try:
            await self.app(self.scope, self.receive, self.send)
        except Exception as error:
            if raised_for_disconnect(error):
                error_log.debug(
                    "stream %d: the app stopped after the client went away", self.stream_id
                )
            else:
                await self._app_failed(error)
        except anyio.get_cancelled_exc_class():
            # Cancelled (the graceful_timeout ran out, or its connection was torn down):
            # that, not a disconnect the teardown may have fed first, is what ended it.
            self._cut(outcomes.SHUTDOWN if self.server_state.shutting_down else outcomes.CANCELLED)
            raise
        else:
            if self._disconnected and not self._response_complete:
                # The client left first: stopping was the right thing for the app to do.
                error_log.debug("stream %d: the app returned after the client left", self.stream_id)
            elif not self._started:
                await self._app_failed(None)
            elif not self._response_complete:
                error_log.error(
                    "ASGI app returned before finishing the response to %s %s",
                    self.scope["method"],
                    self.scope["path"],
                )
                self._cut(outcomes.APP_ERROR)
                await self._owner.abort(self.stream_id)
        finally:
            if self._closing and self._disconnected and not self._response_complete:
                # It stopped on the shutdown's disconnect: end its response here.
                with anyio.CancelScope(shield=True):
                    await self._owner.abort(self.stream_id)
            self._app_done = True
            if not self._logged and not self._log_held:
                self._log_unfinished()
            self._owner.stream_done(self.stream_id)

    def _log_unfinished(self) -> None:
        """The access log line of a response that did not go out complete."""
        if self._outcome is None:
            self._outcome = outcomes.CLIENT_GONE if self._disconnected else outcomes.CANCELLED
        self._write_log()

    def _write_log(self) -> None:
        """The access line and the request's count (once: both say the same outcome)."""
        self._logged = True
        if (metrics := self.server_state.metrics) is not None:
            if self._outcome is None:
                metrics.response_done(self.request, self._status, self.start_time)
            else:
                metrics.response_cut(
                    self.scope, self._sent_status(), self._outcome, self.start_time
                )
        if self._access_log is not None:
            self._access_log.log(
                self.scope,
                target=self.request.target,
                status=self._status if self._started and self._pending_headers is None else 0,
                size=self._bytes_sent,
                duration=self.server_state.clock() - self.start_time,
                outcome=self._outcome or outcomes.OK,
            )

    def _sent_status(self) -> int:
        """The status once its head is on the wire (0: no response was sent)."""
        return self._status if self._started and self._pending_headers is None else 0

    def rejected(self, status: int | None) -> None:
        """The protocol refused the rest of this request (a body over
        max_request_body_size, a bad chunk) and answered ``status`` itself (None: the
        response had started, the connection is cut): the line says so, not client_gone."""
        self._cut(outcomes.REJECTED)
        if status is not None and not self._sent_status():
            self._started = True
            self._pending_headers = None
            self._status = status
        self.feed_disconnect()

    async def _app_failed(self, error: Exception | None) -> None:
        # A client already gone cut the response first: the app's error came after.
        self._cut(outcomes.CLIENT_GONE if self._disconnected else outcomes.APP_ERROR)
        if error is None:
            error_log.error(
                "ASGI app returned without sending a response to %s %s",
                self.scope["method"],
                self.scope["path"],
            )
        elif isinstance(error, ASGIMessageError):
            error_log.error("ASGI app sent an invalid message: %s", error)
        else:
            headline = f"Exception in ASGI app ({self.scope['method']} {self.scope['path']})"
            error_log.error(app_error_headline(headline, error), exc_info=error)
        if self._disconnected or self._response_complete:
            # A whole response went out (Starlette answers its own 500, then re-raises for
            # the log): the connection is in step, and keeps serving.
            return
        if self._started and self._pending_headers is None:
            await self._owner.abort(self.stream_id)  # the head is on the wire: too late for a 500
            return
        self._started = True
        self._status = 500
        body = b"Internal Server Error"
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            *self.server_state.default_headers(),
        ]
        try:
            await self._owner.send_response(self.stream_id, 500, headers, body, True)
        except ClientDisconnected:
            return
        self._bytes_sent = len(body)
        self._finish()

    async def receive(self) -> Message:
        """ASGI ``receive``: request body chunks, then ``http.disconnect``."""
        if not self._body_requested:
            self._body_requested = True
            if not self._body_complete and not self._body and not self._disconnected:
                await self._owner.request_body(self.stream_id)
        while True:
            if self._body:
                data = self._body[0] if len(self._body) == 1 else b"".join(self._body)
                self._body.clear()
                self.buffered_body_size = 0
                self._owner.body_consumed(self.stream_id, len(data))
                self._body_idle = 0.0
                more = not self._body_complete
                if not more:
                    self._final_body_delivered = True
                return {"type": "http.request", "body": data, "more_body": more}
            if self._disconnected or self._response_complete:
                return {"type": "http.disconnect"}
            if self._body_complete and not self._final_body_delivered:
                self._final_body_delivered = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if self._body_complete:
                if self._closing:
                    self._cut(outcomes.SHUTDOWN)
                    self._disconnected = True  # its sends raise from now on, as after a leave
                    return {"type": "http.disconnect"}
                await self._wait()
            else:
                await self._wait_for_body()

    async def _wait_for_body(self) -> None:
        """Wait for more of the request body; the connection enforces ``body_read_timeout``
        and ``body_min_rate`` meanwhile (``check_body_pace``).

        Only this time counts against the client: the app is waiting and the server is
        reading. While the app does not call ``receive`` the server may have stopped reading
        on purpose (backpressure), so the client is not to blame for what it could not send.
        The connection's reader already waits with a deadline; this only lowers it when
        need be, which costs far less than a cancel scope per wait.
        """
        config = self.server_state.config
        if not config.body_read_timeout and not config.body_min_rate:
            await self._wait()
            return
        self._wait_started = anyio.current_time()
        self._owner.body_deadline(self.stream_id, self._pace_deadline())
        try:
            await self._wait()
        finally:
            started = self._wait_started
            if started is not None:  # else the connection already counted this wait
                self._wait_started = None
                elapsed = anyio.current_time() - started
                self._body_waited += elapsed
                self._body_idle += elapsed

    def _pace_deadline(self) -> float:
        """When the waiting app's client breaks a body limit; inf if the app is not waiting
        for body bytes (or about to get them)."""
        started = self._wait_started
        if started is None or (
            self._body or self._body_complete or self._disconnected or self._response_complete
        ):
            return math.inf
        config = self.server_state.config
        timeout = config.body_read_timeout
        rate = config.body_min_rate
        idle_deadline = started + timeout - self._body_idle if timeout else math.inf
        if not rate:
            return idle_deadline
        # Each byte buys 1/rate s of waiting on top of the grace: a connection held for W s
        # of waiting has delivered at least rate * (W - grace) bytes.
        rate_deadline = (
            started + config.body_min_rate_grace + self._body_received / rate - self._body_waited
        )
        return min(idle_deadline, rate_deadline)

    async def check_body_pace(self, now: float) -> float:
        """Called by the connection when a deadline given to ``body_deadline`` has passed:
        end the request if its client broke a body limit. Returns the next deadline (inf
        for none)."""
        deadline = self._pace_deadline()
        started = self._wait_started
        if now < deadline or started is None:
            return deadline
        if self._owner.body_blocked(self.stream_id):
            # Flow control holds the client back (HTTP/2 windows spent on streams whose apps
            # do not read): this wait has not counted so far; start it again.
            self._wait_started = now
            return self._pace_deadline()
        self._wait_started = None
        self._body_waited += now - started
        self._body_idle += now - started
        config = self.server_state.config
        if self._body_idle >= config.body_read_timeout > 0:
            reason = f"no request body bytes for {config.body_read_timeout:g} s (body_read_timeout)"
        else:
            reason = (
                f"request body too slow: {self._body_received} bytes in "
                f"{self._body_waited:.1f} s of waiting (body_min_rate {config.body_min_rate:g} "
                f"bytes/s after {config.body_min_rate_grace:g} s)"
            )
        self._cut(outcomes.TIMEOUT)
        self._disconnected = True  # receive() returns http.disconnect, send() raises
        self._wake()
        # The app may end (on its http.disconnect) while the 408 is written: the access log
        # line waits to say whether it went out.
        self._log_held = True
        answered = False
        try:
            answered = await self._owner.body_timed_out(self.stream_id, reason)
        finally:
            self._log_held = False
            if answered:
                self._started = True
                self._pending_headers = None
                self._status = 408
                self._finish()
            elif self._app_done and not self._logged:
                self._log_unfinished()
        return math.inf

    async def send(self, message: Message) -> None:
        """ASGI ``send``: ``http.response.start`` then ``http.response.body`` messages."""
        if self._disconnected:
            raise ClientDisconnected(f"stream {self.stream_id}: the client has gone away")
        message_type = message.get("type")
        if message_type == "http.response.body":  # the checks here: a coroutine call less
            if not self._started:
                raise ASGIMessageError("http.response.body sent before http.response.start")
            if self._response_complete:
                raise ASGIMessageError("http.response.body sent after the response was complete")
            body = message.get("body", b"")
            if not isinstance(body, bytes | bytearray | memoryview):
                raise ASGIMessageError(
                    f"http.response.body body must be bytes, not {type(body).__name__}"
                )
            await self._send_bytes(bytes(body), bool(message.get("more_body", False)))
        elif message_type == "http.response.start":
            if self._started:
                raise ASGIMessageError("http.response.start sent twice")
            status = message.get("status")
            if not isinstance(status, int) or isinstance(status, bool) or not 200 <= status <= 999:
                raise ASGIMessageError(
                    f"http.response.start status must be an int >= 200: {status!r}"
                )
            headers = _check_headers(message.get("headers", ()))
            headers.extend(self.server_state.default_headers())
            alt_svc = self.server_state.alt_svc  # HTTP/3 on offer: said on the TLS binds
            if alt_svc and self.request.http_version != "3" and "tls" in self.scope["extensions"]:
                headers.extend(alt_svc)
            self._started = True
            self._status = status
            self._pending_headers = headers
            self._trailers_expected = bool(message.get("trailers", False)) and (
                "http.response.trailers" in self.scope["extensions"]
            )
        elif message_type == "http.response.trailers":
            await self._send_trailers(message)
        elif message_type == "http.response.push":
            if "http.response.push" in self.scope["extensions"]:
                path = message.get("path")
                if not isinstance(path, str):
                    raise ASGIMessageError(f"http.response.push path must be a str: {path!r}")
                push_headers = _check_headers(message.get("headers", ()))
                await self._owner.push(self.stream_id, path.encode(), push_headers)
        elif message_type == "http.response.pathsend":
            await self._send_path(message)
        elif message_type == "http.response.early_hint":
            if self._started:
                return
            links = message.get("links", ())
            hints = [(b"link", link) for link in links if isinstance(link, bytes)]
            await self._owner.send_informational(self.stream_id, 103, hints)
        else:
            raise ASGIMessageError(f"unknown message type {message_type!r}")

    async def _send_bytes(self, body: bytes, more_body: bool) -> None:
        body_done = not more_body
        end = body_done and not self._trailers_expected
        try:
            if self._pending_headers is not None:
                headers, self._pending_headers = self._pending_headers, None
                await self._owner.send_response(self.stream_id, self._status, headers, body, end)
            elif body or end:
                await self._owner.send_body(self.stream_id, body, end)
        except ClientDisconnected:
            self._disconnected = True
            raise
        self._bytes_sent += len(body)
        if body_done:
            self._body_sent = True
        if end:
            self._finish()

    async def _send_path(self, message: Message) -> None:
        """``http.response.pathsend``: the file at ``path`` is the whole body;
        ``content-length`` is added when the app gave none.

        Where the connection sends files itself (``sends_files``: HTTP/1.1 on a plain
        socket) the head goes first and then the file with ``os.sendfile``, zero copy.
        Otherwise (TLS, HTTP/2), and for what sendfile leaves unsent, the file is read in
        ``PATHSEND_CHUNK`` pieces off the event loop and sent as body messages are. Both
        wait on the socket's (or the HTTP/2 windows') backpressure."""
        if not self._started or self._body_sent or self._response_complete:
            raise ASGIMessageError(
                "http.response.pathsend must follow http.response.start, as the whole body"
            )
        path = message.get("path")
        if not isinstance(path, str) or not os.path.isabs(path):
            raise ASGIMessageError(f"http.response.pathsend path must be absolute: {path!r}")
        try:
            file, remaining = await anyio.to_thread.run_sync(_open_for_pathsend, path)
        except OSError as error:
            raise ASGIMessageError(
                f"http.response.pathsend cannot open {path!r}: {error.strerror}"
            ) from None
        with file:
            pending = self._pending_headers
            if pending is not None and not any(name == b"content-length" for name, _ in pending):
                pending.append((b"content-length", str(remaining).encode()))
            if self.scope["method"] == "HEAD":
                remaining = 0
            elif remaining > 0 and self._owner.sends_files:
                sent = await self._send_file(file.fileno(), remaining)
                remaining -= sent
                if remaining > 0:
                    file.seek(sent)  # the rest the ordinary way
            while True:
                chunk = (
                    await anyio.to_thread.run_sync(file.read, min(remaining, PATHSEND_CHUNK))
                    if remaining > 0
                    else b""
                )
                remaining = remaining - len(chunk) if chunk else 0
                await self._send_bytes(chunk, more_body=remaining > 0)
                if remaining <= 0:
                    return

    async def _send_file(self, fd: int, size: int) -> int:
        """The head, then the file's bytes through ``send_file``; returns how many it sent."""
        await self._send_bytes(b"", more_body=True)
        try:
            sent = await self._owner.send_file(self.stream_id, fd, 0, size)
        except ClientDisconnected as error:
            self._disconnected = True
            if isinstance(error, FileCutShort):
                self._bytes_sent += error.sent
                error_log.debug(
                    "stream %d: the client left after %d of %d bytes sent with sendfile",
                    self.stream_id,
                    error.sent,
                    size,
                )
                raise ClientDisconnected(str(error)) from None  # the app sees the usual type
            raise
        self._bytes_sent += sent
        if error_log.isEnabledFor(logging.DEBUG):
            error_log.debug(
                "stream %d: %d of %d bytes sent with sendfile", self.stream_id, sent, size
            )
        return sent

    async def _send_trailers(self, message: Message) -> None:
        if not self._trailers_expected or not self._body_sent or self._response_complete:
            raise ASGIMessageError(
                "http.response.trailers sent without trailers=True in the start message, "
                "or before the last body message"
            )
        self._trailers.extend(_check_headers(message.get("headers", ())))
        if message.get("more_trailers", False):
            return
        try:
            await self._owner.send_trailers(self.stream_id, self._trailers)
        except ClientDisconnected:
            self._disconnected = True
            raise
        self._finish()

    def _finish(self) -> None:
        self._response_complete = True
        self._wake()
        if not self._logged:
            self._write_log()
