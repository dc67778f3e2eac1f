"""HTTP/1.1 server protocol, sans-IO: request bytes in -> events out, response events in -> bytes.

The request parser is our own strict RFC 9112 reader (h11's per-request cost is several times
the whole budget of this hot path); the rules it enforces are the ones h11 enforces, plus the
limits and statuses tricorn promises (414, 431, 413, 501, 505). Every connection-level error
is answered with a short ``text/plain`` response carrying ``connection: close``.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import TypedDict, Unpack

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

__all__ = ["H2C_PREFACE", "HTTP11Protocol"]

#: The HTTP/2 connection preface (RFC 9113 3.4), sent first by prior-knowledge h2c clients.
H2C_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# RFC 9112 7.1: a chunk-size of more than 16 hex digits cannot be a sane 64-bit size.
_MAX_CHUNK_SIZE_DIGITS = 16
_MAX_CHUNK_SIZE = 2**63 - 1
# Longest chunk-size line (size plus extensions) we wait for before answering 400.
_MAX_CHUNK_LINE = 4096
# Header names seen so far, raw -> lower-case; bounded so hostile names cannot grow it.
_NAME_CACHE_LIMIT = 1024

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TOKEN_RE = re.compile(_TOKEN)
_REQUEST_LINE_RE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+)(?: HTTP/([0-9])\.([0-9]))?")
# Control characters other than HTAB, and CR or LF that are not part of a CRLF pair.
_BAD_HEAD_BYTE_RE = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)|(?<!\r)\n")
# Bytes allowed in a request head besides CR and LF pairs: HTAB, SP, VCHAR, obs-text.
_HEAD_ALLOWED = bytes(byte for byte in range(256) if byte in (9, 10, 13) or 32 <= byte != 127)
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_CHUNK_LINE_RE = re.compile(
    rb"([0-9A-Fa-f]+)(?:[ \t]*;[ \t]*"
    + _TOKEN
    + rb"(?:[ \t]*=[ \t]*(?:"
    + _TOKEN
    + rb"|"
    + _QUOTED
    + rb"))?)*"
)
_HEX_DIGITS = b"0123456789abcdefABCDEF"
# RFC 9112 3.2.3 authority-form (uri-host ":" port), the only target CONNECT may carry; the
# host is an IP-literal or a non-empty reg-name (which includes IPv4 addresses).
_AUTHORITY_RE = re.compile(
    rb"(?:\[(?:[0-9A-Fa-f:.]+|[vV][0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+)\]"
    rb"|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})+):([0-9]{1,5})"
)
# RFC 9110 8.6: Content-Length is 1*DIGIT; more digits than 2**63-1 has are refused unparsed.
_MAX_LENGTH_DIGITS = 19

# Receiving states.
_HEAD = 0  # waiting for (the rest of) a request head
_LENGTH_BODY = 1  # reading a Content-Length body
_CHUNK_SIZE = 2  # waiting for a chunk-size line
_CHUNK_DATA = 3  # reading chunk data
_CHUNK_END = 4  # waiting for the CRLF after chunk data
_TRAILERS = 5  # reading the trailer section of a chunked body
_DONE = 6  # request complete; paused until its response has been sent
_UPGRADE = 7  # upgrade request seen; paused until accept_upgrade/decline_upgrade
_CLOSED = 8  # nothing more is read or produced; close once data_to_send is written
_SWITCHED = 9  # the connection now belongs to another protocol

# Response states for the current request.
_R_NONE = 0  # no response started
_R_BODY = 1  # head sent, body in progress
_R_DONE = 2  # response complete (or the connection failed)

# Response framing.
_F_NONE = 0  # no body allowed (HEAD, 1xx, 204, 304): body bytes are dropped
_F_LENGTH = 1
_F_CHUNKED = 2
_F_CLOSE = 3  # delimited by closing the connection (HTTP/1.0 without a length)

_REQUEST_SPECIAL = frozenset(
    (
        b"content-length",
        b"transfer-encoding",
        b"host",
        b"connection",
        b"expect",
        b"upgrade",
        b"http2-settings",
    )
)
_RESPONSE_SPECIAL = frozenset((b"content-length", b"transfer-encoding", b"connection"))


def _status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase.encode("ascii"))


_STATUS_LINES = {status: _status_line(status) for status in range(100, 600)}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CHUNKED_HEADER = b"transfer-encoding: chunked\r\n"
_CLOSE_HEADER = b"connection: close\r\n"
_KEEP_ALIVE_HEADER = b"connection: keep-alive\r\n"
_LAST_CHUNK = b"0\r\n\r\n"

_REQUEST_NAMES: dict[bytes, bytes] = {}
_RESPONSE_NAMES: dict[bytes, bytes] = {}


def _error_response(status: int, head_request: bool = False) -> bytes:
    """A short plain-text error response; without its body when answering HEAD."""
    body = HTTPStatus(status).phrase.encode("ascii")
    return b"%scontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n%s\r\n%s" % (
        _STATUS_LINES[status],
        len(body),
        _CLOSE_HEADER,
        b"" if head_request else body,
    )


class _PeerError(Exception):
    """The peer broke HTTP/1.1; ``status`` is what we answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _request_header_name(name: bytes) -> bytes:
    """Validate a request header name that is not cached yet; return it lower-cased."""
    if not name:
        raise _PeerError(400, "empty header name")
    if name[-1:] in (b" ", b"\t"):
        raise _PeerError(400, "whitespace between header name and colon")
    if name[:1] in (b" ", b"\t"):
        raise _PeerError(400, "obsolete line folding (obs-fold) in the request head")
    if _TOKEN_RE.fullmatch(name) is None:
        raise _PeerError(400, f"invalid header name {name!r}")
    lower = name.lower()
    if len(_REQUEST_NAMES) < _NAME_CACHE_LIMIT:
        _REQUEST_NAMES[name] = lower
    return lower


