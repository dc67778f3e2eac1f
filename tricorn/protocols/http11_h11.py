"""HTTP/1.1 server protocol on h11, sans-IO, with the same face and events as ``HTTP11Protocol``.

h11 parses request heads and bodies and frames responses (keep-alive, HTTP/1.0, chunked, HEAD,
the request/response cycle). Where h11 is more lenient than tricorn promises, or answers with a
different status, small checks on the raw bytes run before h11 sees them: 414, 431, 505, 501,
413, bare CR/LF and control bytes, obs-fold, Content-Length with Transfer-Encoding, and the
chunk-size lines. h11 is given exactly one request at a time, so pipelined bytes wait here.
"""

from __future__ import annotations

import contextlib
import re
from http import HTTPStatus
from typing import Unpack

import h11

from tricorn.errors import LocalProtocolError
from tricorn.protocols.events import (
    Body,
    ConnectionClosed,
    EndBody,
    Event,
    H2CPrefaceReceived,
    Headers,
    InformationalResponse,
    ProtocolError,
    Request,
    Response,
    UpgradeRequested,
)

# Shared with our own parser: the same limits, grammar and states, one definition.
from tricorn.protocols.http11 import (
    _BAD_HEAD_BYTE_RE,
    _CHUNK_DATA,
    _CHUNK_END,
    _CHUNK_LINE_RE,
    _CHUNK_SIZE,
    _CLOSED,
    _DONE,
    _HEAD,
    _HEAD_ALLOWED,
    _HEX_DIGITS,
    _LENGTH_BODY,
    _MAX_CHUNK_LINE,
    _MAX_CHUNK_SIZE_DIGITS,
    _MAX_LENGTH_DIGITS,
    _R_BODY,
    _R_DONE,
    _R_NONE,
    _REQUEST_LINE_RE,
    _SWITCHED,
    _TOKEN_RE,
    _TRAILERS,
    _UPGRADE,
    H2C_PREFACE,
    HTTP11Base,
    HTTP11Limits,
    _check_authority_form,
    _comma_tokens,
    _PeerError,
)

__all__ = ["H11Protocol"]

_MAX_SIZE = 2**63 - 1

# The header fields that decide the framing, found in a raw head without splitting it.
_FRAMING_FIELD_RE = re.compile(rb"\r\n(host|content-length|transfer-encoding):([^\r]*)", re.I)
# Content-Length fields, for handing h11 the one decimal value (it compares them as text).
_CONTENT_LENGTH_FIELD_RE = re.compile(rb"(\r\ncontent-length:)[^\r]*", re.I)
# What h11 accepts as a field value once the surrounding OWS is stripped.
_H11_FIELD_VALUE_RE = re.compile(rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?")


_REASONS = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}


def _content_length_value(value: bytes) -> int:
    """One Content-Length value: 1*DIGIT, leading zeros allowed (``08`` is 8)."""
    if not value.isdigit():
        raise _PeerError(400, f"invalid Content-Length {value[:40]!r}")
    if len(value) > _MAX_LENGTH_DIGITS:  # h11 allows 20 digits; we stop before 2**63-1
        raise _PeerError(400, f"Content-Length has more than {_MAX_LENGTH_DIGITS} digits")
    length = int(value)
    if length > _MAX_SIZE:
        raise _PeerError(400, "Content-Length larger than 2**63-1")
    return length


def _parse_content_length(value: bytes) -> int:
    """Content-Length: 1*DIGIT; a list of equal values (``5, 5`` or ``5, 05``) is one value."""
    if value.isdigit():
        return _content_length_value(value)
    lengths = {_content_length_value(item.strip(b" \t")) for item in value.split(b",")}
    if len(lengths) != 1:
        raise _PeerError(400, "conflicting Content-Length values")
    return lengths.pop()


