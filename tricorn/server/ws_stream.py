"""One WebSocket <-> one ASGI app instance, over HTTP/1.1 (Upgrade) or HTTP/2 (RFC 8441).

The connection feeds the bytes that arrive for the WebSocket (the socket after the 101, or
the stream's DATA) with ``feed_data``; the stream parses them, answers pings and closes, and
queues whole messages for the app's ``receive``. ``feed_data`` never writes: the answers it
produces (pongs, the close reply) are written by the stream's own ``_answer`` task, because on
HTTP/2 a write may wait for a WINDOW_UPDATE that only the connection's reader can see.

The connection stops feeding while the app has more than ``max_body_buffer`` bytes of unread
messages or while that much of our output is waiting for the peer, so an app that does not
receive, or a peer that pings and never reads, stops the server reading. What the app sends
is written through ``WebSocketOwner.ws_write``, which returns once the bytes are on their way
(socket or flow-control window). One lock per stream keeps frames in order.

A protocol error (a bad frame, a broken limit) that comes after valid messages in the same
read does not cut them off: the messages go to the app first, and the close frame with the
error's code is sent once the app has taken them all and asks for more (``receive``), or
closes, or returns, or ``ws_close_timeout`` after the error at the latest. What the app sent in
reply meanwhile goes out before the close frame. This is deterministic: it depends on what
the app does, not on how the bytes were chunked or on task scheduling.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from typing import Any, Protocol

import anyio
import sniffio

from tricorn.constants import ERROR_LOGGER, WSCloseCode
from tricorn.errors import ClientDisconnected, LocalProtocolError
from tricorn.protocols.events import ConnectionClosed, Event, Headers, ProtocolError, Request
from tricorn.protocols.websocket import (
    CloseReceived,
    HandshakeError,
    Message,
    PongReceived,
    WebSocketProtocol,
    WebSocketRequestInfo,
    WebSocketState,
    accept_headers,
)
from tricorn.server import access_log as outcomes
from tricorn.server.asgi_types import ASGI3App, Scope
from tricorn.server.asgi_types import Message as ASGIMessage
from tricorn.server.http_stream import AppStream, ASGIMessageError, StreamOwner, _check_headers
from tricorn.server.state import TASK_NAME, ServerState, WriteLock

error_log = logging.getLogger(ERROR_LOGGER)

#: Frames from this size on go to ``ws_write_chunks`` as they are (header, payload), where
#: the connection has it: one gathering write instead of a copy of the payload behind its
#: header. Smaller ones are joined: a join of a few hundred bytes costs less than the
#: gathering.
GATHER_WRITE_MIN = 4096

GOING_AWAY = 1001
ABNORMAL_CLOSURE = WSCloseCode.ABNORMAL_CLOSURE
INTERNAL_ERROR = WSCloseCode.INTERNAL_ERROR


class _Wakeup:
    """Where the app's ``receive`` waits for the connection to feed it (one waiter at a time).

    The same as waiting on a fresh ``anyio.Event`` each time (a wake with nobody waiting is
    lost; the waiter checks its condition before waiting), for a fraction of the cost: an
    echo waits once per message, and anyio's event (the backend looked up, then an
    ``asyncio.Event`` with its own future and deque, or a ``trio.Event``) took about a tenth
    of the server's time echoing 64 B messages on asyncio. Here it is one future on asyncio,
    and trio's own park and reschedule on trio. Cancellation is the backend's, as for any
    wait.
    """

    __slots__ = ("_future", "_loop", "_task", "_trio")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._future: asyncio.Future[None] | None = None
        self._trio: Any = None  # trio.lowlevel, once known to run on trio
        self._task: Any = None  # the trio task parked in wait()

    async def wait(self) -> None:
        loop = self._loop
        if loop is None:
            if self._trio is None and sniffio.current_async_library() == "trio":
                # Imported only here: importing trio reads as "the app uses trio" (backends).
                import trio

                self._trio = trio.lowlevel
            if self._trio is not None:
                await self._trio_wait()
                return
            loop = self._loop = asyncio.get_running_loop()
        future = self._future = loop.create_future()
        try:
            await future
        finally:
            self._future = None

    async def _trio_wait(self) -> None:
        lowlevel = self._trio
        self._task = lowlevel.current_task()

        def abort(_: object) -> Any:
            self._task = None
            return lowlevel.Abort.SUCCEEDED

        await lowlevel.wait_task_rescheduled(abort)

    def wake(self) -> None:
        future = self._future
        if future is not None:
            if not future.done():
                future.set_result(None)
            return
        task = self._task
        if task is not None:
            self._task = None
            self._trio.reschedule(task)


class _Handshake(enum.Enum):
    """Where the handshake is: waiting for the app, or how the app answered it."""

    PENDING = "pending"
    #: ``websocket.accept``: the handshake's answer is out (``ws_accept``), frames follow.
    ACCEPTED = "accepted"
    #: A denial response is on its way (``ws_decline`` told the connection).
    DECLINED = "declined"
    #: The denial response's head is set (``websocket.http.response.start``, or 403/500).
    DENYING = "denying"


#: The answers that end the WebSocket before it opens: the app hears the disconnect.
_DECLINING = (_Handshake.DECLINED, _Handshake.DENYING)


class WebSocketOwner(StreamOwner, Protocol):
    """What a ``WSStream`` needs from its connection, beyond ``StreamOwner``."""

    async def ws_accept(self, stream_id: int, status: int, headers: Headers) -> None:
        """Send the handshake answer (101 on HTTP/1.1, 200 on HTTP/2); frames follow."""

    async def ws_decline(self, stream_id: int) -> None:
        """The app answers the handshake with a plain HTTP response (send_response next)."""

    async def ws_write(self, stream_id: int, data: bytes) -> None:
        """Write WebSocket frame bytes."""

    async def ws_finish(self, stream_id: int) -> None:
        """The WebSocket is closed: end the stream or the connection."""


class ChunkWriter(Protocol):
    """``ws_write_chunks``, which a ``WebSocketOwner`` may also have (HTTP/1.1 does)."""

    async def __call__(self, stream_id: int, chunks: list[bytes]) -> None:
        """Write ``b"".join(chunks)``, gathered in one write where the socket can."""


class WSStream(AppStream[WebSocketOwner]):
    """Runs the ASGI app for one WebSocket and translates its messages."""

    def __init__(
        self,
        owner: WebSocketOwner,
        request: Request,
        info: WebSocketRequestInfo,
        scope: Scope,
        app: ASGI3App,
        server_state: ServerState,
    ) -> None:
        super().__init__(owner, request, scope, app, server_state)
        config = server_state.config
        self._write_chunks: ChunkWriter | None = getattr(owner, "ws_write_chunks", None)
        self.info = info
        self.protocol: WebSocketProtocol | None = None
        self._connect_delivered = False
        self._handshake = _Handshake.PENDING
        self._closed_by_app = False
        self._finished = False
        self._shutting_down = False
        self._close_code: int | None = None
        self._close_reason = ""
        # A protocol error waiting for the app to take the messages that came before it.
        self._failure: int | None = None
        self._failure_due = anyio.Event()
        self._messages: deque[str | bytes] = deque()
        self._buffered = 0
        self._unacknowledged = 0
        self._limit = config.max_body_buffer
        self._pending_status = 0
        self._pending_headers: Headers | None = None
        self._wakeup = _Wakeup()
        self._output = anyio.Event()
        # Uncontended, taking the lock does not yield: the write under it does when it must
        # wait (on both backends), and a yield per message cost 15-40% of the echo rate.
        self._write_lock = WriteLock()
        self._peer_closed = anyio.Event()
        self._pong = anyio.Event()
        self._compression = config.ws_compression
        self._max_message_size = config.ws_max_message_size
        self._max_fragments = config.ws_max_fragments
        self._compression_level = config.ws_compression_level
        # For the access log line written when the session ends (besides AppStream's:
        # _status is the handshake answer's (101/200) or the denial's, _outcome what ended
        # it if not a clean close).
        self._first_close: int | None = None  # the first close frame's code, either side's
        self._messages_in = 0
        self._messages_out = 0

    # --- fed by the connection -----------------------------------------------------

    @property
    def buffered_size(self) -> int:
        """Bytes of received messages the app has not taken yet."""
        return self._buffered

    async def feed_data(self, data: bytes) -> None:
        """Bytes that arrived for this WebSocket; ``b""`` when the transport ended."""
        protocol = self.protocol
        if protocol is None or protocol.closed or protocol.state is WebSocketState.FAILING:
            if not data:
                if self._failure is not None:
                    self._fail_now()
                self._peer_gone(ABNORMAL_CLOSURE, "")
            return
        self._handle(protocol.receive_data(data))
        self._unacknowledged += len(data)
        self._maybe_acknowledge()
        if protocol.pending_output_size or protocol.closed or self._failure is not None:
            self._output.set()  # the _answer task writes pongs and the close reply

    def feed_disconnect(self) -> None:
        self._peer_gone(ABNORMAL_CLOSURE, "")

    def begin_shutdown(self) -> None:
        """The server is shutting down: close an open WebSocket with 1001 (Going Away).

        The app's ``receive`` returns ``websocket.disconnect`` with code 1001 and its sends
        raise ``ClientDisconnected``; the close frame goes out through the ``_answer`` task
        and the stream ends when the peer answers it (or ``ws_close_timeout`` after the app
        returns). A handshake the app has not answered yet is closed right after its accept.
        """
        self._shutting_down = True
        protocol = self.protocol
        if self._failure is not None:
            self._fail_now()  # closing anyway: with the protocol error's code
            return
        if protocol is None or self._close_code is not None or self._closed_by_app:
            return
        protocol.close(GOING_AWAY, "server shutting down")
        self._ended(outcomes.SHUTDOWN, GOING_AWAY)
        self._close_code = GOING_AWAY
        self._close_reason = "server shutting down"
        self._output.set()
        self._wake()

    def _handle(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, Message):
                self._messages_in += 1
                if (metrics := self.server_state.metrics) is not None:
                    metrics.ws_messages_received += 1
                self._messages.append(event.data)
                self._buffered += len(event.data)
            elif isinstance(event, PongReceived):
                self._pong.set()
            elif isinstance(event, CloseReceived):
                self._peer_gone(event.code, event.reason)
            elif isinstance(event, ProtocolError):
                error_log.info("WebSocket closed (%s): %s", event.error_code, event.message)
                if (metrics := self.server_state.metrics) is not None:
                    metrics.websocket_error(event.error_code)
                code = event.error_code or ABNORMAL_CLOSURE
                self._ended(outcomes.PROTOCOL_ERROR, code)
                if self.protocol is not None and self.protocol.state is WebSocketState.FAILING:
                    self._failure = code
                    if not self._messages:
                        self._fail_now()  # nothing for the app to take first
                else:
                    self._peer_gone(code, "")
            elif isinstance(event, ConnectionClosed):
                self._peer_gone(ABNORMAL_CLOSURE, "")
        self._wake()

    def _fail_now(self) -> None:
        """Queue the close frame of a pending protocol error; the ``_answer`` task sends it."""
        code, self._failure = self._failure, None
        if code is None:
            return
        if self.protocol is not None:
            self.protocol.close(None)  # FAILING -> CLOSED: the frame carries the error's code
        self._failure_due.set()
        self._output.set()
        self._peer_gone(code, "")

    def _ended(self, outcome: str | None, code: int | None) -> None:
        """Note why and with which close code the session ends (the first of each counts)."""
        self._cut(outcome)
        if self._first_close is None:
            self._first_close = code

    def _peer_gone(self, code: int, reason: str) -> None:
        self._ended(outcomes.CLIENT_GONE if code == ABNORMAL_CLOSURE else None, code)
        if self._close_code is None:
            self._close_code = code
            self._close_reason = reason
        self._peer_closed.set()
        self._wake()

    def _maybe_acknowledge(self) -> None:
        """Let the connection read (HTTP/1.1) or reopen the window (HTTP/2) for what we took.

        Held back while the app has more than ``max_body_buffer`` bytes of messages to take or
        while that much of our output (pongs included) waits for the peer to read.
        """
        protocol = self.protocol
        if (
            self._unacknowledged
            and self._buffered <= self._limit
            and (protocol is None or protocol.pending_output_size < self._limit)
        ):
            size, self._unacknowledged = self._unacknowledged, 0
            self._owner.body_consumed(self.stream_id, size)

    def _wake(self) -> None:
        self._wakeup.wake()

    async def _flush(self) -> None:
        if self.protocol is None:
            return
        async with self._write_lock:
            data = self.protocol.data_to_send()
            if data:
                self._bytes_sent += len(data)
                try:
                    await self._owner.ws_write(self.stream_id, data)
                except ClientDisconnected:
                    self._peer_gone(ABNORMAL_CLOSURE, "")

    async def _answer(self) -> None:
        """Write what receiving produced (pongs, the close reply); end the stream once closed."""
        while True:
            await self._output.wait()
            self._output = anyio.Event()
            if self._failure is not None:
                # Messages from before a protocol error wait for the app: give it until it
                # has taken them (receive() calls _fail_now), bounded by ws_close_timeout.
                with anyio.move_on_after(self.server_state.config.ws_close_timeout):
                    await self._failure_due.wait()
                self._fail_now()
            await self._flush()
            self._maybe_acknowledge()
            if self.protocol is not None and self.protocol.closed:
                await self._finish()
                return

    async def _finish(self) -> None:
        """End the stream (or connection) after the frames already queued have gone."""
        if self._finished:
            return
        self._finished = True
        # Shielded: whichever task got here first (the app's close or the _answer task) must
        # end the stream even when the app returning cancels the other one meanwhile.
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(self.server_state.config.ws_close_timeout):
                async with self._write_lock:
                    await self._owner.ws_finish(self.stream_id)
                    return
            await self._owner.abort(self.stream_id)  # the peer stopped reading: give up

    # --- running the app -----------------------------------------------------------

    async def run(self) -> None:
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._keepalive, group.cancel_scope, name=TASK_NAME)
                group.start_soon(self._answer, name=TASK_NAME)
                await self._run_app()
                group.cancel_scope.cancel()
        except anyio.get_cancelled_exc_class():
            shutdown = self.server_state.shutting_down
            self._ended(outcomes.SHUTDOWN if shutdown else outcomes.CANCELLED, None)
            raise
        finally:
            self._write_log()
            self._owner.stream_done(self.stream_id)

    def _write_log(self) -> None:
        access_log = self.server_state.access_log
        if access_log is None:
            return
        if self._outcome is None and self._status == 0:
            self._outcome = outcomes.CLIENT_GONE  # the handshake was never answered
        access_log.log(
            self.scope,
            target=self.request.target,
            method=self.request.method.decode("ascii", "replace"),
            status=self._status,
            size=self._bytes_sent,
            duration=self.server_state.clock() - self.start_time,
            outcome=self._outcome or outcomes.OK,
            close_code=self._first_close if self._handshake is _Handshake.ACCEPTED else None,
            messages_in=self._messages_in,
            messages_out=self._messages_out,
        )

    async def _run_app(self) -> None:
        try:
            await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except Exception as error:
            self._ended(outcomes.APP_ERROR, None)
            if isinstance(error, ASGIMessageError):
                error_log.error("ASGI app sent an invalid WebSocket message: %s", error)
            else:
                error_log.error(
                    "Exception in ASGI app (WebSocket %s)", self.scope["path"], exc_info=error
                )
            if self._handshake is _Handshake.ACCEPTED:
                await self._close(INTERNAL_ERROR, "")
            elif self._handshake is not _Handshake.DENYING:
                await self._deny(500, b"Internal Server Error")
            else:
                await self._owner.abort(self.stream_id)
            return
        if self._handshake is _Handshake.PENDING:
            await self._deny(403, b"Forbidden")  # the app returned without accepting
        elif self._handshake is _Handshake.ACCEPTED:
            await self._close(1000, "")

    async def _keepalive(self, scope: anyio.CancelScope) -> None:
        config = self.server_state.config
        if config.ws_ping_interval <= 0:
            return
        while True:
            await anyio.sleep(config.ws_ping_interval)
            protocol = self.protocol
            if (
                protocol is None
                or protocol.closed
                or self._close_code is not None
                or self._failure is not None
            ):
                if self._handshake is _Handshake.PENDING:
                    continue  # the handshake waits for the app
                return
            self._pong = anyio.Event()
            protocol.ping(b"tricorn")
            await self._flush()
            with anyio.move_on_after(config.ws_ping_timeout) as timeout:
                await self._pong.wait()
            if timeout.cancelled_caught:
                error_log.info("WebSocket keepalive: no pong within %g s", config.ws_ping_timeout)
                self._ended(outcomes.TIMEOUT, INTERNAL_ERROR)
                self._peer_gone(ABNORMAL_CLOSURE, "")
                await self._close(INTERNAL_ERROR, "keepalive ping timeout")
                return

    async def _close(self, code: int, reason: str) -> None:
        protocol = self.protocol
        if protocol is None:
            return
        if self._failure is not None:
            self._fail_now()  # the close says what the peer did wrong, not the app's code
        self._ended(None, code)
        protocol.close(code, reason)
        await self._flush()
        if not protocol.closed:
            # Wait (bounded) for the peer's close frame, then close the transport (RFC 6455 7.1.1).
            with anyio.move_on_after(self.server_state.config.ws_close_timeout):
                await self._peer_closed.wait()
        await self._finish()

    async def _deny(self, status: int, body: bytes) -> None:
        if self._handshake is _Handshake.PENDING:
            self._handshake = _Handshake.DECLINED
            await self._owner.ws_decline(self.stream_id)
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            *self.server_state.default_headers(),
        ]
        self._handshake = _Handshake.DENYING
        self._status = status
        await self._owner.send_response(self.stream_id, status, headers, body, True)
        self._bytes_sent += len(body)

    async def receive(self) -> ASGIMessage:
        """ASGI ``receive``: connect, then messages, then disconnect."""
        if not self._connect_delivered:
            self._connect_delivered = True
            return {"type": "websocket.connect"}
        while True:
            if self._messages:
                data = self._messages.popleft()
                self._buffered -= len(data)
                self._maybe_acknowledge()
                if isinstance(data, str):
                    return {"type": "websocket.receive", "text": data}
                return {"type": "websocket.receive", "bytes": data}
            if self._failure is not None:
                self._fail_now()  # the app took what came before the protocol error
            if self._close_code is not None or self._handshake in _DECLINING or self._closed_by_app:
                return {
                    "type": "websocket.disconnect",
                    "code": self._close_code if self._close_code is not None else 1000,
                    "reason": self._close_reason,
                }
            await self._wakeup.wait()

    async def send(self, message: ASGIMessage) -> None:
        """ASGI ``send``: accept, send, close, or the denial response."""
        kind = message.get("type")
        if kind == "websocket.send":
            await self._send_message(message)
        elif kind == "websocket.accept":
            await self._accept(message)
        elif kind == "websocket.close":
            code = message.get("code", 1000)
            reason = message.get("reason") or ""
            if not isinstance(code, int) or not isinstance(reason, str):
                raise ASGIMessageError(
                    f"websocket.close code/reason of the wrong type: {message!r}"
                )
            if self._handshake is _Handshake.ACCEPTED:
                self._closed_by_app = True
                try:
                    await self._close(code, reason)
                except LocalProtocolError as error:
                    raise ASGIMessageError(f"websocket.close: {error}") from None
            elif self._handshake is _Handshake.PENDING:
                await self._deny(403, b"Forbidden")
        elif kind == "websocket.http.response.start":
            await self._denial_start(message)
        elif kind == "websocket.http.response.body":
            await self._denial_body(message)
        else:
            raise ASGIMessageError(f"unknown WebSocket message type {kind!r}")

    async def _send_message(self, message: ASGIMessage) -> None:
        if self._handshake is not _Handshake.ACCEPTED:
            raise ASGIMessageError("websocket.send before websocket.accept")
        protocol = self.protocol
        assert protocol is not None
        if self._close_code is not None or protocol.closed or self._closed_by_app:
            raise ClientDisconnected(f"WebSocket {self.stream_id} is closed")
        text = message.get("text")
        data = message.get("bytes")
        payload: str | bytes
        if text is not None:
            if not isinstance(text, str):
                raise ASGIMessageError("websocket.send text must be a str")
            payload = text
        elif data is not None:
            if not isinstance(data, bytes | bytearray | memoryview):
                raise ASGIMessageError("websocket.send bytes must be bytes")
            payload = bytes(data)
        else:
            raise ASGIMessageError("websocket.send needs text or bytes")
        lock = self._write_lock
        if not lock.acquire_nowait():  # uncontended (the rule): no coroutine call for it
            await lock.__aenter__()
        try:
            try:
                chunks = protocol.send_message_now(payload)
            except LocalProtocolError:
                # Closed while we waited for the lock (the peer's close, a keepalive timeout).
                raise ClientDisconnected(f"WebSocket {self.stream_id} is closed") from None
            size = sum(map(len, chunks))
            self._bytes_sent += size
            if size >= GATHER_WRITE_MIN and self._write_chunks is not None:
                await self._write_chunks(self.stream_id, chunks)
            else:
                await self._owner.ws_write(self.stream_id, b"".join(chunks))
            self._messages_out += 1
        finally:
            lock.release()
        if (metrics := self.server_state.metrics) is not None:
            metrics.ws_messages_sent += 1

    async def _accept(self, message: ASGIMessage) -> None:
        if self._handshake is not _Handshake.PENDING:
            raise ASGIMessageError("websocket.accept sent twice or after a denial response")
        subprotocol = message.get("subprotocol")
        if subprotocol is not None and not isinstance(subprotocol, str):
            raise ASGIMessageError("websocket.accept subprotocol must be a str")
        extra = _check_headers(message.get("headers", ()))
        try:
            answer = accept_headers(self.info, subprotocol, extra, compression=self._compression)
        except LocalProtocolError as error:
            raise ASGIMessageError(f"websocket.accept: {error}") from None
        self.protocol = WebSocketProtocol(
            deflate=answer.deflate,
            max_message_size=self._max_message_size,
            max_fragments=self._max_fragments,
            compression_level=self._compression_level,
        )
        self._handshake = _Handshake.ACCEPTED
        self._status = answer.status
        await self._owner.ws_accept(self.stream_id, answer.status, answer.headers)
        if self._shutting_down:
            self.begin_shutdown()

    async def _denial_start(self, message: ASGIMessage) -> None:
        if self._handshake is _Handshake.ACCEPTED or self._handshake is _Handshake.DENYING:
            raise ASGIMessageError("websocket.http.response.start after accept or twice")
        status = message.get("status")
        if not isinstance(status, int) or not 100 <= status <= 999:
            raise ASGIMessageError(f"websocket.http.response.start status: {status!r}")
        self._pending_status = status
        self._status = status
        self._pending_headers = [
            *_check_headers(message.get("headers", ())),
            *self.server_state.default_headers(),
        ]
        before, self._handshake = self._handshake, _Handshake.DENYING
        if before is _Handshake.PENDING:
            await self._owner.ws_decline(self.stream_id)

    async def _denial_body(self, message: ASGIMessage) -> None:
        if self._handshake is not _Handshake.DENYING:
            raise ASGIMessageError("websocket.http.response.body before its start message")
        body = message.get("body", b"")
        if not isinstance(body, bytes | bytearray | memoryview):
            raise ASGIMessageError("websocket.http.response.body body must be bytes")
        end = not message.get("more_body", False)
        headers, self._pending_headers = self._pending_headers, None
        if headers is not None:
            await self._owner.send_response(
                self.stream_id, self._pending_status, headers, bytes(body), end
            )
        else:
            await self._owner.send_body(self.stream_id, bytes(body), end)
        self._bytes_sent += len(body)


def websocket_scope(http_scope: Scope, info: WebSocketRequestInfo) -> Scope:
    """The ASGI WebSocket scope from the HTTP scope of the handshake request."""
    scope = dict(http_scope)
    scope["type"] = "websocket"
    scope["scheme"] = "wss" if http_scope["scheme"] == "https" else "ws"
    scope["subprotocols"] = list(info.subprotocols)
    del scope["method"]
    extensions = dict(http_scope.get("extensions") or {})
    extensions["websocket.http.response"] = {}
    for name in ("http.response.trailers", "http.response.push", "http.response.early_hint"):
        extensions.pop(name, None)
    scope["extensions"] = extensions
    return scope


__all__ = ["HandshakeError", "WSStream", "WebSocketOwner", "websocket_scope"]
