"""One HTTP/1.1 connection: socket -> ``HTTP11Protocol`` -> ``HTTPStream``s, and back.

One reader task per connection feeds the protocol; each request runs the app in its own
task (``HTTPStream.run``), started in the server's task group (``ServerState.spawn``): an
idle keep-alive connection is then one task and no task group of its own, which is much of
what it costs in memory (docs/memory.md). The reader waits for its requests' tasks before
it closes the socket, as leaving a task group would. The app's ``send`` writes through the
protocol to the socket under a lock, so ``await send()`` returns once the bytes are in the
kernel's buffer: a client that does not read stalls its own app, never the server's memory.
Over a plain socket, ``http.response.pathsend`` files go out with ``os.sendfile``
(``send_file``), under the same lock and the same backpressure.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
from http import HTTPStatus

import anyio
import anyio.lowlevel

from tricorn.constants import ERROR_LOGGER
from tricorn.errors import ClientDisconnected, LocalProtocolError
from tricorn.protocols import events
from tricorn.protocols.events import Body, EndBody, Headers, Request
from tricorn.protocols.http11 import HTTP11Protocol
from tricorn.protocols.http11_h11 import H11Protocol
from tricorn.protocols.websocket import HandshakeError, parse_upgrade_request
from tricorn.server.asyncio_stream import ReceiveInterrupted
from tricorn.server.connection import (
    DISCONNECT_ERRORS,
    HTTP11_SETTINGS,
    Connection,
    Handoff,
)
from tricorn.server.http_stream import HTTPStream
from tricorn.server.sendfile import (
    SENDFILE_BLOCK,
    UNAVAILABLE_ERRNOS,
    FileCutShort,
    FileSocket,
    file_socket,
)
from tricorn.server.state import StreamScope
from tricorn.server.ws_stream import WSStream

error_log = logging.getLogger(ERROR_LOGGER)

#: Bytes asked of the socket per read once a WebSocket is open: a 64 KiB message is one
#: frame of 64 KiB + 14 bytes, which a 64 KiB read would cut in two (as HTTP/2's reads).
WS_RECEIVE_SIZE = 262144

#: What cancels one request task: its asyncio task, or on trio the cancel scope it runs in.
_TaskHandle = asyncio.Task[object] | StreamScope


@functools.cache
def _httptools_protocol() -> type[HTTP11Protocol]:
    """The httptools parser's protocol class, imported once (not per connection)."""
    from tricorn.protocols.http11_httptools import HTTPToolsProtocol

    return HTTPToolsProtocol


