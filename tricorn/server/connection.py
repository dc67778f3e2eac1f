"""What every connection does, whatever its protocol: the core the HTTP/1.1 and HTTP/2
connections are built on.

``Connection`` holds a connection's state (transport, peer, scheme, scope extensions, the
write lock, the reader's cancel scope and deadlines), registers it with the server for
graceful shutdown, writes under the lock, turns a failed write into a disconnect, and builds
the scope and stream of each request. A subclass adds its protocol object, its read loop
and what differs in the ``StreamOwner``/``WebSocketOwner`` methods.

The hook points, called at the same moment by every protocol (metrics go here, not in the
subclasses): ``_opened`` and ``_closed`` (the connection opens and closes),
``_new_http_stream`` and ``_new_websocket_stream`` (a request starts), ``_on_stream_done``
(a stream's app ended). The access line itself is written by ``HTTPStream``, which knows
the status and sizes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar, cast

import anyio
from anyio.abc import ByteStream

from tricorn.config import Config
from tricorn.constants import ERROR_LOGGER
from tricorn.errors import ClientDisconnected
from tricorn.protocols.events import Event, Headers, InformationalResponse, Request, Trailers
from tricorn.protocols.websocket import HandshakeError, WebSocketRequestInfo, parse_upgrade_request
from tricorn.server.access_log import format_client
from tricorn.server.asgi_types import Scope
from tricorn.server.http_stream import HTTPStream, build_scope
from tricorn.server.state import ServerState
from tricorn.server.ws_stream import WSStream, websocket_scope

error_log = logging.getLogger(ERROR_LOGGER)

#: What a socket raises when the peer has gone (reset, closed under us, EPIPE...).
DISCONNECT_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)
#: What ``_write`` calls to write: the transport's ``send``, or ``_send_chunks`` for chunks.
_Send = Callable[[Any], Awaitable[None]]

#: The protocols' settings that come from ``Config``: each protocol's keyword -> the Config
#: field the connection passes for it (``protocol_settings``). The one place that says
#: which field feeds which limit; tests/unit/test_limits_source.py checks that each pair
#: has the same default and that every limit keyword of the protocol is here.
HTTP11_SETTINGS: Mapping[str, str] = {
    "max_request_line_size": "max_request_line_size",
    "max_head_size": "max_head_size",
    "max_headers": "max_headers",
    "max_request_body_size": "max_request_body_size",
    "max_unread_body_drain": "max_unread_body_drain",
}
HTTP2_SETTINGS: Mapping[str, str] = {
    "max_concurrent_streams": "h2_max_concurrent_streams",
    "max_header_list_size": "h2_max_header_list_size",
    "initial_window_size": "h2_initial_window_size",
    "connection_window_size": "h2_connection_window_size",
    "max_frame_size": "h2_max_frame_size",
    "max_continuation_frames": "h2_max_continuation_frames",
    "max_resets_per_window": "h2_max_resets_per_window",
    "max_pings_per_window": "h2_max_pings_per_window",
    "max_settings_per_window": "h2_max_settings_per_window",
    "max_empty_frames_per_window": "h2_max_empty_frames_per_window",
    "max_priority_frames_per_window": "h2_max_priority_frames_per_window",
    "max_glitches_per_window": "h2_max_glitches_per_window",
    "max_output_buffer": "h2_max_output_buffer",
    "discard_body_limit": "h2_discard_body_limit",
    "rate_window_seconds": "h2_flood_window",
    "max_request_body_size": "max_request_body_size",
}


def protocol_settings(config: Config, table: Mapping[str, str]) -> dict[str, Any]:
    """The keyword arguments ``table`` names, read from ``config``."""
    return {keyword: getattr(config, field) for keyword, field in table.items()}


class WireProtocol(Protocol):
    """The part of the sans-IO face (DESIGN.md) the core itself uses."""

    def send(self, event: Event) -> None: ...

    def data_to_send(self) -> bytes: ...


ProtocolT = TypeVar("ProtocolT", bound=WireProtocol)


@dataclass(frozen=True, slots=True)
class Handoff:
    """A connection gives its transport to another protocol's connection (``run`` returns
    it): ``serve`` looks ``protocol`` up in its table of connection classes."""

    #: The next protocol, as ALPN names it (``"h2"``).
    protocol: str
    #: Bytes already read from the socket that belong to the next protocol.
    data: bytes = b""
    #: For h2c (RFC 7540 3.2): the ``HTTP2-Settings`` value and the request that asked for
    #: the upgrade, to be answered on stream 1. None for prior knowledge (RFC 9113 3.3).
    upgrade: tuple[bytes, Request] | None = None


class Connection(Generic[ProtocolT]):
    """One accepted connection until it closes; subclassed once per protocol."""

    #: The most bytes one read takes from the socket.
    RECEIVE_SIZE: ClassVar[int] = 65536
    #: The ASGI scope extensions the protocol offers (besides ``tls``), each an empty dict.
    EXTENSIONS: ClassVar[tuple[str, ...]] = ()
    #: Whether ``send_file`` may send file bodies itself (``StreamOwner.sends_files``).
    sends_files: bool = False
    #: The protocol label of its metrics (an index into ``metrics.PROTOCOLS``).
    METRICS_INDEX: ClassVar[int] = 0
    #: Whether the reader stops on ``ReceiveInterrupted`` (see ``_stop_reading``).
    INTERRUPTIBLE_READER: ClassVar[bool] = False

    protocol: ProtocolT

    def __init__(
        self,
        state: ServerState,
        transport: ByteStream,
        *,
        client: tuple[str, int] | None,
        server: tuple[str, int] | None,
        scheme: str = "http",
        extensions: dict[str, object] | None = None,
    ) -> None:
        self.state = state
        self.transport = transport
        self.client = client
        self.server = server
        self.scheme = scheme
        offered = extensions or {}
        if self.EXTENSIONS:
            offered = {**offered, **{name: {} for name in self.EXTENSIONS}}
        self.extensions = offered
        metrics = state.metrics
        #: This protocol's counts (``metrics.ProtocolCounters``): reads, writes, streams;
        #: None when no metric is exported.
        self._counters = None if metrics is None else metrics.protocols[self.METRICS_INDEX]
        self._write_lock = state.write_lock()
        #: The reader stops at its next look (``_stop_reading``).
        self._closing = False
        #: A write failed: the peer is gone, nothing more is written.
        self._broken = False
        #: The reader's cancel scope, while the reader is in it; its deadline is the
        #: connection's next timeout (``_deadline``).
        self._read_scope: anyio.CancelScope | None = None
        #: True while the reader waits in ``transport.receive``: the only await that
        #: ``_stop_reading`` cuts short (never a write in flight).
        self._receiving = False
        #: Set while the reader waits for the app (backpressure); ``_wake_reader`` sets it.
        self._resume: anyio.Event | None = None
        self._idle_since = state.current_time()
        #: The earliest request-body pace check (``HTTPStream.check_body_pace``).
        self._body_deadline = math.inf
        #: What ``run`` returns: set when the connection switches protocol.
        self._handoff: Handoff | None = None
        #: The reader saw the client's EOF, or the socket failed: nothing left to drain.
        self._peer_gone = False
        #: Where the reader handles ``ReceiveInterrupted`` (``INTERRUPTIBLE_READER``) and the
        #: transport offers it (``AsyncioSocketStream``): how ``_stop_reading`` wakes it.
        self._interrupt_receive: Callable[[], None] | None = (
            getattr(transport, "interrupt_receive", None) if self.INTERRUPTIBLE_READER else None
        )
        self._setup()

    def _setup(self) -> None:
        """The protocol object and the protocol's own state (the end of ``__init__``)."""
        raise NotImplementedError

    def _protocol_settings(self, table: Mapping[str, str]) -> dict[str, Any]:
        """``protocol_settings(config, table)``, read once per server (``ServerState``): per
        connection it was a comprehension of getattr calls. Not to be changed."""
        known = self.state.protocol_settings
        settings = known.get(id(table))
        if settings is None:
            settings = known[id(table)] = protocol_settings(self.state.config, table)
        return settings

    # --- running ------------------------------------------------------------------

    async def run(self, handoff: Handoff | None = None) -> Handoff | None:
        """Serve the connection until it closes, then close the transport; or, when it
        switches protocol, leave the transport open and return the ``Handoff``.
        ``handoff`` is what the previous connection on this transport handed over.

        Each protocol writes its own ``run`` as ``_opened()``, ``try:`` its loop
        ``finally: await self._closed()``, ``return self._handoff``: a ``run`` here that
        awaited a subclass method would put one more frame under every read's resumption.
        """
        raise NotImplementedError

    def _opened(self) -> None:
        """The connection starts serving (first in ``run``): the place for a connections
        gauge. Joins ``ServerState.connections`` for graceful shutdown."""
        self.state.add(self)
        if (metrics := self.state.metrics) is not None:
            metrics.connection_opened(self.METRICS_INDEX)

    async def _closed(self) -> None:
        """The connection has ended (last in ``run``): it leaves the server's set, and the
        transport is closed unless it was handed off."""
        self._leave()
        if self._handoff is None:
            with anyio.CancelScope(shield=True):
                await self.transport.aclose()

    def _leave(self) -> None:
        """The connection leaves the server's set (``_closed`` without closing the
        transport): the place for the connections gauge."""
        self.state.discard(self)
        if (metrics := self.state.metrics) is not None:
            metrics.connection_closed(self.METRICS_INDEX, self._handoff is not None)

    async def _linger(self, seconds: float | None = None) -> None:
        """Close in stages (RFC 9112 9.6), at graceful shutdown: our FIN first, then read
        and drop what the client still sends until its FIN, for ``shutdown_idle_drain``
        seconds at most (``seconds`` when given). A close with unread bytes in the socket
        resets the connection, and a reset can take the response just sent with it; the FIN
        tells a client that sent a request meanwhile that it was not served (it may retry
        it)."""
        drain = self.state.config.shutdown_idle_drain if seconds is None else seconds
        if not drain:
            return
        transport = self.transport
        with anyio.move_on_after(drain):
            try:
                await transport.send_eof()
                while True:
                    await transport.receive(self.RECEIVE_SIZE)
            except NotImplementedError:
                pass  # TLS: anyio offers no half-close; closed as it is
            except (anyio.EndOfStream, *DISCONNECT_ERRORS):
                pass

    def begin_shutdown(self) -> None:
        """Graceful shutdown (``ServerState.shutdown_connections``): finish what is in
        flight, then close; close now if idle. Each protocol says how (GOAWAY, or
        ``Connection: close`` on the response in flight; WebSockets are closed with 1001)."""
        raise NotImplementedError

    if TYPE_CHECKING:
        # What each protocol implements to be its streams' owner (``StreamOwner``,
        # ``WebSocketOwner``), declared here for the type checker only.
        async def send_response(
            self, stream_id: int, status: int, headers: Headers, body: bytes, end: bool
        ) -> None: ...
        async def send_body(self, stream_id: int, body: bytes, end: bool) -> None: ...
        async def send_trailers(self, stream_id: int, headers: Headers) -> None: ...
        async def push(self, stream_id: int, path: bytes, headers: Headers) -> None: ...
        async def request_body(self, stream_id: int) -> None: ...
        def body_consumed(self, stream_id: int, size: int) -> None: ...
        def body_blocked(self, stream_id: int) -> bool: ...
        async def body_timed_out(self, stream_id: int, reason: str) -> bool: ...
        async def abort(self, stream_id: int) -> None: ...
        def stream_done(self, stream_id: int) -> None: ...
        async def ws_accept(self, stream_id: int, status: int, headers: Headers) -> None: ...
        async def ws_decline(self, stream_id: int) -> None: ...
        async def ws_write(self, stream_id: int, data: bytes) -> None: ...
        async def ws_finish(self, stream_id: int) -> None: ...

    def _peer(self) -> str:
        """The client for log lines: ``host:port``, an IPv6 host in brackets
        (``[::1]:56924``); ``client`` for a unix socket peer (no address)."""
        return format_client(self.client) or "client"

    # --- the reader -----------------------------------------------------------------

    def _wake_reader(self) -> None:
        if self._resume is not None:
            self._resume.set()
            self._resume = None

    def _stop_reading(self) -> None:
        self._closing = True
        if self._read_scope is not None and self._receiving:
            interrupt = self._interrupt_receive
            if interrupt is not None:
                interrupt()  # the reader stops on ReceiveInterrupted
            else:
                self._read_scope.cancel()  # elsewhere, the reader sees ``_closing`` itself
        self._wake_reader()

    def _disconnect(self) -> None:
        """The peer has gone: every stream hears ``http.disconnect``; stop reading."""
        raise NotImplementedError

    # --- writing --------------------------------------------------------------------

    async def _write(self, data: bytes | list[bytes], *, skip_yield: bool = False) -> None:
        """Write ``data`` (or ``b"".join`` of the chunks) under the write lock; raise
        ``ClientDisconnected`` if the peer has gone (the connection then disconnects every
        stream). ``skip_yield``: an uncontended lock does not yield first on trio either
        (``WriteLock.acquire_nowait``)."""
        if self._broken:
            raise ClientDisconnected("the client has gone away")
        if isinstance(data, list):
            send, size = cast(_Send, self._send_chunks), sum(map(len, data))
        else:
            send, size = cast(_Send, self.transport.send), len(data)
        if (counters := self._counters) is not None:
            counters.bytes_sent += size
        lock = self._write_lock
        try:
            if lock.acquire_nowait(skip_yield=skip_yield):
                try:
                    await send(data)
                finally:
                    lock.release()
            else:
                async with lock:
                    await send(data)
        except DISCONNECT_ERRORS:
            self._connection_lost()
            raise ClientDisconnected("the client has gone away") from None

    async def _send_chunks(self, chunks: list[bytes]) -> None:
        """One gathering write where the transport has ``send_chunks``, else a join."""
        send_chunks = getattr(self.transport, "send_chunks", None)
        if send_chunks is None:
            await self.transport.send(b"".join(chunks))
        else:
            await send_chunks(chunks)

    def _connection_lost(self) -> None:
        """A write failed: the peer has gone."""
        self._broken = True
        self._disconnect()

    async def _flush(self) -> None:
        data = self.protocol.data_to_send()
        if data:
            await self._write(data)

    # --- streams: the hooks every protocol calls ------------------------------------

    def _scope(self, request: Request) -> Scope:
        """The HTTP scope of a request (a WebSocket's is made from it), then what a trusted
        proxy says about it (client, scheme, host, prefix: ``server/forwarded.py``)."""
        state = self.state
        scope = build_scope(
            request,
            scheme=self.scheme,
            client=self.client,
            server=self.server,
            root_path=state.config.root_path,
            state=state.lifespan_state,
            extensions=self.extensions,
        )
        if state.proxy_headers is not None:
            state.proxy_headers.apply(scope)
        return scope

    def _new_http_stream(self, request: Request) -> HTTPStream:
        """Every HTTP request of every protocol starts here (no count per request: a
        snapshot counts the requests in flight, ``running_streams``)."""
        state = self.state
        return HTTPStream(self, request, self._scope(request), state.app, state, state.access_log)

    def _new_websocket_stream(self, request: Request, info: WebSocketRequestInfo) -> WSStream:
        """Every WebSocket of every protocol starts here (its handshake was valid)."""
        scope = websocket_scope(self._scope(request), info)
        return WSStream(self, request, info, scope, self.state.app, self.state)

    def _on_stream_done(self, stream_id: int, stream: HTTPStream | WSStream | None = None) -> None:
        """Every stream's app (HTTP or WebSocket) ends here, on every protocol: called by
        ``stream_done``. ``stream`` is the stream it may be (a ``WSStream`` of that id whose
        handshake was accepted ends an open WebSocket)."""
        if (
            self._counters is not None  # metrics on
            and isinstance(stream, WSStream)
            and stream.stream_id == stream_id
            and stream.protocol is not None  # accepted: it was an open WebSocket
            and (metrics := self.state.metrics) is not None
        ):
            metrics.ws_open -= 1

    def running_streams(self) -> int:
        """The app instances (HTTP requests, WebSockets) running on this connection now:
        ``requests_in_flight``, counted when a snapshot is taken."""
        raise NotImplementedError

    def _request_refused(
        self,
        status: int,
        method: bytes | None,
        target: bytes | None,
        *,
        version: str,
        size: int = 0,
        duration: float = 0.0,
    ) -> None:
        """The server answered a request itself, before a stream existed (a bad or late
        head, a bad WebSocket handshake): one access line with outcome ``rejected`` and
        one count in ``requests_total``. Only on these error paths."""
        state = self.state
        name = None if method is None else method.decode("latin-1")
        if (metrics := state.metrics) is not None:
            metrics.request_ended(self.METRICS_INDEX, name, status, "rejected", duration)
        if state.access_log is not None:
            state.access_log.log_rejected(
                client=self.client,
                protocol=f"HTTP/{version}",
                method=name,
                target=None if target is None else target.decode("latin-1"),
                status=status,
                size=size,
                duration=duration,
            )

    def _websocket_accepted(self) -> None:
        """A WebSocket handshake is answered with its acceptance (first in ``ws_accept``)."""
        if (metrics := self.state.metrics) is not None:
            metrics.websocket_accepted()

    # --- StreamOwner: what is the same on every protocol ------------------------------

    async def send_file(self, stream_id: int, fd: int, offset: int, count: int) -> int:
        return 0  # where ``sends_files`` is False: the stream reads the file itself

    async def send_informational(self, stream_id: int, status: int, headers: Headers) -> None:
        self.protocol.send(InformationalResponse(stream_id, status, headers))
        await self._flush()

    def body_deadline(self, stream_id: int, deadline: float) -> None:
        if deadline < self._body_deadline:  # a later one is found when this one passes
            self._body_deadline = deadline
            if self._read_scope is not None:
                self._read_scope.deadline = deadline


