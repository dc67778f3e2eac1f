"""The frame scanner in front of h2: it reads the 9-byte frame headers before h2 sees the
bytes, and applies the rules h2 does not (or applies more loosely than RFC 9113).

It enforces the abuse limits (CONTINUATION, rapid reset, PING/SETTINGS/empty-frame floods,
frame size before the body is buffered), catches the places where h2 is laxer or coarser
than RFC 9113 (RST_STREAM on an idle stream, self-dependent PRIORITY, content-length
mismatches as stream errors, the error code of HPACK failures), and cuts the input after
every header block so that each request head is known before the frames that follow it are
checked.

It also charges one glitch budget (``http2_limits.GlitchBudget``) for every frame that costs
work without serving a request, answers frames on half-closed(remote) and reset streams
itself (one RST_STREAM(STREAM_CLOSED), then ignored, the connection window credited: h2
never writes a reset per frame), and takes DATA on open streams itself (inbound flow
control, padding, ``Body`` events; h2 only sees an empty END_STREAM frame to keep its stream
states), which is most of the cost of an upload. A complete request head on a new stream
(HEADERS with END_HEADERS and no priority) is handed to ``HTTP2Protocol._open_stream`` rather
than to h2, which is most of the cost of a small request.

The rules that need no connection state are module functions (``check_*``), each named
after what it checks and citing its section; the ones that do are ``FrameScanner`` methods.
A rule raises ``ConnectionViolation`` for a connection error; stream errors are answered in
place. ``FrameScanner`` is the input half of ``HTTP2Protocol`` (it is its base class).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from h2.errors import ErrorCodes
from hpack.exceptions import HPACKError, OversizedHeaderListError

from .events import Body, Event, ProtocolError, StreamReset
from .http2_limits import GlitchBudget, RateLimit
from .http2_streams import ClosedStream, Stream

if TYPE_CHECKING:
    from h2.connection import H2Connection
    from hpack import Decoder

    from .http2_priority import PriorityScheduler

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types and flags (RFC 9113 section 6; PRIORITY_UPDATE is RFC 9218).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY = range(8)
WINDOW_UPDATE, CONTINUATION, PRIORITY_UPDATE = 8, 9, 16
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY_FLAG = 0x4, 0x8, 0x20
SETTINGS_NO_RFC7540_PRIORITIES = 0x9
STREAM_CLOSED = 0x5

FRAME_HEADER = struct.Struct(">BHBBL")
U32 = struct.Struct(">L")
_SETTING = struct.Struct(">HL")
STREAM_ID_MASK = 0x7FFFFFFF

#: What a frame scanner returns instead of the start of the run not yet given to h2.
_HOLD = -1  # too much output waits for the peer: stop before this frame, keep it
_STOP = -2  # the peer's GOAWAY: nothing after it is read

#: RFC 9113 6.5.2 and RFC 8441/9218: the allowed values of the settings that have a range,
#: and the error code of a value outside it.
_SETTING_RANGES = {
    0x2: (0, 1, ErrorCodes.PROTOCOL_ERROR),  # ENABLE_PUSH
    0x4: (0, STREAM_ID_MASK, ErrorCodes.FLOW_CONTROL_ERROR),  # INITIAL_WINDOW_SIZE
    0x5: (16384, 16777215, ErrorCodes.PROTOCOL_ERROR),  # MAX_FRAME_SIZE
    0x8: (0, 1, ErrorCodes.PROTOCOL_ERROR),  # ENABLE_CONNECT_PROTOCOL
    SETTINGS_NO_RFC7540_PRIORITIES: (0, 1, ErrorCodes.PROTOCOL_ERROR),
}


_OBJECT_ADDRESS = re.compile(r" (?:from|at) <[^>]* at 0x[0-9a-fA-F]+>| at 0x[0-9a-fA-F]+")


def wire_text(message: str) -> str:
    """A library's error text as GOAWAY debug data: without the object reprs hpack puts in
    (``from <memory at 0x7f...>``), which leak addresses and differ run to run (found by
    fuzzing: tests/property/test_http2_properties.py)."""
    return _OBJECT_ADDRESS.sub("", message)


class ConnectionViolation(Exception):
    """The peer broke the protocol for the whole connection: GOAWAY(``error_code``)."""

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


def frame(frame_type: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One frame, header and payload."""
    length = len(payload)
    return FRAME_HEADER.pack(length >> 16, length & 0xFFFF, frame_type, flags, stream_id) + payload


