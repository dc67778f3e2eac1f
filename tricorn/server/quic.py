"""HTTP/3: the UDP endpoint (``quic_bind``) and one ``HTTP3Connection`` per QUIC connection.

``QuicEndpoint.run`` is the one task reading a UDP socket: it routes each datagram by its
destination connection id to a connection's ``HTTP3Protocol`` (tricorn/protocols/http3.py),
answers unknown versions with Version Negotiation, optionally validates addresses with Retry
(``quic_retry``), and starts a connection for a new Initial. Each ``HTTP3Connection`` runs
one task that writes what its protocol has to send and fires its timers, and one task per
request stream (``HTTPStream``, as on HTTP/1.1 and HTTP/2) or WebSocket (``WSStream``: RFC
9220's extended CONNECT, as RFC 8441 on HTTP/2). Written on anyio's UDP sockets: the same
code on trio and asyncio (aioquic.asyncio is not used).

With ``workers > 1`` every worker binds ``quic_bind`` itself with SO_REUSEPORT: the kernel
picks a worker's socket by a hash of the datagram's addresses, so a connection's datagrams
keep reaching the worker that holds it as long as the client's address and port stay the
same (see docs/architecture.md for migration and worker restarts).

Backpressure: a response body waits in ``send`` while aioquic holds ``HIGH_WATER`` unacked
bytes of its stream; request bodies get QUIC credit back only as the app reads them.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from typing import Any

import anyio
import anyio.abc
from aioquic.buffer import Buffer  # type: ignore[attr-defined]  # re-exported from _buffer
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.packet import (
    QuicPacketType,
    encode_quic_retry,
    encode_quic_version_negotiation,
    pull_quic_header,
)
from aioquic.quic.retry import QuicRetryTokenHandler
from cryptography.hazmat.primitives import serialization

from tricorn.config import Config
from tricorn.config.loader import parse_bind, show_value
from tricorn.config.tls import VERIFY_MODES
from tricorn.constants import ERROR_LOGGER
from tricorn.errors import ClientDisconnected, ConfigError
from tricorn.protocols import events
from tricorn.protocols.events import Body, EndBody, Event, Headers, Request
from tricorn.protocols.http3 import (
    ConnectionIdIssued,
    ConnectionIdRetired,
    ErrorCode,
    HTTP3Protocol,
    peer_certificates,
    server_configuration,
)
from tricorn.server import metrics as metrics_labels
from tricorn.server.connection import Handoff, MultiplexedConnection
from tricorn.server.http_stream import HTTPStream
from tricorn.server.state import TASK_NAME, ServerState
from tricorn.server.tls import rfc4514_name
from tricorn.server.ws_stream import WSStream

error_log = logging.getLogger(ERROR_LOGGER)

#: Bytes of one stream's response aioquic may hold unacknowledged before ``send`` waits.
HIGH_WATER = 262144
#: The least slice of a body handed to aioquic at a time (unless less is left); also how
#: far past the client's flow-control credit a connection may queue.
SEND_QUANTUM = 65536
#: Length of the connection ids we choose (aioquic's default).
CID_LENGTH = 8
#: RFC 9000 14.1: a client's Initial datagram is at least this long.
MIN_INITIAL_SIZE = 1200
#: The largest UDP payload read.
DATAGRAM_SIZE = 65535


# --- start-up: sockets and the TLS configuration --------------------------------------


def open_quic_sockets(config: Config) -> list[socket.socket]:
    """The bound UDP sockets of ``quic_bind`` (SO_REUSEPORT, so that every worker binds
    the same port); ``ConfigError`` naming the address when one cannot be bound."""
    sockets: list[socket.socket] = []
    try:
        for value in config.quic_bind:
            host, port = parse_bind(value)
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
                family, kind, proto, _, address = infos[0]
                sock = socket.socket(family, kind, proto)
                sockets.append(sock)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if port and hasattr(socket, "SO_REUSEPORT"):
                    # Each worker (workers > 1) binds the port itself. Not for port 0: a
                    # random port with SO_REUSEPORT may be one another socket of the same
                    # user already shares that way.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                sock.bind(address)
            except OSError as error:
                raise ConfigError(
                    f"config: quic_bind = {show_value(value)}: cannot bind "
                    f"({error.strerror or error})"
                ) from None
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def quic_configuration(config: Config) -> QuicConfiguration:
    """The server's QUIC/TLS configuration from ``certfile``/``keyfile``, and
    ``verify_mode``/``ca_certs`` for client certificates (checked already by
    ``build_ssl_context``); ``ConfigError``."""
    try:
        return server_configuration(
            certfile=config.certfile,
            keyfile=config.keyfile or None,
            password=config.keyfile_password or None,
            idle_timeout=config.quic_idle_timeout,
            stream_window=config.h3_stream_window_size,
            connection_window=config.h3_connection_window_size,
            verify_mode=VERIFY_MODES[config.verify_mode],
            ca_certs=config.ca_certs or None,
        )
    except (OSError, ValueError, TypeError) as error:
        raise ConfigError(
            f"config: certfile = {config.certfile!r}: QUIC cannot load the certificate and "
            f"key ({error})"
        ) from None


# --- the endpoint ---------------------------------------------------------------------


class QuicEndpoint:
    """One UDP socket: datagrams in, routed to connections; their datagrams out."""

    def __init__(
        self, state: ServerState, sock: socket.socket, configuration: QuicConfiguration
    ) -> None:
        self.state = state
        self._raw = sock
        self.server: tuple[str, int] = sock.getsockname()[:2]
        self._configuration = configuration
        self._socket: anyio.abc.UDPSocket | None = None
        self._connections: dict[bytes, HTTP3Connection] = {}
        config = state.config
        self._retry_mode = config.quic_retry
        self._retry = QuicRetryTokenHandler() if config.quic_retry != "off" else None
        #: Connections whose handshake has not completed (``quic_max_handshakes``).
        self.handshaking = 0
        #: Connections alive on this socket (``quic_max_connections``).
        self.connections = 0
        #: Whether Initials are being dropped at the cap (logged once per such spell).
        self._at_cap = False
        self._send_lock = anyio.Lock()

    async def run(self) -> None:
        self._socket = udp = await anyio.abc.UDPSocket.from_socket(self._raw)
        try:
            while True:
                try:
                    data, addr = await udp.receive()
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    return
                except OSError as error:  # ICMP errors surface here on some platforms
                    error_log.debug("QUIC socket receive: %s", error)
                    continue
                try:
                    self._datagram(data, (addr[0], addr[1]))
                except Exception:
                    error_log.exception("Unexpected error on a QUIC datagram from %s", addr)
        finally:
            with anyio.CancelScope(shield=True):
                await udp.aclose()

    async def send(self, datagrams: list[tuple[bytes, Any]]) -> int:
        """Write a connection's datagrams (one lock for the lot: a socket takes one writer
        at a time on trio); return the bytes written."""
        udp = self._socket
        if udp is None or not datagrams:
            return 0
        sent = 0
        async with self._send_lock:
            for data, addr in datagrams:
                try:
                    await udp.sendto(data, addr[0], addr[1])
                except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError) as error:
                    error_log.debug("QUIC send to %s failed: %s", addr, error)
                    return sent
                sent += len(data)
        return sent

    def _datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=CID_LENGTH)
        except ValueError:
            return  # not QUIC
        connection = self._connections.get(header.destination_cid)
        if connection is not None:
            connection.feed(data, addr)
            return
        if header.packet_type != QuicPacketType.INITIAL or len(data) < MIN_INITIAL_SIZE:
            return  # a stray packet for a connection we do not have
        if self.state.shutting_down:
            return  # no new connections once the graceful shutdown has begun
        if self.connections >= self.state.config.quic_max_connections:
            if not self._at_cap:
                self._at_cap = True
                error_log.warning(
                    "QUIC: %d connections on %s (quic_max_connections); dropping new "
                    "Initials until one closes",
                    self.connections,
                    self.server,
                )
            return
        if header.version not in self._configuration.supported_versions:
            self._reply(
                encode_quic_version_negotiation(
                    source_cid=header.destination_cid,
                    destination_cid=header.source_cid,
                    supported_versions=self._configuration.supported_versions,
                ),
                addr,
            )
            return
        original_cid = header.destination_cid
        retry_cid: bytes | None = None
        if self._retry is not None and (header.token or self._retry_needed()):
            if not header.token:
                self._send_retry(header.version, header.source_cid, original_cid, addr)
                return
            try:
                original_cid = self._retry.validate_token(
                    address=addr,
                    destination_cid=header.destination_cid,
                    token=header.token,
                    now=anyio.current_time(),
                )
            except ValueError:
                return  # a bad or old token: drop it (RFC 9000 8.1.3)
            retry_cid = header.destination_cid
        self._start(data, addr, header.destination_cid, original_cid, retry_cid)

    def _retry_needed(self) -> bool:
        return self._retry_mode == "always" or (
            self.handshaking >= self.state.config.quic_max_handshakes
        )

    def _send_retry(
        self, version: int, client_cid: bytes, original_cid: bytes, addr: tuple[str, int]
    ) -> None:
        assert self._retry is not None
        retry_cid = _new_cid()
        token = self._retry.create_token(
            address=addr,
            original_destination_connection_id=original_cid,
            retry_source_connection_id=retry_cid,
            now=anyio.current_time(),
        )
        self._reply(
            encode_quic_retry(
                version=version,
                source_cid=retry_cid,
                destination_cid=client_cid,
                original_destination_cid=original_cid,
                retry_token=token,
            ),
            addr,
        )

    def _reply(self, data: bytes, addr: tuple[str, int]) -> None:
        """A stateless answer (Version Negotiation, Retry): sent without waiting if the
        socket takes it, dropped otherwise (UDP may drop it anyway)."""
        try:
            self._raw.sendto(data, addr)
        except OSError as error:
            error_log.debug("QUIC reply to %s dropped: %s", addr, error)

    def _start(
        self,
        data: bytes,
        addr: tuple[str, int],
        cid: bytes,
        original_cid: bytes,
        retry_cid: bytes | None,
    ) -> None:
        config = self.state.config
        protocol = HTTP3Protocol(
            self._configuration,
            original_destination_connection_id=original_cid,
            retry_source_connection_id=retry_cid,
            max_concurrent_streams=config.h3_max_concurrent_streams,
            max_header_list_size=config.h2_max_header_list_size,
            max_resets_per_window=config.h2_max_resets_per_window,
            rate_window_seconds=config.h2_flood_window,
            max_request_body_size=config.max_request_body_size,
        )
        connection = HTTP3Connection(self, protocol, client=addr)
        connection.cids.update((cid, protocol.host_cid))
        for known in connection.cids:
            self._connections[known] = connection
        self.handshaking += 1
        self.connections += 1
        connection.feed(data, addr)
        self.state.spawn(connection.run)

    def route(self, connection: HTTP3Connection, cid: bytes) -> None:
        connection.cids.add(cid)
        self._connections[cid] = connection

    def connection_closed(self) -> None:
        self.connections -= 1
        self._at_cap = False

    def unroute(self, connection: HTTP3Connection, cid: bytes | None = None) -> None:
        for known in [cid] if cid is not None else list(connection.cids):
            connection.cids.discard(known)
            if self._connections.get(known) is connection:
                del self._connections[known]


def _new_cid() -> bytes:
    return os.urandom(CID_LENGTH)


# --- one QUIC connection --------------------------------------------------------------


class _NoStream(anyio.abc.ByteStream):
    """``Connection`` wants a byte stream; a QUIC connection has none (the endpoint's UDP
    socket carries its datagrams)."""

    async def receive(self, max_bytes: int = 65536) -> bytes:
        raise anyio.EndOfStream

    async def send(self, item: bytes) -> None:
        raise anyio.BrokenResourceError

    async def send_eof(self) -> None:
        return

    async def aclose(self) -> None:
        return


def _tls_extension(protocol: HTTP3Protocol) -> dict[str, Any]:
    """The ASGI ``tls`` extension of a QUIC connection whose handshake is done: TLS 1.3
    always, and the client's certificate as on the TCP binds (``server/tls.py``)."""
    certificates = peer_certificates(protocol.quic)
    name = None
    if certificates:
        subject = certificates[0].subject
        name = rfc4514_name(
            tuple(
                tuple((item.rfc4514_attribute_name, str(item.value)) for item in rdn)
                for rdn in subject.rdns
            )
        )
    key_schedule = protocol.quic.tls.key_schedule
    return {
        "server_cert": None,
        "client_cert_chain": [
            certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
            for certificate in certificates
        ],
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": 0x0304,
        "cipher_suite": None if key_schedule is None else int(key_schedule.cipher_suite),
    }


