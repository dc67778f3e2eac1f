"""HTTP/1.1 on asyncio (uvloop included) driven by the transport's callbacks.

On the stream path (``serve._accept_loop``), every connection is a task: an accept loop in
Python hands it over, and its reader task wakes once per request to take the bytes that the
transport's ``data_received`` buffered, then starts the request's task. Here the event loop
accepts (``loop.create_server`` on the sockets the server opened), ``data_received`` feeds
the same sans-IO protocol at once and starts the request task from there: one task step per
request instead of two, and no task at all for a connection between its requests.

``CallbackHTTP11Connection`` is an ``HTTP11Connection``; only how its bytes arrive differs
("pushed"). It stays pushed for the plain life of a connection: requests one after another
(pipelined ones too), bodies, backpressure (``pause_reading`` while the app has more unread
body than ``max_body_buffer``, or while pipelined requests pile up), its idle, head and body
deadlines (one ``loop.call_at`` timer, moved later lazily as the reader's scope is), and the
close after a response that ends the connection. At anything else it *hands over*: it starts
the stream path's reader task (``HTTP11Connection.run``, under ``serve.run_connections``),
which carries on from the connection's state, with the events it did not take and the bytes
that came since. What hands over: an event other than a request head, body or end (an
upgrade to WebSocket or h2c, the HTTP/2 preface, a protocol error and its answer), the
client's EOF or a lost connection, a deadline that passes, graceful shutdown, and a close
that must linger (unread body, shutdown). Writes are the stream path's too: the transport is
an ``AsyncioSocketStream`` whose protocol is the one here, so ``send`` waits for the kernel
as it does there.

Used for plain TCP binds without the PROXY protocol (``serve``); TLS, unix sockets and the
PROXY protocol keep the accept loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import math
from collections.abc import Callable, Coroutine
from typing import Any

from tricorn.constants import ERROR_LOGGER
from tricorn.errors import ClientDisconnected
from tricorn.protocols import events
from tricorn.protocols.events import EndBody, Request
from tricorn.server.asyncio_stream import HIGH_WATER, AsyncioSocketStream, _Protocol
from tricorn.server.connection import Connection, Handoff
from tricorn.server.http11_connection import HTTP11Connection
from tricorn.server.state import ServerState

error_log = logging.getLogger(ERROR_LOGGER)

#: What serves a connection once it is handed over: ``serve.run_connections``.
RunConnections = Callable[[Connection[Any]], Coroutine[Any, Any, None]]


class CallbackHTTP11Connection(HTTP11Connection):
    """An ``HTTP11Connection`` whose bytes are pushed by the transport until it hands over."""

    stream: AsyncioSocketStream

    def _setup(self) -> None:
        super()._setup()
        #: Bytes come from ``data_received`` (False once handed over to the reader task).
        self.pushed = True
        #: Reading is paused by us (backpressure while pushed).
        self._paused = False
        self._is_open = False
        self._finished = False
        #: Events the connection had not handled when it handed over: the reader's first.
        self._pending: list[events.Event] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._run_connections: RunConnections | None = None

    def start(self, run_connections: RunConnections) -> None:
        """The transport is connected: the connection opens (and is pushed bytes)."""
        self._run_connections = run_connections
        self._opened()  # during a graceful shutdown this hands over at once
        if self.pushed:
            self._arm()

    def _opened(self) -> None:
        if not self._is_open:  # once, not again in ``run`` after the hand-over
            self._is_open = True
            super()._opened()

    # --- pushed bytes ----------------------------------------------------------------

    def data(self, data: bytes) -> None:
        """``data_received`` while pushed: what the reader task does with one read."""
        if self._closing:  # stopped: what comes now is not read as requests
            return
        if (counters := self._counters) is not None:
            counters.bytes_received += len(data)
        protocol = self.protocol
        self._take(protocol.receive_data(data))
        # The reader's bookkeeping (``_read_until_closed``) without its first look: a head
        # that completed in these bytes either started a request (``_start_stream`` cleared
        # ``_head_started``) or handed the connection over, so a partial head now is one
        # that began before these bytes only if ``_head_started`` is set.
        if not protocol.has_partial_head:
            self._head_started = None
        elif self._head_started is None:
            self._head_started = self.state.current_time()
        if self.pushed:
            if not self._paused and self._must_wait():
                self._paused = True
                self.stream._transport.pause_reading()
            # A request in progress: its deadline is _body_deadline (``_deadline``), which
            # is what _arm would find, without its two calls.
            if self._current is None or self._body_deadline < self._timer_at:
                self._arm()

    def _take(self, received: list[events.Event]) -> None:
        """``_handle`` for the events a pushed connection handles itself; the first other
        one hands the connection over with it and all after it."""
        route = self._route
        for index, event in enumerate(received):
            if isinstance(event, Request):  # _route's first two cases, without its call
                self._start_stream(event)
            elif isinstance(event, EndBody):
                current = self._current
                # A bodiless request's stream knows its body complete from the start (and its
                # task has not run yet): no call for the EndBody that follows its head.
                if current is not None and current.request.expects_body:
                    current.feed_end()
            elif not route(event):
                self.hand_over(received[index:])
                return
        data = self.protocol.data_to_send()
        if data:
            if not self._broken and self._write_lock.acquire_nowait():
                try:
                    self.stream.send_nowait(data)
                except Exception:
                    self._connection_lost()
                finally:
                    self._write_lock.release()
            else:
                self.state.spawn(self._write_later, data)

    async def _write_later(self, data: bytes) -> None:
        """Bytes queued while an app task holds the write lock: they go after its own."""
        with contextlib.suppress(ClientDisconnected):  # _write has disconnected the streams
            await self._write(data)

    def eof(self) -> None:
        """``eof_received`` while pushed (the reader reads the EOF from the stream)."""
        if not self._closing:
            self.hand_over([])

    def lost(self) -> None:
        """``connection_lost`` while pushed."""
        if not self._finished:
            self.hand_over([])

    # --- the reader's jobs, done by callbacks ----------------------------------------

    def _arm(self) -> None:
        """Keep the timer at or before the connection's deadline (``_deadline``); a later
        deadline leaves it where it is, and ``_timer_fired`` sets it again."""
        deadline = self._deadline()
        if deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = self.stream.loop.call_at(deadline, self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        if not self.pushed:
            return
        if self.state.current_time() >= self._deadline():
            if self._current is None and not self.protocol.has_partial_head:
                self._stop_reading()  # idle too long: closed, no 408 to write
            else:
                self.hand_over([])  # the reader's scope starts past its deadline: 408
        else:
            self._arm()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = math.inf

    def hand_over(self, pending: list[events.Event]) -> None:
        """From now on the reader task serves the connection (``HTTP11Connection.run``),
        starting with ``pending``."""
        if not self.pushed:
            return
        self.pushed = False
        self._pending = pending
        self._cancel_timer()
        if self._paused:  # the reader task applies its own backpressure
            self._paused = False
            self.stream._transport.resume_reading()
        assert self._run_connections is not None
        self.state.spawn(self._run_connections, self)

    async def _read_loop(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            await self._handle(pending)
        await super()._read_loop()

    def _wake_reader(self) -> None:
        if not self.pushed:
            super()._wake_reader()
            return
        if self._paused and not self._must_wait():
            self._paused = False
            self.stream._transport.resume_reading()
        self._arm()

    def _stop_reading(self) -> None:
        if not self.pushed:
            super()._stop_reading()
            return
        self._closing = True
        if not self._stream_tasks:
            self._finish()

    def _streams_idle(self) -> None:
        if self._streams_done is not None:  # super()._streams_idle(), without its call
            self._streams_done.set()
        if self.pushed and self._closing:
            self._finish()

    def _finish(self) -> None:
        """Closed while pushed, its last request task done: close the transport, or let
        the reader task linger first where it would (``HTTP11Connection.run``)."""
        if not self._broken and (
            self.state.shutting_down or self.protocol.closing_with_unread_body
        ):
            self.hand_over([])
            return
        self.close_now()

    def close_now(self) -> None:
        """Close the transport now (the server stops, or the connection ends)."""
        if self._finished:
            return
        self._finished = True
        self.pushed = False
        self._cancel_timer()
        self._leave()
        self.stream.close_now()

    async def _handle(self, received: list[events.Event]) -> None:
        if self.pushed:
            self._take(received)  # pipelined requests, from the request task
        else:
            await super()._handle(received)

    def body_deadline(self, stream_id: int, deadline: float) -> None:
        super().body_deadline(stream_id, deadline)
        if self.pushed:
            self._arm()

    def begin_shutdown(self) -> None:
        self.hand_over([])  # the reader task's shutdown: drain, linger, close
        super().begin_shutdown()


def _addresses(
    transport: asyncio.Transport, server: tuple[str, int] | None
) -> tuple[tuple[str, int] | None, tuple[str, int] | None]:
    """``peer_addresses`` from what the transport found at its start: uvloop's socket
    object makes (and detaches) a ``socket.socket`` for each ``getpeername`` and
    ``getsockname``, six Python calls per connection (~3,000 instructions each). None for
    an address it has not (the peer had gone already). ``server``: the local address
    when the listener knows it already (``_bound_address``); else it is asked too."""
    remote = transport.get_extra_info("peername")
    client = (str(remote[0]), int(remote[1])) if isinstance(remote, tuple) else None
    if server is None:
        local = transport.get_extra_info("sockname")
        server = (str(local[0]), int(local[1])) if isinstance(local, tuple) else None
    return client, server


def _bound_address(sock: Any) -> tuple[str, int] | None:
    """The local address of every connection a listening socket accepts, when it is bound
    to one address; None for a wildcard (``0.0.0.0``, ``::``), whose connections each have
    the address of the interface they came in by."""
    address = sock.getsockname()
    if not isinstance(address, tuple):
        return None
    host = str(address[0])
    try:
        if ipaddress.ip_address(host.partition("%")[0]).is_unspecified:
            return None
    except ValueError:
        return None
    return host, int(address[1])


class _CallbackProtocol(_Protocol):
    """The transport's protocol: pushes to the connection, or (handed over) buffers for
    the reader task as ``AsyncioSocketStream``'s own protocol does."""

    def __init__(self, server: CallbackServer, local: tuple[str, int] | None) -> None:
        # _Protocol.__init__ runs in connection_made, once there is a transport.
        self.server = server
        #: The listener's own address when its connections all share it (``_bound_address``).
        self.local = local
        self.connection: CallbackHTTP11Connection | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport) or hasattr(transport, "pause_reading")
        tcp: asyncio.Transport = transport  # type: ignore[assignment]
        super().__init__(tcp, HIGH_WATER, self.server.loop)
        server = self.server
        try:
            stream = AsyncioSocketStream(tcp, protocol=self)
            client, local = _addresses(tcp, self.local)
            connection = CallbackHTTP11Connection(server.state, stream, client=client, server=local)
            connection.stream = stream
            self.connection = connection
            server.connections.add(connection)
            connection.start(server.run_connections)
        except Exception:
            error_log.exception("Unexpected error on a new connection")
            tcp.abort()

    def data_received(self, data: bytes) -> None:
        connection = self.connection
        if connection is None or not connection.pushed:
            super().data_received(data)
            return
        try:
            connection.data(data)
        except Exception:
            error_log.exception("Unexpected error on the connection from %s", connection._peer())
            connection.close_now()

    def eof_received(self) -> bool:
        keep_open = super().eof_received()
        connection = self.connection
        if connection is not None and connection.pushed:
            connection.eof()
        return keep_open

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        connection = self.connection
        if connection is not None:
            self.server.connections.discard(connection)
            if connection.pushed:
                connection.lost()