# --- rules on one frame that need no connection state ---------------------------------------


def check_preface(buf: bytes | bytearray, offset: int, take: int) -> None:
    """RFC 9113 3.4: the client's connection preface, possibly in pieces."""
    if buf[:take] != PREFACE[offset : offset + take]:
        raise ConnectionViolation(ErrorCodes.PROTOCOL_ERROR, "invalid connection preface")


def check_first_frame(frame_type: int, flags: int) -> None:
    """RFC 9113 3.4: the preface is followed by a SETTINGS frame (not an ACK)."""
    if frame_type != SETTINGS or flags & ACK:
        raise ConnectionViolation(
            ErrorCodes.PROTOCOL_ERROR, "the preface is not followed by SETTINGS"
        )


def check_frame_size(length: int, max_frame_size: int) -> None:
    """RFC 9113 4.2: no frame over the SETTINGS_MAX_FRAME_SIZE we sent."""
    if length > max_frame_size:
        raise ConnectionViolation(
            ErrorCodes.FRAME_SIZE_ERROR,
            f"frame of {length} bytes is over SETTINGS_MAX_FRAME_SIZE {max_frame_size}",
        )


def check_frame_order(frame_type: int, stream_id: int, block_stream: int) -> None:
    """RFC 9113 6.10: a header block is only continued, by CONTINUATION frames on its own
    stream; 8.4: a client never sends PUSH_PROMISE. ``block_stream``: the stream of the
    unfinished header block, 0 when there is none."""
    if block_stream:
        if frame_type != CONTINUATION or stream_id != block_stream:
            raise ConnectionViolation(
                ErrorCodes.PROTOCOL_ERROR, "header block interrupted by another frame"
            )
    elif frame_type == CONTINUATION:
        raise ConnectionViolation(
            ErrorCodes.PROTOCOL_ERROR, "CONTINUATION frame outside a header block"
        )
    elif frame_type == PUSH_PROMISE:
        raise ConnectionViolation(ErrorCodes.PROTOCOL_ERROR, "a client sent PUSH_PROMISE")


def check_settings(payload: bytes | bytearray, start: int, end: int) -> None:
    """RFC 9113 6.5.2: no setting outside its range (each with its error code)."""
    for offset in range(start, end - 5, 6):
        identifier, value = _SETTING.unpack_from(payload, offset)
        allowed = _SETTING_RANGES.get(identifier)
        if allowed is not None and not allowed[0] <= value <= allowed[1]:
            raise ConnectionViolation(
                allowed[2],
                f"setting 0x{identifier:x} = {value} is outside {allowed[0]}..{allowed[1]}",
            )