def _response_header_name(name: bytes, stream_id: int) -> bytes:
    if _TOKEN_RE.fullmatch(name) is None:
        raise LocalProtocolError(f"stream {stream_id}: Response has invalid header name {name!r}")
    lower = name.lower()
    if len(_RESPONSE_NAMES) < _NAME_CACHE_LIMIT:
        _RESPONSE_NAMES[name] = lower
    return lower


def _content_length_value(value: bytes) -> int:
    """One Content-Length value: 1*DIGIT, leading zeros allowed (``08`` is 8)."""
    if not value.isdigit():
        raise _PeerError(400, f"invalid Content-Length {value[:40]!r}")
    if len(value) > _MAX_LENGTH_DIGITS:  # never int() a digit string of hostile length
        raise _PeerError(400, f"Content-Length has more than {_MAX_LENGTH_DIGITS} digits")
    length = int(value)
    if length > _MAX_CHUNK_SIZE:
        raise _PeerError(400, "Content-Length larger than 2**63-1")
    return length


def _parse_content_length(value: bytes) -> int:
    """Content-Length: 1*DIGIT; a list of equal values (``5, 5`` or ``5, 05``) is one value."""
    if value.isdigit():
        if len(value) <= _MAX_LENGTH_DIGITS and int(value) <= _MAX_CHUNK_SIZE:
            return int(value)  # the common case, without a call
        return _content_length_value(value)
    lengths = {_content_length_value(item.strip(b" \t")) for item in value.split(b",")}
    if len(lengths) != 1:
        raise _PeerError(400, "conflicting Content-Length values")
    return lengths.pop()


def _check_authority_form(target: bytes) -> None:
    """RFC 9110 9.3.6: a CONNECT target is host:port; an empty or invalid port is 400."""
    match = _AUTHORITY_RE.fullmatch(target)
    if match is None:
        raise _PeerError(400, f"CONNECT target is not host:port {target[:100]!r}")
    if not 0 < int(match.group(1)) <= 65535:
        raise _PeerError(400, f"CONNECT target has an invalid port {target[:100]!r}")


def _comma_tokens(value: bytes) -> list[bytes]:
    return [item.strip(b" \t") for item in value.lower().split(b",")]


def _early_chunk_size_check(line: bytes) -> None:
    """Reject an absurd chunk size before its line is complete (slow drip of hex digits)."""
    if len(line) - len(line.lstrip(_HEX_DIGITS)) > _MAX_CHUNK_SIZE_DIGITS:
        raise _PeerError(400, "chunk size has more than 16 hex digits")
    if len(line) > _MAX_CHUNK_LINE:
        raise _PeerError(400, "chunk-size line too long")


