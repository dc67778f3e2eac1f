"""HTTP/3 on aioquic's sans-IO QUIC and HTTP/3 layers: datagrams in, tricorn events out.

``HTTP3Protocol`` is one QUIC connection (server side): ``receive_datagram`` and
``handle_timer`` return the same events HTTP/2 does (``Request``, ``Body``, ``EndBody``,
``StreamReset``, ``ProtocolError``, ``ConnectionClosed``) plus the connection-id changes the
endpoint dispatches by; ``datagrams_to_send`` is what to write. Time comes in as ``now``
(the caller's clock: aioquic's timers are in it), nothing here does I/O.

Request heads go through the HTTP/2 rules (``http2_request``: RFC 9114 4.2 and 4.3 take
them over): pseudo-headers, connection-specific fields, ``te``, ``host`` against
``:authority``, the header list size. A head aioquic's own checks refuse closes the
connection (H3_MESSAGE_ERROR: aioquic treats it as a connection error); one that only our
rules refuse resets its stream with H3_MESSAGE_ERROR.

Flow control: aioquic doubles its receive windows as data arrives, whether or not anyone
reads it. ``_FlowControlledQuic`` grants request-stream and connection credit only for body
bytes the app has taken (``acknowledge_received``), so a client can make us hold at most
``stream_window`` bytes per stream and ``connection_window`` per connection. Sending is
bounded by the caller: ``unacked(stream_id)`` is what aioquic still holds for a stream.
"""

from __future__ import annotations

from dataclasses import dataclass

from aioquic import tls
from aioquic.buffer import Buffer, encode_uint_var  # type: ignore[attr-defined]
from aioquic.h3 import events as h3_events
from aioquic.h3.connection import H3_ALPN, ErrorCode, FrameType, H3Connection, encode_frame
from aioquic.quic import events as quic_events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import NetworkAddress, QuicConnection
from aioquic.quic.packet_builder import QuicPacketBuilder
from aioquic.quic.recovery import QuicPacketSpace
from aioquic.quic.stream import QuicStream
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from . import events
from .events import Event, Headers
from .http2_limits import RateLimit
from .http2_request import (
    CONNECTION_SPECIFIC,
    HeaderListTooLarge,
    Malformed,
    check_body_length,
    check_request_target,
    check_trailer_field,
    read_request_head,
)
from .http11_rules import PeerError, check_chunked_body_limit, check_content_length_limit

__all__ = [
    "H3_ALPN",
    "ConnectionIdIssued",
    "ConnectionIdRetired",
    "ErrorCode",
    "HTTP3Protocol",
    "server_configuration",
]

#: Response fields that mean nothing on HTTP/3 (RFC 9114 4.2): dropped from the app's head.
_DROPPED_RESPONSE_FIELDS = CONNECTION_SPECIFIC | {b"te"}
#: What ``send`` takes (besides ``StreamReset``).
_SENDABLE = (
    events.Response,
    events.InformationalResponse,
    events.Body,
    events.EndBody,
    events.Trailers,
)
#: ``ssl.CERT_OPTIONAL`` and ``ssl.CERT_REQUIRED``, the values of aioquic's ``verify_mode``
#: (protocols/ does not import ssl).
CERT_OPTIONAL = 1
CERT_REQUIRED = 2


@dataclass(frozen=True, slots=True)
class ConnectionIdIssued(Event):
    """A connection id the peer may now send to: the endpoint routes it here."""

    connection_id: bytes


@dataclass(frozen=True, slots=True)
class ConnectionIdRetired(Event):
    """A connection id no longer in use."""

    connection_id: bytes


def server_configuration(
    *,
    certfile: str,
    keyfile: str | None,
    password: str | None,
    idle_timeout: float,
    stream_window: int,
    connection_window: int,
    verify_mode: int = 0,
    ca_certs: str | None = None,
) -> QuicConfiguration:
    """The server's ``QuicConfiguration``: HTTP/3 ALPN, the certificate, the idle timeout
    and the initial windows; with ``verify_mode`` ``CERT_OPTIONAL`` or ``CERT_REQUIRED``
    (``ssl``'s values), client certificates are asked for and verified against
    ``ca_certs``. Raises ``OSError``/``ValueError`` for unreadable files."""
    configuration = QuicConfiguration(
        is_client=False,
        alpn_protocols=H3_ALPN,
        idle_timeout=idle_timeout,
        max_data=connection_window,
        max_stream_data=stream_window,
        verify_mode=verify_mode,
        cafile=ca_certs or None,
    )
    configuration.load_cert_chain(certfile, keyfile or None, password or None)
    return configuration


