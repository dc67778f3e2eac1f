"""HTTP/2 server protocol, sans-IO, on top of h2: bytes in -> events out, events in -> bytes out.

A small frame scanner reads the 9-byte frame headers before h2 sees the bytes. It enforces the
abuse limits (CONTINUATION, rapid reset, PING/SETTINGS/empty-frame floods, frame size before
the body is buffered), catches the places where h2 is laxer or coarser than RFC 9113
(RST_STREAM on an idle stream, self-dependent PRIORITY, content-length mismatches as stream
errors, the error code of HPACK failures), and cuts the input after every header block so
that each request head is known before the frames that follow it are checked. Request
headers are validated here (RFC 9113 section 8.2/8.3), in one pass that also builds the
``Request`` event, so that a malformed request is a stream error, not a connection error.

The scanner also charges one glitch budget (``http2_limits.GlitchBudget``) for every frame
that costs work without serving a request, answers frames on half-closed(remote) and reset
streams itself (one RST_STREAM(STREAM_CLOSED), then ignored, the connection window credited:
h2 never writes a reset per frame), and takes DATA on open streams itself (inbound flow
control, padding, ``Body`` events; h2 only sees an empty END_STREAM frame to keep its stream
states), which is most of the cost of an upload.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Callable, Iterable
from typing import Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import ConnectionTerminated as H2ConnectionTerminated
from h2.events import DataReceived as H2DataReceived
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
from hpack.exceptions import HPACKError, OversizedHeaderListError
from hyperframe.frame import DataFrame

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
from .http2_priority import PriorityScheduler

__all__ = ["ErrorCodes", "HTTP2Protocol"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types and flags (RFC 9113 section 6; PRIORITY_UPDATE is RFC 9218).
_DATA, _HEADERS, _PRIORITY, _RST_STREAM, _SETTINGS, _PUSH_PROMISE, _PING, _GOAWAY = range(8)
_WINDOW_UPDATE, _CONTINUATION, _PRIORITY_UPDATE = 8, 9, 16
_END_STREAM = _ACK = 0x1
_END_HEADERS, _PADDED, _PRIORITY_FLAG = 0x4, 0x8, 0x20
_SETTINGS_NO_RFC7540_PRIORITIES = 0x9
_STREAM_CLOSED = 0x5
_KNOWN_FRAME_TYPES = frozenset((*range(10), _PRIORITY_UPDATE))

_FRAME_HEADER = struct.Struct(">BHBBL")
_U32 = struct.Struct(">L")
_GOAWAY_BODY = struct.Struct(">LL")
_SETTING = struct.Struct(">HL")
_STREAM_ID_MASK = 0x7FFFFFFF

# RFC 9113 8.2.1: field names are lower-case tokens; values carry no NUL, CR, LF and no
# leading or trailing whitespace.
_INVALID_NAME = re.compile(rb"[^a-z0-9!#$%&'*+\-.^_`|~]")
_INVALID_VALUE = re.compile(rb"[\x00\r\n]|^[ \t]|[ \t]$")
_CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"proxy-connection", b"keep-alive", b"transfer-encoding", b"upgrade")
)
_STATUS_BYTES = {status: str(status).encode() for status in range(100, 600)}


def _data_frame_body_repr(frame: DataFrame) -> str:
    return f"data=<{len(frame.data)} bytes>"


# h2 builds repr(frame) of every frame it receives for a trace log line, even with logging off,
# and hyperframe's DATA repr hexlifies the whole payload: a third of the CPU of an upload.
DataFrame._body_repr = _data_frame_body_repr  # type: ignore[method-assign,assignment]


class _Malformed(Exception):
    """A request head breaks RFC 9113 section 8: a stream error of type PROTOCOL_ERROR."""


class _HeaderListTooLarge(Exception):
    """The decoded header list is larger than the SETTINGS_MAX_HEADER_LIST_SIZE we sent."""


class _ConnectionError(Exception):
    """The peer broke the protocol for the whole connection."""

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


class _Closed:
    """A stream that was reset (by either side): what may still arrive on it for free.

    After we reset a stream, frames the peer sent before it saw our RST_STREAM are ignored
    (RFC 9113 5.1 closed, 5.4.2): up to ``allowance`` DATA bytes (the stream window it could
    have in flight) and one trailer block. Anything beyond is a glitch. ``answered``: an
    RST_STREAM for the stream went out (when the client reset it, the first frame after is
    answered with RST_STREAM(STREAM_CLOSED), then ignored).
    """

    __slots__ = ("allowance", "answered", "trailers")

    def __init__(self, allowance: int, answered: bool) -> None:
        self.allowance = allowance
        self.trailers = allowance > 0
        self.answered = answered


class _Stream:
    """What tricorn tracks per stream next to h2's own state machine."""

    __slots__ = (
        "authority",
        "content_length",
        "credit",
        "expect_continue",
        "head",
        "local_closed",
        "received",
        "remote_closed",
        "response_started",
        "scheme",
        "sent",
        "stream_id",
        "tunnel",
        "unacked",
        "window",
    )

    def __init__(self, stream_id: int, scheme: bytes, authority: bytes | None) -> None:
        self.stream_id = stream_id
        self.scheme = scheme
        self.authority = authority
        self.content_length: int | None = None
        self.received = 0
        self.unacked = 0
        #: What the peer may still send on the stream, and what was consumed since the last
        #: WINDOW_UPDATE (inbound flow control is ours: DATA on open streams bypasses h2).
        self.window = 0
        self.credit = 0
        self.remote_closed = False
        self.local_closed = False
        self.response_started = False
        self.expect_continue = False
        #: DATA went out since the peer's last WINDOW_UPDATE for the stream.
        self.sent = False
        #: A CONNECT stream: when one side ends, the tunnel is over.
        self.tunnel = False
        #: A HEAD request: response content is dropped (RFC 9110 9.3.2).
        self.head = False