class CallbackServer:
    """The listening sockets served through ``loop.create_server``, for one ``serve``."""

    def __init__(self, state: ServerState, run_connections: RunConnections) -> None:
        self.state = state
        self.run_connections = run_connections
        #: The connections whose transport is open (the server aborts them at its end).
        self.connections: set[CallbackHTTP11Connection] = set()
        self._servers: list[asyncio.Server] = []
        #: The event loop, once ``start`` has run (the protocols' own, found once).
        self.loop: asyncio.AbstractEventLoop | None = None

    async def start(self, sockets: list[Any]) -> None:
        """Accept on ``sockets`` (listening already) from now on (none: nothing to do,
        whatever the backend)."""
        if not sockets:
            return
        # The transport's callbacks run outside any task, where sniffio cannot tell the
        # library under plain ``asyncio.run`` (no anyio around it): what asks it is asked
        # here first, in a task (the write lock's kind is found once and kept).
        self.state.write_lock()
        loop = self.loop = asyncio.get_running_loop()
        for sock in sockets:
            factory = functools.partial(_CallbackProtocol, self, _bound_address(sock))
            server = await loop.create_server(factory, sock=sock, backlog=self.state.config.backlog)
            self._servers.append(server)

    def close(self) -> None:
        """Stop accepting (the connections go on)."""
        for server in self._servers:
            server.close()
        self._servers.clear()

    def abort_all(self) -> None:
        """The server ends: close the connections still pushed (a handed-over one's task
        is cancelled with the server's other tasks)."""
        self.close()
        for connection in list(self.connections):
            if connection.pushed:
                connection.close_now()
        self.connections.clear()


__all__ = ["CallbackHTTP11Connection", "CallbackServer", "Handoff"]