class _CertificateRequired(tls.Alert):
    description = tls.AlertDescription.certificate_required


class _ClientVerifyingTLS(tls.Context):
    """aioquic's TLS as a server that asks for a client certificate and verifies it.

    aioquic's server sends a CertificateRequest only under a test flag, accepts an empty
    Certificate whatever the verify mode, and checks only the CertificateVerify signature
    of a certificate it gets. Here (RFC 8446 4.4.2.4): no certificate under
    ``CERT_REQUIRED`` is the ``certificate_required`` alert; a certificate is verified
    against the CA file (dates, chain) and, if it names its uses, must be for client
    authentication (as OpenSSL's ``ssl`` checks on the TCP binds); a failure is the
    ``bad_certificate`` (or ``certificate_expired``) alert. The handshake then fails with
    that alert as the QUIC CRYPTO_ERROR.
    """

    def _server_handle_certificate(self, input_buf: Buffer) -> None:
        super()._server_handle_certificate(input_buf)
        if self._peer_certificate is None and self._verify_mode == CERT_REQUIRED:
            raise _CertificateRequired("no client certificate")

    def _server_handle_certificate_verify(self, input_buf: Buffer) -> None:
        super()._server_handle_certificate_verify(input_buf)
        certificate = self._peer_certificate
        assert certificate is not None  # CertificateVerify follows a certificate
        tls.verify_certificate(
            certificate=certificate,
            chain=self._peer_certificate_chain,
            cadata=self._cadata,
            cafile=self._cafile,
            capath=self._capath,
        )
        try:
            usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        except x509.ExtensionNotFound:
            return
        if ExtendedKeyUsageOID.CLIENT_AUTH not in usage.value:
            raise tls.AlertBadCertificate("the certificate is not for client authentication")


def peer_certificates(quic: QuicConnection) -> list[x509.Certificate]:
    """The client's certificate and the chain it sent (empty if it sent none)."""
    context = quic.tls
    certificate = context._peer_certificate
    return [] if certificate is None else [certificate, *context._peer_certificate_chain]


class _FlowControlledQuic(QuicConnection):
    """A ``QuicConnection`` whose receive credit follows what the app has read.

    aioquic raises MAX_DATA and MAX_STREAM_DATA by doubling once half is received; here
    request streams (client-initiated bidirectional) get ``highest received - unread +
    window``, and the connection ``received - unread + window``, where unread is body
    handed out as ``Body`` events and not yet acknowledged. Other streams (control, QPACK:
    consumed by the H3 layer as they arrive) get credit as they receive.
    """

    stream_window: int = 1048576
    connection_window: int = 4194304
    #: Unread body bytes per request stream, and in all.
    unread: dict[int, int]
    unread_total: int = 0

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        if self._configuration.verify_mode in (CERT_OPTIONAL, CERT_REQUIRED):
            self.tls.__class__ = _ClientVerifyingTLS  # adds behaviour, no state
            self.tls._request_client_certificate = True

    def _write_connection_limits(self, builder: QuicPacketBuilder, space: QuicPacketSpace) -> None:
        limit = self._local_max_data
        wanted = limit.used - self.unread_total + self.connection_window
        if wanted - limit.value >= self.connection_window // 4:
            limit.value = wanted
        used, limit.used = limit.used, 0  # the base class doubles when used * 2 > value
        try:
            super()._write_connection_limits(builder, space)
        finally:
            limit.used = used

    def _write_stream_limits(
        self, builder: QuicPacketBuilder, space: QuicPacketSpace, stream: QuicStream
    ) -> None:
        stream_id = stream.stream_id
        if stream.max_stream_data_local and stream_id is not None and stream_id % 4 == 0:
            received = stream.receiver.highest_offset
            wanted = received - self.unread.get(stream_id, 0) + self.stream_window
            if wanted - stream.max_stream_data_local >= self.stream_window // 4:
                stream.max_stream_data_local = wanted
            # The base class doubles when received * 2 > limit: it must not see that.
            stream.receiver.highest_offset = 0
            try:
                super()._write_stream_limits(builder, space, stream)
            finally:
                stream.receiver.highest_offset = received
            return
        super()._write_stream_limits(builder, space, stream)