#: RFC 9113 6.5.2 and RFC 8441/9218: the allowed values of the settings that have a range,
#: and the error code of a value outside it.
_SETTING_RANGES = {
    0x2: (0, 1, ErrorCodes.PROTOCOL_ERROR),  # ENABLE_PUSH
    0x4: (0, _STREAM_ID_MASK, ErrorCodes.FLOW_CONTROL_ERROR),  # INITIAL_WINDOW_SIZE
    0x5: (16384, 16777215, ErrorCodes.PROTOCOL_ERROR),  # MAX_FRAME_SIZE
    0x8: (0, 1, ErrorCodes.PROTOCOL_ERROR),  # ENABLE_CONNECT_PROTOCOL
    _SETTINGS_NO_RFC7540_PRIORITIES: (0, 1, ErrorCodes.PROTOCOL_ERROR),
}


def _check_settings(payload: bytes | bytearray, start: int, end: int) -> None:
    """Raise the RFC's connection error for a setting whose value is out of its range."""
    for offset in range(start, end - 5, 6):
        identifier, value = _SETTING.unpack_from(payload, offset)
        allowed = _SETTING_RANGES.get(identifier)
        if allowed is not None and not allowed[0] <= value <= allowed[1]:
            raise _ConnectionError(
                allowed[2],
                f"setting 0x{identifier:x} = {value} is outside {allowed[0]}..{allowed[1]}",
            )


def _block_fragment(buf: bytes | bytearray, pos: int, length: int, flags: int) -> bytes:
    """The field block fragment of a HEADERS frame (without padding and priority)."""
    start = pos + 9
    end = start + length
    if flags & _PADDED:
        if not length:
            raise _ConnectionError(ErrorCodes.FRAME_SIZE_ERROR, "PADDED HEADERS without padding")
        end -= buf[start]
        start += 1
    if flags & _PRIORITY_FLAG:
        start += 5
    if end < start:
        raise _ConnectionError(ErrorCodes.PROTOCOL_ERROR, "HEADERS padding exceeds the frame")
    return bytes(buf[start:end])


