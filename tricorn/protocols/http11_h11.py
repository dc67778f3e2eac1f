"""HTTP/1.1 server protocol on h11, sans-IO, with the same face and events as ``HTTP11Protocol``.

h11 parses request heads and bodies and frames responses (keep-alive, HTTP/1.0, chunked, HEAD,
the request/response cycle). Where h11 is more lenient than tricorn promises, or answers with a
different status, the rules of ``http11_rules`` run on the raw bytes before h11 sees them: 414,
431, 505, 501, 413, bare CR/LF and control bytes, obs-fold, Content-Length with
Transfer-Encoding, and the chunk-size lines. h11 is given exactly one request at a time, so
pipelined bytes wait here. The connection's behaviour is ``HTTP11Base``'s; h11's own writer is
kept (its state machine has to see each response to accept the next request), so the writer's
hooks are overridden here.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import ClassVar, Unpack

import h11

from tricorn.errors import LocalProtocolError
from tricorn.protocols.events import Body, EndBody, Event, H2CPrefaceReceived, Headers
from tricorn.protocols.http11_base import HTTP11Base, HTTP11Limits
from tricorn.protocols.http11_rules import (
    H2C_PREFACE,
    PeerError,
    ResponseState,
    State,
    check_chunk_end,
    check_chunk_line,
    check_chunk_line_prefix,
    check_content_length,
    check_final_status,
    check_framing_fields,
    check_head_limits,
    check_head_lines,
    check_host,
    check_no_obs_fold,
    check_request_line,
    check_response_content_length,
    check_response_framing,
    check_response_header_name,
    check_response_transfer_encoding,
    check_transfer_codings,
    comma_tokens,
)

__all__ = ["H11Protocol"]

_HEAD = int(State.HEAD)
_LENGTH_BODY = int(State.LENGTH_BODY)
_CHUNK_SIZE = int(State.CHUNK_SIZE)
_CHUNK_DATA = int(State.CHUNK_DATA)
_CHUNK_END = int(State.CHUNK_END)
_DONE = int(State.DONE)
_UPGRADE = int(State.UPGRADE)
_CLOSED = int(State.CLOSED)
_SWITCHED = int(State.SWITCHED)
_R_BODY = int(ResponseState.BODY)
_R_DONE = int(ResponseState.DONE)

# The header fields that decide the framing, found in a raw head without splitting it.
_FRAMING_FIELD_RE = re.compile(rb"\r\n(host|content-length|transfer-encoding):([^\r]*)", re.I)
# Content-Length fields, for handing h11 the one decimal value (it compares them as text).
_CONTENT_LENGTH_FIELD_RE = re.compile(rb"(\r\ncontent-length:)[^\r]*", re.I)
# What h11 accepts as a field value once the surrounding OWS is stripped.
_H11_FIELD_VALUE_RE = re.compile(rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?")

_REASONS = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}

# A raw head's checks: (method, target, is HTTP/1.0, content length, chunked, respell).
_HeadVerdict = tuple[tuple[bytes, bytes, bool], int | None, bool | None, bool]


def _checked_headers(headers: Headers, stream_id: int) -> Headers:
    """Response headers as h11 will take them; raise ``LocalProtocolError`` for what it won't.

    h11 refuses values with leading or trailing whitespace, which carry no meaning (RFC 9110
    5.5), so those are stripped; checking here keeps h11's state machine out of ERROR.
    """
    checked: Headers = []
    for name, value in headers:
        check_response_header_name(name, stream_id)
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

    The same face as ``HTTP11Protocol`` (see ``HTTP11Base``). Differences: HTTP/1.0
    keep-alive is not offered (h11 closes every HTTP/1.0 connection after its response), and
    response header names h11 adds are title-cased.
    """

    #: h11 starts its next cycle only once the client's message is DONE: a request body
    #: the app left unread gets connection: close instead of a drain.
    DRAINS_UNREAD_BODY: ClassVar[bool] = False

    __slots__ = ("_connection", "_no_body")

    HTTP10_KEEP_ALIVE: ClassVar[bool] = False

    def __init__(self, **limits: Unpack[HTTP11Limits]) -> None:
        super().__init__(**limits)
        # h11 only ever holds one checked head or trailer section: its own limit never trips.
        self._connection = h11.Connection(
            h11.SERVER, max_incomplete_event_size=max(self._max_head, 16384) + 4
        )
        self._no_body = False
        self._response_remaining = -1  # content-length bytes still to send; -1: no length

    # --- the parser (HTTP11Base does the rest) -------------------------------------------

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
        except PeerError as error:
            self._fail(error, events, self._buffer if self._state == _HEAD else b"")
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
                raise PeerError(error.error_status_hint, str(error)) from None
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
            # A lone CR may start an empty line, skipped before the preface too (fuzzing).
            if len(start) < len(H2C_PREFACE) and (H2C_PREFACE.startswith(start) or start == b"\r"):
                return False
            self._check_preface = False
            if start == H2C_PREFACE:
                self._state = _SWITCHED
                self._buffer = b""
                events.append(H2CPrefaceReceived(buffer))
                return False
        end = buffer.find(b"\r\n\r\n", self._scanned)
        if end < 0:
            self._check_partial_head(buffer, 0)
            self._scanned = max(0, len(buffer) - 3)
            return False
        self._scanned = 0
        self._line_checked = False
        self._buffer = buffer[end + 4 :]
        try:
            self._start_request(buffer[:end], buffer[: end + 4], events)
        except PeerError:
            self._buffer = buffer  # the refused head, for its ProtocolError
            raise
        return True

    def _check_head(self, head: bytes) -> _HeadVerdict:
        """The checks h11 lacks, in tricorn's order, up to those needing a parsed head.

        Returns (start, content length, chunked, respell), ``start`` as check_request_line
        returns it (method, target, is HTTP/1.0); chunked is None without Transfer-Encoding
        and False for codings other than one ``chunked``. The caller raises those verdicts
        (501, chunked twice) only once h11 accepted the lines, as a
        malformed line is answered 400 first. ``respell`` is True when a Content-Length field
        is not written as the plain decimal (``08``, ``5, 5``, ``8`` beside ``08``): h11 would
        compare the spellings as text, so it is handed the one value instead.
        """
        lines = head.split(b"\r\n")
        line_ends = len(lines) - 1
        try:
            check_head_lines(lines)
            start = check_request_line(lines[0], self._max_line)
            check_head_limits(len(head) + 4, line_ends, self._max_head, self._max_headers)
        except PeerError as error:  # the first fault in byte order, as if read in pieces
            raise self._first_fault(head + b"\r\n\r\n") or error from None
        http10 = start[2]
        check_no_obs_fold(head)  # h11 would unfold it
        hosts = 0
        length: int | None = None
        respell = False
        codings: list[bytes] | None = None
        for match in _FRAMING_FIELD_RE.finditer(head):
            name = match.group(1).lower()
            value = match.group(2).strip(b" \t")
            if name == b"host":
                hosts += 1
            elif name == b"content-length":
                length = check_content_length(value, length)
                respell = respell or value != b"%d" % length
            else:
                codings = [*(codings or ()), *comma_tokens(value)]
        check_host(hosts, http10)
        if codings is None:
            return start, length, None, respell
        # RFC 9112 6.3: h11 would let chunked override a Content-Length (a smuggling shape).
        check_framing_fields(codings, http10, length)
        return start, None, codings == [b"chunked"], False

    def _start_request(self, head: bytes, message: bytes, events: list[Event]) -> None:
        start, length, chunked, respell = self._check_head(head)
        if respell and length is not None:
            # RFC 9110 8.6: "08" is 8, and "8" beside "08" is one length; h11 compares text.
            decimal = b" %d" % length
            message = _CONTENT_LENGTH_FIELD_RE.sub(lambda field: field.group(1) + decimal, message)
        connection = self._connection
        connection.receive_data(message)
        try:
            parsed = connection.next_event()
        except h11.RemoteProtocolError as error:
            if error.error_status_hint == 501:  # Transfer-Encoding: tricorn's verdict wins
                self._raise_coding_error(head)
            raise PeerError(error.error_status_hint, str(error)) from None
        if not isinstance(parsed, h11.Request):  # unreachable: h11 was given a whole head
            raise PeerError(400, "h11 did not parse the request head")
        # From here h11 frames any answer, an error's too, as the answer to this method.
        self._head_request = start[0] == b"HEAD"
        if chunked is False:  # unreachable: h11 refuses these codings with 501 (above)
            self._raise_coding_error(head)
        # The options (Connection, Expect, Upgrade) are read from h11's fields by the base.
        headers: Headers = [
            (bytes(name.lower()), bytes(value)) for name, value in parsed.headers.raw_items()
        ]
        self._begin_request(start, headers, length, bool(chunked), headers, self._buffer, 0, events)
        if self._state in (_DONE, _UPGRADE):
            connection.next_event()  # h11's end of the empty body: it now waits for us

    @staticmethod
    def _raise_coding_error(head: bytes) -> None:
        """Answer a Transfer-Encoding other than one ``chunked`` as tricorn does (501 or 400)."""
        codings: list[bytes] = []
        for match in _FRAMING_FIELD_RE.finditer(head):
            if match.group(1).lower() == b"transfer-encoding":
                codings += comma_tokens(match.group(2))
        check_transfer_codings(codings)

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
            check_chunk_end(ending)
            return False
        line_end = buffer.find(b"\r\n")
        if state == _CHUNK_SIZE:
            if line_end < 0:
                check_chunk_line_prefix(buffer)
                return False
            size = check_chunk_line(buffer, 0, line_end)
            self._buffer = buffer[line_end + 2 :]
            self._enter_chunk(size)
            # The line was checked above; h11 gets it without the extensions it would refuse.
            self._feed(b"%x\r\n" % size, events)
            return True
        # TRAILERS: field lines are checked here and dropped (ASGI has no request trailers);
        # h11 gets only the end of the section, as it would refuse a trailer field named
        # Content-Length or Transfer-Encoding that cannot change the framing any more.
        if line_end < 0:
            self._check_partial_trailer(len(buffer))
            return False
        line = buffer[:line_end]
        self._buffer = buffer[line_end + 2 :]
        if line:
            self._trailer_field(line)
            return True
        self._feed(b"\r\n", events)
        return True

    # --- the writer: h11's ----------------------------------------------------------------

    def _queue_error_response(self, status: int, head_request: bool) -> None:
        """A short ``text/plain`` answer with ``connection: close``, framed by h11.

        h11 frames it as the answer to the method it parsed (``self._head_request``), so
        ``head_request`` is not needed here.
        """
        body = _REASONS[status]
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"%d" % len(body)),
            (b"connection", b"close"),
        ]
        connection = self._connection
        # h11 lets a server answer from IDLE or SEND_RESPONSE, even after a peer's error, and
        # only those states reach here; were h11 to refuse, the connection closes unanswered.
        try:
            out = [connection.send(h11.Response(status_code=status, headers=headers, reason=body))]
            if not self._head_request:  # RFC 9110 9.3.2: no content in answer to HEAD
                out.append(connection.send(h11.Data(data=body)))
            out.append(connection.send(h11.EndOfMessage()))
        except h11.LocalProtocolError:
            return
        self._out += out

    def _informational_head(self, status: int, headers: Headers, stream_id: int) -> bytes:
        informational = h11.InformationalResponse(
            status_code=status,
            headers=_checked_headers(headers, stream_id),
            reason=_REASONS.get(status, b""),
        )
        return self._connection.send(informational) or b""

    def _start_response(self, stream_id: int, status: int, headers: Headers) -> None:
        check_final_status(status, stream_id)
        # RFC 9112 6.3: after a 2xx to CONNECT the connection is a tunnel, which tricorn does
        # not offer. h11 takes that response as a protocol switch (no body, nothing more
        # parsed); as in HTTP11Base the head goes without framing fields (RFC 9110 9.3.6)
        # and with connection: close, the body is dropped and the connection closes.
        tunnel = self._connect and status < 300
        headers, length, app_close = self._h11_fields(stream_id, headers, tunnel)
        keep_alive = self._keep_alive and not (app_close or tunnel)
        if (self._expect_continue and self._unsent_continue()) or (
            keep_alive and not self._keep_alive_with_body_unread()
        ):
            keep_alive = False  # the client holds back its body, or we will not drain it
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
        self._response_remaining = -1 if no_body or length is None else length
        self._response_state = _R_BODY

    def _h11_fields(
        self, stream_id: int, fields: Headers, tunnel: bool
    ) -> tuple[Headers, int | None, bool]:
        """The app's fields checked, as h11 will take them; (fields, length, app closes)."""
        headers: Headers = []
        length: int | None = None
        chunked = False
        app_close = False
        for name, value in _checked_headers(fields, stream_id):
            lower = name.lower()
            if tunnel and lower in (b"content-length", b"transfer-encoding"):
                continue
            if lower == b"content-length":
                length = check_response_content_length(value, length, stream_id)
            elif lower == b"transfer-encoding":
                check_response_transfer_encoding(value, stream_id)
                if chunked:
                    continue  # h11 refuses a repeated Transfer-Encoding
                chunked = True
            elif lower == b"connection" and b"close" in comma_tokens(value):
                app_close = True
            headers.append((name, value))
        check_response_framing(length, chunked, stream_id)
        return headers, length, app_close

    def body_sendable_elsewhere(self, stream_id: int) -> int:
        """Always 0: h11's writer must see every body byte to frame the response."""
        return 0

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