def _header(headers: Headers, name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


class HTTP11Connection(Connection[HTTP11Protocol | H11Protocol]):
    """Drives one HTTP/1.1 connection until it closes, or hands it to HTTP/2 (h2c)."""

    EXTENSIONS = ("http.response.pathsend",)
    INTERRUPTIBLE_READER = True

    def _setup(self) -> None:
        config = self.state.config
        protocol_class: type[HTTP11Protocol | H11Protocol] = HTTP11Protocol
        if config.http1_parser == "h11":
            protocol_class = H11Protocol
        elif config.http1_parser == "httptools":  # optional: imported only when chosen
            protocol_class = _httptools_protocol()
        self.protocol = protocol_class(**self._protocol_settings(HTTP11_SETTINGS), h2c_preface=True)
        #: What cancels each running request task of this connection (None when none runs).
        self._stream_tasks: dict[HTTPStream | WSStream, _TaskHandle] | None = None
        self._streams_done: anyio.Event | None = None
        self._current: HTTPStream | None = None
        self._head_started: float | None = None
        self._served_requests = 0
        #: A WebSocket handshake waiting for the app's accept or refusal, then the open one.
        self._upgrading: WSStream | None = None
        self._websocket: WSStream | None = None
        #: Graceful shutdown found the connection idle: it is read until then (for a request
        #: already on its way), and closed after that (``shutdown_idle_drain``).
        self._drain_deadline = math.inf
        # Files go out with os.sendfile on a plain socket stream (a TLS stream is none, but a
        # cleartext socket behind a TLS-terminating proxy is) whose protocol lets the body
        # bypass it (the base's writer, ours and httptools'; h11's writer must see every byte).
        self._file_socket = file_socket(self.transport)
        self.sends_files = self._file_socket is not None and protocol_class is not H11Protocol

    # --- the reader ---------------------------------------------------------------

    async def run(self, handoff: Handoff | None = None) -> Handoff | None:
        self._opened()
        try:
            await self._read_loop()
            while self._stream_tasks:  # as leaving a task group would: wait for the app
                self._streams_done = anyio.Event()
                await self._streams_done.wait()
            if (
                self._handoff is None
                and self._websocket is None
                and not self._peer_gone
                and not self._broken
            ):
                if self.state.shutting_down:
                    await self._linger()
                elif self.protocol.closing_with_unread_body:
                    # The client may still be sending the body its response did not wait
                    # for: closing with its bytes unread would reset the connection, and
                    # the reset can destroy the response before the client reads it.
                    await self._linger(self.state.config.keep_alive_timeout)
        except BaseException:
            self._disconnect()
            for task in list((self._stream_tasks or {}).values()):
                task.cancel()
            raise
        finally:
            await self._closed()
        return self._handoff

    def _deadline(self) -> float:
        if self._current is not None:
            return self._body_deadline  # inf unless the app waits for body bytes
        if self._websocket is not None or self._upgrading is not None:
            return math.inf  # the app has the connection; it is not idle
        config = self.state.config
        if self._head_started is not None:
            return self._head_started + config.header_read_timeout
        if self._served_requests == 0:
            return min(self._idle_since + config.header_read_timeout, self._drain_deadline)
        return min(self._idle_since + config.keep_alive_timeout, self._drain_deadline)

    def _must_wait(self) -> bool:
        """Backpressure: stop reading while the app has not taken enough of what we read."""
        if self._upgrading is not None:
            return True  # the app has not yet accepted or refused the WebSocket
        if self._websocket is not None:
            return self._websocket.buffered_size > self.state.config.max_body_buffer
        config = self.state.config
        current = self._current
        if current is not None and current.buffered_body_size >= config.max_body_buffer:
            return True
        protocol = self.protocol
        # The size first: it is small after nearly every read, and ``paused`` is not asked.
        return protocol.buffered_size >= config.max_head_size and protocol.paused

    async def _read_loop(self) -> None:
        # One cancel scope for many reads: its deadline (idle, head or body timeout) moves as
        # the connection's state changes, which costs far less than a scope per read. It is
        # left only when the deadline passes, ``_stop_reading`` cancels a waiting read, or
        # the client closes.
        while not self._closing:
            with anyio.CancelScope(deadline=self._deadline()) as scope:
                self._read_scope = scope
                await self._read_until_closed(scope)
            self._read_scope = None
            if not scope.cancelled_caught or self._closing:
                break
            if self._current is not None:
                now = self.state.current_time()
                self._body_deadline = await self._current.check_body_pace(now)
                continue
            if self.state.current_time() >= self._deadline():
                await self._timed_out()
                break

    async def _read_until_closed(self, scope: anyio.CancelScope) -> None:
        protocol = self.protocol
        transport = self.transport
        counters = self._counters
        while not self._closing:
            # A deadline moves earlier at once; one that moves later (a request starts: inf;
            # it ends: a new idle deadline) stays where it was while what this reader awaits
            # is only a read or the backpressure wait: when it passes, ``_read_loop`` sees
            # that the connection's deadline has not and enters a new scope. That saves
            # re-arming the timer twice per request. An open WebSocket's reader writes
            # (``feed_data``), so its deadline (inf) is set at once; so is that of
            # ``_handle`` before it writes (``_sync_deadline``).
            deadline = self._deadline()
            if deadline < scope.deadline or (
                deadline != scope.deadline
                and (self._websocket is not None or self._upgrading is not None)
            ):
                scope.deadline = deadline
            if self._must_wait():
                self._resume = anyio.Event()
                await self._resume.wait()
                continue
            self._receiving = True
            try:
                data = await transport.receive(
                    self.RECEIVE_SIZE if self._websocket is None else WS_RECEIVE_SIZE
                )
            except (anyio.EndOfStream, *DISCONNECT_ERRORS):
                data = b""
                self._peer_gone = True
            except ReceiveInterrupted:
                return  # _stop_reading
            finally:
                self._receiving = False
            if self._closing:
                return  # stopped while the bytes came: they are not read as requests
            if counters is not None:
                counters.bytes_received += len(data)
            if self._websocket is not None:
                await self._websocket.feed_data(data)
                if not data:
                    return
                continue
            had_partial_head = protocol.has_partial_head
            await self._handle(protocol.receive_data(data))
            if protocol.has_partial_head:
                if not had_partial_head or self._head_started is None:
                    self._head_started = self.state.current_time()
            else:
                self._head_started = None
            if not data:
                return

    async def _timed_out(self) -> None:
        if self.protocol.has_partial_head:
            error_log.info("%s: request head not received in time; answering 408", self._peer())
            if (metrics := self.state.metrics) is not None:
                metrics.protocol_error("http/1.1", "request_timeout")
            method, target = self.protocol.partial_request_line() or (None, None)
            self.protocol.request_timeout()
            self._head_refused(408, method, target)
            await self._flush()
        self._closing = True

    def _route(self, event: events.Event) -> bool:
        """A request head starts its stream, a body piece or end goes to it: True; False
        for any other event (``_handle``'s, and ``CallbackHTTP11Connection``'s hand-over)."""
        if isinstance(event, Body):
            if self._current is not None:
                self._current.feed_body(event.data)
        elif isinstance(event, Request):
            self._start_stream(event)
        elif isinstance(event, EndBody):
            if self._current is not None:
                self._current.feed_end()
        else:
            return False
        return True

    async def _handle(self, received: list[events.Event]) -> None:
        for event in received:
            if self._route(event):
                continue
            if isinstance(event, events.UpgradeRequested):
                await self._upgrade(event)
            elif isinstance(event, events.ConnectionClosed):
                self._disconnect()
            elif isinstance(event, events.ProtocolError):
                error_log.info("%s: bad request: %s", self._peer(), event.message)
                if (metrics := self.state.metrics) is not None:
                    metrics.http1_error(event)
                self._protocol_refused(event)
                self._disconnect()
            elif isinstance(event, events.H2CPrefaceReceived):
                # HTTP/2 with prior knowledge (RFC 9113 3.3).
                self._handoff = Handoff("h2", event.data)
                self._stop_reading()
        data = self.protocol.data_to_send()
        if data:
            self._sync_deadline()
            await self._write(data)

    def _sync_deadline(self) -> None:
        """Give the reader's scope the connection's deadline now (before the reader writes:
        a deadline left behind must not cut a write short)."""
        scope = self._read_scope
        if scope is not None and scope.deadline != (deadline := self._deadline()):
            scope.deadline = deadline

    async def _upgrade(self, event: events.UpgradeRequested) -> None:
        self._sync_deadline()
        settings = _header(event.request.headers, b"http2-settings")
        if (
            event.upgrade == b"h2c"
            and settings is not None
            and "tls" not in self.extensions  # h2c is cleartext only; over TLS ALPN picks h2
            and not self.state.shutting_down
        ):
            # RFC 7540 3.2: 101, then HTTP/2 with the request answered on stream 1.
            trailing = self.protocol.accept_upgrade(
                [(b"connection", b"Upgrade"), (b"upgrade", b"h2c")]
            )
            await self._flush()
            self._handoff = Handoff("h2", trailing, (settings, event.request))
            self._stop_reading()
            return
        if event.upgrade == b"websocket":
            await self._start_websocket(event.request)
            return
        # Upgrades we do not take are served as plain HTTP (RFC 9110 7.8 lets us ignore them).
        await self._handle(self.protocol.decline_upgrade())

    async def _start_websocket(self, request: Request) -> None:
        try:
            info = parse_upgrade_request(request)
        except HandshakeError as error:
            error_log.info("%s: bad WebSocket handshake: %s", self._peer(), error.message)
            if (metrics := self.state.metrics) is not None:
                metrics.protocol_error("http/1.1", "websocket_handshake")
            self.protocol.decline_upgrade()
            body = error.message.encode()
            headers = [
                *error.headers,
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *self.state.default_headers(),
            ]
            await self.send_response(request.stream_id, error.status, headers, body, True)
            self._request_refused(
                error.status, request.method, request.target, version="1.1", size=len(body)
            )
            return
        stream = self._new_websocket_stream(request, info)
        self._upgrading = stream
        self._spawn_stream(stream)

    def _protocol_refused(self, event: events.ProtocolError) -> None:
        """The protocol refused a request (its answer is queued): the access line."""
        current = self._current
        if event.stream_id is None:
            if event.status is not None:
                self._head_refused(event.status, event.method, event.target)
        elif current is not None and current.stream_id == event.stream_id:
            current.rejected(event.status)  # a body over the limit, a bad chunk

    def _head_refused(self, status: int, method: bytes | None, target: bytes | None) -> None:
        """A head the protocol answered itself (400, 408, 413, 414, 431, 501, 505)."""
        if self.state.access_log is None and self.state.metrics is None:
            return
        started = self._head_started
        self._request_refused(
            status,
            method,
            target,
            version="1.1",
            size=len(HTTPStatus(status).phrase),
            duration=0.0 if started is None else anyio.current_time() - started,
        )

    def _disconnect(self) -> None:
        if self._current is not None:
            self._current.feed_disconnect()
        for websocket in (self._upgrading, self._websocket):
            if websocket is not None:
                websocket.feed_disconnect()
        self._stop_reading()

    def _start_stream(self, request: Request) -> None:
        self._head_started = None
        self._body_deadline = math.inf
        stream = self._new_http_stream(request)
        self._current = stream
        self._spawn_stream(stream)

    def _spawn_stream(self, stream: HTTPStream | WSStream) -> None:
        # Counted from now, not from when the task starts: ``run`` must not close the socket
        # under a request whose task has not run yet (a request and the client's EOF read
        # at once).
        tasks = self._stream_tasks
        if tasks is None:
            tasks = self._stream_tasks = {}
        asyncio_tasks = self.state.asyncio_tasks
        if asyncio_tasks is not None:
            # A plain asyncio task: its handle cancels it, no cancel scope per request; it
            # logs its own errors (``_run_stream``), so no done callback of ours looks.
            tasks[stream] = asyncio_tasks.start_soon_quiet(self._run_stream(stream, tasks))
        else:
            scope = tasks[stream] = self.state.cancel_scope()
            self.state.spawn(self._run_stream_in, stream, tasks, scope)

    async def _run_stream_in(
        self,
        stream: HTTPStream | WSStream,
        tasks: dict[HTTPStream | WSStream, _TaskHandle],
        scope: StreamScope,
    ) -> None:
        """``_run_stream`` in the cancel scope that cancels it (trio)."""
        with scope:
            await self._run_stream(stream, tasks)

    async def _run_stream(
        self, stream: HTTPStream | WSStream, tasks: dict[HTTPStream | WSStream, _TaskHandle]
    ) -> None:
        """One request's task, in the server's task group: it must not raise (but for its
        own cancellation)."""
        try:
            await stream.run()
        except Exception:
            error_log.exception("Unexpected error on the connection from %s", self._peer())
            self._broken = True
            self._disconnect()
        finally:
            del tasks[stream]
            if not tasks:
                if self._stream_tasks is tasks:
                    self._stream_tasks = None
                self._streams_idle()

    def _streams_idle(self) -> None:
        """The last running request task of the connection has ended."""
        if self._streams_done is not None:
            self._streams_done.set()

    def running_streams(self) -> int:
        return len(self._stream_tasks or ())

    # --- StreamOwner ---------------------------------------------------------------

    def _queue_body(self, stream_id: int, body: bytes, end: bool) -> None:
        if body or end:
            self.protocol.send_body(stream_id, body, end)

    async def send_response(
        self, stream_id: int, status: int, headers: Headers, body: bytes, end: bool
    ) -> None:
        protocol = self.protocol
        protocol.send_response(stream_id, status, headers)
        if body or end:  # _queue_body, without its call (once per response)
            protocol.send_body(stream_id, body, end)
        await self._write(protocol.data_to_send())
        if end:
            await self._response_finished(stream_id)

    async def send_body(self, stream_id: int, body: bytes, end: bool) -> None:
        self._queue_body(stream_id, body, end)
        await self._write(self.protocol.data_to_send())
        if end:
            await self._response_finished(stream_id)

    async def send_file(self, stream_id: int, fd: int, offset: int, count: int) -> int:
        """Send ``count`` bytes of the file ``fd`` from ``offset`` as body bytes of the
        response whose head was sent, with ``os.sendfile`` under the write lock; the protocol
        counts them (``body_sent_elsewhere``). Returns the bytes sent: fewer than ``count``
        when sendfile stops working or the file ends early (the stream sends the rest, or
        finds it missing), 0 when it cannot start. Raises ``FileCutShort`` (with the bytes
        sent) when the client goes away."""
        sock = self._file_socket
        protocol = self.protocol
        if sock is None or not self.sends_files:
            return 0
        await self._flush()
        sent = 0
        async with self._write_lock:
            if (
                self._broken
                or sock.sendfile_fd() is None
                or protocol.body_sendable_elsewhere(stream_id) < count
            ):
                return 0  # the ordinary path raises what is wrong (gone, content-length)
            try:
                while sent < count:
                    piece = min(count - sent, SENDFILE_BLOCK)
                    size = await self._sendfile_piece(sock, stream_id, fd, offset + sent, piece)
                    if size <= 0:
                        break  # sendfile is unavailable, or the file is shorter than it was
                    sent += size
                    if sent < count:
                        await anyio.lowlevel.checkpoint()  # let the other tasks run
            except DISCONNECT_ERRORS:
                self._connection_lost()
                raise FileCutShort(sent) from None
            except BaseException:
                # Cancelled mid-file: the body on the wire is short, so is this connection.
                self._broken = True
                self._stop_reading()
                raise
            finally:
                protocol.body_sent_elsewhere(stream_id, sent)
                if (counters := self._counters) is not None:
                    counters.bytes_sent += sent  # beside _write
        return sent

    async def _sendfile_piece(
        self, sock: FileSocket, stream_id: int, fd: int, offset: int, size: int
    ) -> int:
        """One ``os.sendfile`` call that sent something, waiting while the socket is full;
        -1 when sendfile cannot be used here (the caller reads the file instead)."""
        while True:
            # Asked again before every call, with no await in between: a transport that
            # closed its socket meanwhile must not have its descriptor's number, perhaps
            # another connection's by now, written to.
            socket_fd = sock.sendfile_fd()
            if socket_fd is None:
                raise anyio.BrokenResourceError
            try:
                return os.sendfile(socket_fd, fd, offset, size)
            except BlockingIOError:
                await sock.wait_writable()  # backpressure: the client reads slowly
            except OSError as error:
                if error.errno not in UNAVAILABLE_ERRNOS:
                    raise
                error_log.debug(
                    "stream %d: sendfile unavailable (%s): reading the file",
                    stream_id,
                    error.strerror,
                )
                return -1

    async def send_trailers(self, stream_id: int, headers: Headers) -> None:
        # HTTPStream only sends trailers where the extension is in the scope: never here.
        raise LocalProtocolError(f"stream {stream_id}: trailers are not offered on HTTP/1.1")

    async def push(self, stream_id: int, path: bytes, headers: Headers) -> None:
        return  # HTTP/1.1 has no server push; the extension is not offered.

    async def request_body(self, stream_id: int) -> None:
        current = self._current
        if current is not None and current.request.expect_continue:
            self.protocol.continue_request(stream_id)
            await self._flush()

    def body_consumed(self, stream_id: int, size: int) -> None:
        self._wake_reader()

    def body_blocked(self, stream_id: int) -> bool:
        return False  # while the app waits for body bytes, nothing it left unread stops us

    async def body_timed_out(self, stream_id: int, reason: str) -> bool:
        self.protocol.request_timeout()  # a 408 if no response has started; then closed
        if (metrics := self.state.metrics) is not None:
            metrics.protocol_error("http/1.1", "body_timeout")
        answer = self.protocol.data_to_send()
        error_log.info(
            "%s: %s; %s",
            self._peer(),
            reason,
            "answering 408 and closing" if answer else "closing the connection",
        )
        if answer:
            try:
                await self._write(answer)
            except ClientDisconnected:
                return False
        self._disconnect()
        return bool(answer)

    async def abort(self, stream_id: int) -> None:
        self._stop_reading()

    # --- WebSocketOwner ------------------------------------------------------------

    async def ws_accept(self, stream_id: int, status: int, headers: Headers) -> None:
        self._websocket_accepted()
        stream = self._upgrading
        assert stream is not None
        trailing = self.protocol.accept_upgrade(headers)
        await self._flush()
        self._upgrading = None
        self._websocket = stream
        # The socket stream may hold one read's worth unread (AsyncioSocketStream; other
        # streams have no such knob) before it pauses: no pause per 64 KiB message.
        set_read_high_water = getattr(self.transport, "set_read_high_water", None)
        if set_read_high_water is not None:
            set_read_high_water(WS_RECEIVE_SIZE)
        if trailing:
            await stream.feed_data(trailing)
        self._wake_reader()

    async def ws_decline(self, stream_id: int) -> None:
        self.protocol.decline_upgrade()  # the request is answered as plain HTTP next
        self._upgrading = None

    async def ws_write(self, stream_id: int, data: bytes) -> None:
        if data:
            # The WSStream's own lock keeps its frames in order, and the yield that the
            # connection's lock makes on trio (for HTTP/1.1 requests) was one more trip
            # through trio's run loop per echoed message.
            await self._write(data, skip_yield=True)

    async def ws_write_chunks(self, stream_id: int, chunks: list[bytes]) -> None:
        """``ws_write(b"".join(chunks))`` in one gathering write (a big frame, uncopied)."""
        await self._write(chunks, skip_yield=True)

    async def ws_finish(self, stream_id: int) -> None:
        self._stop_reading()

    def stream_done(self, stream_id: int) -> None:
        self._on_stream_done(stream_id, self._websocket or self._upgrading)
        if self._upgrading is not None and self._upgrading.stream_id == stream_id:
            self._upgrading = None
            self._stop_reading()
        if self._websocket is not None and self._websocket.stream_id == stream_id:
            self._stop_reading()
        if self._current is not None and self._current.stream_id == stream_id:
            # The app ended without completing its response (abort() closed the connection).
            self._current = None
            self._stop_reading()

    async def _response_finished(self, stream_id: int) -> None:
        current = self._current
        if current is not None and current.stream_id == stream_id:
            self._current = None
        # Else the next request has already started: our last write yielded (trio's send
        # always does; asyncio's when it waited for the socket), the client got the response
        # and sent its next request meanwhile, and the reader took it. It is not ours to end.
        self._served_requests += 1
        self._idle_since = self.state.current_time()
        if self.protocol.should_close or (
            self.state.shutting_down and not self.state.config.shutdown_idle_drain
        ):
            self._stop_reading()
            return
        if self.state.shutting_down and self._drain_deadline == math.inf:
            self._drain_idle()  # this response was promised keep-alive before the shutdown
        # Requests pipelined behind this one are already buffered in the protocol.
        pipelined = self.protocol.next_events()
        if pipelined:
            await self._handle(pipelined)
        scope = self._read_scope
        if scope is not None and (deadline := self._deadline()) < scope.deadline:
            scope.deadline = deadline  # a later one is left to the reader (see there)
        self._wake_reader()

    # --- shutdown -----------------------------------------------------------------

    def begin_shutdown(self) -> None:
        websocket = self._websocket or self._upgrading
        if websocket is not None:
            websocket.begin_shutdown()  # keep reading: the peer's close frame is to come
            return
        if self._current is not None:
            self._current.begin_shutdown()
        drain = self.state.config.shutdown_idle_drain
        if not drain:
            self.protocol.close_after_response()
            if self._current is None and not self.protocol.has_partial_head:
                self._stop_reading()
            return
        # A client may send its next request as soon as it has a keep-alive response:
        # closing a connection that is idle (between requests, or accepted and nothing read
        # yet) or whose response already went out keep-alive would cut such a request. The
        # next response says connection: close; until then an idle connection is read for
        # shutdown_idle_drain seconds more.
        self.protocol.close_after_response(keep_idle=True)
        if self._current is None and not self.protocol.has_partial_head:
            self._drain_idle()

    def _drain_idle(self) -> None:
        """Graceful shutdown and the connection is idle: keep reading it for a while."""
        if self._peer_gone:
            self._stop_reading()
            return
        self._drain_deadline = self.state.current_time() + self.state.config.shutdown_idle_drain
        scope = self._read_scope
        if scope is not None:
            scope.deadline = self._deadline()