def check_settings_ack(length: int) -> None:
    """RFC 9113 6.5: a SETTINGS ACK has no payload."""
    if length:
        raise ConnectionViolation(ErrorCodes.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")


def check_priority_stream(stream_id: int) -> None:
    """RFC 9113 6.3: PRIORITY names a stream."""
    if not stream_id:
        raise ConnectionViolation(ErrorCodes.PROTOCOL_ERROR, "PRIORITY on stream 0")


def check_priority_update(stream_id: int, length: int) -> None:
    """RFC 9218 7.1: PRIORITY_UPDATE goes on stream 0 and holds a stream id."""
    if stream_id:
        raise ConnectionViolation(ErrorCodes.PROTOCOL_ERROR, "PRIORITY_UPDATE on a stream")
    if length < 4:
        raise ConnectionViolation(ErrorCodes.FRAME_SIZE_ERROR, "PRIORITY_UPDATE too short")


def block_fragment(buf: bytes | bytearray, pos: int, length: int, flags: int) -> bytes:
    """The field block fragment of a HEADERS frame (without padding and priority); RFC 9113
    6.2: the padding fits in the frame."""
    start = pos + 9
    end = start + length
    if flags & PADDED:
        if not length:
            raise ConnectionViolation(ErrorCodes.FRAME_SIZE_ERROR, "PADDED HEADERS without padding")
        end -= buf[start]
        start += 1
    if flags & PRIORITY_FLAG:
        start += 5
    if end < start:
        raise ConnectionViolation(ErrorCodes.PROTOCOL_ERROR, "HEADERS padding exceeds the frame")
    return bytes(buf[start:end])


def data_payload(buf: bytes | bytearray, pos: int, length: int, flags: int) -> tuple[int, int]:
    """Where the data of a DATA frame is (without padding); RFC 9113 6.1: the padding fits."""
    start = pos + 9
    end = start + length
    if flags & PADDED:
        if not length or buf[start] >= length:
            raise ConnectionViolation(ErrorCodes.PROTOCOL_ERROR, "DATA padding exceeds the frame")
        end -= buf[start]
        start += 1
    return start, end


def is_self_dependent(
    buf: bytes | bytearray, pos: int, length: int, flags: int, stream_id: int
) -> bool:
    """RFC 9113 5.3.1: a HEADERS frame whose priority makes its stream depend on itself."""
    offset = 1 if flags & PADDED else 0
    if length < offset + 5:
        return False  # h2 reports the short frame
    return bool(U32.unpack_from(buf, pos + 9 + offset)[0] & STREAM_ID_MASK == stream_id)


def decode_block(decoder: Decoder, block: bytes) -> list[tuple[bytes, bytes]]:
    """A request's header block, decoded; RFC 9113 4.3: a block that does not decode is a
    connection error of type COMPRESSION_ERROR (ENHANCE_YOUR_CALM for a header list over the
    decoder's limit), with the text h2 gives the same errors."""
    try:
        headers: list[tuple[bytes, bytes]] = decoder.decode(block, raw=True)  # type: ignore[assignment]
    except OversizedHeaderListError as error:
        raise ConnectionViolation(
            ErrorCodes.ENHANCE_YOUR_CALM, wire_text(f"Oversized header block: {error}")
        ) from None
    except (HPACKError, IndexError, TypeError, UnicodeDecodeError) as error:
        code = (
            ErrorCodes.COMPRESSION_ERROR
            if isinstance(error, HPACKError)
            else ErrorCodes.PROTOCOL_ERROR
        )
        raise ConnectionViolation(
            code, wire_text(f"Error decoding header block: {error}")
        ) from None
    return headers


class FrameInput:
    """The frame a scanner looks at: where it stands in the buffer of one read, its header
    fields, and the events of that read.

    ``_scan`` makes one per read and moves it from frame to frame (scanners never keep it),
    so that each ``_scan_<type>`` takes the frame as one argument.
    """

    __slots__ = ("buf", "end", "events", "flags", "length", "pos", "stream_id")

    def __init__(self, buf: bytes | bytearray, events: list[Event]) -> None:
        self.buf = buf
        self.events = events
        #: The frame header's offset in ``buf``; the payload is ``buf[pos + 9 : end]``.
        self.pos = 0
        self.end = 0
        self.length = 0
        self.flags = 0
        self.stream_id = 0


# A frame scanner: (the frame, the start of the run not yet given to h2) -> the new start.
_Scanner = Callable[[FrameInput, int], int]


class FrameScanner:
    """The input half of ``HTTP2Protocol``: checks frames, then hands runs of them to h2.

    One ``_scan_<type>`` method per frame type, each returning where the run of frames not
    yet given to h2 now starts (a frame answered here is cut out of it). The scanner's own
    state is set up by ``_init_scanner``; the connection state declared below is
    ``HTTP2Protocol``'s, set up in its ``__init__``.
    """

    _h2: H2Connection
    _streams: dict[int, Stream]
    _reset_ids: dict[int, ClosedStream]
    _discarding: dict[int, int]
    _discard_credit: dict[int, int]
    _recent_sent: dict[int, None]
    _scheduler: PriorityScheduler
    _handlers: dict[type, Callable[[Any, list[Event]], None]]
    _out: bytearray
    _closed: bool
    _max_frame_size: int
    _max_output_buffer: int
    _max_continuation_frames: int
    _max_header_block: int
    _sent_since_update: bool
    _inbound_window: int
    _resets: RateLimit
    _pings: RateLimit
    _settings: RateLimit
    _empty: RateLimit
    _priorities: RateLimit
    _glitches: GlitchBudget
    _body_limit: int
    _scanners: list[_Scanner]
    #: While ``_scan`` runs: its buffer, and how far ``_feed`` gave it to h2 (to hand over
    #: the run of frames before a bad one).
    _scanning: bytes | bytearray | None = None
    _fed_end: int = 0

    if TYPE_CHECKING:  # HTTP2Protocol's, used here

        @property
        def pending_output_size(self) -> int: ...

        def _forget(self, stream: Stream, *, reset: bool, allowance: int | None) -> None: ...

        def _append_raw(self, frame: bytes) -> None: ...

        def _release(self, stream: Stream | None, size: int) -> None: ...

        def _discarded(self, stream_id: int, size: int) -> None: ...

        def _body_over_limit(self, stream: Stream, length: int, events: list[Event]) -> None: ...

        def _open_stream(
            self, stream_id: int, block: bytes, ended: bool, events: list[Event]
        ) -> None: ...

    def _init_scanner(self) -> None:
        """The scanner's own state, at the start of a connection."""
        self._preface_left = len(PREFACE)
        #: RFC 9113 3.4: the preface must be followed by a SETTINGS frame.
        self._first_frame = True
        #: The unfinished header block: its stream (0: none), CONTINUATION frames, bytes.
        self._header_block_stream = 0
        self._header_block_frames = 0
        self._header_block_bytes = 0
        #: The header block of a HEADERS frame on a closed stream, decoded here and dropped.
        self._dropped_block: bytearray | None = None
        self._settings_received = False
        self._settings_acks_due = 1
        self._self_dependent: set[int] = set()
        #: Connection window owed to the peer for DATA ignored before h2 saw it.
        self._ignored_credit = 0
        #: The last read stopped before a frame (too much output waits for the peer).
        self._held = False
        #: Output the run being scanned will produce (PING and SETTINGS ACKs).
        self._answers = 0
        self._scanners = self._frame_scanners()

    def _frame_scanners(self) -> list[_Scanner]:
        """The scanner of each frame type (0..255): unknown types are glitches."""
        table: list[_Scanner] = [self._scan_unknown] * 256
        table[DATA] = self._scan_data
        table[HEADERS] = self._scan_headers
        table[PRIORITY] = self._scan_priority
        table[RST_STREAM] = self._scan_rst_stream
        table[SETTINGS] = self._scan_settings
        # PUSH_PROMISE never gets here: check_frame_order refuses it.
        table[PING] = self._scan_ping
        table[GOAWAY] = self._scan_goaway
        table[WINDOW_UPDATE] = self._scan_window_update
        table[CONTINUATION] = self._scan_continuation
        table[PRIORITY_UPDATE] = self._scan_priority_update
        return table

    # --- the loop ---------------------------------------------------------------------------

    def _scan(self, buf: bytes | bytearray, events: list[Event]) -> int:
        """Check frame headers, hand runs of complete frames to h2; return bytes consumed.

        The per-frame hot path: the checks every frame needs are inline here (one call
        each), the rest is in the scanner of the frame's type.
        """
        # Long on purpose: the loop over frame headers is the hot path, kept in one frame
        # of Python (a call per frame for the common checks would cost every request).
        end_of_data = len(buf)
        pos = 0
        self._held = False
        if self._preface_left:
            take = min(self._preface_left, end_of_data)
            check_preface(buf, len(PREFACE) - self._preface_left, take)
            self._preface_left -= take
            pos = take
        start = 0  # the start of the run not yet handed to h2
        # Output the run will produce (PING and SETTINGS ACKs), for the pause check.
        self._answers = self.pending_output_size
        max_frame_size = self._max_frame_size
        unpack_header = FRAME_HEADER.unpack_from
        scanners = self._scanners
        f = FrameInput(buf, events)
        self._scanning = buf
        self._fed_end = 0
        try:
            while end_of_data - pos >= 9:
                length_high, length_low, frame_type, flags, stream_id = unpack_header(buf, pos)
                length: int = (length_high << 16) | length_low
                stream_id &= STREAM_ID_MASK
                if length > max_frame_size:
                    check_frame_size(length, max_frame_size)
                if self._header_block_stream or frame_type in (CONTINUATION, PUSH_PROMISE):
                    check_frame_order(frame_type, stream_id, self._header_block_stream)
                    if self._header_block_bytes + length > self._max_header_block:
                        raise ConnectionViolation(
                            ErrorCodes.ENHANCE_YOUR_CALM, "header block too large"
                        )
                if self._first_frame:
                    check_first_frame(frame_type, flags)
                    self._first_frame = False
                frame_end = pos + 9 + length
                if frame_end > end_of_data:
                    break
                f.pos = pos
                f.end = frame_end
                f.length = length
                f.flags = flags
                f.stream_id = stream_id
                cut = scanners[frame_type](f, start)
                if cut < 0:
                    if cut == _HOLD:
                        self._held = True
                        break
                    self._give_ignored_credit()  # _STOP
                    return frame_end
                start = cut
                pos = frame_end
                if self._closed:
                    return pos
        except ConnectionViolation as violation:
            # The frames before a bad one are handled as if they had arrived alone (their
            # ACKs and events come before the GOAWAY), so the answer does not depend on the
            # chunking (found by fuzzing: tests/property/test_fuzz_regressions.py). Not
            # before a flood limit (ENHANCE_YOUR_CALM): the flood is not worth the work.
            run_start = max(start, self._fed_end)
            calm = violation.error_code == ErrorCodes.ENHANCE_YOUR_CALM
            if run_start < pos and not self._closed and not calm:
                self._feed(buf, run_start, pos, events)
            raise
        finally:
            self._scanning = None
        self._feed(buf, start, pos, events)
        self._give_ignored_credit()
        return pos

    def _feed(self, buf: bytes | bytearray, start: int, end: int, events: list[Event]) -> None:
        """Hand ``buf[start:end]`` (whole frames) to h2 and translate what it reports."""
        if end <= start or self._closed:
            return
        if buf is self._scanning:
            self._fed_end = max(self._fed_end, end)
        chunk = buf if (start == 0 and end == len(buf) and type(buf) is bytes) else buf[start:end]
        handlers = self._handlers
        for h2_event in self._h2.receive_data(chunk):
            handler = handlers.get(type(h2_event))
            if handler is not None:
                handler(h2_event, events)

    def _feed_before(self, f: FrameInput, start: int) -> None:
        """Hand h2 the run that precedes frame ``f`` (which is then answered here)."""
        self._feed(f.buf, start, f.pos, f.events)

    # --- one scanner per frame type ------------------------------------------------------------

    def _scan_data(self, f: FrameInput, start: int) -> int:
        # The upload hot path: the frame's fields are read once, the helpers take them.
        buf, pos, length, flags, stream_id = f.buf, f.pos, f.length, f.flags, f.stream_id
        stream = self._streams.get(stream_id)
        if stream.remote_closed if stream is not None else stream_id in self._reset_ids:
            # Half-closed (remote) or reset: answered here, h2 never sees the frame.
            self._feed(buf, start, pos, f.events)
            self._data_on_closed(stream, stream_id, length, f.events)
        elif self._check_data(buf, pos, length, flags, stream):
            if stream is None and stream_id not in self._discarding:
                return start  # idle or long gone: h2 answers it
            # The body of an open stream: taken here, without h2 (a third of the cost of an
            # upload was h2's per-frame work).
            self._feed(buf, start, pos, f.events)
            # max_request_body_size: http11_rules.check_chunked_body_limit's rule, inline on
            # the upload path.
            if stream is not None and stream.received > self._body_limit > 0 and not stream.tunnel:
                self._body_over_limit(stream, length, f.events)
            else:
                self._body_frame(stream, buf, pos, length, flags, stream_id, f.events)
        else:
            # Stream error answered here; h2 must not see the frame.
            self._feed(buf, start, pos, f.events)
            self._drop_data(stream_id, length, f.events)
        return f.end

    def _scan_headers(self, f: FrameInput, start: int) -> int:
        buf, pos, length, flags, stream_id = f.buf, f.pos, f.length, f.flags, f.stream_id
        self._check_empty_block(length, flags)
        self._header_block_frames = 0
        self._header_block_bytes = length
        stream = self._streams.get(stream_id)
        if stream.remote_closed if stream is not None else stream_id in self._reset_ids:
            # A header block on a closed stream: decoded here, never by h2.
            self._feed_before(f, start)
            self._dropped_block = bytearray(block_fragment(buf, pos, length, flags))
            start = f.end
        elif flags & PRIORITY_FLAG and is_self_dependent(buf, pos, length, flags, stream_id):
            self._feed_before(f, start)
            self._feed_stripped_headers(buf[pos : f.end], f.events)
            start = f.end
        elif (
            flags & (END_HEADERS | PRIORITY_FLAG) == END_HEADERS
            and stream_id & 1
            and stream_id > self._h2.highest_inbound_stream_id
        ):
            # The common case, a complete request head on a new stream: opened here, not by
            # h2 (its per-frame work was most of the cost of a small request). What h2 would
            # do is done to its state (``HTTP2Protocol._open_stream``); anything else (a
            # priority, CONTINUATION, trailers, a stream id h2 refuses) still goes to h2.
            self._feed_before(f, start)
            if not self._closed:
                self._open_stream(
                    stream_id,
                    block_fragment(buf, pos, length, flags),
                    bool(flags & END_STREAM),
                    f.events,
                )
            return f.end
        return self._end_of_block(f, start)

    def _scan_continuation(self, f: FrameInput, start: int) -> int:
        self._check_empty_block(f.length, f.flags)
        if self._dropped_block is not None:
            self._dropped_block += f.buf[f.pos + 9 : f.end]
            start = f.end
        self._header_block_frames += 1
        self._header_block_bytes += f.length
        if self._header_block_frames > self._max_continuation_frames > 0:
            raise ConnectionViolation(
                ErrorCodes.ENHANCE_YOUR_CALM,
                f"more than {self._max_continuation_frames} CONTINUATION frames",
            )
        return self._end_of_block(f, start)

    def _end_of_block(self, f: FrameInput, start: int) -> int:
        """After a HEADERS or CONTINUATION frame: the block goes on, or it is complete."""
        if not f.flags & END_HEADERS:
            self._header_block_stream = f.stream_id
            return start
        self._header_block_stream = 0
        if self._dropped_block is not None:
            self._finish_dropped_block(f.stream_id, f.events)
        # Cut here: the request head must be known before its DATA is checked.
        self._feed(f.buf, start, f.end, f.events)
        return f.end

    def _scan_priority(self, f: FrameInput, start: int) -> int:
        stream_id = f.stream_id
        check_priority_stream(stream_id)
        self._limit(self._priorities, "PRIORITY flood")
        self._glitch("PRIORITY")
        if f.length == 5 and U32.unpack_from(f.buf, f.pos + 9)[0] & STREAM_ID_MASK == stream_id:
            self._feed_before(f, start)
            self._self_dependent_priority(stream_id, f.events)
            return f.end
        return start

    def _scan_rst_stream(self, f: FrameInput, start: int) -> int:
        stream_id = f.stream_id
        if stream_id and self._is_idle(stream_id):  # RFC 9113 6.4
            raise ConnectionViolation(
                ErrorCodes.PROTOCOL_ERROR, f"RST_STREAM on idle stream {stream_id}"
            )
        self._limit(self._resets, "too many streams reset (rapid reset)")
        self._glitch("RST_STREAM")
        over = stream_id not in self._streams  # its response went out, or we reset it
        # Cut here: the frames after it see the stream as reset.
        self._feed(f.buf, start, f.end, f.events)
        if over and f.length == 4:
            # h2 reports nothing for a stream that is over: said here, for the metrics.
            f.events.append(StreamReset(stream_id, U32.unpack_from(f.buf, f.pos + 9)[0]))
        return f.end

    def _scan_settings(self, f: FrameInput, start: int) -> int:
        if f.flags & ACK:
            check_settings_ack(f.length)
            if self._settings_acks_due:
                self._settings_acks_due -= 1
            else:
                self._glitch("unsolicited SETTINGS ACK")
            return start
        self._answers += 9
        if self._answers > self._max_output_buffer:
            return _HOLD
        self._limit(self._settings, "SETTINGS flood")
        if self._settings_received:
            self._glitch("SETTINGS")
        if f.stream_id == 0 and f.length % 6 == 0:
            check_settings(f.buf, f.pos + 9, f.end)
        self._settings_received = True
        return start

    def _scan_ping(self, f: FrameInput, start: int) -> int:
        if not f.flags & ACK:
            self._answers += 17
            if self._answers > self._max_output_buffer:
                return _HOLD
            self._limit(self._pings, "PING flood")
        self._glitch("PING")
        return start

    def _scan_window_update(self, f: FrameInput, start: int) -> int:
        self._window_update_glitch(f.stream_id)
        if f.length == 4 and f.buf[f.pos + 9] & 0x80:
            # The reserved bit must be ignored (RFC 9113 6.9); hyperframe rejects it.
            self._feed_before(f, start)
            fixed = bytearray(f.buf[f.pos : f.end])
            fixed[9] &= 0x7F
            self._feed(bytes(fixed), 0, len(fixed), f.events)
            return f.end
        return start

    def _scan_goaway(self, f: FrameInput, start: int) -> int:
        # h2 drops its unsent output when it reads a GOAWAY: what the frames before it made
        # us queue (an RST_STREAM for a malformed request, ACKs) still goes out, as it does
        # when the GOAWAY comes in a later read (found by fuzzing).
        self._feed_before(f, start)
        pending = self._h2.data_to_send()
        if pending:
            self._out += pending
        self._feed(f.buf, f.pos, f.end, f.events)
        return _STOP

    def _scan_priority_update(self, f: FrameInput, start: int) -> int:
        check_priority_update(f.stream_id, f.length)
        self._limit(self._priorities, "PRIORITY_UPDATE flood")
        self._glitch("PRIORITY_UPDATE")
        prioritized = U32.unpack_from(f.buf, f.pos + 9)[0] & STREAM_ID_MASK
        if prioritized in self._streams:
            self._scheduler.set_field(prioritized, bytes(f.buf[f.pos + 13 : f.end]))
        return start

    def _scan_unknown(self, f: FrameInput, start: int) -> int:
        self._glitch("frame of unknown type")  # RFC 9113 5.5: ignored, but not for free
        return start

    # --- limits and glitches: frames that cost work without serving a request ----------------

    def _limit(self, counter: RateLimit, message: str) -> None:
        """Count one frame against a flood limit: GOAWAY(ENHANCE_YOUR_CALM) past it."""
        if counter.hit():
            raise ConnectionViolation(ErrorCodes.ENHANCE_YOUR_CALM, message)

    def _glitch(self, what: str) -> None:
        if self._glitches.charge():
            raise ConnectionViolation(
                ErrorCodes.ENHANCE_YOUR_CALM,
                f"too many frames that serve no request (glitch budget; last: {what})",
            )

    def _stream_error(
        self,
        stream: Stream,
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
        self._limit(self._resets, "too many stream errors")
        self._glitch(message)

    def _check_empty_block(self, length: int, flags: int) -> None:
        """An empty HEADERS/CONTINUATION that ends nothing (CVE-2019-9518)."""
        if not length and not flags & (END_STREAM | END_HEADERS):
            self._limit(self._empty, "flood of empty HEADERS/CONTINUATION")
            self._glitch("empty HEADERS/CONTINUATION")

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

    # --- frames on streams that are closed, or not what they announced ---------------------

    def _is_idle(self, stream_id: int) -> bool:
        if stream_id & 1:
            return stream_id > int(self._h2.highest_inbound_stream_id)
        return stream_id > int(self._h2.highest_outbound_stream_id)

    def _data_on_closed(
        self, stream: Stream | None, stream_id: int, length: int, events: list[Event]
    ) -> None:
        """DATA on a half-closed (remote) or reset stream, kept from h2."""
        # h2 never saw the bytes, so its window did not shrink; the peer's did: give it back.
        self._ignored_credit += length
        if stream is not None:
            # RFC 9113 5.1 half-closed (remote): a stream error of type STREAM_CLOSED.
            self._stream_error(
                stream, STREAM_CLOSED, "DATA after the end of the request", events, allowance=0
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
            self._append_raw(frame(RST_STREAM, 0, stream_id, U32.pack(STREAM_CLOSED)))
            events.append(
                ProtocolError(
                    stream_id,
                    f"{what} on stream {stream_id} after the client reset it",
                    error_code=STREAM_CLOSED,
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
            raise ConnectionViolation(
                ErrorCodes.ENHANCE_YOUR_CALM, "header list too large"
            ) from None
        except HPACKError as error:
            raise ConnectionViolation(
                ErrorCodes.COMPRESSION_ERROR, f"HPACK: {wire_text(str(error))}"
            ) from None
        stream = self._streams.get(stream_id)
        if stream is not None:
            self._stream_error(
                stream, STREAM_CLOSED, "HEADERS after the end of the request", events, allowance=0
            )
        else:
            self._ignored(stream_id, 0, "HEADERS", events)

    def _give_ignored_credit(self) -> None:
        """One connection WINDOW_UPDATE for all the DATA ignored in this read."""
        credit = self._ignored_credit
        if credit and not self._closed:
            self._ignored_credit = 0
            self._append_raw(frame(WINDOW_UPDATE, 0, 0, U32.pack(credit)))
        if self._discard_credit:
            for stream_id, size in self._discard_credit.items():
                if stream_id in self._discarding and not self._closed:
                    self._out += frame(WINDOW_UPDATE, 0, stream_id, U32.pack(size))
            self._discard_credit.clear()

    def _check_data(
        self, buf: bytes | bytearray, pos: int, length: int, flags: int, stream: Stream | None
    ) -> bool:
        """Count empty DATA, check content-length; False when the frame is a stream error."""
        size = length
        if flags & PADDED and length:
            size = length - 1 - buf[pos + 9]
        if size <= 0 and not flags & END_STREAM:
            self._limit(self._empty, "flood of empty DATA frames")
            self._glitch("empty DATA")
        if stream is None or stream.remote_closed or size < 0:
            return True
        stream.received += size  # for max_request_body_size too (``_scan_data``)
        if stream.content_length is None:
            return True
        if stream.received > stream.content_length:
            return False
        return not flags & END_STREAM or stream.received == stream.content_length

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

    def _feed_stripped_headers(self, frame_bytes: bytes | bytearray, events: list[Event]) -> None:
        """Hand h2 the HEADERS without its (self-dependent) priority; reset the stream after."""
        flags: int = frame_bytes[4]
        stream_id: int = U32.unpack_from(frame_bytes, 5)[0] & STREAM_ID_MASK
        offset = 10 if flags & PADDED else 9
        payload = bytes(frame_bytes[9:offset]) + bytes(frame_bytes[offset + 5 :])
        self._self_dependent.add(stream_id)
        stripped = frame(HEADERS, flags & ~PRIORITY_FLAG, stream_id, payload)
        self._feed(stripped, 0, len(stripped), events)

    def _self_dependent_priority(self, stream_id: int, events: list[Event]) -> None:
        stream = self._streams.get(stream_id)
        if stream is not None:
            self._stream_error(
                stream, ErrorCodes.PROTOCOL_ERROR, "stream depends on itself", events
            )
        elif self._is_idle(stream_id):
            raise ConnectionViolation(
                ErrorCodes.PROTOCOL_ERROR, f"idle stream {stream_id} depends on itself"
            )

    # --- request bodies ---------------------------------------------------------------------

    def _body_frame(
        self,
        stream: Stream | None,
        buf: bytes | bytearray,
        pos: int,
        length: int,
        flags: int,
        stream_id: int,
        events: list[Event],
    ) -> None:
        """A DATA frame on an open (or discarding) stream: flow control, padding, Body."""
        start, end = data_payload(buf, pos, length, flags)
        if length > self._inbound_window:
            raise ConnectionViolation(
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
                raise ConnectionViolation(
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
        if flags & END_STREAM:
            # h2 keeps the stream states: it gets the end of the stream as an empty frame.
            ended = frame(DATA, END_STREAM, stream_id)
            self._feed(ended, 0, len(ended), events)