class StreamProtocol(WireProtocol, Protocol):
    """The face of the protocols that carry many streams (HTTP/2, HTTP/3) that
    ``MultiplexedConnection`` uses, besides ``send`` (of ``Trailers``)."""

    def send_response(
        self, stream_id: int, status: int, headers: Headers, *, end_stream: bool = False
    ) -> None: ...


StreamProtocolT = TypeVar("StreamProtocolT", bound=StreamProtocol)


class MultiplexedConnection(Connection[StreamProtocolT]):
    """What the HTTP/2 and HTTP/3 connections share of ``StreamOwner``: a response head
    (and the end, when no body follows) and trailers go to the protocol at once, a body
    through the subclass's ``_send_data`` (which waits for flow control); and how a
    request becomes a running stream (``_start_stream``), which the subclass's
    ``_spawn_stream`` starts its own way."""

    #: The streams whose app runs, by stream id.
    _streams: dict[int, HTTPStream | WSStream]

    def running_streams(self) -> int:
        return len(self._streams)

    def _check_open(self, stream_id: int) -> None:
        """Raise ``ClientDisconnected`` when ``stream_id`` can send no more."""
        raise NotImplementedError

    async def _queued_end(self) -> None:
        """A head that ends its stream, or trailers, is queued in the protocol: get it sent."""
        raise NotImplementedError

    async def _send_data(self, stream_id: int, data: bytes, end: bool) -> None:
        raise NotImplementedError

    async def send_response(
        self, stream_id: int, status: int, headers: Headers, body: bytes, end: bool
    ) -> None:
        self._check_open(stream_id)
        if end and not body:
            self.protocol.send_response(stream_id, status, headers, end_stream=True)
            await self._queued_end()
            return
        self.protocol.send_response(stream_id, status, headers)
        await self._send_data(stream_id, body, end)

    async def send_body(self, stream_id: int, body: bytes, end: bool) -> None:
        await self._send_data(stream_id, body, end)

    async def send_trailers(self, stream_id: int, headers: Headers) -> None:
        self._check_open(stream_id)
        self.protocol.send(Trailers(stream_id, headers))
        await self._queued_end()

    # --- streams ---------------------------------------------------------------------

    def _start_stream(self, request: Request) -> None:
        """A request the protocol passed: an HTTP stream, or a WebSocket (RFC 8441, RFC 9220:
        an extended CONNECT), for the app."""
        if request.protocol is not None:
            self._start_websocket(request)
            return
        self._spawn_stream(self._new_http_stream(request))

    def _start_websocket(self, request: Request) -> None:
        info = self._websocket_handshake(request)  # None: a bad one, answered
        if info is not None:
            self._spawn_stream(self._new_websocket_stream(request, info))

    def _spawn_stream(self, stream: HTTPStream | WSStream) -> None:
        """Enter ``stream`` in ``_streams`` and start its ``run`` in a task."""
        raise NotImplementedError

    def _stream_gone(self, stream_id: int) -> None:
        """The stream ``stream_id`` was reset or its peer left: its app hears so."""
        raise NotImplementedError

    def _disconnect(self) -> None:
        self._stop_reading()
        for stream_id in list(self._streams):
            self._stream_gone(stream_id)

    # --- WebSocketOwner: the part HTTP/2 and HTTP/3 share --------------------------

    async def ws_decline(self, stream_id: int) -> None:
        return  # the denial is an ordinary response on the stream

    async def ws_write(self, stream_id: int, data: bytes) -> None:
        if data:
            await self._send_data(stream_id, data, False)

    def _websocket_handshake(self, request: Request) -> WebSocketRequestInfo | None:
        """An extended CONNECT (RFC 8441, RFC 9220): what the WebSocket asks for, or None
        for a bad handshake, answered here (400; 501 for a ``:protocol`` other than
        websocket) with its log line, metrics and access line."""
        try:
            if request.protocol != b"websocket":
                raise HandshakeError(f"unknown :protocol {request.protocol!r}", 501)
            return parse_upgrade_request(request)
        except HandshakeError as error:
            error_log.info("%s: bad WebSocket request: %s", self._peer(), error.message)
            version = request.http_version
            if (metrics := self.state.metrics) is not None:
                metrics.protocol_error(f"h{version}", "websocket_handshake")
            self.protocol.send_response(
                request.stream_id, error.status, [*error.headers], end_stream=True
            )
            self._handshake_answered(request.stream_id)
            self._request_refused(error.status, request.method, request.target, version=version)
            return None

    def _handshake_answered(self, stream_id: int) -> None:
        """A bad WebSocket handshake on ``stream_id`` was answered (no stream runs for it)."""
