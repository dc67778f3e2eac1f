"""One HTTP/2 connection: socket -> ``HTTP2Protocol`` -> ``HTTPStream``s, and back.

A reader task feeds the protocol; each request stream runs the app in its own task. Response
bodies go through one writer task that hands DATA to the protocol in priority order, only as
much as the stream and connection windows allow, and writes to the socket: ``await send()``
returns once the app's bytes are on their way, so a client that does not read, or advertises
a zero window, costs bounded memory.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable

import anyio
from anyio.abc import TaskGroup

from tricorn.constants import ERROR_LOGGER
from tricorn.errors import ClientDisconnected
from tricorn.protocols import events
from tricorn.protocols.events import Body, EndBody, Event, Headers, Request, WindowUpdated
from tricorn.protocols.http2 import ErrorCodes, HTTP2Protocol
from tricorn.server.asyncio_stream import cancel_and_wait
from tricorn.server.connection import (
    DISCONNECT_ERRORS,
    HTTP2_SETTINGS,
    Handoff,
    MultiplexedConnection,
)
from tricorn.server.http_stream import HTTPStream
from tricorn.server.state import TASK_NAME
from tricorn.server.ws_stream import WSStream

error_log = logging.getLogger(ERROR_LOGGER)

#: Largest slice of one stream's body handed to the protocol before the writer looks again
#: at the priorities (a few frames' worth).
SEND_QUANTUM = 65536
#: Bytes the streams may queue in the protocol before the writer task has flushed them: past
#: this, a stream's ``send`` writes (and waits for the socket) itself. Below it, the responses
#: of many streams leave in one write.
HIGH_WATER = 65536
#: What a frame head and an HPACK-encoded response head add to the bytes a stream queues.
FRAME_OVERHEAD = 64
INTERNAL_ERROR = ErrorCodes.INTERNAL_ERROR
CANCEL = 0x8
_END_OF_BODY = (EndBody, events.Trailers)


class _Outbox:
    """Body bytes of one stream waiting for flow-control window."""

    __slots__ = ("data", "done", "end", "failed", "offset")

    def __init__(self, data: bytes, end: bool) -> None:
        self.data = memoryview(data)
        self.offset = 0
        self.end = end
        self.failed = False
        self.done = anyio.Event()


class HTTP2Connection(MultiplexedConnection[HTTP2Protocol]):
    """Drives one HTTP/2 connection until it closes."""

    RECEIVE_SIZE = 262144
    METRICS_INDEX = 1
    EXTENSIONS = (
        "http.response.trailers",
        "http.response.push",
        "http.response.early_hint",
        "http.response.pathsend",
    )

    def _setup(self) -> None:
        config = self.state.config
        self.protocol = HTTP2Protocol(
            clock=self.state.clock,
            **self._protocol_settings(HTTP2_SETTINGS),
            enable_connect_protocol=True,
            hold_reset_slots=True,
        )
        self._streams: dict[int, HTTPStream | WSStream] = {}
        self._outboxes: dict[int, _Outbox] = {}
        self._writer_wakeup = anyio.Event()
        self._unflushed = 0
        #: Starts a stream's task (``_task_starter``): set in ``run``.
        self._start_task: Callable[..., object] | None = None
        #: On asyncio, the streams' plain tasks by stream id, from their start to their
        #: ``stream_done``; those left are cancelled when ``run`` ends (``_cancel_tasks``).
        self._stream_tasks: dict[int, asyncio.Task[None]] | None = None
        #: The client's preface and first SETTINGS must arrive within the head timeout.
        self._preface_deadline = self._idle_since + config.header_read_timeout
        #: Graceful shutdown: the final GOAWAY goes out by then if the client has not
        #: answered the first one's PING (``shutdown_idle_drain``).
        self._drain_deadline = math.inf

    # --- running --------------------------------------------------------------------

    async def run(self, handoff: Handoff | None = None) -> Handoff | None:
        """``handoff``, from HTTP/1.1: the bytes it read already (the preface, or what
        followed an h2c upgrade request) and, for h2c, the request to answer on stream 1."""
        self._opened()
        try:
            async with anyio.create_task_group() as task_group:
                self._start_task = self._task_starter(task_group)
                task_group.start_soon(self._writer)
                if handoff is None or handoff.upgrade is None:
                    self.protocol.initiate()
                else:
                    await self._handle(self.protocol.initiate_upgrade(*handoff.upgrade))
                if handoff is not None and handoff.data:
                    await self._handle(self.protocol.receive_data(handoff.data))
                await self._flush()
                await self._read_loop()
                await self._wait_for_streams()
                if self.state.shutting_down and not self._broken and not self._peer_gone:
                    await self._linger()
                task_group.cancel_scope.cancel()
        finally:
            if self._stream_tasks:
                with anyio.CancelScope(shield=True):
                    await self._cancel_tasks(self._stream_tasks)
            if (metrics := self.state.metrics) is not None and self.protocol.refused_after_goaway:
                refused = self.protocol.refused_after_goaway
                metrics.count_resets_sent(ErrorCodes.REFUSED_STREAM, refused)
            await self._closed()
        return self._handoff

    def _task_starter(self, task_group: TaskGroup) -> Callable[..., object]:
        """How a stream's task is started: as cheaply as the backend allows.

        anyio's ``start_soon`` gives each task a ``TaskHandle`` with its own cancel scope
        and event (about 24 µs a task on trio, against 6.4 µs for the nursery's own), a
        tenth of an h2c request. Nothing here cancels one stream's task (a reset stream's
        app hears ``http.disconnect``), only all of them when the connection ends; so on
        trio they go straight into the task group's nursery (cancelled with it), and on
        asyncio they are plain tasks (``_stream_tasks``; not even a done callback: a
        stream's last act is ``stream_done``), cancelled and waited for when ``run``
        leaves the task group. Which backend runs, the server found once
        (``ServerState.use_task_group``: ``asyncio_tasks`` is set on asyncio only)."""
        if self.state.asyncio_tasks is not None:
            self._stream_tasks = {}
            create_task: Callable[..., object] = asyncio.get_running_loop().create_task
            return create_task
        nursery = getattr(task_group, "_nursery", None)  # trio's, under anyio's task group
        if nursery is not None:
            start_soon: Callable[..., object] = nursery.start_soon
            return start_soon
        return task_group.start_soon

    @staticmethod
    async def _cancel_tasks(tasks: dict[int, asyncio.Task[None]]) -> None:
        """What leaving a task group does for its tasks: the streams still running (the
        connection broke, or ``run`` was cancelled) are cancelled, and the connection
        closes once they have finished (a stream started meanwhile, by a push, too)."""
        while tasks:
            await cancel_and_wait(list(tasks.values()))
            for stream_id, task in list(tasks.items()):
                if task.done():  # cancelled before it ran: it never called stream_done
                    del tasks[stream_id]

    async def _wait_for_streams(self) -> None:
        while self._streams and not self._broken:
            self._idle_event = anyio.Event()
            await self._idle_event.wait()
        with anyio.move_on_after(1.0):
            await self._flush()

    _idle_event: anyio.Event | None = None

    def _deadline(self) -> float:
        if self._streams:
            deadline = self._body_deadline  # inf unless an app waits for body bytes
        else:
            deadline = self._idle_since + self.state.config.keep_alive_timeout
        if not self.protocol.preface_received:
            deadline = min(deadline, self._preface_deadline)
        return min(deadline, self._drain_deadline)

    async def _read_loop(self) -> None:
        protocol = self.protocol
        while not self._closing:
            if protocol.paused:
                # Our output is not drained: the peer does not read. Stop reading its frames
                # until the socket takes what is queued (the write blocks meanwhile).
                await self._flush()
                await self._handle(protocol.resume())
                continue
            # A scope per read, unlike HTTP/1.1: no deadline may cut a write in ``_handle``
            # short, and a read here takes many frames.
            with anyio.CancelScope(deadline=self._deadline()) as scope:
                self._read_scope = scope
                self._receiving = True
                try:
                    data = await self.transport.receive(self.RECEIVE_SIZE)
                except (anyio.EndOfStream, *DISCONNECT_ERRORS):
                    data = b""
                    self._peer_gone = True
                finally:
                    self._receiving = False
            if (counters := self._counters) is not None:
                counters.bytes_received += len(data)
            self._read_scope = None
            if scope.cancelled_caught:
                if self._closing:
                    break
                if protocol.draining and anyio.current_time() >= self._drain_deadline:
                    protocol.goaway(graceful=True)  # no PING ACK in time: the final GOAWAY
                    await self._flush()
                if self._drain_deadline <= anyio.current_time():
                    self._drain_deadline = math.inf
                    if not self._streams:
                        break
                if not protocol.preface_received and anyio.current_time() >= self._preface_deadline:
                    error_log.info("%s: no HTTP/2 preface within the head timeout", self._peer())
                    await self._handle(protocol.preface_timeout())
                    break
                if self._streams:
                    await self._check_body_pace()
                    continue
                if anyio.current_time() >= self._deadline():
                    self._goaway_sent()
                    protocol.goaway(graceful=True)
                    await self._flush()
                    break
                continue
            await self._handle(protocol.receive_data(data))
            if not data:
                break
            if protocol.discarding and not self._streams:
                # An early response's upload still arrives: idle counts from its last bytes,
                # so a slow upload is not cut by keep_alive_timeout (and a stalled one is).
                self._idle_since = anyio.current_time()

    async def _check_body_pace(self) -> None:
        """A body deadline passed: let each waiting stream check its client's pace."""
        now = anyio.current_time()
        self._body_deadline = math.inf
        for stream in list(self._streams.values()):
            if isinstance(stream, HTTPStream):
                deadline = await stream.check_body_pace(now)
                self._body_deadline = min(self._body_deadline, deadline)

    async def _handle(self, received: list[Event]) -> None:
        for event in received:
            if isinstance(event, Body):
                stream = self._streams.get(event.stream_id)
                if isinstance(stream, WSStream):
                    await stream.feed_data(event.data)
                elif stream is not None:
                    stream.feed_body(event.data)
            elif isinstance(event, Request):
                self._start_stream(event)
            elif isinstance(event, _END_OF_BODY):
                stream = self._streams.get(event.stream_id)
                if isinstance(stream, WSStream):
                    await stream.feed_data(b"")
                elif stream is not None:
                    stream.feed_end()
            elif isinstance(event, WindowUpdated):
                self._wake_writer()
            elif isinstance(event, events.StreamReset):
                self._reset_seen(event)
                self._stream_gone(event.stream_id)
            elif isinstance(event, events.ProtocolError):
                error_log.info("%s: HTTP/2 protocol error: %s", self._peer(), event.message)
                self._error_answered(event)
                if event.stream_id is not None:
                    self._stream_gone(event.stream_id)
            elif isinstance(event, events.ConnectionClosed):
                self._closed_by_peer(event)
                self._disconnect()
        await self._flush()
        if self._drain_deadline != math.inf and not self.protocol.draining:
            self._drain_deadline = math.inf  # the client answered the shutdown's PING
            if not self._streams:
                self._stop_reading()

    # --- metrics: what the protocol's events say was sent or received ---------------

    #: The stream of the last ProtocolError: its StreamReset event is our reset, not the
    #: peer's (the protocol reports a reset it sends as ProtocolError, then StreamReset).
    _answered_stream: int | None = None
    _errored: bool = False

    def _error_answered(self, event: events.ProtocolError) -> None:
        self._answered_stream = event.stream_id
        self._errored = self._errored or event.stream_id is None
        if (metrics := self.state.metrics) is not None:
            metrics.h2_error(event)
        stream = None if event.stream_id is None else self._streams.get(event.stream_id)
        if isinstance(stream, HTTPStream):
            stream.rejected(event.status)  # the rest of its request refused (a body too large)
        elif event.status is not None and stream is None:
            # A head the protocol answered itself (431, 413), before any app ran.
            self._request_refused(event.status, event.method, event.target, version="2")

    def _reset_seen(self, event: events.StreamReset) -> None:
        if self._answered_stream == event.stream_id:
            self._answered_stream = None
            return
        if (metrics := self.state.metrics) is not None:
            metrics.reset("received", event.error_code)

    def _closed_by_peer(self, event: events.ConnectionClosed) -> None:
        if self._errored:
            return  # the ConnectionClosed that follows our GOAWAY
        if (metrics := self.state.metrics) is not None and event.reason.startswith(
            "the client sent GOAWAY"
        ):
            metrics.goaway("received", event.error_code)

    def _goaway_sent(self) -> None:
        """A graceful GOAWAY(NO_ERROR) is about to be queued (idle timeout, shutdown)."""
        metrics = self.state.metrics
        if metrics is not None and not (
            self.protocol.closed or self._errored or self._goaway_counted
        ):
            self._goaway_counted = True
            metrics.goaway("sent", 0)

    _goaway_counted: bool = False

    def _reset_sent(self, code: int) -> None:
        """The connection itself resets a stream (the app failed, a body timed out)."""
        if (metrics := self.state.metrics) is not None:
            metrics.reset("sent", code)

    def _stream_gone(self, stream_id: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream.feed_disconnect()
        outbox = self._outboxes.pop(stream_id, None)
        if outbox is not None:
            outbox.failed = True
            outbox.done.set()

    def _spawn_stream(self, stream: HTTPStream | WSStream) -> None:
        self._streams[stream.stream_id] = stream
        if (counters := self._counters) is not None:
            counters.streams_started += 1  # http2_streams_total
        start_task = self._start_task
        assert start_task is not None
        tasks = self._stream_tasks
        if tasks is not None:
            task = start_task(stream.run(), name=TASK_NAME)
            tasks[stream.stream_id] = task  # type: ignore[assignment]  # loop.create_task's
        else:
            start_task(stream.run, name=TASK_NAME)

    # --- writing --------------------------------------------------------------------

    def _wake_writer(self) -> None:
        self._writer_wakeup.set()

    async def _flush(self) -> None:
        if self._broken:
            return
        if not self.protocol.pending_output_size:
            self._unflushed = 0  # nothing queued: another flush took it
            return
        async with self._write_lock:
            data = self.protocol.data_to_send()
            self._unflushed = 0
            if not data:
                return
            if (counters := self._counters) is not None:
                counters.bytes_sent += len(data)
            try:
                await self.transport.send(data)
            except DISCONNECT_ERRORS:
                self._connection_lost()

    def _connection_lost(self) -> None:
        super()._connection_lost()
        if self._idle_event is not None:
            self._idle_event.set()  # _wait_for_streams: nothing more can be sent

    async def _writer(self) -> None:
        """Send what the streams queued: flush, and feed waiting bodies as windows allow."""
        while True:
            # A fresh event before looking: a wake-up during the flush below is not lost.
            self._writer_wakeup = wakeup = anyio.Event()
            more = self._fill() if self._outboxes else False
            await self._flush()
            if not more and not wakeup.is_set():
                await wakeup.wait()

    def _fill(self) -> bool:
        """Hand up to ``SEND_QUANTUM`` bytes of waiting bodies to the protocol, in priority
        order (the most urgent stream first, as much as its window allows). True if the
        budget ran out before every stream that can send had sent."""
        protocol = self.protocol
        ready = [
            stream_id
            for stream_id, outbox in self._outboxes.items()
            if outbox.offset == len(outbox.data) or protocol.sendable(stream_id) > 0
        ]
        budget = SEND_QUANTUM
        for stream_id in protocol.prioritized(ready) if len(ready) > 1 else ready:
            outbox = self._outboxes[stream_id]
            remaining = len(outbox.data) - outbox.offset
            size = min(protocol.sendable(stream_id), remaining, budget)
            if size <= 0 and remaining:
                continue  # an earlier stream took the connection window
            start = outbox.offset
            outbox.offset += size
            finished = outbox.offset == len(outbox.data)
            protocol.send_data(
                stream_id,
                bytes(outbox.data[start : outbox.offset]),
                end_stream=finished and outbox.end,
            )
            if finished:
                del self._outboxes[stream_id]
                outbox.done.set()
            budget -= size
            if budget <= 0:
                return True
        return False

    async def _queued(self, size: int) -> None:
        """The stream queued ``size`` bytes in the protocol: the writer task sends them with
        the other streams'; past ``HIGH_WATER`` unsent, the stream writes and waits itself."""
        self._unflushed += size + FRAME_OVERHEAD
        if self._unflushed >= HIGH_WATER:
            await self._flush()
        else:
            self._wake_writer()

    async def _send_data(self, stream_id: int, data: bytes, end: bool) -> None:
        if self._broken or stream_id not in self._streams:
            raise ClientDisconnected(f"stream {stream_id} is closed")
        protocol = self.protocol
        size = len(data)
        if (
            stream_id not in self._outboxes
            and self._unflushed + size <= HIGH_WATER
            and (not size or protocol.sendable(stream_id) >= size)
        ):
            # Fast path: the window is open for all of it and little is waiting to be written.
            # Otherwise the writer feeds it in slices, each written before the next is taken,
            # so a client that does not read holds at most a slice per connection in memory.
            if data or end:
                protocol.send_data(stream_id, data, end_stream=end)
            await self._queued(size)
            return
        outbox = _Outbox(data, end)
        self._outboxes[stream_id] = outbox
        self._wake_writer()
        await outbox.done.wait()
        if outbox.failed or self._broken:
            raise ClientDisconnected(f"stream {stream_id} was reset by the client")

    # --- StreamOwner ------------------------------------------------------------------

    async def send_response(
        self, stream_id: int, status: int, headers: Headers, body: bytes, end: bool
    ) -> None:
        # A head with its body (the usual small response) in one call to the protocol, when
        # its window takes the body and little waits to be written (as ``_send_data``).
        if (
            body
            and not self._broken
            and stream_id not in self._outboxes
            and self._unflushed + len(body) <= HIGH_WATER
            and stream_id in self._streams
            and self.protocol.respond(stream_id, status, headers, body, end_stream=end)
        ):
            await self._queued(len(body))
            return
        await super().send_response(stream_id, status, headers, body, end)

    # send_body, send_trailers: MultiplexedConnection's

    def _check_open(self, stream_id: int) -> None:
        if self._broken or stream_id not in self._streams:
            raise ClientDisconnected(f"stream {stream_id} is closed")

    async def _queued_end(self) -> None:
        await self._queued(0)

    async def push(self, stream_id: int, path: bytes, headers: Headers) -> None:
        request = self.protocol.push(events.PushPromise(stream_id, path, headers))
        if request is not None:
            self._start_stream(request)
        await self._flush()

    async def request_body(self, stream_id: int) -> None:
        return  # HTTP/2 clients do not wait for 100 Continue: the window is the signal.

    def body_consumed(self, stream_id: int, size: int) -> None:
        self.protocol.acknowledge_received(stream_id, size)
        if self.protocol.pending_output_size:
            self._wake_writer()  # the writer flushes the WINDOW_UPDATE

    def body_blocked(self, stream_id: int) -> bool:
        window = self.protocol.receive_window(stream_id)
        return window is not None and window <= 0

    async def body_timed_out(self, stream_id: int, reason: str) -> bool:
        # CANCEL (RFC 9113 7: "the stream is no longer needed"): the client broke no rule of
        # the protocol, so not PROTOCOL_ERROR; not REFUSED_STREAM, as the app has seen part
        # of the request; the connection and its other streams carry on.
        error_log.info("%s: %s; resetting stream %d (CANCEL)", self._peer(), reason, stream_id)
        if (metrics := self.state.metrics) is not None:
            metrics.protocol_error("h2", "body_timeout")
        if stream_id in self._streams and not self._broken:
            self._reset_sent(CANCEL)
            self.protocol.send(events.StreamReset(stream_id, CANCEL))
            self._stream_gone(stream_id)
            await self._flush()
        return False

    async def abort(self, stream_id: int) -> None:
        if stream_id in self._streams and not self._broken:
            self._reset_sent(INTERNAL_ERROR)
            self.protocol.send(events.StreamReset(stream_id, INTERNAL_ERROR))
            await self._flush()

    # --- WebSocketOwner -----------------------------------------------------------------

    async def ws_accept(self, stream_id: int, status: int, headers: Headers) -> None:
        self._websocket_accepted()
        self.protocol.send_response(stream_id, status, headers)
        await self._flush()

    # ws_decline, ws_write: MultiplexedConnection's

    async def ws_finish(self, stream_id: int) -> None:
        if stream_id in self._streams and not self._broken:
            self.protocol.send_data(stream_id, b"", end_stream=True)
            await self._flush()

    def stream_done(self, stream_id: int) -> None:
        if self._stream_tasks is not None:
            self._stream_tasks.pop(stream_id, None)
        self._on_stream_done(stream_id, self._streams.get(stream_id))
        self._streams.pop(stream_id, None)
        self.protocol.release(stream_id)
        self._outboxes.pop(stream_id, None)
        if not self._streams:
            self._idle_since = anyio.current_time()
            if self._read_scope is not None:
                self._read_scope.deadline = self._deadline()
            if self._idle_event is not None:
                self._idle_event.set()
            if self.state.shutting_down and not self.protocol.draining:
                self._stop_reading()

    # --- shutdown ---------------------------------------------------------------------

    def begin_shutdown(self) -> None:
        self._goaway_sent()
        # RFC 9113 6.8: GOAWAY(2^31-1) and a PING first, so that requests the client sends
        # before it sees the GOAWAY are served, not refused; the final GOAWAY follows the
        # PING's ACK, or shutdown_idle_drain seconds (``_read_loop``).
        drain = self.state.config.shutdown_idle_drain
        protocol = self.protocol
        protocol.goaway(graceful=True, drain=bool(drain) and protocol.preface_received)
        if protocol.draining:
            self._drain_deadline = anyio.current_time() + drain
            if self._read_scope is not None:
                self._read_scope.deadline = self._deadline()
        self._wake_writer()
        for stream in self._streams.values():
            stream.begin_shutdown()  # WebSockets close with 1001, waiting apps get disconnect
        if not self._streams and not protocol.draining:
            self._stop_reading()
