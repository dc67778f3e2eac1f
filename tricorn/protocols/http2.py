"""HTTP/2 server protocol, sans-IO, on top of h2: bytes in -> events out, events in -> bytes out.

``HTTP2Protocol`` is the face the server uses. Its parts:

- ``http2_frames``: the frame scanner in front of h2 (``FrameScanner``, the protocol's base
  class): abuse limits, the rules h2 is laxer about, request bodies, each rule a named check.
- ``http2_request``: request heads, RFC 9113 8.2/8.3, one named check per rule, validated in
  one pass that also builds the ``Request`` event, so that a malformed request is a stream
  error, not a connection error.
- ``http2_streams``: what is tracked per stream; ``http2_limits``: the flood counters and the
  limits' defaults; ``http2_priority``: the sending order; ``http2_hpack``: HPACK coders that
  remember repeated blocks.

h2 keeps the connection's state; the frames of a plain request do not go through its
per-frame code: a complete request head on a new stream is opened by ``_open_stream``, and
response HEADERS and DATA are framed by ``_send_block`` and ``send_data``, each giving h2's
state machines and windows what h2's own code would.

This module turns h2's events into tricorn's, and tricorn's into h2 calls (responses, flow
control, push, shutdown). A peer's protocol violation becomes a ``ProtocolError`` event with
the RST_STREAM or GOAWAY queued; an exception of our own (a bug) is logged on the error log
with its traceback and answered with GOAWAY(INTERNAL_ERROR).
"""

from __future__ import annotations

import base64
import binascii
import itertools
import logging
import struct
from collections.abc import Callable, Iterable
from typing import Any

from h2.config import H2Configuration
from h2.connection import ConnectionInputs, ConnectionState, H2Connection
from h2.errors import ErrorCodes
from h2.events import ConnectionTerminated as H2ConnectionTerminated
from h2.events import DataReceived as H2DataReceived
from h2.events import PingAckReceived as H2PingAckReceived
from h2.events import PriorityUpdated as H2PriorityUpdated
from h2.events import RemoteSettingsChanged as H2RemoteSettingsChanged
from h2.events import RequestReceived as H2RequestReceived
from h2.events import StreamEnded as H2StreamEnded
from h2.events import StreamReset as H2StreamReset
from h2.events import TrailersReceived as H2TrailersReceived
from h2.events import WindowUpdated as H2WindowUpdated
from h2.exceptions import H2Error
from h2.exceptions import ProtocolError as H2ProtocolError
from h2.settings import SettingCodes, Settings
from h2.stream import H2Stream, StreamInputs, StreamState
from hpack import NeverIndexedHeaderTuple
from hpack.exceptions import HPACKError, OversizedHeaderListError
from hyperframe.frame import DataFrame

from ..constants import ERROR_LOGGER
from ..errors import LocalProtocolError
from . import http2_limits as limits
from .events import (
    Body,
    ConnectionClosed,
    EndBody,
    Event,
    Headers,
    InformationalResponse,
    ProtocolError,
    PushPromise,
    Request,
    Response,
    StreamReset,
    Trailers,
    WindowUpdated,
)
from .http2_frames import (
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    FRAME_HEADER,
    GOAWAY,
    HEADERS,
    PING,
    PREFACE,
    SETTINGS_NO_RFC7540_PRIORITIES,
    STREAM_ID_MASK,
    U32,
    WINDOW_UPDATE,
    ConnectionViolation,
    FrameScanner,
    check_settings,
    decode_block,
    frame,
    wire_text,
)
from .http2_hpack import CachingDecoder, CachingEncoder
from .http2_priority import PriorityScheduler
from .http2_request import (
    CONNECTION_SPECIFIC,
    INVALID_VALUE,
    NOT_IN_RESPONSES,
    SENSITIVE_FIELDS,
    HeaderListTooLarge,
    Malformed,
    check_body_length,
    check_request_target,
    check_trailer_field,
    read_request_head,
)
from .http2_states import receive_head, send_end, send_head
from .http2_streams import ClosedStream, Stream
from .http11_rules import PeerError, check_content_length_limit

__all__ = ["PREFACE", "ErrorCodes", "HTTP2Protocol"]

#: Our own bugs (an exception that is not a peer's protocol error) go to the error log with
#: their traceback; a peer's errors are events, logged by the server with the peer's address.
error_log = logging.getLogger(ERROR_LOGGER)

_GOAWAY_BODY = struct.Struct(">LL")
#: The highest stream id: the first GOAWAY of a graceful shutdown (RFC 9113 6.8).
_MAX_STREAM_ID = 2**31 - 1
#: The payload of the PING that follows it; its ACK means the client saw the GOAWAY.
_SHUTDOWN_PING = b"shutdown"
_STATUS_BYTES = {status: str(status).encode() for status in range(100, 600)}
#: The inputs of h2's state machines that our own HEADERS and DATA frames stand for. In
#: SERVER_OPEN, the connection's machine takes the three inputs below without any change (so
#: they are only given to it in another state, where it raises or moves as in h2).
_SERVER_OPEN = ConnectionState.SERVER_OPEN
#: A stream's machine takes SEND_DATA in these states without any change.
_DATA_STATES = (StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE)
_CONN_SEND_HEADERS = ConnectionInputs.SEND_HEADERS
_CONN_SEND_DATA = ConnectionInputs.SEND_DATA
_SEND_DATA = StreamInputs.SEND_DATA
_CONN_RECV_HEADERS = ConnectionInputs.RECV_HEADERS
#: A request head after the rules: method, target, scheme, protocol, authority (or host),
#: content-length, expects 100-continue, priority field, the header list the app sees.
_CheckedHead = tuple[
    bytes,
    bytes,
    bytes | None,
    bytes | None,
    bytes | None,
    int | None,
    bool,
    bytes | None,
    tuple[tuple[bytes, bytes], ...],
]
#: Request heads remembered per connection (``_build_request``), and the largest one.
_HEAD_CACHE_ENTRIES = 16
_HEAD_CACHE_FIELDS = 32
_HEAD_CACHE_BYTES = 4096
_pack_frame_header = FRAME_HEADER.pack


def _data_frame_body_repr(frame: DataFrame) -> str:
    return f"data=<{len(frame.data)} bytes>"


# h2 builds repr(frame) of every frame it receives for a trace log line, even with logging off,
# and hyperframe's DATA repr hexlifies the whole payload: a third of the CPU of an upload.
DataFrame._body_repr = _data_frame_body_repr  # type: ignore[method-assign,assignment]