#: What the QUIC connection's own task feeds a WebSocket: bytes, or None for a reset.
_WebSocketInput = tuple[WSStream, bytes | None]


class HTTP3Connection(MultiplexedConnection[HTTP3Protocol]):
    """One QUIC connection: its protocol, its timer-and-transmit task, its streams."""

    METRICS_INDEX = metrics_labels.HTTP3  # the "h3" protocol label
    EXTENSIONS = (
        "http.response.trailers",
        "http.response.early_hint",
        "http.response.pathsend",
    )

    def __init__(
        self, endpoint: QuicEndpoint, protocol: HTTP3Protocol, *, client: tuple[str, int]
    ) -> None:
        self.endpoint = endpoint
        self._quic_protocol = protocol
        super().__init__(
            endpoint.state,
            _NoStream(),
            client=client,
            server=endpoint.server,
            scheme="https",
            extensions={"tls": {}},  # filled in when the handshake completes
        )

    def _setup(self) -> None:
        self.protocol = self._quic_protocol
        #: The connection ids the endpoint routes here.
        self.cids: set[bytes] = set()
        self._streams: dict[int, HTTPStream | WSStream] = {}
        self._task_group: anyio.abc.TaskGroup | None = None
        #: Datagrams fed before ``run`` started its task group (the first Initial).
        self._early: list[Event] = []
        #: WebSocket bytes (and resets) in arrival order, for the connection's task to feed
        #: (``WSStream.feed_data`` is awaited; the endpoint's reader does not wait).
        self._ws_input: list[_WebSocketInput] = []
        self._wakeup = anyio.Event()
        #: Set (and replaced) whenever datagrams came in: acks may have freed send room.
        self._acked = anyio.Event()
        self._address = self.client

    # --- input: called by the endpoint's reader ----------------------------------------

    def feed(self, data: bytes, addr: tuple[str, int]) -> None:
        """A datagram for this connection (the endpoint routed it by connection id)."""
        self._address = addr
        if (counters := self._counters) is not None:
            counters.bytes_received += len(data)
        protocol = self.protocol
        received = protocol.receive_datagram(data, addr, anyio.current_time())
        if self._handshaking and protocol.handshake_complete:
            self._handshake_over()
            self.extensions["tls"] = _tls_extension(protocol)
        if self._task_group is None:
            self._early.extend(received)
        else:
            self._handle(received)
        self._acked.set()
        self._acked = anyio.Event()
        self._wake()

    _handshaking = True

    def _handshake_over(self) -> None:
        """Counted out of the endpoint's pending handshakes (done, or never to be)."""
        self._handshaking = False
        self.endpoint.handshaking -= 1

    def _handle(self, received: list[Event]) -> None:
        for event in received:
            if isinstance(event, Body | EndBody):
                stream = self._streams.get(event.stream_id)
                if isinstance(stream, WSStream):
                    self._ws_input.append((stream, event.data if isinstance(event, Body) else b""))
                elif stream is None:
                    pass
                elif isinstance(event, Body):
                    stream.feed_body(event.data)
                else:
                    stream.feed_end()
            elif isinstance(event, Request):
                self._start_stream(event)
            elif isinstance(event, events.StreamReset):
                self._stream_gone(event.stream_id)
            elif isinstance(event, events.ProtocolError):
                self._protocol_error(event)
            elif isinstance(event, ConnectionIdIssued):
                self.endpoint.route(self, event.connection_id)
            elif isinstance(event, ConnectionIdRetired):
                self.endpoint.unroute(self, event.connection_id)
            elif isinstance(event, events.ConnectionClosed):
                self._disconnect()

    def _protocol_error(self, event: events.ProtocolError) -> None:
        error_log.info("%s: HTTP/3 protocol error: %s", self._peer(), event.message)
        if event.stream_id is None:
            return
        stream = self._streams.get(event.stream_id)
        if isinstance(stream, HTTPStream):
            stream.rejected(event.status)  # a body over the limit: http.disconnect
        elif stream is not None:
            self._stream_gone(event.stream_id)
        elif event.status is not None:  # a head the protocol answered (413, 431, 501)
            self._request_refused(event.status, event.method, event.target, version="3")

    def _spawn_stream(self, stream: HTTPStream | WSStream) -> None:
        self._streams[stream.stream_id] = stream
        assert self._task_group is not None
        self._task_group.start_soon(stream.run, name=TASK_NAME)

    def _handshake_answered(self, stream_id: int) -> None:
        self.protocol.release(stream_id)  # no stream runs: decline the rest of it
        self._wake()

    def _stream_gone(self, stream_id: int) -> None:
        stream = self._streams.get(stream_id)
        if isinstance(stream, WSStream) and self._ws_input:
            self._ws_input.append((stream, None))  # after the bytes that came before it
        elif stream is not None:
            stream.feed_disconnect()
        self._acked.set()  # a sender waiting on this stream looks again, and stops

    async def _feed_websockets(self) -> None:
        while self._ws_input:
            batch, self._ws_input = self._ws_input, []
            for stream, data in batch:
                if data is None:
                    stream.feed_disconnect()
                else:
                    await stream.feed_data(data)

    # --- running: timers and datagrams out ---------------------------------------------

    def _wake(self) -> None:
        self._wakeup.set()

    async def run(self, handoff: Handoff | None = None) -> Handoff | None:
        self._opened()
        try:
            async with anyio.create_task_group() as task_group:
                self._task_group = task_group
                early, self._early = self._early, []
                self._handle(early)
                await self._serve()
                await self._feed_websockets()  # a reset or the close, after its bytes
                while self._streams:  # they heard the disconnect; let them end
                    self._idle_event = anyio.Event()
                    await self._idle_event.wait()
                task_group.cancel_scope.cancel()
        finally:
            if self._handshaking:
                self._handshake_over()
            self.endpoint.unroute(self)
            self.endpoint.connection_closed()
            await self._closed()
        return None

    _idle_event: anyio.Event | None = None
    #: Graceful shutdown: close the connection once no stream is left and all is acked.
    _close_when_settled: bool = False

    async def _serve(self) -> None:
        protocol = self.protocol
        while not protocol.terminated:
            self._wakeup = wakeup = anyio.Event()
            if self._ws_input:
                await self._feed_websockets()
            await self._transmit()
            if self._close_when_settled and not self._streams and protocol.settled():
                # Shutting down and the last response is acknowledged: close now (a close
                # before would drop what was still unsent or unacknowledged).
                self._close_when_settled = False
                protocol.close(ErrorCode.H3_NO_ERROR, "server shutting down")
                continue
            timer = protocol.get_timer()
            if not wakeup.is_set():
                deadline = math.inf if timer is None else timer
                with anyio.CancelScope(deadline=min(deadline, self._body_deadline)):
                    await wakeup.wait()
            now = anyio.current_time()
            if timer is not None and now >= timer:
                self._handle(protocol.handle_timer(now))
            if now >= self._body_deadline:
                await self._check_body_pace(now)
        await self._transmit()  # the CONNECTION_CLOSE, if any

    async def _check_body_pace(self, now: float) -> None:
        """A body deadline passed (body_read_timeout, body_min_rate): let each waiting
        stream check its client's pace."""
        self._body_deadline = math.inf
        for stream in list(self._streams.values()):
            if isinstance(stream, HTTPStream):
                deadline = await stream.check_body_pace(now)
                self._body_deadline = min(self._body_deadline, deadline)

    def body_deadline(self, stream_id: int, deadline: float) -> None:
        if deadline < self._body_deadline:
            self._body_deadline = deadline
            self._wake()  # the loop waits with the new deadline

    async def _transmit(self) -> None:
        datagrams = self.protocol.datagrams_to_send(anyio.current_time())
        if datagrams:
            sent = await self.endpoint.send(datagrams)
            if (counters := self._counters) is not None:
                counters.bytes_sent += sent

    # --- StreamOwner --------------------------------------------------------------------

    def _check_open(self, stream_id: int) -> None:
        if stream_id not in self._streams or not self.protocol.is_open(stream_id):
            raise ClientDisconnected(f"stream {stream_id} is closed")

    async def _send_data(self, stream_id: int, data: bytes, end: bool) -> None:
        protocol = self.protocol
        view = memoryview(data)
        offset = 0
        while True:
            self._check_open(stream_id)
            # At most HIGH_WATER unacknowledged, and no more than a quantum past what the
            # client's flow control allows (a client that does not read holds us to its
            # windows: per stream and per connection).
            room = min(
                HIGH_WATER - protocol.unacked(stream_id),
                protocol.send_credit(stream_id) + SEND_QUANTUM,
            )
            if room < min(SEND_QUANTUM, len(view) - offset):
                # Wait for room for a whole quantum: fewer, larger DATA frames (each slice
                # is a frame and a copy).
                await self._acked.wait()  # datagrams came in: acks may have made room
                continue
            chunk = view[offset : offset + room]
            offset += len(chunk)
            last = offset >= len(view)
            protocol.send_data(stream_id, bytes(chunk), end and last)
            self._wake()
            if last:
                return

    # send_response, send_body, send_trailers: MultiplexedConnection's

    async def _queued_end(self) -> None:
        self._wake()  # the connection's task sends it

    async def send_informational(self, stream_id: int, status: int, headers: Headers) -> None:
        self.protocol.send_response(stream_id, status, headers)
        self._wake()

    async def push(self, stream_id: int, path: bytes, headers: Headers) -> None:
        return  # not offered (no http.response.push extension)

    async def request_body(self, stream_id: int) -> None:
        return  # QUIC credit is the signal, as HTTP/2's window is

    def body_consumed(self, stream_id: int, size: int) -> None:
        self.protocol.acknowledge_received(stream_id, size)
        self._wake()  # MAX_STREAM_DATA / MAX_DATA go out with the next datagrams

    def body_blocked(self, stream_id: int) -> bool:
        return False

    async def body_timed_out(self, stream_id: int, reason: str) -> bool:
        error_log.info("%s: %s; resetting stream %d", self._peer(), reason, stream_id)
        self.protocol.reset(stream_id, ErrorCode.H3_REQUEST_CANCELLED)
        self._stream_gone(stream_id)
        self._wake()
        return False

    async def abort(self, stream_id: int) -> None:
        self.protocol.reset(stream_id, ErrorCode.H3_INTERNAL_ERROR)
        self._wake()

    # --- WebSocketOwner -----------------------------------------------------------------

    async def ws_accept(self, stream_id: int, status: int, headers: Headers) -> None:
        self._check_open(stream_id)
        self._websocket_accepted()
        self.protocol.send_response(stream_id, status, headers)
        self._wake()

    # ws_decline, ws_write: MultiplexedConnection's

    async def ws_finish(self, stream_id: int) -> None:
        if stream_id in self._streams and self.protocol.is_open(stream_id):
            self.protocol.send_data(stream_id, b"", end=True)
            self._wake()

    def stream_done(self, stream_id: int) -> None:
        self._on_stream_done(stream_id, self._streams.get(stream_id))
        self._streams.pop(stream_id, None)
        self.protocol.release(stream_id)
        self._wake()
        if not self._streams:
            if self._idle_event is not None:
                self._idle_event.set()
            if self.state.shutting_down:
                self._close_when_settled = True

    # --- shutdown -----------------------------------------------------------------------

    def begin_shutdown(self) -> None:
        """GOAWAY (RFC 9114 5.2): open streams finish, new ones are refused; the
        connection closes once the last stream is done (or at graceful_timeout)."""
        self.protocol.goaway()
        for stream in self._streams.values():
            stream.begin_shutdown()
        self._close_when_settled = True  # once the last stream is done and acknowledged
        self._wake()


async def serve_quic(
    state: ServerState, sockets: list[socket.socket], configuration: QuicConfiguration
) -> None:
    """Run an endpoint per socket (in the server's connections task group)."""
    async with anyio.create_task_group() as group:
        for sock in sockets:
            group.start_soon(QuicEndpoint(state, sock, configuration).run)
