"""The protocol-neutral events that the sans-IO protocols and the server layer exchange.

Events from the peer come out of ``receive_data``; events for the peer go into ``send``.
Header names are lower-case bytes and values are bytes, as ASGI wants them. Every event
names the stream it belongs to: HTTP/2 uses its stream ids, HTTP/1.1 numbers the requests
on a connection 1, 2, 3, ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar, dataclass_transform

Headers = list[tuple[bytes, bytes]]

_EventT = TypeVar("_EventT", bound=type)


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def _event(cls: _EventT) -> _EventT:
    """An event class: a slotted dataclass, frozen to the type checker but not at run time.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``: for
    the request head and its end, made once per request, that was about 4,400 instructions
    of an HTTP/1.1 keep-alive hello world (callgrind); a plain ``__init__`` stores the
    fields directly. Events are never changed after they are made (mypy --strict refuses an
    assignment to a field); equality and hashing are those of a frozen dataclass.
    """
    return dataclass(slots=True, unsafe_hash=True)(cls)  # type: ignore[return-value]


class Event:
    """Base class of every protocol event."""

    __slots__ = ()


@_event
class StreamEvent(Event):
    """An event of one stream (a request and its response); its id comes first.

    HTTP/2 stream ids are the peer's; HTTP/1.1 numbers the requests of a connection 1, 2, 3...
    """

    stream_id: int


# --- from the peer ---------------------------------------------------------------------


@_event
class Request(StreamEvent):
    """A request head: the start of a new stream.

    ``target`` is the raw request target (path and query, undecoded). ``http_version`` is
    ``"1.0"``, ``"1.1"`` or ``"2"``. ``scheme`` is the HTTP/2 ``:scheme`` pseudo-header
    (``None`` on HTTP/1.1, where the connection decides). For HTTP/2 ``:authority`` is
    already turned into a ``host`` header; ``protocol`` is the RFC 8441 ``:protocol``.
    """

    method: bytes
    target: bytes
    headers: Headers
    http_version: str
    scheme: bytes | None = None
    protocol: bytes | None = None
    #: False when the request carries no body at all (no ``Body``/``EndBody`` follows).
    expects_body: bool = True
    #: True when the client sent ``Expect: 100-continue``: the protocol answers
    #: ``100 Continue`` when the server calls ``continue_request`` (the app's first read).
    expect_continue: bool = False


@_event
class Body(StreamEvent):
    """A piece of a message body (request body from the peer, response body to it)."""

    data: bytes


@_event
class EndBody(StreamEvent):
    """The end of a message body; for requests no more ``Body`` follows on this stream."""


@_event
class Trailers(StreamEvent):
    """Trailing headers; they also end the message."""

    headers: Headers


@_event
class StreamReset(StreamEvent):
    """The stream was reset (HTTP/2 RST_STREAM), by the peer or, when sent, by us."""

    error_code: int = 0


@_event
class ConnectionClosed(Event):
    """The peer closed the connection, or the protocol decided it must close.

    After this event the server writes what ``data_to_send`` still holds, then closes.
    """

    error_code: int | None = None
    reason: str = ""


@_event
class ProtocolError(Event):
    """The peer broke the protocol.

    The answer (an error response, a GOAWAY or RST_STREAM, a close frame) is already
    queued in ``data_to_send``. ``stream_id`` is ``None`` when the whole connection is
    concerned, in which case a ``ConnectionClosed`` follows. ``status`` is the HTTP status
    sent (HTTP/1.1), ``error_code`` the HTTP/2 error code or the WebSocket close code.
    ``method`` and ``target`` are those of a refused request head, when readable (for its
    access log line; not compared).
    """

    stream_id: int | None
    message: str
    status: int | None = None
    error_code: int | None = None
    method: bytes | None = field(default=None, compare=False)
    target: bytes | None = field(default=None, compare=False)


@_event
class H2CPrefaceReceived(Event):
    """An HTTP/1.1 connection received the HTTP/2 connection preface (prior knowledge).

    ``data`` holds every byte received so far, preface included, to feed an HTTP/2
    protocol object. The HTTP/1.1 protocol produces nothing after this event.
    """

    data: bytes


@_event
class UpgradeRequested(StreamEvent):
    """An HTTP/1.1 request asks to switch protocols (``Upgrade: h2c`` or ``websocket``).

    ``request`` is the request head, also given to the server so that, if it does not take
    the upgrade, it can serve the request as plain HTTP by calling ``decline_upgrade``.
    ``data`` holds the bytes received after the request head (the start of the new
    protocol, or the request body when the upgrade is declined).
    """

    upgrade: bytes
    request: Request
    data: bytes = b""


@_event
class WindowUpdated(StreamEvent):
    """HTTP/2: the peer opened a flow-control window; ``stream_id`` 0 is the connection."""


@_event
class PriorityUpdated(StreamEvent):
    """HTTP/2: the sending order among streams changed."""


# --- to the peer -----------------------------------------------------------------------


@_event
class Response(StreamEvent):
    """A final response head."""

    status: int
    headers: Headers = field(default_factory=list)


@_event
class InformationalResponse(StreamEvent):
    """A 1xx response head (100 Continue, 103 Early Hints)."""

    status: int
    headers: Headers = field(default_factory=list)


@_event
class PushPromise(StreamEvent):
    """HTTP/2 server push: promise a response for ``path`` on a new stream."""

    path: bytes
    headers: Headers = field(default_factory=list)
