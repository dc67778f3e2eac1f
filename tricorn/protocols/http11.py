"""HTTP/1.1 server protocol, sans-IO: request bytes in -> events out, response events in -> bytes.

The request parser is our own strict RFC 9112 reader (h11's per-request cost is several times
the whole budget of this hot path); the rules it enforces are the ``check_*`` functions of
``http11_rules`` (the ones h11 enforces, plus the limits and statuses tricorn promises: 414,
431, 413, 501, 505). Everything else about the connection, and the response writer, is
``HTTP11Base``'s.
"""

from __future__ import annotations

from itertools import repeat

from tricorn.protocols.events import Body, EndBody, Event, H2CPrefaceReceived
from tricorn.protocols.http11_base import HTTP11Base, HTTP11Limits
from tricorn.protocols.http11_rules import (
    H2C_PREFACE,
    PeerError,
    State,
    check_chunk_end,
    check_chunk_line,
    check_chunk_line_prefix,
    check_head_limits,
    check_head_lines,
    check_request_line,
    read_header_fields,
)

__all__ = ["H2C_PREFACE", "HTTP11Limits", "HTTP11Protocol"]

_COLONS = repeat(b":")  # map(bytes.partition, lines, _COLONS): each field line split at C speed

_HEAD = int(State.HEAD)
_LENGTH_BODY = int(State.LENGTH_BODY)
_CHUNK_SIZE = int(State.CHUNK_SIZE)
_CHUNK_DATA = int(State.CHUNK_DATA)
_CHUNK_END = int(State.CHUNK_END)
_TRAILERS = int(State.TRAILERS)
_DONE = int(State.DONE)
_CLOSED = int(State.CLOSED)
_SWITCHED = int(State.SWITCHED)


class HTTP11Protocol(HTTP11Base):
    """One HTTP/1.1 server connection on our own request parser, without I/O.

    Feed bytes with :meth:`receive_data`; it returns events. Answer each request with
    :meth:`send` (``InformationalResponse``*, ``Response``, ``Body``*, ``EndBody``) and write
    :meth:`data_to_send`. After a complete request the protocol is :attr:`paused` until the
    response to it has ended; then :meth:`next_events` parses requests already buffered
    (pipelining). When :attr:`should_close` is true, write what is left and close.
    """

    # No ``__init__`` of its own: ``HTTP11Base``'s takes the limits (``HTTP11Limits``), and
    # one passing ``**limits`` on cost a call and two keyword dicts per connection.
    __slots__ = ()

    # --- the parser (HTTP11Base does the rest) -------------------------------------------

    def _process(self) -> list[Event]:
        events: list[Event] = []
        buffer = self._buffer
        position = 0
        try:
            while True:
                state = self._state
                if state == _HEAD:
                    position = self._read_head(buffer, position, events)
                    if self._state == _HEAD:
                        break
                elif state == _LENGTH_BODY:
                    available = len(buffer) - position
                    if not available:
                        break
                    remaining = self._remaining
                    if available <= remaining:
                        data = buffer[position:] if position else buffer
                        position = len(buffer)
                        remaining -= available
                    else:
                        data = buffer[position : position + remaining]
                        position += remaining
                        remaining = 0
                    events.append(Body(self._stream_id, data))
                    self._remaining = remaining
                    if remaining:
                        break
                    self._state = _DONE
                    events.append(EndBody(self._stream_id))
                    break
                elif state < _DONE:
                    new_position = self._read_chunked(buffer, position, events)
                    if new_position == position and self._state == state:
                        break
                    position = new_position
                else:
                    break
        except PeerError as error:
            self._fail(error, events, buffer[position:])
            return events
        if self._state >= _CLOSED:
            self._buffer = b""
        elif position:
            self._buffer = buffer[position:]
        return events

    def _read_head(self, buffer: bytes, position: int, events: list[Event]) -> int:
        """Parse one request head at ``position``; return the position after what it used."""
        if buffer[position : position + 1] == b"\r":  # a slice: startswith costs 3x as much
            # RFC 9112 2.2: ignore empty lines before a request line.
            while buffer.startswith(b"\r\n", position):
                position += 2
        if self._check_preface:
            start = buffer[position : position + len(H2C_PREFACE)]
            # A lone CR may be the start of an empty line, skipped before the preface too
            # (else the preface's detection depended on the chunking; found by fuzzing).
            if len(start) < len(H2C_PREFACE) and (H2C_PREFACE.startswith(start) or start == b"\r"):
                return position
            self._check_preface = False
            if start == H2C_PREFACE:
                self._state = _SWITCHED
                events.append(H2CPrefaceReceived(buffer[position:]))
                return len(buffer)
        end = buffer.find(b"\r\n\r\n", position + self._scanned)
        if end < 0:
            self._check_partial_head(buffer, position)
            self._scanned = max(0, len(buffer) - position - 3)
            return position
        self._scanned = 0
        self._line_checked = False
        head = buffer[position:end]
        position = end + 4
        self._parse_head(head, buffer, position, events)
        return position

    def _parse_head(self, head: bytes, buffer: bytes, body_start: int, events: list[Event]) -> None:
        """Check a complete head (the rules in their order) and start its request."""
        lines = head.split(b"\r\n")
        fields = len(lines) - 1
        try:
            check_head_lines(lines)
            start = check_request_line(lines[0], self._max_line)  # (method, target, HTTP/1.0)
            if len(head) + 4 > self._max_head or fields > self._max_headers:  # no call if not
                check_head_limits(len(head) + 4, fields, self._max_head, self._max_headers)
        except PeerError as error:  # the first fault in byte order, as if read in pieces
            raise self._first_fault(head + b"\r\n\r\n") or error from None
        headers, length, chunked, options = read_header_fields(
            map(bytes.partition, lines[1:], _COLONS), start[2]
        )
        self._begin_request(start, headers, length, chunked, options, buffer, body_start, events)

    def _read_chunked(self, buffer: bytes, position: int, events: list[Event]) -> int:
        """Advance the chunked-body reader by one step; return the new position."""
        state = self._state
        if state == _CHUNK_DATA:
            available = len(buffer) - position
            if not available:
                return position
            take = min(available, self._remaining)
            data = buffer if take == len(buffer) else buffer[position : position + take]
            events.append(Body(self._stream_id, data))
            self._remaining -= take
            if not self._remaining:
                self._state = _CHUNK_END
            return position + take
        if state == _CHUNK_END:
            ending = buffer[position : position + 2]
            if ending == b"\r\n":
                self._state = _CHUNK_SIZE
                return position + 2
            check_chunk_end(ending)
            return position
        line_end = buffer.find(b"\r\n", position)
        if state == _CHUNK_SIZE:
            if line_end < 0:
                check_chunk_line_prefix(buffer[position:])
                return position
            self._enter_chunk(check_chunk_line(buffer, position, line_end))
            return line_end + 2
        # TRAILERS: field lines are checked and dropped (ASGI has no request trailers).
        if line_end < 0:
            self._check_partial_trailer(len(buffer) - position)
            return position
        if line_end == position:
            self._state = _DONE
            events.append(EndBody(self._stream_id))
            return position + 2
        self._trailer_field(buffer[position:line_end])
        return line_end + 2