class HTTP11Limits(TypedDict, total=False):
    """The keyword arguments of both HTTP/1.1 protocols (defaults in ``HTTP11Base``)."""

    max_request_line_size: int
    max_head_size: int
    max_headers: int
    max_request_body_size: int
    h2c_preface: bool


class HTTP11Base:
    """The limits, connection state and output both HTTP/1.1 protocols keep alike.

    ``HTTP11Protocol`` (our parser) and ``H11Protocol`` (on h11) differ in how they parse
    requests and frame responses; what is here reads their shared state the same way.
    """

    __slots__ = (
        "_body_limit",
        "_body_received",
        "_buffer",
        "_check_preface",
        "_close_reported",
        "_close_requested",
        "_connect",
        "_errored",
        "_expect_continue",
        "_head_request",
        "_http10",
        "_keep_alive",
        "_line_checked",
        "_max_head",
        "_max_headers",
        "_max_line",
        "_out",
        "_remaining",
        "_request",
        "_response_remaining",
        "_response_state",
        "_scanned",
        "_state",
        "_stream_id",
        "_trailer_lines",
        "_trailer_size",
        "_upgrade",
    )

    def __init__(
        self,
        *,
        max_request_line_size: int = 8192,
        max_head_size: int = 16384,
        max_headers: int = 100,
        max_request_body_size: int = 0,
        h2c_preface: bool = True,
    ) -> None:
        self._max_line = max_request_line_size
        self._max_head = max_head_size
        self._max_headers = max_headers
        self._body_limit = max_request_body_size
        self._check_preface = h2c_preface
        self._buffer = b""  # received, not yet parsed; always starts at a parse position
        self._scanned = 0  # bytes of a partial head already searched for its end
        self._line_checked = False  # the partial head's request line was validated
        self._state = _HEAD
        self._stream_id = 0
        self._request: Request | None = None  # held while an upgrade is undecided
        self._upgrade = b""
        self._http10 = False
        self._head_request = False
        self._connect = False  # the current request is CONNECT
        self._keep_alive = True
        self._expect_continue = False  # a 100 Continue may still be sent
        self._remaining = 0  # body bytes (Content-Length) or chunk bytes still to read
        self._body_received = 0
        self._trailer_size = 0
        self._trailer_lines = 0
        self._response_state = _R_DONE
        self._response_remaining = 0
        self._out: list[bytes] = []
        self._close_requested = False
        self._close_reported = False
        self._errored = False

    @property
    def buffered_size(self) -> int:
        """Bytes received and not parsed yet (pipelined requests while paused)."""
        return len(self._buffer)

    @property
    def has_partial_head(self) -> bool:
        """True when part of a request head is buffered (the head-read timeout applies)."""
        return self._state == _HEAD and bool(self._buffer)

    @property
    def keep_alive(self) -> bool:
        """Whether the connection stays open after the current response (so far)."""
        return self._keep_alive and self._state < _CLOSED

    @property
    def stream_id(self) -> int:
        """The stream id of the latest request (0 before the first)."""
        return self._stream_id

    def _receive_eof(self) -> list[Event]:
        if self._close_reported or self._state == _SWITCHED:
            return []
        self._close_reported = True
        self._keep_alive = False
        if self._state == _HEAD:
            self._enter_closed()
        return [ConnectionClosed()]

    @staticmethod
    def _choose_upgrade(upgrade: bytes, http2_settings: int) -> bytes:
        for protocol in _comma_tokens(upgrade):
            if protocol == b"websocket" or (protocol == b"h2c" and http2_settings == 1):
                return protocol
        return b""

    def _enter_closed(self) -> None:
        self._state = _CLOSED
        self._keep_alive = False
        self._buffer = b""

    def data_to_send(self) -> bytes:
        """Bytes to write to the socket now (possibly ``b""``)."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    def _misuse(self, event: Event) -> None:
        name = type(event).__name__
        stream_id = getattr(event, "stream_id", None)
        if stream_id is None or name not in _SENDABLE:
            raise LocalProtocolError(f"cannot send {name}: not an HTTP/1.1 response event")
        if self._errored and stream_id == self._stream_id:
            return  # the peer broke the request; its error response was already sent
        prefix = f"stream {stream_id}: cannot send {name}"
        if self._state == _SWITCHED:
            raise LocalProtocolError(f"{prefix}: the connection switched protocols")
        if stream_id != self._stream_id or self._state == _UPGRADE:
            if stream_id == self._stream_id:
                reason = "the upgrade is undecided (call decline_upgrade first)"
            else:
                reason = f"the current request is stream {self._stream_id}"
            raise LocalProtocolError(f"{prefix}: {reason}")
        if self._response_state == _R_DONE:
            closing = " and the connection must close" if self._state == _CLOSED else ""
            raise LocalProtocolError(f"{prefix}: the response has ended{closing}")
        if self._response_state == _R_NONE:
            raise LocalProtocolError(f"{prefix} before the Response")
        raise LocalProtocolError(f"{prefix}: the Response was already sent")


class HTTP11Protocol(HTTP11Base):
    """One HTTP/1.1 server connection, without I/O.

    Feed bytes with :meth:`receive_data`; it returns events. Answer each request with
    :meth:`send` (``InformationalResponse``*, ``Response``, ``Body``*, ``EndBody``) and write
    :meth:`data_to_send`. After a complete request the protocol is :attr:`paused` until the
    response to it has ended; then :meth:`next_events` parses requests already buffered
    (pipelining). When :attr:`should_close` is true, write what is left and close.
    """

    __slots__ = ("_framing",)

    def __init__(self, **limits: Unpack[HTTP11Limits]) -> None:
        super().__init__(**limits)
        self._framing = _F_NONE

    # --- state --------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        """True while a complete request (or an undecided upgrade) waits for the server.

        Bytes received meanwhile are buffered, not parsed; the server should stop reading
        once :attr:`buffered_size` is large.
        """
        return self._state in (_DONE, _UPGRADE)

    @property
    def should_close(self) -> bool:
        """True when the server must write what :meth:`data_to_send` holds and then close.

        Set once a response with close semantics has ended, after a protocol error, after
        :meth:`request_timeout`, or when the peer closed an idle connection.
        """
        return self._state == _CLOSED

    # --- receiving ------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes read from the socket; ``b""`` means the peer closed its side.

        Returns the events now complete. Never raises on bad input: a ``ProtocolError``
        (answer already queued) and ``ConnectionClosed`` are returned instead. While
        :attr:`paused` the bytes are only buffered and ``[]`` is returned, except that an
        EOF returns ``[ConnectionClosed()]`` so the server can tell the app.
        """
        if not data:
            return self._receive_eof()
        state = self._state
        if state >= _DONE:
            if state < _CLOSED:
                self._buffer += data
            return []
        if self._buffer:
            self._buffer += data
        else:
            self._buffer = data
        return self._process()

    def next_events(self) -> list[Event]:
        """After a response has ended, parse what was buffered meanwhile (pipelining).

        Returns ``[]`` when nothing is buffered or when :attr:`should_close` is true.
        """
        if self._state == _HEAD and self._buffer:
            return self._process()
        return []

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
        except _PeerError as error:
            self._fail(error, events)
            return events
        if self._state >= _CLOSED:
            self._buffer = b""
        elif position:
            self._buffer = buffer[position:]
        return events

    def _read_head(self, buffer: bytes, position: int, events: list[Event]) -> int:
        """Parse one request head at ``position``; return the position after what it used."""
        if buffer.startswith(b"\r\n", position):
            # RFC 9112 2.2: ignore empty lines before a request line.
            while buffer.startswith(b"\r\n", position):
                position += 2
        if self._check_preface:
            start = buffer[position : position + len(H2C_PREFACE)]
            if len(start) < len(H2C_PREFACE) and H2C_PREFACE.startswith(start):
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

    def _check_partial_head(self, buffer: bytes, position: int) -> None:
        size = len(buffer) - position
        if not self._line_checked:
            line_end = buffer.find(b"\r\n", position, position + self._max_line + 2)
            if line_end < 0:
                if size > self._max_line + 1:
                    raise _PeerError(414, f"request line longer than {self._max_line} bytes")
            else:
                self._parse_request_line(buffer[position:line_end])
                self._line_checked = True
        if size > self._max_head:
            raise _PeerError(431, f"request head larger than {self._max_head} bytes")
        # Only the bytes not checked by the previous call (and the 3 before them).
        bad = _BAD_HEAD_BYTE_RE.search(buffer, position + max(self._scanned - 1, 0))
        if bad is not None and not (bad.start() == len(buffer) - 1 and buffer[-1] == 13):
            raise _PeerError(400, "invalid byte (control, bare CR or LF) in the request head")

    def _parse_request_line(self, line: bytes) -> tuple[bytes, bytes, bool]:
        """Return (method, target, is HTTP/1.0)."""
        if len(line) > self._max_line:
            raise _PeerError(414, f"request line longer than {self._max_line} bytes")
        match = _REQUEST_LINE_RE.fullmatch(line)
        if match is None:
            raise _PeerError(400, f"malformed request line {line[:100]!r}")
        method, target, major, minor = match.groups()
        if major != b"1":
            version = "0.9" if major is None else f"{major.decode()}.{minor.decode()}"
            raise _PeerError(505, f"HTTP version {version} not supported")
        if method == b"CONNECT":
            _check_authority_form(target)
        return method, target, minor == b"0"

    def _parse_head(self, head: bytes, buffer: bytes, body_start: int, events: list[Event]) -> None:
        lines = head.split(b"\r\n")
        crlf_count = len(lines) - 1
        if (
            head.translate(None, _HEAD_ALLOWED)
            or head.count(b"\r") != crlf_count
            or head.count(b"\n") != crlf_count
        ):
            raise _PeerError(400, "invalid byte (control, bare CR or LF) in the request head")
        method, target, http10 = self._parse_request_line(lines[0])
        if len(head) + 4 > self._max_head:
            raise _PeerError(431, f"request head larger than {self._max_head} bytes")
        if len(lines) - 1 > self._max_headers:
            raise _PeerError(431, f"more than {self._max_headers} header fields")
        headers: Headers = []
        content_length: int | None = None
        transfer_encoding: list[bytes] | None = None
        hosts = 0
        close_token = False
        keep_alive_token = False
        upgrade_token = False
        expect_continue = False
        upgrade: bytes | None = None
        http2_settings = 0
        names = _REQUEST_NAMES
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon:
                if line[:1] in (b" ", b"\t"):
                    raise _PeerError(400, "obsolete line folding (obs-fold) in the request head")
                raise _PeerError(400, f"header line without a colon {line[:100]!r}")
            lower = names.get(name)
            if lower is None:
                lower = _request_header_name(name)
            value = value.strip(b" \t")
            headers.append((lower, value))
            if lower in _REQUEST_SPECIAL:
                if lower == b"content-length":
                    length = _parse_content_length(value)
                    if content_length is not None and content_length != length:
                        raise _PeerError(400, "conflicting Content-Length values")
                    content_length = length
                elif lower == b"transfer-encoding":
                    if transfer_encoding is None:
                        transfer_encoding = []
                    transfer_encoding += _comma_tokens(value)
                elif lower == b"host":
                    hosts += 1
                elif lower == b"connection":
                    tokens = _comma_tokens(value)
                    close_token = close_token or b"close" in tokens
                    keep_alive_token = keep_alive_token or b"keep-alive" in tokens
                    upgrade_token = upgrade_token or b"upgrade" in tokens
                elif lower == b"expect":
                    # RFC 9110 10.1.1: a case-insensitive list; other expectations are ignored.
                    expect_continue = expect_continue or b"100-continue" in _comma_tokens(value)
                elif lower == b"upgrade":
                    upgrade = value
                else:
                    http2_settings += 1

        if hosts != 1 and (hosts or not http10):
            raise _PeerError(400, "missing Host header" if not hosts else "more than one Host")
        chunked = False
        if transfer_encoding is not None:
            if http10:
                raise _PeerError(400, "Transfer-Encoding in an HTTP/1.0 request")
            if content_length is not None:
                raise _PeerError(400, "both Content-Length and Transfer-Encoding")
            unknown = [coding for coding in transfer_encoding if coding != b"chunked"]
            if unknown:
                raise _PeerError(501, f"unsupported Transfer-Encoding {unknown[0][:40]!r}")
            if len(transfer_encoding) != 1:
                raise _PeerError(400, "chunked applied more than once")
            chunked = True
        limit = self._body_limit
        if limit and content_length is not None and content_length > limit:
            raise _PeerError(413, f"Content-Length {content_length} over the limit {limit}")

        self._stream_id += 1
        stream_id = self._stream_id
        self._http10 = http10
        self._head_request = method == b"HEAD"
        self._connect = method == b"CONNECT"
        self._keep_alive = (
            not close_token
            and (keep_alive_token or not http10)
            and not self._close_requested
            and not self._close_reported
        )
        self._response_state = _R_NONE
        self._body_received = 0
        expects_body = chunked or bool(content_length)
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
                self._request = request
                self._upgrade = protocol
                self._state = _UPGRADE
                self._response_state = _R_DONE  # no response until decline_upgrade
                events.append(UpgradeRequested(stream_id, protocol, request, buffer[body_start:]))
                return
        events.append(request)
        if chunked:
            self._state = _CHUNK_SIZE
        elif content_length:
            self._state = _LENGTH_BODY
            self._remaining = content_length
        else:
            self._state = _DONE
            events.append(EndBody(stream_id))

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
            if ending and ending != b"\r":
                raise _PeerError(400, "chunk data not followed by CRLF")
            return position
        line_end = buffer.find(b"\r\n", position)
        if state == _CHUNK_SIZE:
            if line_end < 0:
                _early_chunk_size_check(buffer[position:])
                return position
            self._chunk_header(buffer, position, line_end)
            return line_end + 2
        # _TRAILERS: field lines are checked and dropped (ASGI has no request trailers).
        if line_end < 0:
            if len(buffer) - position + self._trailer_size > self._max_head:
                raise _PeerError(431, "trailer section too large")
            return position
        if line_end == position:
            self._state = _DONE
            events.append(EndBody(self._stream_id))
            return position + 2
        line = buffer[position:line_end]
        self._trailer_size += len(line) + 2
        self._trailer_lines += 1
        if self._trailer_size > self._max_head or self._trailer_lines > self._max_headers:
            raise _PeerError(431, "trailer section too large")
        name, colon, _ = line.partition(b":")
        if not colon or _TOKEN_RE.fullmatch(name) is None or _BAD_HEAD_BYTE_RE.search(line):
            raise _PeerError(400, f"malformed trailer field {line[:100]!r}")
        return line_end + 2

    def _chunk_header(self, buffer: bytes, position: int, line_end: int) -> None:
        match = _CHUNK_LINE_RE.fullmatch(buffer, position, line_end)
        if match is None:
            _early_chunk_size_check(buffer[position:line_end])
            raise _PeerError(400, f"malformed chunk-size line {buffer[position:line_end][:60]!r}")
        digits = match.group(1)
        if len(digits) > _MAX_CHUNK_SIZE_DIGITS:
            raise _PeerError(400, "chunk size has more than 16 hex digits")
        size = int(digits, 16)
        if size > _MAX_CHUNK_SIZE:
            raise _PeerError(400, "chunk size larger than 2**63-1")
        limit = self._body_limit
        if limit and self._body_received + size > limit:
            raise _PeerError(413, f"request body over the limit {limit}")
        self._body_received += size
        if size:
            self._remaining = size
            self._state = _CHUNK_DATA
        else:
            self._trailer_size = 0
            self._trailer_lines = 0
            self._state = _TRAILERS

    def _fail(self, error: _PeerError, events: list[Event]) -> None:
        """Queue the answer to a peer's protocol error and stop the connection."""
        in_request = _HEAD < self._state < _DONE
        status: int | None = None
        if self._response_state != _R_BODY:
            status = error.status
            self._out.append(_error_response(status, in_request and self._head_request))
        self._response_state = _R_DONE
        self._errored = True
        self._enter_closed()
        events.append(ProtocolError(self._stream_id if in_request else None, error.message, status))
        if not self._close_reported:
            self._close_reported = True
            events.append(ConnectionClosed(reason=error.message))

    # --- control from the server ----------------------------------------------------------

    def continue_request(self, stream_id: int) -> None:
        """Send ``100 Continue`` if that request asked for it and nothing final was sent yet.

        Call it when the app first reads the body. A no-op otherwise (also for a stream that
        is not current, so a late call is harmless).
        """
        if (
            self._expect_continue
            and stream_id == self._stream_id
            and self._response_state == _R_NONE
            and _HEAD < self._state < _DONE
        ):
            self._expect_continue = False
            self._out.append(_CONTINUE)

    def close_after_response(self) -> None:
        """Graceful shutdown: the current or next response gets ``connection: close``.

        The connection closes after that response; an idle connection (nothing buffered,
        no request in progress) closes at once (:attr:`should_close` becomes true).
        """
        self._close_requested = True
        self._keep_alive = False
        if self._state == _HEAD and not self._buffer:
            self._enter_closed()

    def request_timeout(self) -> None:
        """The request did not arrive in time: close, answering ``408`` if one is partial.

        A 408 with ``connection: close`` is queued when part of a head is buffered, or when
        a request body is incomplete and no response has started; otherwise nothing is
        queued. Afterwards :attr:`should_close` is true.
        """
        if self._state >= _CLOSED:
            return
        partial = self.has_partial_head or (
            _HEAD < self._state < _DONE and self._response_state == _R_NONE
        )
        if partial:
            self._out.append(_error_response(408))
            self._response_state = _R_DONE
            self._errored = True
        self._enter_closed()

    def decline_upgrade(self) -> list[Event]:
        """Serve the pending upgrade request as plain HTTP/1.1: returns its Request + EndBody.

        Raises ``LocalProtocolError`` when no upgrade is pending.
        """
        request = self._request
        if self._state != _UPGRADE or request is None:
            raise LocalProtocolError("decline_upgrade: no upgrade is pending")
        self._request = None
        self._state = _DONE
        self._response_state = _R_NONE
        return [request, EndBody(request.stream_id)]

    def accept_upgrade(self, headers: Headers) -> bytes:
        """Switch protocols: queue ``101 Switching Protocols`` and hand over the connection.

        ``headers`` are sent as given; ``connection: upgrade`` and ``upgrade: <protocol>``
        are added when absent. Returns the bytes received after the request head (the start
        of the new protocol). The HTTP/1.1 protocol produces and accepts nothing afterwards.
        Raises ``LocalProtocolError`` when no upgrade is pending.
        """
        if self._state != _UPGRADE:
            raise LocalProtocolError("accept_upgrade: no upgrade is pending")
        names = {name.lower() for name, _ in headers}
        extra: Headers = []
        if b"connection" not in names:
            extra.append((b"connection", b"upgrade"))
        if b"upgrade" not in names:
            extra.append((b"upgrade", self._upgrade))
        self._out.append(self._build_head(_STATUS_LINES[101], [*headers, *extra], self._stream_id))
        self._state = _SWITCHED
        self._response_state = _R_DONE
        self._request = None
        data, self._buffer = self._buffer, b""
        return data

    # --- sending --------------------------------------------------------------------------

    def send(self, event: Event) -> None:
        """Queue a response event for the current request.

        Accepts ``InformationalResponse`` (1xx other than 101), ``Response``, ``Body`` and
        ``EndBody``. Raises ``LocalProtocolError`` on misuse (wrong stream, body before the
        head, a second head, too much or too little body for ``content-length``, anything
        once the connection must close). After a protocol error of the peer, events for the
        failed stream are dropped silently: the error response already went out instead.
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
        self._out.append(self._build_head(_STATUS_LINES[status], event.headers, event.stream_id))

    def _start_response(self, event: Response) -> None:
        status = event.status
        stream_id = event.stream_id
        if not 200 <= status <= 999:
            raise LocalProtocolError(
                f"stream {stream_id}: Response status {status} is not a final status"
            )
        content_length: int | None = None
        chunked = False
        app_close = False
        skipped = 0
        # RFC 9112 6.3: after a 2xx to CONNECT the connection is a tunnel, which tricorn does
        # not offer: the head is sent without framing fields (RFC 9110 9.3.6), the body is
        # dropped, and the connection closes, so no byte after it is read as HTTP.
        tunnel = self._connect and status < 300
        parts: list[bytes] = [_STATUS_LINES.get(status) or _status_line(status)]
        names = _RESPONSE_NAMES
        for name, value in event.headers:
            lower = names.get(name)
            if lower is None:
                lower = _response_header_name(name, stream_id)
            if lower in _RESPONSE_SPECIAL:
                if tunnel and lower != b"connection":
                    skipped += 1
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
                    if value.lower().strip() != b"chunked":
                        raise LocalProtocolError(
                            f"stream {stream_id}: Response transfer-encoding {value!r}"
                            " is not supported (only chunked)"
                        )
                    chunked = True
                    if self._http10:
                        skipped += 1
                        continue  # HTTP/1.0 clients do not know chunked: close-delimit instead
                elif b"close" in _comma_tokens(value):
                    app_close = True
            parts += (name, b": ", value, b"\r\n")
        if content_length is not None and chunked:
            raise LocalProtocolError(
                f"stream {stream_id}: Response has both content-length and transfer-encoding"
            )

        keep_alive = self._keep_alive and not app_close
        if self._expect_continue and self._state < _DONE:
            # The client still holds back the body it announced; don't wait for it.
            keep_alive = False
            self._expect_continue = False
        if tunnel:
            framing = _F_NONE
            keep_alive = False
        elif self._head_request or status in (204, 304):
            framing = _F_NONE
        elif content_length is not None:
            framing = _F_LENGTH
            self._response_remaining = content_length
        elif self._http10:
            framing = _F_CLOSE
            keep_alive = False
        else:
            framing = _F_CHUNKED
            if not chunked:
                parts.append(_CHUNKED_HEADER)
        if not keep_alive:
            if not app_close:
                parts.append(_CLOSE_HEADER)
        elif self._http10:
            parts.append(_KEEP_ALIVE_HEADER)
        parts.append(b"\r\n")
        head = b"".join(parts)
        self._check_head(head, len(parts) - 3 * (len(event.headers) - skipped), stream_id)
        self._keep_alive = keep_alive
        self._framing = framing
        self._response_state = _R_BODY
        self._out.append(head)

    def _build_head(self, status_line: bytes, headers: Headers, stream_id: int) -> bytes:
        parts = [status_line]
        names = _RESPONSE_NAMES
        for name, value in headers:
            if name not in names:
                _response_header_name(name, stream_id)
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"\r\n")
        head = b"".join(parts)
        self._check_head(head, len(headers) + 2, stream_id)
        return head

    @staticmethod
    def _check_head(head: bytes, lines: int, stream_id: int) -> None:
        """Refuse header values that would inject lines (CR, LF) or carry NUL bytes."""
        if head.count(b"\n") != lines or head.count(b"\r") != lines or b"\0" in head:
            raise LocalProtocolError(
                f"stream {stream_id}: a response header value contains CR, LF or NUL"
            )

    def _send_body(self, data: bytes) -> None:
        framing = self._framing
        if framing == _F_LENGTH:
            size = len(data)
            if size > self._response_remaining:
                self._keep_alive = False
                raise LocalProtocolError(
                    f"stream {self._stream_id}: Body exceeds the response's content-length"
                )
            self._response_remaining -= size
            if size:
                self._out.append(data)
        elif framing == _F_CHUNKED:
            if data:
                self._out += (b"%x\r\n" % len(data), data, b"\r\n")
        elif framing == _F_CLOSE and data:
            self._out.append(data)

    def _end_response(self) -> None:
        framing = self._framing
        self._response_state = _R_DONE
        if framing == _F_CHUNKED:
            self._out.append(_LAST_CHUNK)
        elif framing == _F_LENGTH and self._response_remaining:
            self._enter_closed()
            raise LocalProtocolError(
                f"stream {self._stream_id}: EndBody with {self._response_remaining} bytes"
                " of the response's content-length unsent"
            )
        if self._keep_alive and self._state == _DONE:
            self._state = _HEAD
        elif self._state != _CLOSED:
            self._enter_closed()


_SENDABLE = frozenset(("Body", "EndBody", "Response", "InformationalResponse"))