def _frame(frame_type: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    length = len(payload)
    return _FRAME_HEADER.pack(length >> 16, length & 0xFFFF, frame_type, flags, stream_id) + payload


class HTTP2Protocol:
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
    ) -> None:
        if not 16384 <= max_frame_size <= 16777215:
            raise ValueError("max_frame_size must be between 16384 and 16777215")
        if not 0 < initial_window_size <= _STREAM_ID_MASK:
            raise ValueError("initial_window_size must be between 1 and 2**31-1")
        if not 65535 <= connection_window_size <= _STREAM_ID_MASK:
            raise ValueError("connection_window_size must be between 65535 and 2**31-1")
        self._max_concurrent_streams = max_concurrent_streams or _STREAM_ID_MASK
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
        self._scheduler = PriorityScheduler(max_tree_streams=max(1000, 4 * max_concurrent_streams))
        self._streams: dict[int, _Stream] = {}
        self._client_streams = 0
        #: Recently reset streams: sends for them are dropped quietly (the app raced a reset),
        #: frames the peer still sends on them are ignored before h2 sees them.
        self._reset_ids: dict[int, _Closed] = {}
        #: Streams that ended with DATA sent since the peer's last WINDOW_UPDATE for them.
        self._recent_sent: dict[int, None] = {}
        #: DATA went out since the peer's last connection-level WINDOW_UPDATE.
        self._sent_since_update = False
        #: Connection window owed to the peer for DATA ignored before h2 saw it.
        self._ignored_credit = 0
        #: The header block of a HEADERS frame on a closed stream, decoded here and dropped.
        self._dropped_block: bytearray | None = None
        self._settings_received = False
        self._settings_acks_due = 1
        self._self_dependent: set[int] = set()
        self._inbuf = bytearray()
        self._out = bytearray()
        self._preface_left = len(PREFACE)
        #: RFC 9113 3.4: the preface must be followed by a SETTINGS frame.
        self._first_frame = True
        self._header_block_stream = 0
        self._header_block_frames = 0
        self._header_block_bytes = 0
        self._initiated = False
        self._closed = False
        self._held = False
        self._goaway_last_stream: int | None = None
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
        h2.local_settings = self._local_settings(_STREAM_ID_MASK)
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
            _check_settings(raw, 0, len(raw) - len(raw) % 6)
        except _ConnectionError as error:
            self._connection_error(error.error_code, error.message, events := [])
            return events
        except (binascii.Error, ValueError):
            pass  # h2 accepted it: it decodes differently
        self._finish_initiate()
        headers = [
            (name, value)
            for name, value in request.headers
            if name not in _CONNECTION_SPECIFIC and name != b"http2-settings"
        ]
        authority = next((value for name, value in headers if name == b"host"), None)
        stream = _Stream(1, request.scheme or b"http", authority)
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
        except _ConnectionError as error:
            self._connection_error(error.error_code, error.message, events)
            return
        except H2ProtocolError as error:
            self._h2_failed(error, events)
            return
        except Exception as error:
            self._connection_error(ErrorCodes.INTERNAL_ERROR, f"internal error: {error!r}", events)
            return
        if buf is self._inbuf:
            del self._inbuf[:consumed]
        elif consumed < len(buf):
            self._inbuf = bytearray(buf[consumed:])

    def _scan(self, buf: bytes | bytearray, events: list[Event]) -> int:
        """Check frame headers, hand runs of complete frames to h2; return bytes consumed."""
        end_of_data = len(buf)
        pos = 0
        self._held = False
        if self._preface_left:
            offset = len(PREFACE) - self._preface_left
            take = min(self._preface_left, end_of_data)
            if buf[:take] != PREFACE[offset : offset + take]:
                raise _ConnectionError(ErrorCodes.PROTOCOL_ERROR, "invalid connection preface")
            self._preface_left -= take
            pos = take
        start = 0  # the start of the run not yet handed to h2
        # Output the run will produce (PING and SETTINGS ACKs), for the pause check.
        answers = self.pending_output_size
        max_output = self._max_output_buffer
        max_frame_size = self._max_frame_size
        unpack_header = _FRAME_HEADER.unpack_from
        while end_of_data - pos >= 9:
            length_high, length_low, frame_type, flags, stream_id = unpack_header(buf, pos)
            length: int = (length_high << 16) | length_low
            stream_id &= _STREAM_ID_MASK
            if length > max_frame_size:
                raise _ConnectionError(
                    ErrorCodes.FRAME_SIZE_ERROR,
                    f"frame of {length} bytes is over SETTINGS_MAX_FRAME_SIZE {max_frame_size}",
                )
            if self._header_block_stream:
                if frame_type != _CONTINUATION or stream_id != self._header_block_stream:
                    raise _ConnectionError(
                        ErrorCodes.PROTOCOL_ERROR, "header block interrupted by another frame"
                    )
                if self._header_block_bytes + length > self._max_header_block:
                    raise _ConnectionError(ErrorCodes.ENHANCE_YOUR_CALM, "header block too large")
            elif frame_type == _CONTINUATION:
                raise _ConnectionError(
                    ErrorCodes.PROTOCOL_ERROR, "CONTINUATION frame outside a header block"
                )
            elif frame_type == _PUSH_PROMISE:
                raise _ConnectionError(ErrorCodes.PROTOCOL_ERROR, "a client sent PUSH_PROMISE")
            frame_end = pos + 9 + length
            if self._first_frame:
                if frame_type != _SETTINGS or flags & _ACK:
                    raise _ConnectionError(
                        ErrorCodes.PROTOCOL_ERROR, "the preface is not followed by SETTINGS"
                    )
                self._first_frame = False
            if frame_end > end_of_data:
                break
            if frame_type == _DATA:
                stream = self._streams.get(stream_id)
                if stream.remote_closed if stream is not None else stream_id in self._reset_ids:
                    # Half-closed (remote) or reset: answered here, h2 never sees the frame.
                    self._feed(buf, start, pos, events)
                    self._data_on_closed(stream, stream_id, length, events)
                    start = frame_end
                elif self._check_data(buf, pos, length, flags, stream_id):
                    if stream is not None or stream_id in self._discarding:
                        # The body of an open stream: taken here, without h2 (a third of the
                        # cost of an upload was h2's per-frame work).
                        self._feed(buf, start, pos, events)
                        self._body_frame(stream, buf, pos, length, flags, stream_id, events)
                        start = frame_end
                else:
                    # Stream error answered here; h2 must not see the frame.
                    self._feed(buf, start, pos, events)
                    self._drop_data(stream_id, length, events)
                    start = frame_end
            elif frame_type in (_HEADERS, _CONTINUATION):
                if not length and not flags & (_END_STREAM | _END_HEADERS):
                    if self._empty.hit():
                        raise _ConnectionError(
                            ErrorCodes.ENHANCE_YOUR_CALM, "flood of empty HEADERS/CONTINUATION"
                        )
                    self._glitch("empty HEADERS/CONTINUATION")
                if frame_type == _CONTINUATION:
                    if self._dropped_block is not None:
                        # A header block on a closed stream: decoded here, never by h2.
                        self._dropped_block += buf[pos + 9 : frame_end]
                        start = frame_end
                    self._header_block_frames += 1
                    self._header_block_bytes += length
                    if self._header_block_frames > self._max_continuation_frames > 0:
                        raise _ConnectionError(
                            ErrorCodes.ENHANCE_YOUR_CALM,
                            f"more than {self._max_continuation_frames} CONTINUATION frames",
                        )
                else:
                    self._header_block_frames = 0
                    self._header_block_bytes = length
                    stream = self._streams.get(stream_id)
                    if stream.remote_closed if stream is not None else stream_id in self._reset_ids:
                        self._feed(buf, start, pos, events)
                        self._dropped_block = bytearray(_block_fragment(buf, pos, length, flags))
                        start = frame_end
                    elif flags & _PRIORITY_FLAG and self._self_dependent_headers(
                        buf, pos, length, flags, stream_id
                    ):
                        self._feed(buf, start, pos, events)
                        self._feed_stripped_headers(buf[pos : pos + 9 + length], events)
                        start = frame_end
                if flags & _END_HEADERS:
                    self._header_block_stream = 0
                    if self._dropped_block is not None:
                        self._finish_dropped_block(stream_id, events)
                    # Cut here: the request head must be known before its DATA is checked.
                    self._feed(buf, start, frame_end, events)
                    start = frame_end
                else:
                    self._header_block_stream = stream_id
            elif frame_type == _PRIORITY:
                if not stream_id:
                    raise _ConnectionError(ErrorCodes.PROTOCOL_ERROR, "PRIORITY on stream 0")
                if self._priorities.hit():
                    raise _ConnectionError(ErrorCodes.ENHANCE_YOUR_CALM, "PRIORITY flood")
                self._glitch("PRIORITY")
                if length == 5 and _U32.unpack_from(buf, pos + 9)[0] & _STREAM_ID_MASK == stream_id:
                    self._feed(buf, start, pos, events)
                    self._self_dependent_priority(stream_id, events)
                    start = frame_end
            elif frame_type == _RST_STREAM:
                if stream_id and self._is_idle(stream_id):
                    raise _ConnectionError(
                        ErrorCodes.PROTOCOL_ERROR, f"RST_STREAM on idle stream {stream_id}"
                    )
                if self._resets.hit():
                    raise _ConnectionError(
                        ErrorCodes.ENHANCE_YOUR_CALM, "too many streams reset (rapid reset)"
                    )
                self._glitch("RST_STREAM")
                # Cut here: the frames after it see the stream as reset.
                self._feed(buf, start, frame_end, events)
                start = frame_end
            elif frame_type == _SETTINGS:
                if flags & _ACK:
                    if length:
                        raise _ConnectionError(
                            ErrorCodes.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload"
                        )
                    if self._settings_acks_due:
                        self._settings_acks_due -= 1
                    else:
                        self._glitch("unsolicited SETTINGS ACK")
                else:
                    answers += 9
                    if answers > max_output:
                        self._held = True
                        break
                    if self._settings.hit():
                        raise _ConnectionError(ErrorCodes.ENHANCE_YOUR_CALM, "SETTINGS flood")
                    if self._settings_received:
                        self._glitch("SETTINGS")
                    if stream_id == 0 and length % 6 == 0:
                        _check_settings(buf, pos + 9, frame_end)
                    self._settings_received = True
            elif frame_type == _PING:
                if not flags & _ACK:
                    answers += 17
                    if answers > max_output:
                        self._held = True
                        break
                    if self._pings.hit():
                        raise _ConnectionError(ErrorCodes.ENHANCE_YOUR_CALM, "PING flood")
                self._glitch("PING")
            elif frame_type == _WINDOW_UPDATE:
                self._window_update_glitch(stream_id)
                if length == 4 and buf[pos + 9] & 0x80:
                    # The reserved bit must be ignored (RFC 9113 6.9); hyperframe rejects it.
                    self._feed(buf, start, pos, events)
                    fixed = bytearray(buf[pos:frame_end])
                    fixed[9] &= 0x7F
                    self._feed(bytes(fixed), 0, len(fixed), events)
                    start = frame_end
            elif frame_type == _GOAWAY:
                self._feed(buf, start, frame_end, events)
                self._give_ignored_credit()
                return frame_end
            elif frame_type == _PRIORITY_UPDATE:
                self._priority_update(buf, pos, length, stream_id)
            elif frame_type not in _KNOWN_FRAME_TYPES:
                self._glitch("frame of unknown type")
            pos = frame_end
            if self._closed:
                return pos
        self._feed(buf, start, pos, events)
        self._give_ignored_credit()
        return pos

    # --- glitches: frames that cost work without serving a request --------------------

    def _glitch(self, what: str) -> None:
        if self._glitches.charge():
            raise _ConnectionError(
                ErrorCodes.ENHANCE_YOUR_CALM,
                f"too many frames that serve no request (glitch budget; last: {what})",
            )

    def _window_update_glitch(self, stream_id: int) -> None:
        """A WINDOW_UPDATE is free when DATA went out since the last one for its window."""
        if not stream_id:
            if self._sent_since_update:
                self._sent_since_update = False
                return
        else:
            stream = self._streams.get(stream_id)
            if stream is not None and stream.sent:
                stream.sent = False
                return
            if stream_id in self._recent_sent:
                del self._recent_sent[stream_id]
                return
        self._glitch("WINDOW_UPDATE")

    def _data_on_closed(
        self, stream: _Stream | None, stream_id: int, length: int, events: list[Event]
    ) -> None:
        """DATA on a half-closed (remote) or reset stream, kept from h2."""
        # h2 never saw the bytes, so its window did not shrink; the peer's did: give it back.
        self._ignored_credit += length
        if stream is not None:
            # RFC 9113 5.1 half-closed (remote): a stream error of type STREAM_CLOSED.
            self._stream_error(
                stream, _STREAM_CLOSED, "DATA after the end of the request", events, allowance=0
            )
        else:
            self._ignored(stream_id, length, "DATA", events)

    def _ignored(self, stream_id: int, size: int, what: str, events: list[Event]) -> None:
        """A frame on a reset stream: free while it may have been in flight, else a glitch."""
        closed = self._reset_ids.get(stream_id)
        if closed is None:
            self._glitch(f"{what} on a closed stream")
            return
        if what == "DATA":
            if size <= closed.allowance:
                closed.allowance -= size
                return
        elif closed.trailers:
            closed.trailers = False
            return
        if not closed.answered:
            # The client reset the stream and still sends on it (RFC 9113 5.1 closed).
            closed.answered = True
            self._append_raw(_frame(_RST_STREAM, 0, stream_id, _U32.pack(_STREAM_CLOSED)))
            events.append(
                ProtocolError(
                    stream_id,
                    f"{what} on stream {stream_id} after the client reset it",
                    error_code=_STREAM_CLOSED,
                )
            )
        self._glitch(f"{what} on a closed stream")

    def _finish_dropped_block(self, stream_id: int, events: list[Event]) -> None:
        """A header block on a half-closed (remote) or reset stream is complete."""
        assert self._dropped_block is not None
        block = bytes(self._dropped_block)
        self._dropped_block = None
        try:
            self._h2.decoder.decode(block, raw=True)  # keeps the HPACK table in sync
        except OversizedHeaderListError:
            raise _ConnectionError(ErrorCodes.ENHANCE_YOUR_CALM, "header list too large") from None
        except HPACKError as error:
            raise _ConnectionError(ErrorCodes.COMPRESSION_ERROR, f"HPACK: {error}") from None
        stream = self._streams.get(stream_id)
        if stream is not None:
            self._stream_error(
                stream, _STREAM_CLOSED, "HEADERS after the end of the request", events, allowance=0
            )
        else:
            self._ignored(stream_id, 0, "HEADERS", events)

    def _give_ignored_credit(self) -> None:
        """One connection WINDOW_UPDATE for all the DATA ignored in this read."""
        credit = self._ignored_credit
        if credit and not self._closed:
            self._ignored_credit = 0
            self._append_raw(_frame(_WINDOW_UPDATE, 0, 0, _U32.pack(credit)))
        if self._discard_credit:
            for stream_id, size in self._discard_credit.items():
                if stream_id in self._discarding and not self._closed:
                    self._out += _frame(_WINDOW_UPDATE, 0, stream_id, _U32.pack(size))
            self._discard_credit.clear()

    def _note_reset(self, stream_id: int, allowance: int, *, answered: bool = True) -> None:
        """Remember a reset stream (bounded): its late frames are ignored, sends dropped."""
        reset_ids = self._reset_ids
        reset_ids[stream_id] = _Closed(allowance, answered)
        if len(reset_ids) > 1024:
            del reset_ids[next(iter(reset_ids))]

    def _is_idle(self, stream_id: int) -> bool:
        if stream_id & 1:
            return stream_id > int(self._h2.highest_inbound_stream_id)
        return stream_id > int(self._h2.highest_outbound_stream_id)

    def _check_data(
        self, buf: bytes | bytearray, pos: int, length: int, flags: int, stream_id: int
    ) -> bool:
        """Count empty DATA, check content-length; False when the frame is a stream error."""
        size = length
        if flags & _PADDED and length:
            size = length - 1 - buf[pos + 9]
        if size <= 0 and not flags & _END_STREAM:
            if self._empty.hit():
                raise _ConnectionError(ErrorCodes.ENHANCE_YOUR_CALM, "flood of empty DATA frames")
            self._glitch("empty DATA")
        stream = self._streams.get(stream_id)
        if stream is None or stream.content_length is None or stream.remote_closed or size < 0:
            return True
        stream.received += size
        if stream.received > stream.content_length:
            return False
        return not flags & _END_STREAM or stream.received == stream.content_length

    def _drop_data(self, stream_id: int, length: int, events: list[Event]) -> None:
        stream = self._streams[stream_id]
        self._stream_error(
            stream,
            ErrorCodes.PROTOCOL_ERROR,
            f"request body does not match content-length {stream.content_length}",
            events,
        )
        # h2 never saw these bytes, so its window did not shrink; give the peer its
        # connection window back directly.
        self._ignored_credit += length

    def _self_dependent_headers(
        self, buf: bytes | bytearray, pos: int, length: int, flags: int, stream_id: int
    ) -> bool:
        offset = 1 if flags & _PADDED else 0
        if length < offset + 5:
            return False  # h2 reports the short frame
        return bool(_U32.unpack_from(buf, pos + 9 + offset)[0] & _STREAM_ID_MASK == stream_id)

    def _feed_stripped_headers(self, frame: bytes | bytearray, events: list[Event]) -> None:
        """Hand h2 the HEADERS without its (self-dependent) priority; reset the stream after."""
        flags: int = frame[4]
        stream_id: int = _U32.unpack_from(frame, 5)[0] & _STREAM_ID_MASK
        offset = 10 if flags & _PADDED else 9
        payload = bytes(frame[9:offset]) + bytes(frame[offset + 5 :])
        self._self_dependent.add(stream_id)
        stripped = _frame(_HEADERS, flags & ~_PRIORITY_FLAG, stream_id, payload)
        self._feed(stripped, 0, len(stripped), events)

    def _self_dependent_priority(self, stream_id: int, events: list[Event]) -> None:
        stream = self._streams.get(stream_id)
        if stream is not None:
            self._stream_error(
                stream, ErrorCodes.PROTOCOL_ERROR, "stream depends on itself", events
            )
        elif self._is_idle(stream_id):
            raise _ConnectionError(
                ErrorCodes.PROTOCOL_ERROR, f"idle stream {stream_id} depends on itself"
            )

    def _priority_update(
        self, buf: bytes | bytearray, pos: int, length: int, stream_id: int
    ) -> None:
        if stream_id:
            raise _ConnectionError(ErrorCodes.PROTOCOL_ERROR, "PRIORITY_UPDATE on a stream")
        if length < 4:
            raise _ConnectionError(ErrorCodes.FRAME_SIZE_ERROR, "PRIORITY_UPDATE too short")
        if self._priorities.hit():
            raise _ConnectionError(ErrorCodes.ENHANCE_YOUR_CALM, "PRIORITY_UPDATE flood")
        self._glitch("PRIORITY_UPDATE")
        prioritized = _U32.unpack_from(buf, pos + 9)[0] & _STREAM_ID_MASK
        if prioritized in self._streams:
            self._scheduler.set_field(prioritized, bytes(buf[pos + 13 : pos + 9 + length]))

    def _feed(self, buf: bytes | bytearray, start: int, end: int, events: list[Event]) -> None:
        """Hand ``buf[start:end]`` (whole frames) to h2 and translate what it reports."""
        if end <= start or self._closed:
            return
        chunk = buf if (start == 0 and end == len(buf) and type(buf) is bytes) else buf[start:end]
        handlers = self._handlers
        for h2_event in self._h2.receive_data(chunk):
            handler = handlers.get(type(h2_event))
            if handler is not None:
                handler(h2_event, events)

    # --- h2 events -> tricorn events ----------------------------------------------------

    def _on_request(self, event: H2RequestReceived, events: list[Event]) -> None:
        stream_id: int = event.stream_id
        ended = event.stream_ended is not None
        h2 = self._h2
        window = 0 if ended else self._initial_window_size
        if self._goaway_last_stream is not None and stream_id > self._goaway_last_stream:
            h2.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
            self._note_reset(stream_id, window)
            return
        if stream_id in self._self_dependent:
            self._self_dependent.discard(stream_id)
            h2.reset_stream(stream_id, ErrorCodes.PROTOCOL_ERROR)
            self._note_reset(stream_id, window)
            events.append(
                ProtocolError(
                    stream_id, "stream depends on itself", error_code=ErrorCodes.PROTOCOL_ERROR
                )
            )
            self._glitch("stream reset for depending on itself")
            return
        held = self._client_streams + len(self._lingering) + len(self._discarding)
        if held >= self._max_concurrent_streams:
            h2.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
            self._note_reset(stream_id, window)
            events.append(
                ProtocolError(
                    stream_id,
                    f"more than {self._max_concurrent_streams} concurrent streams; refused",
                    error_code=ErrorCodes.REFUSED_STREAM,
                )
            )
            if self._resets.hit():
                raise _ConnectionError(ErrorCodes.ENHANCE_YOUR_CALM, "too many streams refused")
            self._glitch("stream refused")
            return
        try:
            request, stream, priority = self._build_request(stream_id, event.headers, ended)
        except _Malformed as error:
            h2.reset_stream(stream_id, ErrorCodes.PROTOCOL_ERROR)
            self._note_reset(stream_id, window)
            events.append(
                ProtocolError(
                    stream_id, f"malformed request: {error}", error_code=ErrorCodes.PROTOCOL_ERROR
                )
            )
            if self._resets.hit():
                raise _ConnectionError(
                    ErrorCodes.ENHANCE_YOUR_CALM, "too many malformed requests"
                ) from None
            self._glitch("malformed request")
            return
        except _HeaderListTooLarge:
            h2.send_headers(stream_id, [(b":status", b"431")], end_stream=True)
            if not ended:
                h2.reset_stream(stream_id, ErrorCodes.NO_ERROR)
                self._note_reset(stream_id, window)
            events.append(
                ProtocolError(
                    stream_id,
                    f"request header list over {self._max_header_list_size} bytes; answered 431",
                    status=431,
                )
            )
            return
        stream.remote_closed = ended
        self._streams[stream_id] = stream
        self._client_streams += 1
        h2_stream = h2.streams.get(stream_id)
        if h2_stream is not None:
            # The body bypasses h2 (``_body_frame``); content-length is checked here instead.
            h2_stream._expected_content_length = None
        if priority is not None:
            self._scheduler.set_field(stream_id, priority)
        events.append(request)

    def _build_request(
        self, stream_id: int, raw_headers: Iterable[tuple[bytes, bytes]], ended: bool
    ) -> tuple[Request, _Stream, bytes | None]:
        """Validate a request head (RFC 9113 8.2, 8.3) and build its event, in one pass."""
        method = scheme = path = authority = protocol = None
        headers: Headers = []
        cookies: list[bytes] = []
        cookie_at = -1
        host: bytes | None = None
        content_length: bytes | None = None
        priority: bytes | None = None
        expect_continue = False
        regular = False
        size = 0
        invalid_name = _INVALID_NAME.search
        invalid_value = _INVALID_VALUE.search
        for name, value in raw_headers:
            size += len(name) + len(value) + 32
            if invalid_value(value):
                raise _Malformed(f"invalid value of {name!r}")
            if name[:1] == b":":
                if regular:
                    raise _Malformed(f"pseudo-header {name!r} after a regular header")
                if name == b":method":
                    if method is not None:
                        raise _Malformed("duplicate :method")
                    method = value
                elif name == b":path":
                    if path is not None:
                        raise _Malformed("duplicate :path")
                    path = value
                elif name == b":scheme":
                    if scheme is not None:
                        raise _Malformed("duplicate :scheme")
                    scheme = value
                elif name == b":authority":
                    if authority is not None:
                        raise _Malformed("duplicate :authority")
                    authority = value
                elif name == b":protocol":
                    if protocol is not None:
                        raise _Malformed("duplicate :protocol")
                    protocol = value
                else:
                    raise _Malformed(f"pseudo-header {name!r} not allowed in a request")
                continue
            regular = True
            if not name or invalid_name(name):
                raise _Malformed(f"invalid header name {name!r}")
            if name in _CONNECTION_SPECIFIC:
                raise _Malformed(f"connection-specific header {name!r}")
            if name == b"cookie":
                if cookie_at < 0:
                    cookie_at = len(headers)
                cookies.append(value)
                continue
            if name == b"te":
                if value.lower() != b"trailers":
                    raise _Malformed("te header other than 'trailers'")
            elif name == b"host":
                if host is not None:
                    raise _Malformed("duplicate host header")
                host = value
                if authority is not None:
                    if value != authority:
                        raise _Malformed("host header differs from :authority")
                    continue
            elif name == b"content-length":
                if content_length is not None and value != content_length:
                    raise _Malformed("conflicting content-length headers")
                content_length = value
            elif name == b"priority":
                priority = value
            elif name == b"expect":
                expect_continue = value.lower() == b"100-continue"
            headers.append((name, value))
        if size > self._max_header_list_size:
            raise _HeaderListTooLarge
        if method is None:
            raise _Malformed("missing :method")
        if method == b"CONNECT":
            if protocol is not None:
                if not self._enable_connect_protocol:
                    raise _Malformed(":protocol without SETTINGS_ENABLE_CONNECT_PROTOCOL")
                if scheme is None or not path or authority is None:
                    raise _Malformed("extended CONNECT needs :scheme, :path and :authority")
                target = path
            else:
                if scheme is not None or path is not None or authority is None:
                    raise _Malformed("CONNECT takes :authority and no :scheme or :path")
                target = authority
        else:
            if protocol is not None:
                raise _Malformed(":protocol outside extended CONNECT")
            if scheme is None or path is None:
                raise _Malformed("missing :scheme or :path")
            if not path:
                raise _Malformed("empty :path")
            target = path
        if cookies:
            headers.insert(cookie_at, (b"cookie", b"; ".join(cookies)))
        if authority is not None:
            headers.insert(0, (b"host", authority))
        stream = _Stream(
            stream_id, scheme or b"https", authority if authority is not None else host
        )
        if content_length is not None and protocol is None:
            if not content_length.isdigit():
                raise _Malformed("invalid content-length")
            stream.content_length = int(content_length)
            if ended and stream.content_length:
                raise _Malformed("content-length without a body")
        stream.expect_continue = expect_continue and not ended
        stream.head = method == b"HEAD"
        stream.tunnel = method == b"CONNECT"
        # Until the peer acknowledged our SETTINGS it may assume the default window.
        window = self._initial_window_size
        stream.window = window if not self._settings_acks_due else max(window, 65535)
        request = Request(
            stream_id=stream_id,
            method=method,
            target=target,
            headers=headers,
            http_version="2",
            scheme=scheme,
            protocol=protocol,
            expects_body=not ended,
            expect_continue=stream.expect_continue,
        )
        return request, stream, priority

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
            if (
                not name
                or name[:1] == b":"
                or _INVALID_NAME.search(name)
                or _INVALID_VALUE.search(value)
                or name in _CONNECTION_SPECIFIC
            ):
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
        no_tree = changed.get(_SETTINGS_NO_RFC7540_PRIORITIES)
        if no_tree is not None and no_tree.new_value == 1:
            self._scheduler.use_tree = False

    def _on_priority(self, event: H2PriorityUpdated, events: list[Event]) -> None:
        stream_id = int(event.stream_id or 0)
        if stream_id in self._streams or self._is_idle(stream_id):
            self._scheduler.set_tree(
                stream_id, event.depends_on or 0, event.weight or 16, bool(event.exclusive)
            )

    def _on_goaway(self, event: H2ConnectionTerminated, events: list[Event]) -> None:
        self._closed = True
        code = int(event.error_code or 0)
        events.append(ConnectionClosed(code, f"the client sent GOAWAY (error code {code})"))

    # --- errors -------------------------------------------------------------------------

    def _stream_error(
        self,
        stream: _Stream,
        error_code: int,
        message: str,
        events: list[Event],
        *,
        allowance: int | None = None,
    ) -> None:
        """Reset a known stream for a peer's error: ProtocolError, then StreamReset.

        ``allowance``: DATA bytes still ignored for free (default: a stream window).
        """
        self._h2.reset_stream(stream.stream_id, error_code)
        self._forget(stream, reset=True, allowance=allowance)
        events.append(ProtocolError(stream.stream_id, message, error_code=error_code))
        events.append(StreamReset(stream.stream_id, error_code))
        if self._resets.hit():
            raise _ConnectionError(ErrorCodes.ENHANCE_YOUR_CALM, "too many stream errors")
        self._glitch(message)

    def _connection_error(self, error_code: int, message: str, events: list[Event]) -> None:
        """Queue GOAWAY(error_code) and end the connection."""
        if self._closed:
            return
        self._closed = True
        self._append_raw(self._goaway(error_code, message))
        events.append(ProtocolError(None, message, error_code=error_code))
        events.append(ConnectionClosed(error_code, message))

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
        self._connection_error(code, str(error) or type(error).__name__, events)

    def _goaway(self, error_code: int, message: str = "") -> bytes:
        last = self._h2.highest_inbound_stream_id
        if self._goaway_last_stream is not None:
            last = min(last, self._goaway_last_stream)
        body = _GOAWAY_BODY.pack(last, error_code) + message.encode("utf-8", "replace")[:256]
        return _frame(_GOAWAY, 0, 0, body)

    def _append_raw(self, frame: bytes) -> None:
        """Queue bytes built here, after whatever h2 queued before them."""
        pending = self._h2.data_to_send()
        if pending:
            self._out += pending
        self._out += frame

    def _forget(
        self,
        stream: _Stream,
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

    def _stream_for_send(self, stream_id: int, what: str) -> _Stream | None:
        stream = self._streams.get(stream_id)
        if stream is not None and not stream.local_closed:
            return stream
        if self._closed or stream_id in self._reset_ids:
            return None  # the peer went away first; what the app sends is dropped
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
        block: Headers = [first]
        for raw_name, value in headers:
            name = raw_name.lower()
            if name in _CONNECTION_SPECIFIC or name[:1] == b":":
                continue
            if _INVALID_VALUE.search(value):
                raise LocalProtocolError(f"header {name!r} has an invalid value {value!r}")
            block.append((name, value))
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
        self._h2.send_headers(stream_id, block, end_stream=end_stream)
        if end_stream:
            self._local_end(stream)

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
        if size:
            window = h2.local_flow_control_window(stream_id)
            if size > window:
                raise LocalProtocolError(
                    f"stream {stream_id}: Body of {size} bytes but only {max(window, 0)} "
                    "may be sent now; send at most sendable() bytes"
                )
            stream.sent = True
            self._sent_since_update = True
            frame_size = h2.max_outbound_frame_size
            if size <= frame_size:
                h2.send_data(stream_id, data, end_stream=end_stream)
            else:
                view = memoryview(data)
                for offset in range(0, size, frame_size):
                    last = offset + frame_size >= size
                    h2.send_data(
                        stream_id,
                        view[offset : offset + frame_size],
                        end_stream=end_stream and last,
                    )
        elif end_stream:
            h2.end_stream(stream_id)
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
        self._h2.send_headers(event.stream_id, block, end_stream=True)
        self._local_end(stream)

    def _send_reset(self, event: StreamReset) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is None:
            return
        self._h2.reset_stream(event.stream_id, event.error_code or ErrorCodes.CANCEL)
        self._forget(stream, reset=True)

    def _local_end(self, stream: _Stream) -> None:
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

    def _body_frame(
        self,
        stream: _Stream | None,
        buf: bytes | bytearray,
        pos: int,
        length: int,
        flags: int,
        stream_id: int,
        events: list[Event],
    ) -> None:
        """A DATA frame on an open (or discarding) stream: flow control, padding, Body."""
        start = pos + 9
        end = start + length
        if flags & _PADDED:
            if not length or buf[start] >= length:
                raise _ConnectionError(ErrorCodes.PROTOCOL_ERROR, "DATA padding exceeds the frame")
            end -= buf[start]
            start += 1
        if length > self._inbound_window:
            raise _ConnectionError(
                ErrorCodes.FLOW_CONTROL_ERROR, "DATA beyond the connection flow-control window"
            )
        self._inbound_window -= length
        if stream is None:
            # An early response is complete: the body is discarded as it arrives.
            self._ignored_credit += length
            self._inbound_window += length
            self._discarded(stream_id, length)
        else:
            if length > stream.window:
                raise _ConnectionError(
                    ErrorCodes.FLOW_CONTROL_ERROR,
                    f"DATA beyond the flow-control window of stream {stream_id}",
                )
            stream.window -= length
            size = end - start
            if size < length:
                self._release(stream, length - size)  # padding is consumed at once
            if size:
                stream.unacked += size
                events.append(Body(stream_id, bytes(buf[start:end])))
        if flags & _END_STREAM:
            # h2 keeps the stream states: it gets the end of the stream as an empty frame.
            ended = _frame(_DATA, _END_STREAM, stream_id)
            self._feed(ended, 0, len(ended), events)

    def _release(self, stream: _Stream | None, size: int) -> None:
        """``size`` received bytes were consumed: WINDOW_UPDATEs once enough is released."""
        if stream is not None and not stream.remote_closed:
            stream.credit += size
            if stream.credit >= self._stream_update_at:
                credit = stream.credit
                stream.credit = 0
                stream.window += credit
                self._append_raw(_frame(_WINDOW_UPDATE, 0, stream.stream_id, _U32.pack(credit)))
        self._inbound_credit += size
        if self._inbound_credit >= self._connection_update_at:
            self._give_connection_credit()

    def _give_connection_credit(self) -> None:
        credit = self._inbound_credit
        if credit and not self._closed:
            self._inbound_credit = 0
            self._inbound_window += credit
            self._append_raw(_frame(_WINDOW_UPDATE, 0, 0, _U32.pack(credit)))

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
        try:
            window: int = self._h2.local_flow_control_window(stream_id)
        except H2Error:
            return 0
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
        stream = _Stream(promised, parent.scheme, parent.authority)
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

    def goaway(self, *, graceful: bool = True, error_code: int = ErrorCodes.NO_ERROR) -> None:
        """Shut down: queue GOAWAY with the last stream id processed.

        Graceful: in-flight streams finish, new streams are refused (REFUSED_STREAM), and
        ``shutdown_complete`` turns True once none remain. Not graceful: the connection is
        over at once (``closed``); in-flight streams get nothing more.
        """
        if self._closed:
            return
        if graceful:
            if self._goaway_last_stream is None:
                self._goaway_last_stream = self._h2.highest_inbound_stream_id
                self._append_raw(self._goaway(error_code))
            return
        self._closed = True
        self._append_raw(self._goaway(error_code))