class HTTP2Protocol(FrameScanner):
    """One HTTP/2 server connection: feed it bytes, act on its events, send it events.

    Call ``initiate()`` (TLS with ALPN ``h2`` or prior knowledge) or ``initiate_upgrade()``
    (h2c) first, then ``receive_data`` for every read and ``data_to_send`` after every call.
    Limits with a value of 0 are off. Nothing raises from ``receive_data``: a peer's protocol
    violation is a ``ProtocolError`` event with the RST_STREAM or GOAWAY already queued.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        max_concurrent_streams: int = limits.DEFAULT_MAX_CONCURRENT_STREAMS,
        max_header_list_size: int = limits.DEFAULT_MAX_HEADER_LIST_SIZE,
        initial_window_size: int = limits.DEFAULT_INITIAL_WINDOW_SIZE,
        connection_window_size: int = limits.DEFAULT_CONNECTION_WINDOW_SIZE,
        max_frame_size: int = limits.DEFAULT_MAX_FRAME_SIZE,
        max_continuation_frames: int = limits.DEFAULT_MAX_CONTINUATION_FRAMES,
        max_resets_per_window: int = limits.DEFAULT_MAX_RESETS_PER_WINDOW,
        max_pings_per_window: int = limits.DEFAULT_MAX_PINGS_PER_WINDOW,
        max_settings_per_window: int = limits.DEFAULT_MAX_SETTINGS_PER_WINDOW,
        max_empty_frames_per_window: int = limits.DEFAULT_MAX_EMPTY_FRAMES_PER_WINDOW,
        max_priority_frames_per_window: int = limits.DEFAULT_MAX_PRIORITY_FRAMES_PER_WINDOW,
        max_glitches_per_window: int = limits.DEFAULT_MAX_GLITCHES_PER_WINDOW,
        rate_window_seconds: float = limits.DEFAULT_RATE_WINDOW_SECONDS,
        max_output_buffer: int = limits.DEFAULT_MAX_OUTPUT_BUFFER,
        enable_connect_protocol: bool = True,
        hold_reset_slots: bool = False,
        discard_body_limit: int = limits.DEFAULT_DISCARD_BODY_LIMIT,
        max_request_body_size: int = limits.DEFAULT_MAX_REQUEST_BODY_SIZE,
    ) -> None:
        # Long on purpose: the whole connection state, one attribute a line, each documented
        # where it is made (the frame scanner's share is declared in ``FrameScanner``).
        if not 16384 <= max_frame_size <= 16777215:
            raise ValueError("max_frame_size must be between 16384 and 16777215")
        if not 0 < initial_window_size <= STREAM_ID_MASK:
            raise ValueError("initial_window_size must be between 1 and 2**31-1")
        if not 65535 <= connection_window_size <= STREAM_ID_MASK:
            raise ValueError("connection_window_size must be between 65535 and 2**31-1")
        self._max_concurrent_streams = max_concurrent_streams or STREAM_ID_MASK
        self._max_header_list_size = max_header_list_size
        self._initial_window_size = initial_window_size
        self._connection_window_size = connection_window_size
        self._max_frame_size = max_frame_size
        self._max_continuation_frames = max_continuation_frames
        # An HPACK block larger than this cannot decode to an acceptable header list.
        self._max_header_block = 2 * max_header_list_size + max_frame_size
        self._max_output_buffer = max_output_buffer
        self._enable_connect_protocol = enable_connect_protocol
        self._resets = limits.RateLimit(max_resets_per_window, rate_window_seconds, clock)
        self._pings = limits.RateLimit(max_pings_per_window, rate_window_seconds, clock)
        self._settings = limits.RateLimit(max_settings_per_window, rate_window_seconds, clock)
        self._empty = limits.RateLimit(max_empty_frames_per_window, rate_window_seconds, clock)
        self._priorities = limits.RateLimit(
            max_priority_frames_per_window, rate_window_seconds, clock
        )
        self._glitches = limits.GlitchBudget(max_glitches_per_window, rate_window_seconds, clock)
        #: Reset client streams whose app instance has not ended yet (``release``): they keep
        #: counting against max_concurrent_streams.
        self._hold_reset_slots = hold_reset_slots
        self._lingering: set[int] = set()
        #: Streams whose response is complete while the request body still arrives: bytes
        #: still read and discarded before RST_STREAM(NO_ERROR).
        self._discard_body_limit = discard_body_limit
        #: The largest request body (0: none): a larger content-length is answered 413, a
        #: body that grows past it ends its stream (``_body_over_limit``).
        self._body_limit = max_request_body_size
        self._discarding: dict[int, int] = {}
        self._discard_credit: dict[int, int] = {}
        #: Inbound flow control of the connection (DATA on open streams never reaches h2):
        #: what the peer may still send, and what was released since the last WINDOW_UPDATE.
        self._inbound_window = connection_window_size
        self._inbound_credit = 0
        # WINDOW_UPDATEs go out once half a window is released, not per DATA frame.
        self._stream_update_at = max(initial_window_size // 2, 1)
        self._connection_update_at = max(connection_window_size // 2, 1)

        self._h2 = H2Connection(
            config=H2Configuration(
                client_side=False,
                header_encoding=None,
                validate_inbound_headers=False,
                normalize_inbound_headers=False,
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        # HPACK that remembers repeated blocks (``http2_hpack``): same wire bytes, same table.
        self._h2.encoder = CachingEncoder()
        self._h2.decoder = CachingDecoder(self._h2.DEFAULT_MAX_HEADER_LIST_SIZE)
        #: Request heads that passed the rules, by their decoded field list (``_build_request``).
        self._heads: dict[tuple[object, ...], _CheckedHead] = {}
        #: Response fields that passed ``_outbound_headers``, by the app's list.
        self._sent_heads: dict[
            tuple[tuple[bytes, bytes], ...], tuple[tuple[bytes, bytes], ...]
        ] = {}
        #: ``_open_stream``: h2's stream table is pruned of closed streams past this size.
        self._h2_prune_at = 64
        self._scheduler = PriorityScheduler(max_tree_streams=max(1000, 4 * max_concurrent_streams))
        self._streams: dict[int, Stream] = {}
        self._client_streams = 0
        #: Recently reset streams: sends for them are dropped quietly (the app raced a reset),
        #: frames the peer still sends on them are ignored before h2 sees them.
        self._reset_ids: dict[int, ClosedStream] = {}
        #: Streams that ended with DATA sent since the peer's last WINDOW_UPDATE for them.
        self._recent_sent: dict[int, None] = {}
        #: DATA went out since the peer's last connection-level WINDOW_UPDATE.
        self._sent_since_update = False
        self._inbuf = bytearray()
        self._out = bytearray()
        self._initiated = False
        self._closed = False
        self._goaway_last_stream: int | None = None
        #: Streams refused (REFUSED_STREAM) for opening after our GOAWAY: no event (the
        #: client did nothing wrong); the server counts them when the connection ends.
        self.refused_after_goaway = 0
        self._draining = False
        self._answers = 0
        self._init_scanner()
        self._handlers: dict[type, Callable[[Any, list[Event]], None]] = {
            H2RequestReceived: self._on_request,
            H2DataReceived: self._on_data,
            H2StreamEnded: self._on_stream_ended,
            H2TrailersReceived: self._on_trailers,
            H2StreamReset: self._on_stream_reset,
            H2WindowUpdated: self._on_window_updated,
            H2RemoteSettingsChanged: self._on_settings_changed,
            H2PriorityUpdated: self._on_priority,
            H2ConnectionTerminated: self._on_goaway,
            H2PingAckReceived: self._on_ping_ack,
        }

    # --- starting -----------------------------------------------------------------------

    def _local_settings(self, max_concurrent_streams: int) -> Settings:
        return Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: max_concurrent_streams,
                SettingCodes.MAX_HEADER_LIST_SIZE: self._max_header_list_size,
                SettingCodes.INITIAL_WINDOW_SIZE: self._initial_window_size,
                SettingCodes.MAX_FRAME_SIZE: self._max_frame_size,
                SettingCodes.ENABLE_CONNECT_PROTOCOL: int(self._enable_connect_protocol),
            },
        )

    def _prepare_initiate(self) -> None:
        if self._initiated:
            raise LocalProtocolError("the HTTP/2 connection was already initiated")
        self._initiated = True
        self._h2.local_settings = self._local_settings(self._max_concurrent_streams)

    def _finish_initiate(self) -> None:
        h2 = self._h2
        # The limit went out in our SETTINGS; h2 would answer a stream over it with a
        # connection error before decoding its headers, so it gets a looser copy and this
        # class refuses such streams itself (RST_STREAM(REFUSED_STREAM), HPACK kept in sync).
        h2.local_settings = self._local_settings(STREAM_ID_MASK)
        h2.max_inbound_frame_size = self._max_frame_size
        h2.decoder.max_header_list_size = 2 * self._max_header_list_size
        if self._connection_window_size > 65535:
            h2.increment_flow_control_window(self._connection_window_size - 65535)

    def initiate(self) -> None:
        """Start the connection (TLS/ALPN ``h2`` or prior knowledge): queue our SETTINGS.

        Raises ``LocalProtocolError`` if called twice.
        """
        self._prepare_initiate()
        self._h2.initiate_connection()
        self._finish_initiate()

    def initiate_upgrade(self, settings_header: bytes, request: Request) -> list[Event]:
        """Start the connection after an HTTP/1.1 ``Upgrade: h2c`` (the 101 is already sent).

        ``settings_header`` is the ``HTTP2-Settings`` header value. The upgrading request
        becomes stream 1, complete on the client's side (requests with a body should not be
        upgraded). Returns its ``Request`` event (http_version "2"), or a ``ProtocolError``
        and ``ConnectionClosed`` when the settings header is invalid.
        """
        self._prepare_initiate()
        try:
            self._h2.initiate_upgrade_connection(settings_header)
        except Exception as error:  # h2, hyperframe and base64 each raise their own
            events: list[Event] = []
            self._connection_error(
                ErrorCodes.PROTOCOL_ERROR, f"invalid HTTP2-Settings header: {error}", events
            )
            return events
        try:
            raw = base64.urlsafe_b64decode(settings_header + b"=" * (-len(settings_header) % 4))
            check_settings(raw, 0, len(raw) - len(raw) % 6)
        except ConnectionViolation as error:
            self._connection_error(error.error_code, error.message, events := [])
            return events
        except (binascii.Error, ValueError):
            pass  # h2 accepted it: it decodes differently
        self._finish_initiate()
        headers = [
            (name, value)
            for name, value in request.headers
            if name not in CONNECTION_SPECIFIC and name != b"http2-settings"
        ]
        authority = next((value for name, value in headers if name == b"host"), None)
        stream = Stream(1, request.scheme or b"http", authority)
        stream.remote_closed = True
        self._streams[1] = stream
        self._client_streams += 1
        return [
            Request(
                stream_id=1,
                method=request.method,
                target=request.target,
                headers=headers,
                http_version="2",
                scheme=request.scheme or b"http",
                expects_body=False,
            )
        ]

    # --- state the server reads ---------------------------------------------------------

    @property
    def pending_output_size(self) -> int:
        """Bytes queued for the peer that ``data_to_send`` has not returned yet."""
        return len(self._out) + len(self._h2._data_to_send)

    @property
    def paused(self) -> bool:
        """True while input is held back because ``max_output_buffer`` bytes wait to be sent.

        The peer is sending PINGs/SETTINGS faster than it reads the answers. The server
        should stop reading the socket, write ``data_to_send()``, then call ``resume()``
        (which processes the held input and may pause again), until this is False.
        """
        return self._held

    @property
    def closed(self) -> bool:
        """True once the connection is over (GOAWAY either way, or the peer closed)."""
        return self._closed

    @property
    def active_streams(self) -> int:
        """Streams still open (their request or response is not complete)."""
        return len(self._streams)

    @property
    def discarding(self) -> bool:
        """True while a stream whose response is complete still takes the client's upload
        (read and discarded): the connection is busy, not idle."""
        return bool(self._discarding)

    @property
    def preface_received(self) -> bool:
        """True once the client's connection preface and its first SETTINGS frame arrived."""
        return self._settings_received

    @property
    def buffered_request_bytes(self) -> int:
        """Request-body bytes handed out as ``Body`` events and not acknowledged yet: what
        the server holds for the apps. At most ``max_concurrent_streams`` x
        ``initial_window_size`` and at most ``connection_window_size`` (flow control)."""
        return sum(stream.unacked for stream in self._streams.values())

    def preface_timeout(self) -> list[Event]:
        """The preface and first SETTINGS did not arrive in time: end the connection."""
        events: list[Event] = []
        if not self._settings_received:
            self._connection_error(
                ErrorCodes.PROTOCOL_ERROR,
                "no connection preface and SETTINGS frame within the head timeout",
                events,
            )
        return events

    def release(self, stream_id: int) -> None:
        """The app instance of a stream ended: a reset stream stops holding its slot."""
        self._lingering.discard(stream_id)

    @property
    def draining(self) -> bool:
        """True between the two GOAWAYs of ``goaway(drain=True)``: streams the client opens
        meanwhile are still served."""
        return self._draining

    @property
    def shutdown_complete(self) -> bool:
        """True after ``goaway()`` once no stream remains: the server may close."""
        return self._closed or (self._goaway_last_stream is not None and not self._streams)

    # --- input --------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes read from the socket; ``b""`` means the peer closed. Never raises."""
        events: list[Event] = []
        if self._closed:
            return events
        if not data:
            self._closed = True
            events.append(ConnectionClosed(None, "the client closed the connection"))
            return events
        if self._inbuf:
            self._inbuf += data
            self._process(self._inbuf, events)
        else:
            self._process(data, events)
        return events

    def resume(self) -> list[Event]:
        """Process input held back while ``paused``; call after draining ``data_to_send``."""
        events: list[Event] = []
        if self._inbuf and not self._closed:
            self._process(self._inbuf, events)
        return events

    def _process(self, buf: bytes | bytearray, events: list[Event]) -> None:
        try:
            consumed = self._scan(buf, events)
        except ConnectionViolation as error:
            self._connection_error(error.error_code, error.message, events)
            return
        except H2ProtocolError as error:
            self._h2_failed(error, events)
            return
        except Exception as error:  # not the peer's doing: a bug of ours (or of h2)
            self._internal_error(error, events)
            return
        if buf is self._inbuf:
            del self._inbuf[:consumed]
        elif consumed < len(buf):
            self._inbuf = bytearray(buf[consumed:])

    def _note_reset(self, stream_id: int, allowance: int, *, answered: bool = True) -> None:
        """Remember a reset stream (bounded): its late frames are ignored, sends dropped."""
        reset_ids = self._reset_ids
        reset_ids[stream_id] = ClosedStream(allowance, answered)
        if len(reset_ids) > 1024:
            del reset_ids[next(iter(reset_ids))]

    # --- h2 events -> tricorn events ----------------------------------------------------

    def _open_stream(self, stream_id: int, block: bytes, ended: bool, events: list[Event]) -> None:
        """A complete request head on a new client stream, taken by the frame scanner: h2's
        state gets what its ``_receive_headers_frame`` would do to it (the HPACK table, the
        connection's and the new stream's state machines, the highest stream id), then the
        request is read as for h2's event."""
        h2 = self._h2
        headers = decode_block(h2.decoder, block)
        if h2.state_machine.state is not _SERVER_OPEN:
            h2.state_machine.process_input(_CONN_RECV_HEADERS)
        h2_streams = h2.streams
        if len(h2_streams) >= self._h2_prune_at:
            # h2 forgets its closed streams when it counts the open ones (it did at every
            # new stream); here once their number has doubled.
            open_streams = h2.open_inbound_streams + h2.open_outbound_streams
            self._h2_prune_at = max(64, 2 * open_streams)
        # What h2's ``_begin_new_stream`` does, without its checks (the scanner made them: a
        # client's odd id above the highest) and its three log calls.
        h2_stream = H2Stream(
            stream_id,
            config=h2.config,
            inbound_window_size=h2.local_settings.initial_window_size,
            outbound_window_size=h2.remote_settings.initial_window_size,
        )
        h2_stream.max_outbound_frame_size = h2.max_outbound_frame_size
        h2_streams[stream_id] = h2_stream
        h2.highest_inbound_stream_id = stream_id
        receive_head(h2_stream.state_machine, ended)
        self._open_request(stream_id, headers, ended, events, h2_stream)

    def _on_request(self, event: H2RequestReceived, events: list[Event]) -> None:
        self._open_request(event.stream_id, event.headers, event.stream_ended is not None, events)

    def _open_request(
        self,
        stream_id: int,
        raw_headers: Iterable[tuple[bytes, bytes]],
        ended: bool,
        events: list[Event],
        h2_stream: H2Stream | None = None,
    ) -> None:
        window = 0 if ended else self._initial_window_size
        if not self._admit(stream_id, window, events):
            return
        try:
            request, stream, priority = self._build_request(stream_id, raw_headers, ended)
        except Malformed as error:
            self._refuse(
                stream_id,
                window,
                ErrorCodes.PROTOCOL_ERROR,
                f"malformed request: {error}",
                "too many malformed requests",
                events,
            )
            self._glitch("malformed request")
            return
        except HeaderListTooLarge:
            self._answer_431(stream_id, window, ended, raw_headers, events)
            return
        if stream.content_length is not None and not stream.tunnel:
            try:  # HTTP/1.1's rule (and HTTP/3's): 413 before any app runs
                check_content_length_limit(stream.content_length, self._body_limit)
            except PeerError as error:
                self._answer_413(stream_id, None if ended else window)
                events.append(
                    ProtocolError(
                        stream_id,
                        f"{error.message} (max_request_body_size); answered 413",
                        status=413,
                        method=request.method,
                        target=request.target,
                    )
                )
                return
        stream.remote_closed = ended
        self._streams[stream_id] = stream
        self._client_streams += 1
        if h2_stream is None:
            h2_stream = self._h2.streams.get(stream_id)
        if h2_stream is not None:
            # The body bypasses h2 (``_body_frame``); content-length is checked here instead.
            h2_stream._expected_content_length = None
        if priority is not None:
            self._scheduler.set_field(stream_id, priority)
        events.append(request)

    def _answer_431(
        self,
        stream_id: int,
        window: int,
        ended: bool,
        raw_headers: Iterable[tuple[bytes, bytes]],
        events: list[Event],
    ) -> None:
        """A request header list over our limit: 431, then RST_STREAM(NO_ERROR) if a body
        would follow."""
        self._h2.send_headers(stream_id, [(b":status", b"431")], end_stream=True)
        if not ended:
            self._h2.reset_stream(stream_id, ErrorCodes.NO_ERROR)
            self._note_reset(stream_id, window)
        # Pseudo-header fields come first; a malformed head may lack either.
        pseudo = dict(itertools.islice(raw_headers, 5))
        events.append(
            ProtocolError(
                stream_id,
                f"request header list over {self._max_header_list_size} bytes; answered 431",
                status=431,
                method=pseudo.get(b":method"),
                target=pseudo.get(b":path"),
            )
        )

    def _answer_413(self, stream_id: int, window: int | None) -> None:
        """Answer 413 ourselves (a request body over ``max_request_body_size``), with
        END_STREAM. When the client has a body still to send (``window``: what it may send
        now; None if it ended), the rest is read and discarded, then RST_STREAM(NO_ERROR),
        as after an app's early response (``_local_end``): RFC 9113 8.1 allows the reset at
        once, but some clients lose a response that a reset follows while they upload."""
        self._h2.send_headers(stream_id, [(b":status", b"413")], end_stream=True)
        if window is None:
            return
        if self._discard_body_limit:
            self._discarding[stream_id] = self._discard_body_limit
        else:
            self._h2.reset_stream(stream_id, ErrorCodes.NO_ERROR)
            self._note_reset(stream_id, window)

    def _body_over_limit(self, stream: Stream, length: int, events: list[Event]) -> None:
        """A request body grew past ``max_request_body_size`` (this DATA frame, ``length``
        bytes, is dropped; its connection window given back). No response yet: 413, as for
        a content-length over it (``_answer_413``). A response under way cannot change its
        status: the stream is reset with CANCEL (RFC 9113 7: "no longer needed"; not
        PROTOCOL_ERROR: the client broke no rule of the protocol; not REFUSED_STREAM: the app
        has seen part of the request, a retry is not known to be safe). Either way the app
        hears ``http.disconnect`` (the ``ProtocolError`` event)."""
        stream_id = stream.stream_id
        message = f"request body over max_request_body_size ({self._body_limit} bytes)"
        self._ignored_credit += length  # h2 never saw the frame
        if stream.response_started:
            self._stream_error(stream, ErrorCodes.CANCEL, message + "; stream reset", events)
            return
        stream.response_started = True
        # What the client sent that its stream window has not had back (the app's unread
        # bytes, this frame) reopens it: the discarding must not wait on a closed window.
        unread = stream.unacked + length
        window = max(stream.window - length, 0)
        self._forget(stream)
        self._answer_413(stream_id, window)
        if stream_id in self._discarding:
            self._discard_credit[stream_id] = self._discard_credit.get(stream_id, 0) + unread
        events.append(ProtocolError(stream_id, message + "; answered 413", status=413))

    def _admit(self, stream_id: int, window: int, events: list[Event]) -> bool:
        """Whether a new stream may open: not after our GOAWAY, not depending on itself
        (RFC 9113 5.3.1), not over ``max_concurrent_streams`` (5.1.2: REFUSED_STREAM)."""
        if self._goaway_last_stream is not None and stream_id > self._goaway_last_stream:
            self._h2.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
            self._note_reset(stream_id, window)
            self.refused_after_goaway += 1
            return False
        if stream_id in self._self_dependent:
            self._self_dependent.discard(stream_id)
            self._h2.reset_stream(stream_id, ErrorCodes.PROTOCOL_ERROR)
            self._note_reset(stream_id, window)
            events.append(
                ProtocolError(
                    stream_id, "stream depends on itself", error_code=ErrorCodes.PROTOCOL_ERROR
                )
            )
            self._glitch("stream reset for depending on itself")
            return False
        held = self._client_streams + len(self._lingering) + len(self._discarding)
        if held >= self._max_concurrent_streams:
            self._refuse(
                stream_id,
                window,
                ErrorCodes.REFUSED_STREAM,
                f"more than {self._max_concurrent_streams} concurrent streams; refused",
                "too many streams refused",
                events,
            )
            self._glitch("stream refused")
            return False
        return True

    def _refuse(
        self,
        stream_id: int,
        window: int,
        error_code: int,
        message: str,
        flood: str,
        events: list[Event],
    ) -> None:
        """Reset a stream h2 opened but we do not take; counts against the reset limit."""
        self._h2.reset_stream(stream_id, error_code)
        self._note_reset(stream_id, window)
        events.append(ProtocolError(stream_id, message, error_code=error_code))
        self._limit(self._resets, flood)

    def _build_request(
        self, stream_id: int, raw_headers: Iterable[tuple[bytes, bytes]], ended: bool
    ) -> tuple[Request, Stream, bytes | None]:
        """Validate a request head (RFC 9113 8.2, 8.3: ``http2_request``) and build its event.

        A head that passed is remembered by its decoded field list: a client repeats the same
        head, and the rules give the same answer for the same list (``_heads``).
        """
        key: tuple[object, ...] | None = None
        head: _CheckedHead | None = None
        if type(raw_headers) is list and len(raw_headers) <= _HEAD_CACHE_FIELDS:
            key = (ended, *raw_headers)
            head = self._heads.get(key)
        if head is None:
            head = self._check_head(raw_headers, ended)
            if (
                key is not None
                and sum(len(name) + len(value) for name, value in raw_headers) <= _HEAD_CACHE_BYTES
            ):
                if len(self._heads) >= _HEAD_CACHE_ENTRIES:
                    self._heads.clear()
                self._heads[key] = head
        method, target, scheme, protocol, authority, content_length, expect, priority, headers = (
            head
        )
        stream = Stream(stream_id, scheme or b"https", authority)
        stream.content_length = content_length
        stream.expect_continue = expect
        stream.head = method == b"HEAD"
        stream.tunnel = method == b"CONNECT"
        # Until the peer acknowledged our SETTINGS it may assume the default window.
        window = self._initial_window_size
        stream.window = window if not self._settings_acks_due else max(window, 65535)
        request = Request(
            stream_id=stream_id,
            method=method,
            target=target,
            headers=list(headers),
            http_version="2",
            scheme=scheme,
            protocol=protocol,
            expects_body=not ended,
            expect_continue=expect,
        )
        return request, stream, priority

    def _check_head(self, raw_headers: Iterable[tuple[bytes, bytes]], ended: bool) -> _CheckedHead:
        """Apply the rules to a request head; raises ``Malformed`` or ``HeaderListTooLarge``."""
        head = read_request_head(raw_headers, self._max_header_list_size)
        target = check_request_target(head, self._enable_connect_protocol)
        method = head.method
        assert method is not None  # check_request_target refuses a request without one
        content_length = check_body_length(head, ended)
        return (
            method,
            target,
            head.scheme,
            head.protocol,
            head.authority if head.authority is not None else head.host,
            content_length,
            head.expect_continue and not ended,
            head.priority,
            tuple(head.headers()),
        )

    def _on_data(self, event: H2DataReceived, events: list[Event]) -> None:
        stream_id: int = event.stream_id
        data: bytes = event.data
        flow_length: int = event.flow_controlled_length
        stream = self._streams.get(stream_id)
        if stream is None or stream.remote_closed:
            self._h2.acknowledge_received_data(flow_length, stream_id)
            if stream_id in self._discarding:
                self._discarded(stream_id, flow_length)
            return
        if flow_length > len(data):
            # Padding is consumed the moment it arrives.
            self._h2.acknowledge_received_data(flow_length - len(data), stream_id)
        if data:
            stream.unacked += len(data)
            events.append(Body(stream_id, data))

    def _on_stream_ended(self, event: H2StreamEnded, events: list[Event]) -> None:
        if event.stream_id in self._discarding:
            self._end_discarding(event.stream_id)
        stream = self._streams.get(event.stream_id)
        if stream is None or stream.remote_closed:
            return
        stream.remote_closed = True
        events.append(EndBody(stream.stream_id))
        if stream.local_closed:
            self._forget(stream)

    def _on_trailers(self, event: H2TrailersReceived, events: list[Event]) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is None or stream.remote_closed:
            return
        trailers: Headers = []
        for name, value in event.headers:
            if not check_trailer_field(name, value):
                self._stream_error(
                    stream, ErrorCodes.PROTOCOL_ERROR, f"invalid trailer {name!r}", events
                )
                return
            trailers.append((name, value))
        stream.remote_closed = True
        events.append(Trailers(stream.stream_id, trailers))
        if stream.local_closed:
            self._forget(stream)

    def _on_stream_reset(self, event: H2StreamReset, events: list[Event]) -> None:
        if event.stream_id in self._discarding:
            self._end_discarding(event.stream_id)
        stream = self._streams.get(event.stream_id)
        code = int(event.error_code or 0)
        if not event.remote_reset:
            events.append(ProtocolError(event.stream_id, "stream error", error_code=code))
        if stream is not None:
            self._forget(stream, reset=True, allowance=0, answered=not event.remote_reset)
            events.append(StreamReset(stream.stream_id, code))
        elif event.remote_reset and event.stream_id not in self._reset_ids:
            self._note_reset(event.stream_id, 0, answered=False)

    def _on_window_updated(self, event: H2WindowUpdated, events: list[Event]) -> None:
        stream_id: int = event.stream_id
        if not stream_id or stream_id in self._streams:
            events.append(WindowUpdated(stream_id))

    def _on_settings_changed(self, event: H2RemoteSettingsChanged, events: list[Event]) -> None:
        changed = event.changed_settings
        window = changed.get(SettingCodes.INITIAL_WINDOW_SIZE)
        if window is not None and window.new_value > (window.original_value or 0):
            events.extend(WindowUpdated(stream_id) for stream_id in self._streams)
        no_tree = changed.get(SETTINGS_NO_RFC7540_PRIORITIES)
        if no_tree is not None and no_tree.new_value == 1:
            self._scheduler.use_tree = False

    def _on_priority(self, event: H2PriorityUpdated, events: list[Event]) -> None:
        stream_id = int(event.stream_id or 0)
        if stream_id in self._streams or self._is_idle(stream_id):
            self._scheduler.set_tree(
                stream_id, event.depends_on or 0, event.weight or 16, bool(event.exclusive)
            )

    def _on_ping_ack(self, event: H2PingAckReceived, events: list[Event]) -> None:
        if self._draining and event.ping_data == _SHUTDOWN_PING:
            self.goaway(graceful=True)  # the client has seen the first GOAWAY

    def _on_goaway(self, event: H2ConnectionTerminated, events: list[Event]) -> None:
        self._closed = True
        code = int(event.error_code or 0)
        events.append(ConnectionClosed(code, f"the client sent GOAWAY (error code {code})"))

    # --- errors -------------------------------------------------------------------------

    def _connection_error(self, error_code: int, message: str, events: list[Event]) -> None:
        """Queue GOAWAY(error_code) and end the connection."""
        if self._closed:
            return
        self._closed = True
        self._append_raw(self._goaway(error_code, message))
        events.append(ProtocolError(None, message, error_code=error_code))
        events.append(ConnectionClosed(error_code, message))

    def _internal_error(self, error: Exception, events: list[Event]) -> None:
        """An exception that is no protocol error of the peer's: logged at ERROR with its
        traceback, answered with GOAWAY(INTERNAL_ERROR) (no details on the wire), and reported
        as a ``ProtocolError`` whose message starts with "internal error"."""
        error_log.error("HTTP/2 internal error while processing the peer's input", exc_info=error)
        if self._closed:
            return
        self._closed = True
        self._append_raw(self._goaway(ErrorCodes.INTERNAL_ERROR, "internal error"))
        message = f"internal error: {error!r}"
        events.append(ProtocolError(None, message, error_code=ErrorCodes.INTERNAL_ERROR))
        events.append(ConnectionClosed(ErrorCodes.INTERNAL_ERROR, message))

    def _h2_failed(self, error: H2ProtocolError, events: list[Event]) -> None:
        """h2 raised and queued GOAWAY itself; replace it to fix the code and add the reason."""
        code = int(error.error_code)
        cause = error.__cause__
        if isinstance(cause, HPACKError) and not isinstance(cause, OversizedHeaderListError):
            code = ErrorCodes.COMPRESSION_ERROR  # RFC 9113 4.3; h2 says PROTOCOL_ERROR
        output = self._h2.data_to_send()
        if output[-17:-8] == b"\x00\x00\x08\x07\x00\x00\x00\x00\x00":
            output = output[:-17]
        self._out += output
        self._connection_error(code, wire_text(str(error) or type(error).__name__), events)

    def _goaway(self, error_code: int, message: str = "") -> bytes:
        last = self._h2.highest_inbound_stream_id
        if self._goaway_last_stream is not None:
            last = min(last, self._goaway_last_stream)
        body = _GOAWAY_BODY.pack(last, error_code) + message.encode("utf-8", "replace")[:256]
        return frame(GOAWAY, 0, 0, body)

    def _append_raw(self, frame: bytes) -> None:
        """Queue bytes built here, after whatever h2 queued before them."""
        pending = self._h2.data_to_send()
        if pending:
            self._out += pending
        self._out += frame

    def _forget(
        self,
        stream: Stream,
        *,
        reset: bool = False,
        allowance: int | None = None,
        answered: bool = True,
    ) -> None:
        stream_id = stream.stream_id
        if self._streams.pop(stream_id, None) is None:
            return
        if stream_id & 1:
            self._client_streams -= 1
            if reset and self._hold_reset_slots:
                self._lingering.add(stream_id)  # until the server calls release()
        self._scheduler.remove(stream_id)
        if stream.unacked:
            # Body bytes the app will never read still hold the connection window.
            self._inbound_credit += stream.unacked
            stream.unacked = 0
        if self._inbound_credit:
            self._give_connection_credit()
        if stream.sent:
            recent = self._recent_sent
            recent[stream_id] = None
            if len(recent) > 1024:
                del recent[next(iter(recent))]
        if reset:
            if allowance is None:
                allowance = 0 if stream.remote_closed else self._initial_window_size
            self._note_reset(stream_id, allowance, answered=answered)

    # --- output -------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Return (and forget) the bytes to write to the socket now."""
        if self._out:
            self._out += self._h2.data_to_send()
            data = bytes(self._out)
            self._out.clear()
            return data
        return bytes(self._h2.data_to_send())

    def _stream_for_send(self, stream_id: int, what: str) -> Stream | None:
        stream = self._streams.get(stream_id)
        if stream is not None and not stream.local_closed and not self._closed:
            return stream
        # Once closed (the peer's GOAWAY included: h2 then refuses to send anything, with
        # its own ProtocolError; found by fuzzing), what the app sends is dropped.
        if self._closed or stream_id in self._reset_ids or stream_id in self._discarding:
            # The peer went away first, or the request was answered already (a body over
            # max_request_body_size): what the app sends is dropped.
            return None
        raise LocalProtocolError(f"stream {stream_id}: {what} for a stream that is not open")

    def send(self, event: Event) -> None:
        """Queue an event for the peer.

        ``Response``, ``InformationalResponse``, ``Body``, ``EndBody``, ``Trailers``,
        ``StreamReset``. Raises ``LocalProtocolError`` on misuse (data before a head, a
        second head, a ``Body`` larger than ``sendable()``, an unknown stream). Events for a
        stream that was reset, or after the connection closed, are dropped silently.
        """
        kind = type(event)
        if kind is Body:
            assert isinstance(event, Body)
            self.send_data(event.stream_id, event.data)
        elif kind is EndBody:
            assert isinstance(event, EndBody)
            self.send_data(event.stream_id, b"", end_stream=True)
        elif kind is Response:
            assert isinstance(event, Response)
            self.send_response(event.stream_id, event.status, event.headers)
        elif kind is InformationalResponse:
            assert isinstance(event, InformationalResponse)
            self._send_informational(event)
        elif kind is Trailers:
            assert isinstance(event, Trailers)
            self._send_trailers(event)
        elif kind is StreamReset:
            assert isinstance(event, StreamReset)
            self._send_reset(event)
        else:
            raise LocalProtocolError(f"cannot send {event!r} on HTTP/2")

    def _outbound_headers(self, first: tuple[bytes, bytes], headers: Headers) -> Headers:
        """``first`` and the app's fields, lower-cased, without connection-specific fields and
        pseudo-headers; an invalid value raises. The fields of a list seen before are
        remembered (``_sent_heads``: an app repeats its response heads)."""
        key: tuple[tuple[bytes, bytes], ...] | None = None
        if type(headers) is list and len(headers) <= _HEAD_CACHE_FIELDS:
            try:
                key = tuple(headers)
                fields = self._sent_heads.get(key)
            except TypeError:  # a field that is not a tuple of bytes
                key = fields = None
            if fields is not None:
                return [first, *fields]
        block: Headers = [first]
        for raw_name, value in headers:
            name = raw_name.lower()
            if name in NOT_IN_RESPONSES or name[:1] == b":":
                if name[:1] != b":":
                    error_log.debug(
                        "connection-specific response header %r dropped (RFC 9113 8.2.2)",
                        name.decode("latin-1"),
                    )
                continue
            if INVALID_VALUE.search(value):
                raise LocalProtocolError(f"header {name!r} has an invalid value {value!r}")
            if name in SENSITIVE_FIELDS:
                # Never indexed (RFC 7541 7.1.3): hpack encodes it as such and keeps it out
                # of the dynamic table, whatever its length.
                block.append(NeverIndexedHeaderTuple(name, value))
            else:
                block.append((name, value))
        if key is not None:
            sent_heads = self._sent_heads
            if len(sent_heads) >= _HEAD_CACHE_ENTRIES:
                sent_heads.clear()
            sent_heads[key] = tuple(block[1:])
        return block

    def send_response(
        self, stream_id: int, status: int, headers: Headers, *, end_stream: bool = False
    ) -> None:
        """Queue a response head; ``end_stream`` when no body follows (saves a frame)."""
        stream = self._stream_for_send(stream_id, "Response")
        if stream is None:
            return
        if stream.response_started:
            raise LocalProtocolError(f"stream {stream_id}: a second Response")
        if not 200 <= status <= 599:
            raise LocalProtocolError(f"stream {stream_id}: Response status {status} not 2xx-5xx")
        stream.response_started = True
        block = self._outbound_headers((b":status", _STATUS_BYTES[status]), headers)
        self._send_block(stream_id, block, end_stream)
        if end_stream:
            self._local_end(stream)

    def respond(
        self, stream_id: int, status: int, headers: Headers, body: bytes, *, end_stream: bool
    ) -> bool:
        """A response head and its first body bytes at once (most responses are one of each):
        True once both are queued (``end_stream``: the body is the whole response). False,
        with nothing queued, when the windows do not take all of ``body`` now, or the stream
        is not open: then ``send_response``, and ``send_data`` as ``sendable`` allows."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.local_closed or self._closed:
            return False
        if body and not stream.head:
            h2 = self._h2
            h2_stream = h2.streams.get(stream_id)
            if h2_stream is None or len(body) > min(
                h2.outbound_flow_control_window, h2_stream.outbound_flow_control_window
            ):
                return False
        self.send_response(stream_id, status, headers)
        if body or end_stream:
            self.send_data(stream_id, body, end_stream=end_stream)
        return True

    def _send_block(self, stream_id: int, block: Headers, end_stream: bool) -> None:
        """A response head or trailers: HPACK-encoded and framed here, not by h2 (its send
        path was a third of the cost of a small response); h2's state machines are given the
        same inputs its ``send_headers`` gives them, so its stream states stay true."""
        h2 = self._h2
        h2_stream = h2.streams.get(stream_id)
        if h2_stream is None:  # not a stream h2 knows: its own error
            h2.send_headers(stream_id, block, end_stream=end_stream)
            return
        if h2.state_machine.state is not _SERVER_OPEN:
            h2.state_machine.process_input(_CONN_SEND_HEADERS)
        machine = h2_stream.state_machine
        send_head(machine)  # before encoding, as h2: HPACK state changes
        encoded = h2.encoder.encode(block)
        if end_stream:
            send_end(machine)
        elif machine.trailers_sent:
            raise LocalProtocolError(f"stream {stream_id}: trailers must end the stream")
        out = h2._data_to_send
        size = len(encoded)
        limit = h2.max_outbound_frame_size
        flags = END_STREAM if end_stream else 0
        if size <= limit:
            out += _pack_frame_header(
                size >> 16, size & 0xFFFF, HEADERS, flags | END_HEADERS, stream_id
            )
            out += encoded
            return
        # RFC 9113 6.10: the rest of the block in CONTINUATION frames; END_STREAM on the first.
        frame_type = HEADERS
        for offset in range(0, size, limit):
            piece = encoded[offset : offset + limit]
            length = len(piece)
            if offset + limit >= size:
                flags |= END_HEADERS
            out += _pack_frame_header(length >> 16, length & 0xFFFF, frame_type, flags, stream_id)
            out += piece
            frame_type = CONTINUATION
            flags = 0

    def send_data(self, stream_id: int, data: bytes, *, end_stream: bool = False) -> None:
        """Queue body bytes (at most ``sendable(stream_id)``), split into frames.

        ``end_stream`` ends the response with the last frame.
        """
        stream = self._stream_for_send(stream_id, "Body" if data else "EndBody")
        if stream is None:
            return
        if not stream.response_started:
            raise LocalProtocolError(f"stream {stream_id}: body before the Response")
        h2 = self._h2
        size = len(data)
        if size and stream.head:
            size = 0  # a HEAD response has no content, whatever the app sends
        h2_stream = h2.streams.get(stream_id)
        if h2_stream is None:
            raise LocalProtocolError(f"stream {stream_id}: not open in h2")
        # DATA frames are made here, not by h2 (as for HEADERS in ``_send_block``): the same
        # state-machine inputs and flow-control bookkeeping as h2's ``send_data``.
        connection = h2.state_machine
        machine = h2_stream.state_machine
        out = h2._data_to_send
        if size:
            window = min(h2.outbound_flow_control_window, h2_stream.outbound_flow_control_window)
            if size > window:
                raise LocalProtocolError(
                    f"stream {stream_id}: Body of {size} bytes but only {max(window, 0)} "
                    "may be sent now; send at most sendable() bytes"
                )
            stream.sent = True
            self._sent_since_update = True
            frame_size = h2.max_outbound_frame_size
            view = memoryview(data) if size > frame_size else data
            for offset in range(0, size, frame_size):
                piece = view[offset : offset + frame_size] if size > frame_size else data
                length = len(piece)
                flags = END_STREAM if end_stream and offset + length >= size else 0
                if connection.state is not _SERVER_OPEN:
                    connection.process_input(_CONN_SEND_DATA)
                if machine.state not in _DATA_STATES:
                    machine.process_input(_SEND_DATA)
                if flags:
                    send_end(machine)
                h2_stream.outbound_flow_control_window -= length
                h2.outbound_flow_control_window -= length
                out += _pack_frame_header(length >> 16, length & 0xFFFF, DATA, flags, stream_id)
                out += piece
        elif end_stream:
            if connection.state is not _SERVER_OPEN:
                connection.process_input(_CONN_SEND_DATA)
            send_end(machine)
            out += _pack_frame_header(0, 0, DATA, END_STREAM, stream_id)
        if end_stream:
            self._local_end(stream)

    def _send_informational(self, event: InformationalResponse) -> None:
        stream = self._stream_for_send(event.stream_id, "InformationalResponse")
        if stream is None:
            return
        if stream.response_started or not 100 <= event.status <= 199 or event.status == 101:
            raise LocalProtocolError(
                f"stream {event.stream_id}: InformationalResponse {event.status} not allowed now"
            )
        if event.status == 100:
            if not stream.expect_continue:
                return
            stream.expect_continue = False
        block = self._outbound_headers((b":status", _STATUS_BYTES[event.status]), event.headers)
        self._h2.send_headers(event.stream_id, block)

    def continue_request(self, stream_id: int) -> None:
        """Send ``100 Continue`` if the request asked for it and nothing was sent yet."""
        stream = self._streams.get(stream_id)
        if stream is not None and stream.expect_continue and not stream.response_started:
            self._send_informational(InformationalResponse(stream_id, 100))

    def _send_trailers(self, event: Trailers) -> None:
        stream = self._stream_for_send(event.stream_id, "Trailers")
        if stream is None:
            return
        if not stream.response_started:
            raise LocalProtocolError(f"stream {event.stream_id}: Trailers before the Response")
        block = self._outbound_headers((b"", b""), event.headers)[1:]
        self._send_block(event.stream_id, block, True)
        self._local_end(stream)

    def _send_reset(self, event: StreamReset) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is None or self._closed:  # h2 refuses to send once closed
            return
        self._h2.reset_stream(event.stream_id, event.error_code or ErrorCodes.CANCEL)
        self._forget(stream, reset=True)

    def _local_end(self, stream: Stream) -> None:
        stream.local_closed = True
        if not stream.remote_closed:
            # RFC 9113 8.1: a complete response may be followed by RST_STREAM(NO_ERROR) to
            # stop a request body nobody will read. An extended CONNECT ends both ways.
            # What the client already sent is ignored (and its window given back).
            # Clients that cannot take an RST_STREAM while uploading (curl 7.88, httpx 0.28)
            # would lose the response, so the body is first read and discarded, windows
            # given back, up to ``discard_body_limit`` bytes; then the reset.
            stream_id = stream.stream_id
            if stream.tunnel or not self._discard_body_limit:
                self._h2.reset_stream(stream_id, ErrorCodes.NO_ERROR)
                self._forget(stream, reset=True)
                return
            self._forget(stream)
            self._discarding[stream_id] = self._discard_body_limit  # open on the client's side
        else:
            self._forget(stream)

    def _release(self, stream: Stream | None, size: int) -> None:
        """``size`` received bytes were consumed: WINDOW_UPDATEs once enough is released."""
        if stream is not None and not stream.remote_closed:
            stream.credit += size
            if stream.credit >= self._stream_update_at:
                credit = stream.credit
                stream.credit = 0
                stream.window += credit
                self._append_raw(frame(WINDOW_UPDATE, 0, stream.stream_id, U32.pack(credit)))
        self._inbound_credit += size
        if self._inbound_credit >= self._connection_update_at:
            self._give_connection_credit()

    def _give_connection_credit(self) -> None:
        credit = self._inbound_credit
        if credit and not self._closed:
            self._inbound_credit = 0
            self._inbound_window += credit
            self._append_raw(frame(WINDOW_UPDATE, 0, 0, U32.pack(credit)))

    def _discarded(self, stream_id: int, size: int) -> None:
        """Body bytes of a stream whose response is complete arrived (and were released)."""
        left = self._discarding[stream_id] - size
        if left >= 0:
            self._discarding[stream_id] = left
            if size:  # the stream window reopens too (one WINDOW_UPDATE per read)
                self._discard_credit[stream_id] = self._discard_credit.get(stream_id, 0) + size
            return
        self._end_discarding(stream_id)
        self._h2.reset_stream(stream_id, ErrorCodes.NO_ERROR)
        self._note_reset(stream_id, self._initial_window_size)

    def _end_discarding(self, stream_id: int) -> None:
        del self._discarding[stream_id]

    # --- flow control, priority, push, shutdown ---------------------------------------

    def sendable(self, stream_id: int) -> int:
        """Body bytes the stream may send now: the smaller of its and the connection's window.

        0 for a stream that is not open. ``send_data`` splits into frames itself, so this is
        not capped at the peer's frame size.
        """
        stream = self._streams.get(stream_id)
        if stream is None or stream.local_closed or self._closed:
            return 0
        h2 = self._h2
        h2_stream = h2.streams.get(stream_id)
        if h2_stream is None:
            return 0
        window: int = min(h2.outbound_flow_control_window, h2_stream.outbound_flow_control_window)
        return max(window, 0)

    def acknowledge_received(self, stream_id: int, size: int) -> None:
        """The app consumed ``size`` request-body bytes of the stream: reopen the windows.

        WINDOW_UPDATE frames for the stream and the connection are queued once half of its
        window is consumed (not one per DATA frame). Bytes of closed streams are released
        already.
        """
        stream = self._streams.get(stream_id)
        if stream is None or size <= 0:
            return
        size = min(size, stream.unacked)
        if size:
            stream.unacked -= size
            self._release(stream, size)

    def receive_window(self, stream_id: int) -> int | None:
        """Body bytes the peer may send on the stream now: the smaller of the stream's and the
        connection's receive windows as advertised; None for a stream that is not open."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.remote_closed:
            return None
        # Inbound flow control is ours (DATA on open streams bypasses h2).
        return min(stream.window, self._inbound_window)

    def prioritized(self, ready: Iterable[int]) -> list[int]:
        """Order the streams that have data ready to send (see ``http2_priority``)."""
        return self._scheduler.order(ready)

    def push(self, event: PushPromise) -> Request | None:
        """Promise a pushed GET for ``event.path`` on ``event.stream_id``.

        Returns the pushed ``Request`` (its ``stream_id`` is the promised stream; no body
        follows), for the server to run the app on and answer with ``send``; or ``None``
        when the client disabled push, the parent stream's response is complete, the peer's
        concurrency limit is reached, or the connection is shutting down.
        """
        parent = self._streams.get(event.stream_id)
        h2 = self._h2
        if (
            parent is None
            or parent.local_closed
            or not event.stream_id & 1
            or self._closed
            or self._goaway_last_stream is not None
            or self._draining
            or not h2.remote_settings.enable_push
            or len(self._streams) - self._client_streams
            >= h2.remote_settings.max_concurrent_streams
        ):
            return None
        headers = self._outbound_headers((b":method", b"GET"), event.headers)
        authority = parent.authority or b""
        headers[1:1] = [
            (b":scheme", parent.scheme),
            (b":authority", authority),
            (b":path", event.path),
        ]
        try:
            promised: int = h2.get_next_available_stream_id()
            h2.push_stream(event.stream_id, promised, headers)
        except H2Error:
            return None
        stream = Stream(promised, parent.scheme, parent.authority)
        stream.remote_closed = True
        self._streams[promised] = stream
        return Request(
            stream_id=promised,
            method=b"GET",
            target=event.path,
            headers=[(b"host", authority), *headers[4:]],
            http_version="2",
            scheme=parent.scheme,
            expects_body=False,
        )

    def goaway(
        self,
        *,
        graceful: bool = True,
        error_code: int = ErrorCodes.NO_ERROR,
        drain: bool = False,
    ) -> None:
        """Shut down: queue GOAWAY with the last stream id processed.

        Graceful: in-flight streams finish, new streams are refused (REFUSED_STREAM), and
        ``shutdown_complete`` turns True once none remain. Not graceful: the connection is
        over at once (``closed``); in-flight streams get nothing more.

        ``drain`` (graceful only; RFC 9113 6.8): first a GOAWAY with the highest stream id
        and a PING. A request the client sent before it saw that GOAWAY is still on its
        way, and is served; the PING's ACK comes after all of them, and then the final
        GOAWAY (this method without ``drain``) goes out by itself. ``draining`` is True
        until then; the server calls ``goaway()`` itself when the ACK takes too long.
        """
        if self._closed:
            return
        if graceful:
            if drain:
                if self._goaway_last_stream is None and not self._draining:
                    self._draining = True
                    body = _GOAWAY_BODY.pack(_MAX_STREAM_ID, error_code)
                    self._append_raw(frame(GOAWAY, 0, 0, body) + frame(PING, 0, 0, _SHUTDOWN_PING))
                return
            self._draining = False
            if self._goaway_last_stream is None:
                self._goaway_last_stream = self._h2.highest_inbound_stream_id
                self._append_raw(self._goaway(error_code))
            return
        self._draining = False
        self._closed = True
        self._append_raw(self._goaway(error_code))
