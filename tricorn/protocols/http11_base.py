"""HTTP/1.1 written once, above its parsers: the connection's behaviour and the response writer.

``HTTP11Base`` owns everything about an HTTP/1.1 server connection except turning bytes into a
request: keep-alive, the pipelining pause, EOF, 100-continue, upgrades and the h2c preface's
hand-over, graceful close, the request timeout, error answers, and the response writer
(status line, framing: content-length, chunked, close-delimited or none). A parser subclass
only implements :meth:`HTTP11Base._process`: parse ``self._buffer`` from the current
``self._state`` and append events, by these steps:

- a complete head: validate it with the ``check_*`` rules of ``http11_rules`` (in their
  order), then call :meth:`HTTP11Base._begin_request` with what it found; that decides the
  body's framing, keep-alive, 100-continue and upgrades, and appends the events;
- body bytes: append ``Body`` events while the state is ``LENGTH_BODY`` or one of the chunk
  states (``check_chunk_line`` and the trailer rules for chunked), then set ``DONE`` and
  append ``EndBody``;
- bad input: raise ``PeerError(status, message)``; ``_process`` catches it and calls
  :meth:`HTTP11Base._fail`, which queues the answer and closes.

A parser that uses a library writer (h11's state machine must see the response to move on to
the next request) overrides the writer's hooks: ``_start_response``, ``_send_body``,
``_end_response``, ``_queue_error_response`` and ``_informational_head``.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import ClassVar, TypedDict

from tricorn.errors import LocalProtocolError
from tricorn.protocols.events import (
    Body,
    ConnectionClosed,
    EndBody,
    Event,
    Headers,
    InformationalResponse,
    ProtocolError,
    Request,
    Response,
    UpgradeRequested,
)
from tricorn.protocols.http11_rules import (
    NO_OPTIONS,
    REQUEST_LINE_RE,
    RESPONSE_NAMES,
    Framing,
    PeerError,
    RequestOptions,
    ResponseState,
    State,
    check_chunked_body_limit,
    check_content_length_limit,
    check_final_status,
    check_head_size,
    check_informational_status,
    check_no_injection,
    check_partial_head_bytes,
    check_request_line,
    check_request_line_size,
    check_response_content_length,
    check_response_framing,
    check_response_header_name,
    check_response_transfer_encoding,
    check_trailer_field,
    check_trailer_size,
    choose_upgrade,
    comma_tokens,
    first_head_fault,
    request_options,
    status_line,
)

__all__ = ["HTTP11Base", "HTTP11Limits"]

# The states as plain ints named by the enums: the hot path compares and stores them per
# request, and IntEnum members cost 1-3% of the whole parse+respond loop (measured).
_HEAD = int(State.HEAD)
_LENGTH_BODY = int(State.LENGTH_BODY)
_CHUNK_SIZE = int(State.CHUNK_SIZE)
_CHUNK_DATA = int(State.CHUNK_DATA)
_TRAILERS = int(State.TRAILERS)
_DONE = int(State.DONE)
_UPGRADE = int(State.UPGRADE)
_CLOSED = int(State.CLOSED)
_SWITCHED = int(State.SWITCHED)
_R_NONE = int(ResponseState.NONE)
_R_BODY = int(ResponseState.BODY)
_R_DONE = int(ResponseState.DONE)
_F_NONE = int(Framing.NONE)
_F_LENGTH = int(Framing.LENGTH)
_F_CHUNKED = int(Framing.CHUNKED)
_F_CLOSE = int(Framing.CLOSE)

_RESPONSE_SPECIAL = frozenset((b"content-length", b"transfer-encoding", b"connection"))
_STATUS_LINES = {status: status_line(status) for status in range(100, 600)}
_CHUNKED_HEADER = b"transfer-encoding: chunked\r\n"
_CLOSE_HEADER = b"connection: close\r\n"
_KEEP_ALIVE_HEADER = b"connection: keep-alive\r\n"
_LAST_CHUNK = b"0\r\n\r\n"
_SENDABLE = frozenset(("Body", "EndBody", "Response", "InformationalResponse"))


def error_response(status: int, head_request: bool = False) -> bytes:
    """A short plain-text error response; without its body when answering HEAD."""
    body = HTTPStatus(status).phrase.encode("ascii")
    return b"%scontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n%s\r\n%s" % (
        _STATUS_LINES[status],
        len(body),
        _CLOSE_HEADER,
        b"" if head_request else body,
    )


def readable_request_line(head: bytes, max_line: int) -> tuple[bytes, bytes] | None:
    """The method and target of a refused head's request line, when it is complete, no
    longer than ``max_line`` and well-formed but for its version (for the access log);
    else None."""
    head = head.lstrip(b"\r\n")
    end = head.find(b"\r\n", 0, max_line + 2)
    if end < 0:
        return None
    match = REQUEST_LINE_RE.fullmatch(head[:end])
    return None if match is None else (match[1], match[2])


class HTTP11Limits(TypedDict, total=False):
    """The keyword arguments of every HTTP/1.1 protocol (defaults in ``HTTP11Base``)."""

    max_request_line_size: int
    max_head_size: int
    max_headers: int
    max_request_body_size: int
    max_unread_body_drain: int
    h2c_preface: bool


class HTTP11Base:
    """One HTTP/1.1 server connection, without I/O, short of its request parser.

    Feed bytes with :meth:`receive_data`; it returns events. Answer each request with
    :meth:`send` (``InformationalResponse``*, ``Response``, ``Body``*, ``EndBody``; or
    :meth:`send_response` and :meth:`send_body`, the same without the event objects) and write
    :meth:`data_to_send`. After a complete request the protocol is :attr:`paused` until the
    response to it has ended; then :meth:`next_events` parses requests already buffered
    (pipelining). When :attr:`should_close` is true, write what is left and close.
    """

    __slots__ = (
        "_body_limit",
        "_body_received",
        "_buffer",
        "_check_preface",
        "_close_reported",
        "_close_requested",
        "_connect",
        "_drain_limit",
        "_draining",
        "_errored",
        "_expect_continue",
        "_framing",
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
        "_unread_close",
        "_upgrade",
    )

    #: Whether an HTTP/1.0 request with ``Connection: keep-alive`` may keep the connection
    #: (h11 closes every HTTP/1.0 connection after its response).
    HTTP10_KEEP_ALIVE: ClassVar[bool] = True
    #: Whether a Content-Length body the app left unread may be read and dropped after the
    #: response so that the connection stays open (h11's state machine cannot).
    DRAINS_UNREAD_BODY: ClassVar[bool] = True

    def __init__(
        self,
        *,
        max_request_line_size: int = 8192,
        max_head_size: int = 16384,
        max_headers: int = 100,
        max_request_body_size: int = 0,
        max_unread_body_drain: int = 1048576,
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
        self._framing = _F_NONE
        self._out: list[bytes] = []
        self._close_requested = False
        self._close_reported = False
        self._errored = False
        self._drain_limit = max_unread_body_drain
        #: The response has ended before its request's body: the rest is read and dropped.
        self._draining = False
        #: The response said connection: close because its request's body was not all
        #: received: the client may still be sending it (``closing_with_unread_body``).
        self._unread_close = False

    # --- state --------------------------------------------------------------------------

    @property
    def buffered_size(self) -> int:
        """Bytes received and not parsed yet (pipelined requests while paused)."""
        return len(self._buffer)

    @property
    def closing_with_unread_body(self) -> bool:
        """True when a response closes the connection (``connection: close``) before its
        request's body was all received: the server should close gracefully (its FIN,
        then read and drop until the client's), or the client's unread bytes turn the
        close into a reset that can destroy the response."""
        return self._unread_close

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
        if self._draining:
            return self._drain()
        return self._process()

    def _drain(self) -> list[Event]:
        """The body of a request whose response has ended: parse it and drop it, then go
        on with the next request (``_keep_alive_with_body_unread`` allowed the drain)."""
        events = [event for event in self._process() if not isinstance(event, Body | EndBody)]
        if self._state == _DONE:
            self._draining = False
            self._state = _HEAD
            if self._buffer:
                events += self._process()
        return events

    def _keep_alive_with_body_unread(self) -> bool:
        """A response starts: False when its request's body is still on its way and will
        not be drained after it (chunked, or more than ``max_unread_body_drain`` bytes
        left, or a parser that cannot drain): the response then says
        ``connection: close``. RFC 9112 9.6 lets a server close instead of reading a body;
        keeping the connection open and not reading it would have the client's next
        request read as body bytes."""
        if not _HEAD < self._state < _DONE:
            return True
        if (
            self.DRAINS_UNREAD_BODY
            and self._state == _LENGTH_BODY
            and self._remaining <= self._drain_limit
        ):
            return True
        self._unread_close = True
        return False

    def next_events(self) -> list[Event]:
        """After a response has ended, parse what was buffered meanwhile (pipelining).

        Returns ``[]`` when nothing is buffered or when :attr:`should_close` is true.
        """
        if self._state == _HEAD and self._buffer:
            return self._process()
        return []

    def _process(self) -> list[Event]:
        """The parser: parse ``self._buffer`` as far as it goes (see the module's docstring)."""
        raise NotImplementedError

    def _receive_eof(self) -> list[Event]:
        if self._close_reported or self._state == _SWITCHED:
            return []
        self._close_reported = True
        self._keep_alive = False
        if self._state == _HEAD:
            self._enter_closed()
        return [ConnectionClosed()]

    def _check_partial_head(self, buffer: bytes, position: int) -> None:
        """Answer 414/431/400/505 before a hostile head is complete (no waiting for 16 KiB)."""
        size = len(buffer) - position
        try:
            if not self._line_checked:
                line_end = buffer.find(b"\r\n", position, position + self._max_line + 2)
                if line_end < 0:
                    check_request_line_size(size, self._max_line)
                else:
                    check_request_line(buffer[position:line_end], self._max_line)
                    self._line_checked = True
            check_head_size(size, self._max_head)
            # Only the bytes not checked by the previous call (and the 3 before them).
            check_partial_head_bytes(buffer, position + max(self._scanned - 1, 0))
        except PeerError as error:
            raise self._first_fault(buffer[position:]) or error from None

    def _first_fault(self, head: bytes) -> PeerError | None:
        """:func:`first_head_fault` with this connection's limits."""
        return first_head_fault(head, self._max_line, self._max_head)

    def _begin_request(
        self,
        start: tuple[bytes, bytes, bool],
        headers: Headers,
        length: int | None,
        chunked: bool,
        options: Headers | None,
        buffer: bytes,
        body_start: int,
        events: list[Event],
    ) -> None:
        """A head passed the parser's checks: start its request and append its events.

        ``start`` is :func:`check_request_line`'s (method, target, is HTTP/1.0).
        ``options`` holds (at least) the head's Connection, Expect, Upgrade and
        HTTP2-Settings fields, or is None without any; ``buffer[body_start:]`` is what
        follows the head.
        """
        if length:
            check_content_length_limit(length, self._body_limit)  # 413 before the app runs
        method, target, http10 = start
        self._stream_id += 1
        stream_id = self._stream_id
        self._http10 = http10
        self._head_request = method == b"HEAD"
        self._connect = method == b"CONNECT"
        asked = request_options(options) if options else NO_OPTIONS
        self._keep_alive = (
            not asked.close
            and (not http10 or (asked.keep_alive and self.HTTP10_KEEP_ALIVE))
            and not self._close_requested
            and not self._close_reported
        )
        self._response_state = _R_NONE
        self._body_received = 0
        expects_body = chunked or bool(length)
        expect_continue = asked.expect_continue and expects_body and not http10
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
        if asked.upgrade is not None and self._hold_upgrade(request, asked):
            events.append(UpgradeRequested(stream_id, self._upgrade, request, buffer[body_start:]))
            return
        events.append(request)
        if chunked:
            self._state = _CHUNK_SIZE
        elif length:
            self._state = _LENGTH_BODY
            self._remaining = length
        else:
            self._state = _DONE
            events.append(EndBody(stream_id))

    def _hold_upgrade(self, request: Request, asked: RequestOptions) -> bool:
        """RFC 9110 7.8: hold a bodiless HTTP/1.1 request asking (Connection: upgrade) for a
        protocol we serve until the server accepts or declines it; True when held."""
        if not asked.upgrade_option or request.expects_body or request.http_version == "1.0":
            return False
        protocol = choose_upgrade(asked.upgrade or b"", asked.http2_settings)
        if not protocol:
            return False
        self._request = request
        self._upgrade = protocol
        self._state = _UPGRADE
        self._response_state = _R_DONE  # no response until decline_upgrade
        return True

    def _enter_chunk(self, size: int) -> None:
        """A checked chunk-size line: count it against the body limit, then read its data
        (or, for the last chunk, the trailer section)."""
        self._body_received += size
        check_chunked_body_limit(self._body_received, self._body_limit)
        if size:
            self._remaining = size
            self._state = _CHUNK_DATA
        else:
            self._trailer_size = 0
            self._trailer_lines = 0
            self._state = _TRAILERS

    def _check_partial_trailer(self, size: int) -> None:
        """431 before an unfinished trailer field line grows the section past the limit."""
        check_trailer_size(self._trailer_size + size, 0, self._max_head, self._max_headers)

    def _trailer_field(self, line: bytes) -> None:
        """One trailer field line: counted, checked, dropped (ASGI has no request trailers)."""
        self._trailer_size += len(line) + 2
        self._trailer_lines += 1
        check_trailer_size(
            self._trailer_size, self._trailer_lines, self._max_head, self._max_headers
        )
        check_trailer_field(line)

    def _enter_closed(self) -> None:
        self._state = _CLOSED
        self._keep_alive = False
        self._buffer = b""

    def _fail(self, error: PeerError, events: list[Event], head: bytes = b"") -> None:
        """Queue the answer to a peer's protocol error and stop the connection. ``head``:
        the refused head's bytes from its start (its request line, for the event)."""
        in_request = _HEAD < self._state < _DONE
        status: int | None = None
        if self._response_state != _R_BODY:
            status = error.status
            self._queue_error_response(status, in_request and self._head_request)
        self._response_state = _R_DONE
        self._errored = True
        self._enter_closed()
        line = None if in_request or not head else readable_request_line(head, self._max_line)
        events.append(
            ProtocolError(
                self._stream_id if in_request else None,
                error.message,
                status,
                method=line[0] if line else None,
                target=line[1] if line else None,
            )
        )
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
            self._out.append(self._informational_head(100, [], stream_id))

    def close_after_response(self, *, keep_idle: bool = False) -> None:
        """Graceful shutdown: the current or next response gets ``connection: close``.

        The connection closes after that response; an idle connection (nothing buffered,
        no request in progress) closes at once (:attr:`should_close` becomes true).

        ``keep_idle`` (the server drains idle keep-alive connections): a response whose
        head already went out without ``connection: close`` keeps its promise, and an idle
        connection stays open; the next request is answered with ``connection: close``.
        A client may send its next request as soon as it has a keep-alive response, so
        closing after one would cut that request.
        """
        self._close_requested = True
        if not keep_idle or self._response_state != _R_BODY:
            self._keep_alive = False
        if self._state == _HEAD and not self._buffer and not keep_idle:
            self._enter_closed()

    def partial_request_line(self) -> tuple[bytes, bytes] | None:
        """The request line of the unfinished head, when complete (see
        ``readable_request_line``): what a 408 for a late head logs."""
        return (
            readable_request_line(self._buffer, self._max_line) if self.has_partial_head else None
        )

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
            self._queue_error_response(408, False)
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
        self._out.append(self._informational_head(101, [*headers, *extra], self._stream_id))
        self._state = _SWITCHED
        self._response_state = _R_DONE
        self._request = None
        data, self._buffer = self._buffer, b""
        return data

    # --- sending --------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Bytes to write to the socket now (possibly ``b""``)."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    def send(self, event: Event) -> None:
        """Queue a response event for the current request.

        Accepts ``InformationalResponse`` (1xx other than 101), ``Response``, ``Body`` and
        ``EndBody``. Raises ``LocalProtocolError`` on misuse (wrong stream, body before the
        head, a second head, too much or too little body for ``content-length``, anything
        once the connection must close), before a library writer sees the event. After a
        protocol error of the peer, events for the failed stream are dropped silently: the
        error response already went out instead.
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
                self._start_response(event.stream_id, event.status, event.headers)
                return
        elif (
            isinstance(event, InformationalResponse)
            and event.stream_id == self._stream_id
            and self._response_state == _R_NONE
        ):
            self._send_informational(event)
            return
        self._misuse(event)

    def send_response(self, stream_id: int, status: int, headers: Headers) -> None:
        """``send(Response(stream_id, status, headers))``: the same checks and output,
        without the event object (the server's path for every response head)."""
        if stream_id == self._stream_id and self._response_state == _R_NONE:
            self._start_response(stream_id, status, headers)
        else:
            self._misuse(Response(stream_id, status, headers))

    def send_body(self, stream_id: int, data: bytes, end: bool) -> None:
        """``send(Body(stream_id, data))`` (when ``data``), then ``send(EndBody(stream_id))``
        when ``end``: the same checks and output, without the event objects (the server's
        path for every response body)."""
        if stream_id != self._stream_id or self._response_state != _R_BODY:
            if data:
                self._misuse(Body(stream_id, data))
            if end:
                self._misuse(EndBody(stream_id))
            return
        if data:
            self._send_body(data)
        if end:
            self._end_response()

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

    def _send_informational(self, event: InformationalResponse) -> None:
        status = event.status
        check_informational_status(status, event.stream_id)
        if self._http10:
            return  # RFC 9110 15.2: no 1xx responses to an HTTP/1.0 client
        if status == 100:
            if not self._expect_continue:
                return
            self._expect_continue = False
        self._out.append(self._informational_head(status, event.headers, event.stream_id))

    def _unsent_continue(self) -> bool:
        """True when a 100 Continue was asked for and never sent: the client still holds back
        the body it announced, which we don't wait for (the response closes the connection)."""
        if self._expect_continue and self._state < _DONE:
            self._expect_continue = False
            return True
        return False

    def body_sendable_elsewhere(self, stream_id: int) -> int:
        """How many body bytes of the current response the server may write to the socket
        itself (``os.sendfile``) instead of sending ``Body`` events: what its content-length
        still allows.

        0 when it may not: no response body of ``stream_id`` is in progress, the response is
        not content-length framed (chunked, close-delimited, bodiless), or bytes are still
        queued in :meth:`data_to_send` (they must reach the socket first). Report what was
        written with :meth:`body_sent_elsewhere`.
        """
        if (
            stream_id != self._stream_id
            or self._response_state != _R_BODY
            or self._framing != _F_LENGTH
            or self._out
        ):
            return 0
        return self._response_remaining

    def body_sent_elsewhere(self, stream_id: int, size: int) -> None:
        """The server wrote ``size`` body bytes of the current response to the socket itself:
        count them as a ``Body`` of that size would be (keep-alive, and the check at
        ``EndBody`` that the content-length was sent in full, stay right).

        Raises ``LocalProtocolError`` when :meth:`body_sendable_elsewhere` allows fewer.
        """
        if size < 0 or size > self.body_sendable_elsewhere(stream_id):
            self._keep_alive = False
            raise LocalProtocolError(
                f"stream {stream_id}: {size} body bytes sent elsewhere, but only "
                f"{self.body_sendable_elsewhere(stream_id)} may be"
            )
        self._response_remaining -= size

    # --- the writer (a library writer overrides these) ------------------------------------

    def _queue_error_response(self, status: int, head_request: bool) -> None:
        """Queue a short ``text/plain`` answer with ``connection: close``."""
        self._out.append(error_response(status, head_request))

    def _informational_head(self, status: int, headers: Headers, stream_id: int) -> bytes:
        """A 1xx response's head (100 Continue, 101 Switching Protocols, 103 ...)."""
        parts = [_STATUS_LINES[status]]
        names = RESPONSE_NAMES
        for name, value in headers:
            if name not in names:
                check_response_header_name(name, stream_id)
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"\r\n")
        head = b"".join(parts)
        check_no_injection(head, len(headers) + 2, stream_id)
        return head

    def _start_response(self, stream_id: int, status: int, headers: Headers) -> None:
        if not 200 <= status <= 999:  # the rule's call only when it fails (the hot path)
            check_final_status(status, stream_id)
        # RFC 9112 6.3: after a 2xx to CONNECT the connection is a tunnel, which tricorn does
        # not offer: the head is sent without framing fields (RFC 9110 9.3.6), the body is
        # dropped, and the connection closes, so no byte after it is read as HTTP.
        tunnel = self._connect and status < 300
        parts: list[bytes] = [_STATUS_LINES.get(status) or status_line(status)]
        length, chunked, app_close, skipped = self._response_fields(
            stream_id, headers, tunnel, parts
        )
        if chunked:  # only a Transfer-Encoding can conflict with a length
            check_response_framing(length, chunked, stream_id)
        keep_alive = self._keep_alive and not (app_close or tunnel)
        if (self._expect_continue and self._unsent_continue()) or (
            keep_alive
            and _HEAD < self._state < _DONE  # else the call would say True
            and not self._keep_alive_with_body_unread()
        ):
            keep_alive = False  # the client holds back its body, or we will not drain it
        if tunnel or self._head_request or status in (204, 304):
            framing = _F_NONE
        elif length is not None:
            framing = _F_LENGTH
            self._response_remaining = length
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
        check_no_injection(head, len(parts) - 3 * (len(headers) - skipped), stream_id)
        self._keep_alive = keep_alive
        self._framing = framing
        self._response_state = _R_BODY
        self._out.append(head)

    def _response_fields(
        self, stream_id: int, headers: Headers, tunnel: bool, parts: list[bytes]
    ) -> tuple[int | None, bool, bool, int]:
        """Check the app's fields and append them to ``parts``.

        Returns (content-length, chunked, app asked to close, fields left out): framing
        fields are left out of a tunnel's 2xx, and ``chunked`` out of an HTTP/1.0 answer.
        """
        length: int | None = None
        chunked = False
        app_close = False
        skipped = 0
        names = RESPONSE_NAMES
        for name, value in headers:
            lower = names.get(name)
            if lower is None:
                lower = check_response_header_name(name, stream_id)
            if lower in _RESPONSE_SPECIAL:
                if tunnel and lower != b"connection":
                    skipped += 1
                    continue
                if lower == b"content-length":
                    if length is None and value.isdigit():
                        length = int(value)  # the common case, without a call
                    else:
                        length = check_response_content_length(value, length, stream_id)
                elif lower == b"transfer-encoding":
                    check_response_transfer_encoding(value, stream_id)
                    chunked = True
                    if self._http10:
                        skipped += 1
                        continue  # HTTP/1.0 clients do not know chunked: close-delimit instead
                elif b"close" in comma_tokens(value):
                    app_close = True
            parts += (name, b": ", value, b"\r\n")
        return length, chunked, app_close, skipped

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
        elif self._keep_alive and self._state == _LENGTH_BODY:
            self._draining = True  # the rest of the body is read and dropped, then _HEAD
        elif self._state != _CLOSED:
            self._enter_closed()