def _early_chunk_size_check(line: bytes) -> None:
    """Reject an absurd chunk-size line before it is complete (slow drip of hex digits)."""
    if len(line) - len(line.lstrip(_HEX_DIGITS)) > _MAX_CHUNK_SIZE_DIGITS:
        raise _PeerError(400, "chunk size has more than 16 hex digits")
    if len(line) > _MAX_CHUNK_LINE:
        raise _PeerError(400, "chunk-size line too long")


def _checked_headers(headers: Headers, stream_id: int) -> Headers:
    """Response headers as h11 will take them; raise ``LocalProtocolError`` for what it won't.

    h11 refuses values with leading or trailing whitespace, which carry no meaning (RFC 9110
    5.5), so those are stripped; checking here keeps h11's state machine out of ERROR.
    """
    checked: Headers = []
    for name, value in headers:
        if _TOKEN_RE.fullmatch(name) is None:
            raise LocalProtocolError(
                f"stream {stream_id}: Response has invalid header name {name!r}"
            )
        stripped = value.strip(b" \t")
        if _H11_FIELD_VALUE_RE.fullmatch(stripped) is None:
            raise LocalProtocolError(
                f"stream {stream_id}: a response header value contains CR, LF, NUL or"
                f" another control whitespace byte: {value[:40]!r}"
            )
        checked.append((name, stripped))
    return checked