class _NotServed(Exception):
    """A well-formed request this server does not serve over HTTP/3 (answered 501)."""


class _Stream:
    """What is tracked per request stream."""

    __slots__ = ("closed", "local_ended", "received", "remote_ended", "started")

    def __init__(self) -> None:
        self.remote_ended = False
        #: Request body bytes received (``max_request_body_size``).
        self.received = 0
        #: The response's end (or our reset) is queued: the sending side is done.
        self.local_ended = False
        #: Reset by either side, or the client sent STOP_SENDING: nothing more is sent.
        self.closed = False
        #: The response head went out.
        self.started = False


class HTTP3Protocol:
    """One server-side QUIC connection speaking HTTP/3."""

    def __init__(
        self,
        configuration: QuicConfiguration,
        *,
        original_destination_connection_id: bytes,
        retry_source_connection_id: bytes | None = None,
        max_concurrent_streams: int = 100,
        max_header_list_size: int = 65536,
        max_resets_per_window: int = 200,
        rate_window_seconds: float = 10.0,
        max_request_body_size: int = 0,
    ) -> None:
        quic = _FlowControlledQuic(
            configuration=configuration,
            original_destination_connection_id=original_destination_connection_id,
            retry_source_connection_id=retry_source_connection_id,
        )
        quic.unread = {}
        quic.stream_window = configuration.max_stream_data
        quic.connection_window = configuration.max_data
        # RFC 9000 4.6: the peer may open this many request streams; aioquic grants one
        # more as each closes, so this is the concurrency limit.
        quic._local_max_streams_bidi.value = max_concurrent_streams
        quic._local_max_streams_bidi.sent = max_concurrent_streams
        self.quic = quic
        self.h3 = H3Connection(quic)
        self._max_header_list_size = max_header_list_size
        #: The largest request body (0: no limit); not for an extended CONNECT's stream.
        self._body_limit = max_request_body_size
        self._streams: dict[int, _Stream] = {}
        #: The streams of extended CONNECT requests (WebSockets): no body limit.
        self._tunnels: set[int] = set()
        #: The GOAWAY's stream id once sent: requests from there on are rejected.
        self._goaway_id: int | None = None
        #: The QUIC connection has ended (closed, idle, or failed): nothing more to do.
        self.terminated = False
        #: The TLS handshake has completed.
        self.handshake_complete = False
        #: The time of the datagram or timer being handled (the rate limits' clock).
        self._now = 0.0
        #: Requests the client started and then reset (rapid reset, CVE-2023-44487's kind).
        self._resets = RateLimit(max_resets_per_window, rate_window_seconds, lambda: self._now)

    # --- input -------------------------------------------------------------------------

    @property
    def host_cid(self) -> bytes:
        return self.quic.host_cid

    def receive_datagram(self, data: bytes, addr: NetworkAddress, now: float) -> list[Event]:
        self._now = now
        self.quic.receive_datagram(data, addr, now)
        return self._drain()

    def handle_timer(self, now: float) -> list[Event]:
        self._now = now
        self.quic.handle_timer(now)
        return self._drain()

    def get_timer(self) -> float | None:
        return self.quic.get_timer()

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, NetworkAddress]]:
        return self.quic.datagrams_to_send(now)

    def _drain(self) -> list[Event]:
        out: list[Event] = []
        quic = self.quic
        while (event := quic.next_event()) is not None:
            if isinstance(event, quic_events.StreamReset | quic_events.StopSendingReceived):
                self._peer_reset(event.stream_id, event.error_code, out)
            elif isinstance(event, quic_events.HandshakeCompleted):
                self.handshake_complete = True
            elif isinstance(event, quic_events.ConnectionIdIssued):
                out.append(ConnectionIdIssued(event.connection_id))
            elif isinstance(event, quic_events.ConnectionIdRetired):
                out.append(ConnectionIdRetired(event.connection_id))
            elif isinstance(event, quic_events.ConnectionTerminated):
                self.terminated = True
                self._close_streams()
                out.append(events.ConnectionClosed(event.error_code, event.reason_phrase))
                continue
            for h3_event in self.h3.handle_event(event):
                if isinstance(h3_event, h3_events.HeadersReceived):
                    self._on_headers(h3_event, out)
                elif isinstance(h3_event, h3_events.DataReceived):
                    self._on_data(h3_event, out)
        return out

    def _peer_reset(self, stream_id: int, error_code: int, out: list[Event]) -> None:
        stream = self._streams.get(stream_id)
        if stream is None or stream.closed:
            return
        stream.closed = True
        self._forget_unread(stream_id)
        out.append(events.StreamReset(stream_id, error_code))
        if self._resets.hit():
            code = ErrorCode.H3_EXCESSIVE_LOAD
            message = f"more than {self._resets.limit} requests reset per window"
            out.append(events.ProtocolError(None, message, error_code=code))
            self.close(code, "too many streams reset")

    def _stop(self, stream_id: int, error_code: int) -> None:
        """STOP_SENDING: the rest of the request body is not wanted."""
        if stream_id in self.quic._streams:
            self.quic.stop_stream(stream_id, error_code)

    def _close_streams(self) -> None:
        for stream in self._streams.values():
            stream.closed = True

    def _on_headers(self, event: h3_events.HeadersReceived, out: list[Event]) -> None:
        stream_id = event.stream_id
        stream = self._streams.get(stream_id)
        if stream is not None:  # trailers
            if stream.closed or stream.remote_ended:
                return
            if not all(check_trailer_field(name, value) for name, value in event.headers):
                self._refuse(stream_id, "invalid trailer field", out)
                return
            stream.remote_ended = True
            out.append(events.EndBody(stream_id))
            return
        if self._goaway_id is not None and stream_id >= self._goaway_id:
            self.quic.reset_stream(stream_id, ErrorCode.H3_REQUEST_REJECTED)
            if not event.stream_ended:
                self._stop(stream_id, ErrorCode.H3_REQUEST_REJECTED)
            return
        stream = self._streams[stream_id] = _Stream()
        stream.remote_ended = event.stream_ended
        try:
            request = self._build_request(stream_id, event.headers, event.stream_ended)
        except Malformed as error:
            self._refuse(stream_id, f"malformed request: {error}", out)
            return
        except HeaderListTooLarge:
            message = f"request header list over {self._max_header_list_size} bytes"
            self._answer(stream_id, 431, message, event, out)
            return
        except _NotServed as error:
            self._answer(stream_id, 501, str(error), event, out)
            return
        except PeerError as error:  # a Content-Length over max_request_body_size
            self._answer(stream_id, error.status, error.message, event, out)
            return
        if request.protocol is not None:
            self._tunnels.add(stream_id)
        out.append(request)

    def _answer(
        self,
        stream_id: int,
        status: int,
        message: str,
        head: h3_events.HeadersReceived,
        out: list[Event],
    ) -> None:
        """Answer a request here with a bodiless ``status`` (no app sees it)."""
        self.h3.send_headers(stream_id, [(b":status", b"%d" % status)], end_stream=True)
        del self._streams[stream_id]  # answered here: no app will release it
        if not head.stream_ended:
            self._stop(stream_id, ErrorCode.H3_NO_ERROR)
        fields = dict(head.headers)  # for the access line (aioquic checked the pseudo-headers)
        out.append(
            events.ProtocolError(
                stream_id,
                f"{message}; answered {status}",
                status=status,
                method=fields.get(b":method"),
                target=fields.get(b":path"),
            )
        )

    def _refuse(self, stream_id: int, message: str, out: list[Event]) -> None:
        """RFC 9114 4.1.2: a malformed request is a stream error of type H3_MESSAGE_ERROR."""
        code = ErrorCode.H3_MESSAGE_ERROR
        stream = self._streams.pop(stream_id, None)  # no app will release it
        self._forget_unread(stream_id)
        self.quic.reset_stream(stream_id, code)
        if stream is None or not stream.remote_ended:
            self._stop(stream_id, code)
        out.append(events.ProtocolError(stream_id, message, error_code=code))

    def _build_request(self, stream_id: int, raw: Headers, ended: bool) -> events.Request:
        head = read_request_head(raw, self._max_header_list_size)
        # aioquic's SETTINGS always offer extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL
        # = 1, RFC 9220 3): a CONNECT with :protocol is a request like any other here (the
        # connection serves :protocol websocket, answers 501 to any other); a plain CONNECT
        # (a TCP tunnel) is not served.
        target = check_request_target(head, enable_connect_protocol=True)
        method = head.method
        assert method is not None  # check_request_target refuses a request without one
        if method == b"CONNECT" and head.protocol is None:
            raise _NotServed("CONNECT is not served over HTTP/3")
        check_content_length_limit(check_body_length(head, ended), self._body_limit)
        return events.Request(
            stream_id=stream_id,
            method=method,
            target=target,
            headers=head.headers(),
            http_version="3",
            scheme=head.scheme,
            protocol=head.protocol,
            expects_body=not ended,
        )

    def _on_data(self, event: h3_events.DataReceived, out: list[Event]) -> None:
        stream_id = event.stream_id
        stream = self._streams.get(stream_id)
        if stream is None or stream.closed or stream.remote_ended:
            return
        if event.data:
            size = len(event.data)
            stream.received += size
            if self._body_limit and stream_id not in self._tunnels:
                try:
                    check_chunked_body_limit(stream.received, self._body_limit)
                except PeerError as error:
                    self._body_too_large(stream_id, stream, error.message, out)
                    return
            quic = self.quic
            quic.unread[stream_id] = quic.unread.get(stream_id, 0) + size
            quic.unread_total += size
            out.append(events.Body(stream_id, event.data))
        if event.stream_ended:
            stream.remote_ended = True
            out.append(events.EndBody(stream_id))

    def _body_too_large(
        self, stream_id: int, stream: _Stream, message: str, out: list[Event]
    ) -> None:
        """The body grew past ``max_request_body_size``: the app hears ``http.disconnect``.
        With no response started, 413 and STOP_SENDING H3_NO_ERROR (RFC 9114 4.1: the
        response is complete, the rest of the request is not wanted); after it started,
        the stream is reset (H3_REQUEST_CANCELLED) both ways."""
        stream.closed = True
        self._forget_unread(stream_id)
        if stream.started:
            code = ErrorCode.H3_REQUEST_CANCELLED
            self.quic.reset_stream(stream_id, code)
            self._stop(stream_id, code)
            out.append(events.ProtocolError(stream_id, f"{message}; stream reset", error_code=code))
            return
        self.h3.send_headers(stream_id, [(b":status", b"413")], end_stream=True)
        stream.local_ended = True
        self._stop(stream_id, ErrorCode.H3_NO_ERROR)
        out.append(events.ProtocolError(stream_id, f"{message}; answered 413", status=413))

    def _forget_unread(self, stream_id: int) -> None:
        quic = self.quic
        quic.unread_total -= quic.unread.pop(stream_id, 0)

    def acknowledge_received(self, stream_id: int, size: int) -> None:
        """The app took ``size`` body bytes of ``stream_id``: grant the client that much
        credit again (sent with the next datagrams)."""
        quic = self.quic
        unread = quic.unread.get(stream_id)
        if unread is None:
            return
        taken = min(size, unread)
        quic.unread_total -= taken
        if unread - taken:
            quic.unread[stream_id] = unread - taken
        else:
            del quic.unread[stream_id]

    # --- output ------------------------------------------------------------------------

    def is_open(self, stream_id: int) -> bool:
        """Whether the response on ``stream_id`` can still be sent."""
        stream = self._streams.get(stream_id)
        return stream is not None and not stream.closed and not self.terminated

    def send(self, event: Event) -> None:
        """Queue a response event: ``Response``, ``InformationalResponse``, ``Body``,
        ``EndBody``, ``Trailers`` or ``StreamReset``. Events for a stream that is closed
        are dropped."""
        if isinstance(event, events.StreamReset):
            self.reset(event.stream_id, event.error_code)
            return
        if not isinstance(event, _SENDABLE):
            raise TypeError(f"HTTP/3 cannot send {event!r}")
        if not self.is_open(event.stream_id):
            return
        if isinstance(event, events.Response | events.InformationalResponse):
            self.send_response(event.stream_id, event.status, event.headers)
        elif isinstance(event, events.Body):
            self.send_data(event.stream_id, event.data, end=False)
        elif isinstance(event, events.EndBody):
            self.send_data(event.stream_id, b"", end=True)
        else:
            self.send_trailers(event.stream_id, event.headers)

    def data_to_send(self) -> bytes:
        """Nothing: QUIC writes datagrams (``datagrams_to_send``)."""
        return b""

    def send_response(
        self, stream_id: int, status: int, headers: Headers, *, end_stream: bool = False
    ) -> None:
        if not self.is_open(stream_id):
            return
        fields = [(b":status", b"%d" % status)]
        fields.extend(
            (name, value) for name, value in headers if name not in _DROPPED_RESPONSE_FIELDS
        )
        end = end_stream and status >= 200
        self.h3.send_headers(stream_id, fields, end_stream=end)
        if status >= 200:
            stream = self._streams[stream_id]
            stream.started = True
            stream.local_ended = end

    def send_data(self, stream_id: int, data: bytes, end: bool) -> None:
        if not self.is_open(stream_id):
            return
        if data:
            self.h3.send_data(stream_id, data, end_stream=end)
        elif end:
            self.quic.send_stream_data(stream_id, b"", end_stream=True)
        if end:
            self._streams[stream_id].local_ended = True

    def send_trailers(self, stream_id: int, headers: Headers) -> None:
        if not self.is_open(stream_id):
            return
        fields = [(name, value) for name, value in headers if check_trailer_field(name, value)]
        self.h3.send_headers(stream_id, fields, end_stream=True)
        self._streams[stream_id].local_ended = True

    def reset(self, stream_id: int, error_code: int) -> None:
        """Reset the response and stop the request (RESET_STREAM and STOP_SENDING)."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.closed or self.terminated:
            return
        stream.closed = stream.local_ended = True
        self._forget_unread(stream_id)
        self.quic.reset_stream(stream_id, error_code)
        if not stream.remote_ended:
            self._stop(stream_id, error_code)

    def release(self, stream_id: int) -> None:
        """The stream's app has ended: forget it. A response it left unfinished is reset
        (H3_REQUEST_CANCELLED: after a client's reset, our half must close too, or the
        QUIC stream never finishes and its MAX_STREAMS slot is never given back); a request
        body still coming is declined (STOP_SENDING H3_NO_ERROR, RFC 9114 4.1)."""
        stream = self._streams.pop(stream_id, None)
        self._forget_unread(stream_id)
        self._tunnels.discard(stream_id)
        if stream is None or self.terminated:
            return
        if not stream.local_ended:
            self.quic.reset_stream(stream_id, ErrorCode.H3_REQUEST_CANCELLED)
        if not stream.remote_ended:
            self._stop(stream_id, ErrorCode.H3_NO_ERROR)

    def unacked(self, stream_id: int) -> int:
        """Bytes aioquic holds for ``stream_id`` that the client has not acknowledged yet
        (0 for a closed stream): what a sender waits on."""
        quic_stream = self.quic._streams.get(stream_id)
        if quic_stream is None or not self.is_open(stream_id):
            return 0
        sender = quic_stream.sender
        return sender._buffer_stop - sender._buffer_start

    def send_credit(self, stream_id: int) -> int:
        """Bytes the client's flow control would let us send on ``stream_id`` beyond what
        aioquic already holds unsent: the least of the stream's credit and the
        connection's (whose unsent bytes are those of every request stream). Negative
        when more is queued than the client allows yet."""
        quic = self.quic
        quic_stream = quic._streams.get(stream_id)
        if quic_stream is None:
            return 0
        stream_credit = quic_stream.max_stream_data_remote - quic_stream.sender._buffer_stop
        unsent = sum(
            stream.sender._buffer_stop - stream.sender.highest_offset
            for sid, stream in quic._streams.items()
            if sid % 4 == 0
        )
        connection_credit = quic._remote_max_data - quic._remote_max_data_used - unsent
        return min(stream_credit, connection_credit)

    def settled(self) -> bool:
        """No request stream is left in QUIC: every response sent has been acknowledged
        (aioquic forgets a stream once both halves are done and acked)."""
        return not any(stream_id % 4 == 0 for stream_id in self.quic._streams)

    def goaway(self) -> None:
        """Graceful shutdown (RFC 9114 5.2): GOAWAY with the first stream id not taken; new
        requests are refused with H3_REQUEST_REJECTED, open ones go on."""
        if self._goaway_id is not None or self.terminated:
            return
        self._goaway_id = next_id = max(self._streams, default=-4) + 4
        control = self.h3._local_control_stream_id
        if control is not None:
            self.quic.send_stream_data(
                control, encode_frame(FrameType.GOAWAY, encode_uint_var(next_id))
            )

    def close(self, error_code: int = ErrorCode.H3_NO_ERROR, reason: str = "") -> None:
        """Close the QUIC connection (CONNECTION_CLOSE goes out with the next datagrams)."""
        if not self.terminated:
            self.quic.close(error_code=error_code, reason_phrase=reason)