class H11Protocol(HTTP11Base):
    """One HTTP/1.1 server connection on h11, without I/O; a drop-in for ``HTTP11Protocol``.

    Feed bytes with :meth:`receive_data`; it returns events. Answer each request with
    :meth:`send` (``InformationalResponse``*, ``Response``, ``Body``*, ``EndBody``) and write
    :meth:`data_to_send`. After a complete request the protocol is :attr:`paused` until the
    response to it has ended; then :meth:`next_events` parses requests already buffered
    (pipelining). When :attr:`should_close` is true, write what is left and close.

    Differences from ``HTTP11Protocol``: HTTP/1.0 keep-alive is not offered (h11 closes every
    HTTP/1.0 connection after its response), and response header names h11 adds are
    title-cased.
    """

    __slots__ = ("_connection", "_no_body")

    def __init__(self, **limits: Unpack[HTTP11Limits]) -> None:
        super().__init__(**limits)
        # h11 only ever holds one checked head or trailer section: its own limit never trips.
        self._connection = h11.Connection(
            h11.SERVER, max_incomplete_event_size=max(self._max_head, 16384) + 4
        )
        self._no_body = False
        self._response_remaining = -1  # content-length bytes still to send; -1: no length

    # --- state --------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        """True while a complete request (or an undecided upgrade) waits for the server."""
        return self._state in (_DONE, _UPGRADE)

    @property
    def should_close(self) -> bool:
        """True when the server must write what :meth:`data_to_send` holds and then close."""
        return self._state == _CLOSED

    # --- receiving ------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes read from the socket; ``b""`` means the peer closed its side.

        Never raises on bad input: a ``ProtocolError`` (answer already queued) and
        ``ConnectionClosed`` are returned instead. While :attr:`paused` the bytes are only
        buffered and ``[]`` is returned, except that an EOF returns ``[ConnectionClosed()]``.
        """
        if not data:
            return self._receive_eof()
        state = self._state
        if state >= _DONE:
            if state < _CLOSED:
                self._buffer += data
            return []
        self._buffer += data
        return self._process()

    def next_events(self) -> list[Event]:
        """After a response has ended, parse what was buffered meanwhile (pipelining)."""
        if self._state == _HEAD and self._buffer:
            return self._process()
        return []

    def _process(self) -> list[Event]:
        events: list[Event] = []
        try:
            while True:
                state = self._state
                if state == _HEAD:
                    if not self._read_head(events):
                        break
                elif state == _LENGTH_BODY:
                    self._read_length_body(events)
                    break
                elif state < _DONE:
                    if not self._read_chunked(events):
                        break
                else:
                    break
        except _PeerError as error:
            self._fail(error, events)
        return events

    def _feed(self, data: bytes, events: list[Event]) -> None:
        """Give h11 checked bytes of the current request body; collect what it parses."""
        connection = self._connection
        if data:  # b"" would tell h11 the peer closed
            connection.receive_data(data)
        while True:
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError as error:
                raise _PeerError(error.error_status_hint, str(error)) from None
            if isinstance(event, h11.Data):
                events.append(Body(self._stream_id, bytes(event.data)))
            elif isinstance(event, h11.EndOfMessage):
                self._state = _DONE
                events.append(EndBody(self._stream_id))
                return
            else:
                return  # NEED_DATA

    # --- request heads --------------------------------------------------------------------

    def _read_head(self, events: list[Event]) -> bool:
        """Parse one request head if it is complete; return True when one was parsed."""
        buffer = self._buffer
        if buffer.startswith(b"\r\n"):
            # RFC 9112 2.2: ignore empty lines before a request line (h11 answers 400).
            position = 2
            while buffer.startswith(b"\r\n", position):
                position += 2
            buffer = self._buffer = buffer[position:]
            if not buffer:
                return False
        if self._check_preface:
            start = buffer[: len(H2C_PREFACE)]
            if len(start) < len(H2C_PREFACE) and H2C_PREFACE.startswith(start):
                return False
            self._check_preface = False
            if start == H2C_PREFACE:
                self._state = _SWITCHED
                self._buffer = b""
                events.append(H2CPrefaceReceived(buffer))
                return False
        end = buffer.find(b"\r\n\r\n", self._scanned)
        if end < 0:
            self._check_partial_head(buffer)
            self._scanned = max(0, len(buffer) - 3)
            return False
        self._scanned = 0
        self._line_checked = False
        self._buffer = buffer[end + 4 :]
        self._start_request(buffer[:end], buffer[: end + 4], events)
        return True

    def _check_partial_head(self, buffer: bytes) -> None:
        """Answer 414/431/400/505 before a hostile head is complete (h11 would wait for 16 KiB)."""
        size = len(buffer)
        if not self._line_checked:
            line_end = buffer.find(b"\r\n", 0, self._max_line + 2)
            if line_end < 0:
                if size > self._max_line + 1:
                    raise _PeerError(414, f"request line longer than {self._max_line} bytes")
            else:
                self._parse_request_line(buffer[:line_end])
                self._line_checked = True
        if size > self._max_head:
            raise _PeerError(431, f"request head larger than {self._max_head} bytes")
        bad = _BAD_HEAD_BYTE_RE.search(buffer, max(self._scanned - 1, 0))
        if bad is not None and not (bad.start() == size - 1 and buffer[-1] == 13):
            raise _PeerError(400, "invalid byte (control, bare CR or LF) in the request head")

    def _parse_request_line(self, line: bytes) -> tuple[bytes, bytes, bool]:
        """Return (method, target, is HTTP/1.0); h11 would take HTTP/2.0 and refuse HTTP/0.9."""
        if len(line) > self._max_line:
            raise _PeerError(414, f"request line longer than {self._max_line} bytes")
        match = _REQUEST_LINE_RE.fullmatch(line)
        if match is None:
            raise _PeerError(400, f"malformed request line {line[:100]!r}")
        method, target, major, minor = match.groups()
        if major != b"1":
            version = "0.9" if major is None else f"{major.decode()}.{minor.decode()}"
            raise _PeerError(505, f"HTTP version {version} not supported")
        if method == b"CONNECT":  # h11 takes any target
            _check_authority_form(target)
        return method, target, minor == b"0"

    def _check_head(self, head: bytes) -> tuple[bytes, bytes, bool, int | None, bool | None, bool]:
        """The checks h11 lacks, in tricorn's order, up to those needing a parsed head.

        Returns (method, target, is HTTP/1.0, content length, chunked, respell); chunked is None
        without Transfer-Encoding and False for codings other than one ``chunked``. The caller
        raises those verdicts (501, chunked twice) only once h11 accepted the lines, as a
        malformed line is answered 400 first. ``respell`` is True when a Content-Length field
        is not written as the plain decimal (``08``, ``5, 5``, ``8`` beside ``08``): h11 would
        compare the spellings as text, so it is handed the one value instead.
        """
        line_ends = head.count(b"\r\n")
        if (
            head.translate(None, _HEAD_ALLOWED)
            or head.count(b"\r") != line_ends
            or head.count(b"\n") != line_ends
        ):
            raise _PeerError(400, "invalid byte (control, bare CR or LF) in the request head")
        line_end = head.find(b"\r\n")
        method, target, http10 = self._parse_request_line(head if line_end < 0 else head[:line_end])
        if len(head) + 4 > self._max_head:
            raise _PeerError(431, f"request head larger than {self._max_head} bytes")
        if line_ends > self._max_headers:
            raise _PeerError(431, f"more than {self._max_headers} header fields")
        if b"\r\n " in head or b"\r\n\t" in head:
            # RFC 9112 5.2 allows rejecting obs-fold; h11 would unfold it.
            raise _PeerError(400, "obsolete line folding (obs-fold) in the request head")
        hosts = 0
        content_length: int | None = None
        respell = False
        codings: list[bytes] | None = None
        for match in _FRAMING_FIELD_RE.finditer(head):
            name = match.group(1).lower()
            value = match.group(2).strip(b" \t")
            if name == b"host":
                hosts += 1
            elif name == b"content-length":
                length = _parse_content_length(value)
                if content_length is not None and content_length != length:
                    raise _PeerError(400, "conflicting Content-Length values")
                content_length = length
                respell = respell or value != b"%d" % length
            else:
                codings = [*(codings or ()), *_comma_tokens(value)]
        if hosts != 1 and (hosts or not http10):
            raise _PeerError(400, "missing Host header" if not hosts else "more than one Host")
        if codings is None:
            return method, target, http10, content_length, None, respell
        if http10:
            raise _PeerError(400, "Transfer-Encoding in an HTTP/1.0 request")
        if content_length is not None:
            # RFC 9112 6.3: a smuggling shape; h11 would let chunked override the length.
            raise _PeerError(400, "both Content-Length and Transfer-Encoding")
        return method, target, http10, None, codings == [b"chunked"], False

    def _start_request(self, head: bytes, message: bytes, events: list[Event]) -> None:
        method, target, http10, content_length, chunked, respell = self._check_head(head)
        if respell and content_length is not None:
            # RFC 9110 8.6: "08" is 8, and "8" beside "08" is one length; h11 compares text.
            decimal = b" %d" % content_length
            message = _CONTENT_LENGTH_FIELD_RE.sub(lambda field: field.group(1) + decimal, message)
        connection = self._connection
        connection.receive_data(message)
        try:
            parsed = connection.next_event()
        except h11.RemoteProtocolError as error:
            if error.error_status_hint == 501:  # Transfer-Encoding: tricorn's verdict wins
                self._raise_coding_error(head)
            raise _PeerError(error.error_status_hint, str(error)) from None
        if not isinstance(parsed, h11.Request):  # unreachable: h11 was given a whole head
            raise _PeerError(400, "h11 did not parse the request head")
        # From here h11 frames any answer, an error's too, as the answer to this method.
        self._head_request = method == b"HEAD"
        if chunked is False:  # unreachable: h11 refuses these codings with 501 (above)
            self._raise_coding_error(head)
        limit = self._body_limit
        if limit and content_length is not None and content_length > limit:
            raise _PeerError(413, f"Content-Length {content_length} over the limit {limit}")

        headers: Headers = []
        close_token = upgrade_token = expect_continue = False
        upgrade: bytes | None = None
        http2_settings = 0
        for raw_name, raw_value in parsed.headers.raw_items():
            name = bytes(raw_name.lower())
            value = bytes(raw_value)
            headers.append((name, value))
            if name == b"connection":
                tokens = _comma_tokens(value)
                close_token = close_token or b"close" in tokens
                upgrade_token = upgrade_token or b"upgrade" in tokens
            elif name == b"expect":
                # RFC 9110 10.1.1: a case-insensitive list; other expectations are ignored.
                expect_continue = expect_continue or b"100-continue" in _comma_tokens(value)
            elif name == b"upgrade":
                upgrade = value
            elif name == b"http2-settings":
                http2_settings += 1

        self._stream_id += 1
        stream_id = self._stream_id
        self._http10 = http10
        self._connect = method == b"CONNECT"
        # h11 offers no keep-alive to HTTP/1.0 clients, Connection: keep-alive or not.
        self._keep_alive = not (
            close_token or http10 or self._close_requested or self._close_reported
        )
        self._response_state = _R_NONE
        self._body_received = 0
        expects_body = bool(chunked or content_length)
        expect_continue = expect_continue and expects_body and not http10
        self._expect_continue = expect_continue
        request = Request(
            stream_id,
            method,
            target,
            headers,
            "1.0" if http10 else "1.1",
            expects_body=expects_body,
            expect_continue=expect_continue,
        )
        if upgrade is not None and upgrade_token and not expects_body and not http10:
            protocol = self._choose_upgrade(upgrade, http2_settings)
            if protocol:
                connection.next_event()  # the empty body: h11 now waits for our decision
                self._request = request
                self._upgrade = protocol
                self._state = _UPGRADE
                self._response_state = _R_DONE
                events.append(UpgradeRequested(stream_id, protocol, request, self._buffer))
                return
        events.append(request)
        if chunked:
            self._state = _CHUNK_SIZE
        elif content_length:
            self._state = _LENGTH_BODY
            self._remaining = content_length
        else:
            self._feed(b"", events)  # h11 yields the end of the empty body

    @staticmethod
    def _raise_coding_error(head: bytes) -> None:
        """Answer a Transfer-Encoding other than one ``chunked`` as tricorn does (501 or 400)."""
        codings: list[bytes] = []
        for match in _FRAMING_FIELD_RE.finditer(head):
            if match.group(1).lower() == b"transfer-encoding":
                codings += _comma_tokens(match.group(2))
        unknown = [coding for coding in codings if coding != b"chunked"]
        if unknown:
            raise _PeerError(501, f"unsupported Transfer-Encoding {unknown[0][:40]!r}")
        raise _PeerError(400, "chunked applied more than once")

    # --- request bodies -------------------------------------------------------------------

    def _read_length_body(self, events: list[Event]) -> None:
        buffer = self._buffer
        if not buffer:
            return
        remaining = self._remaining
        if len(buffer) <= remaining:
            data, self._buffer = buffer, b""
        else:
            data, self._buffer = buffer[:remaining], buffer[remaining:]
        self._remaining = remaining - len(data)
        self._feed(data, events)

    def _read_chunked(self, events: list[Event]) -> bool:
        """Check one step of the chunked framing, then give h11 those bytes; True if progressed.

        h11 decodes the body; this scan finds where it ends (so that h11 never sees the next
        request) and applies the limits h11 lacks: 16 hex digits, 2**63-1, the body limit,
        RFC 9112's BWS in chunk extensions, and the trailer section's size.
        """
        state = self._state
        buffer = self._buffer
        if state == _CHUNK_DATA:
            if not buffer:
                return False
            take = min(len(buffer), self._remaining)
            data, self._buffer = buffer[:take], buffer[take:]
            self._remaining -= take
            if not self._remaining:
                self._state = _CHUNK_END
            self._feed(data, events)
            return True
        if state == _CHUNK_END:
            ending = buffer[:2]
            if ending == b"\r\n":
                self._buffer = buffer[2:]
                self._state = _CHUNK_SIZE
                self._feed(ending, events)
                return True
            if ending and ending != b"\r":
                raise _PeerError(400, "chunk data not followed by CRLF")
            return False
        line_end = buffer.find(b"\r\n")
        if state == _CHUNK_SIZE:
            if line_end < 0:
                _early_chunk_size_check(buffer)
                return False
            size = self._chunk_size(buffer[:line_end])
            self._buffer = buffer[line_end + 2 :]
            if size:
                self._remaining = size
                self._state = _CHUNK_DATA
            else:
                self._trailer_size = 0
                self._trailer_lines = 0
                self._state = _TRAILERS
            # The line was checked above; h11 gets it without the extensions it would refuse.
            self._feed(b"%x\r\n" % size, events)
            return True
        # _TRAILERS: field lines are checked here and dropped (ASGI has no request trailers);
        # h11 gets only the end of the section, as it would refuse a trailer field named
        # Content-Length or Transfer-Encoding that cannot change the framing any more.
        if line_end < 0:
            if len(buffer) + self._trailer_size > self._max_head:
                raise _PeerError(431, "trailer section too large")
            return False
        line = buffer[:line_end]
        self._buffer = buffer[line_end + 2 :]
        if line:
            self._trailer_size += len(line) + 2
            self._trailer_lines += 1
            if self._trailer_size > self._max_head or self._trailer_lines > self._max_headers:
                raise _PeerError(431, "trailer section too large")
            name, colon, _ = line.partition(b":")
            if not colon or _TOKEN_RE.fullmatch(name) is None or _BAD_HEAD_BYTE_RE.search(line):
                raise _PeerError(400, f"malformed trailer field {line[:100]!r}")
            return True
        self._feed(b"\r\n", events)
        return True

    def _chunk_size(self, line: bytes) -> int:
        match = _CHUNK_LINE_RE.fullmatch(line)
        if match is None:
            _early_chunk_size_check(line)
            raise _PeerError(400, f"malformed chunk-size line {line[:60]!r}")
        digits = match.group(1)
        if len(digits) > _MAX_CHUNK_SIZE_DIGITS:
            raise _PeerError(400, "chunk size has more than 16 hex digits")
        size = int(digits, 16)
        if size > _MAX_SIZE:
            raise _PeerError(400, "chunk size larger than 2**63-1")
        limit = self._body_limit
        if limit and self._body_received + size > limit:
            raise _PeerError(413, f"request body over the limit {limit}")
        self._body_received += size
        return size

    # --- errors ---------------------------------------------------------------------------

    def _fail(self, error: _PeerError, events: list[Event]) -> None:
        """Queue the answer to a peer's protocol error and stop the connection."""
        in_request = _HEAD < self._state < _DONE
        status: int | None = None
        if self._response_state != _R_BODY:
            status = error.status
            self._queue_error_response(status)
        self._response_state = _R_DONE
        self._errored = True
        self._enter_closed()
        events.append(ProtocolError(self._stream_id if in_request else None, error.message, status))
        if not self._close_reported:
            self._close_reported = True
            events.append(ConnectionClosed(reason=error.message))

    def _queue_error_response(self, status: int) -> None:
        """A short ``text/plain`` answer with ``connection: close``, framed by h11."""
        body = _REASONS[status]
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"%d" % len(body)),
            (b"connection", b"close"),
        ]
        connection = self._connection
        # h11 lets a server answer from IDLE or SEND_RESPONSE, even after a peer's error, and
        # only those states reach here; were h11 to refuse, the connection closes unanswered.
        with contextlib.suppress(h11.LocalProtocolError):
            out = [connection.send(h11.Response(status_code=status, headers=headers, reason=body))]
            if not self._head_request:  # RFC 9110 9.3.2: no content in answer to HEAD
                out.append(connection.send(h11.Data(data=body)))
            out.append(connection.send(h11.EndOfMessage()))
            self._out += out

    # --- control from the server ----------------------------------------------------------

    def continue_request(self, stream_id: int) -> None:
        """Send ``100 Continue`` if that request asked for it and nothing final was sent yet."""
        if (
            self._expect_continue
            and stream_id == self._stream_id
            and self._response_state == _R_NONE
            and _HEAD < self._state < _DONE
        ):
            self._expect_continue = False
            self._out.append(
                self._connection.send(
                    h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")
                )
            )

    def close_after_response(self) -> None:
        """Graceful shutdown: the current or next response gets ``connection: close``."""
        self._close_requested = True
        self._keep_alive = False
        if self._state == _HEAD and not self._buffer:
            self._enter_closed()

    def request_timeout(self) -> None:
        """The request did not arrive in time: close, answering ``408`` if one is partial."""
        if self._state >= _CLOSED:
            return
        partial = self.has_partial_head or (
            _HEAD < self._state < _DONE and self._response_state == _R_NONE
        )
        if partial:
            self._queue_error_response(408)
            self._response_state = _R_DONE
            self._errored = True
        self._enter_closed()

    def decline_upgrade(self) -> list[Event]:
        """Serve the pending upgrade request as plain HTTP/1.1: returns its Request + EndBody."""
        request = self._request
        if self._state != _UPGRADE or request is None:
            raise LocalProtocolError("decline_upgrade: no upgrade is pending")
        self._request = None
        self._state = _DONE
        self._response_state = _R_NONE
        return [request, EndBody(request.stream_id)]

    def accept_upgrade(self, headers: Headers) -> bytes:
        """Switch protocols: queue ``101 Switching Protocols`` and hand over the connection.

        ``connection: upgrade`` and ``upgrade: <protocol>`` are added when absent. Returns the
        bytes received after the request head. Raises ``LocalProtocolError`` when no upgrade
        is pending.
        """
        if self._state != _UPGRADE:
            raise LocalProtocolError("accept_upgrade: no upgrade is pending")
        names = {name.lower() for name, _ in headers}
        extra: Headers = []
        if b"connection" not in names:
            extra.append((b"connection", b"upgrade"))
        if b"upgrade" not in names:
            extra.append((b"upgrade", self._upgrade))
        checked = _checked_headers([*headers, *extra], self._stream_id)
        self._out.append(
            self._connection.send(
                h11.InformationalResponse(
                    status_code=101, headers=checked, reason=b"Switching Protocols"
                )
            )
        )
        self._state = _SWITCHED
        self._response_state = _R_DONE
        self._request = None
        data, self._buffer = self._buffer, b""
        return data

    # --- sending --------------------------------------------------------------------------

    def send(self, event: Event) -> None:
        """Queue a response event for the current request.

        Accepts ``InformationalResponse`` (1xx other than 101), ``Response``, ``Body`` and
        ``EndBody``. Raises ``LocalProtocolError`` on misuse, before h11 sees the event (so
        that h11 never enters its ERROR state). After a protocol error of the peer, events
        for the failed stream are dropped silently.
        """
        if isinstance(event, Body):
            if event.stream_id == self._stream_id and self._response_state == _R_BODY:
                self._send_body(event.data)
                return
        elif isinstance(event, EndBody):
            if event.stream_id == self._stream_id and self._response_state == _R_BODY:
                self._end_response()
                return
        elif isinstance(event, Response):
            if event.stream_id == self._stream_id and self._response_state == _R_NONE:
                self._start_response(event)
                return
        elif (
            isinstance(event, InformationalResponse)
            and event.stream_id == self._stream_id
            and self._response_state == _R_NONE
        ):
            self._send_informational(event)
            return
        self._misuse(event)

    def _send_informational(self, event: InformationalResponse) -> None:
        status = event.status
        if not 100 <= status < 200 or status == 101:
            raise LocalProtocolError(
                f"stream {event.stream_id}: InformationalResponse status {status} is not 1xx"
                " (101 is sent by accept_upgrade)"
            )
        if self._http10:
            return  # RFC 9110 15.2: no 1xx responses to an HTTP/1.0 client
        if status == 100:
            if not self._expect_continue:
                return
            self._expect_continue = False
        headers = _checked_headers(event.headers, event.stream_id)
        informational = h11.InformationalResponse(
            status_code=status, headers=headers, reason=_REASONS.get(status, b"")
        )
        self._out.append(self._connection.send(informational))

    def _start_response(self, event: Response) -> None:
        status = event.status
        stream_id = event.stream_id
        if not 200 <= status <= 999:
            raise LocalProtocolError(
                f"stream {stream_id}: Response status {status} is not a final status"
            )
        headers: Headers = []
        content_length: int | None = None
        chunked = False
        app_close = False
        # RFC 9112 6.3: after a 2xx to CONNECT the connection is a tunnel, which tricorn does
        # not offer. h11 takes that response as a protocol switch (no body, nothing more
        # parsed); as in HTTP11Protocol the head goes without framing fields (RFC 9110 9.3.6)
        # and with connection: close, the body is dropped and the connection closes.
        tunnel = self._connect and status < 300
        for name, value in _checked_headers(event.headers, stream_id):
            lower = name.lower()
            if tunnel and lower in (b"content-length", b"transfer-encoding"):
                continue
            if lower == b"content-length":
                if not value.isdigit() or (
                    content_length is not None and int(value) != content_length
                ):
                    raise LocalProtocolError(
                        f"stream {stream_id}: Response has invalid content-length {value!r}"
                    )
                content_length = int(value)
            elif lower == b"transfer-encoding":
                if value.lower() != b"chunked":
                    raise LocalProtocolError(
                        f"stream {stream_id}: Response transfer-encoding {value!r}"
                        " is not supported (only chunked)"
                    )
                if chunked:
                    continue  # h11 refuses a repeated Transfer-Encoding
                chunked = True
            elif lower == b"connection" and b"close" in _comma_tokens(value):
                app_close = True
            headers.append((name, value))
        if content_length is not None and chunked:
            raise LocalProtocolError(
                f"stream {stream_id}: Response has both content-length and transfer-encoding"
            )

        keep_alive = self._keep_alive and not app_close and not tunnel
        if self._expect_continue and self._state < _DONE:
            # The client still holds back the body it announced; don't wait for it.
            keep_alive = False
            self._expect_continue = False
        no_body = tunnel or self._head_request or status in (204, 304)
        if not keep_alive and not app_close:
            headers.append((b"connection", b"close"))  # h11 then closes after this response
        try:
            response = h11.Response(
                status_code=status, headers=headers, reason=_REASONS.get(status, b"")
            )
        except h11.LocalProtocolError as error:  # e.g. a content-length of over 20 digits
            message = f"stream {stream_id}: h11 refused the Response: {error}"
            raise LocalProtocolError(message) from None
        self._out.append(self._connection.send(response))
        self._keep_alive = keep_alive
        self._no_body = no_body
        self._response_remaining = -1 if no_body or content_length is None else content_length
        self._response_state = _R_BODY

    def _send_body(self, data: bytes) -> None:
        if self._no_body or not data:
            return  # HEAD, 204 and 304 carry no body: h11 would refuse it
        remaining = self._response_remaining
        if remaining >= 0:
            if len(data) > remaining:
                self._keep_alive = False
                raise LocalProtocolError(
                    f"stream {self._stream_id}: Body exceeds the response's content-length"
                )
            self._response_remaining = remaining - len(data)
        # Passthrough: h11 returns the caller's bytes object instead of a joined copy.
        self._out += self._connection.send_with_data_passthrough(h11.Data(data=data)) or ()

    def _end_response(self) -> None:
        self._response_state = _R_DONE
        if self._response_remaining > 0:
            self._enter_closed()
            raise LocalProtocolError(
                f"stream {self._stream_id}: EndBody with {self._response_remaining} bytes"
                " of the response's content-length unsent"
            )
        connection = self._connection
        if connection.our_state is h11.SWITCHED_PROTOCOL:  # a 2xx to CONNECT: no tunnel
            self._enter_closed()
            return
        self._out.append(connection.send(h11.EndOfMessage()))
        if (
            self._keep_alive
            and self._state == _DONE
            and connection.our_state is h11.DONE
            and connection.their_state is h11.DONE
        ):
            connection.start_next_cycle()
            self._state = _HEAD
            self._head_request = False
        elif self._state != _CLOSED:
            self._enter_closed()
