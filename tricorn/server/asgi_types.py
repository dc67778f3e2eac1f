"""ASGI types: the callables (ASGI 3.0 and 2.0) and the messages (HTTP 2.4, WebSocket 2.4,
lifespan 2.0), as the ASGI specification defines them.

The server passes messages around as ``Message`` (a plain mutable mapping, what apps send);
the ``TypedDict``s below document and type-check the keys of each message type.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Literal, NotRequired, TypedDict

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: ASGI 3: one call per connection, ``await app(scope, receive, send)``.
ASGI3App = Callable[[Scope, Receive, Send], Awaitable[None]]
#: What an ASGI 2 app returns for a scope: ``await instance(receive, send)``.
ASGI2Instance = Callable[[Receive, Send], Awaitable[None]]
#: ASGI 2 ("double callable"): ``app(scope)`` returns an ``ASGI2Instance``.
ASGI2App = Callable[[Scope], ASGI2Instance]

Headers = Iterable[tuple[bytes, bytes]]


class ASGIVersions(TypedDict):
    version: str
    spec_version: NotRequired[str]


# --- scopes -------------------------------------------------------------------------


class _ConnectionScope(TypedDict):
    """The keys an HTTP scope and a WebSocket scope share (each adds its ``type``)."""

    asgi: ASGIVersions
    http_version: str
    scheme: str
    path: str
    raw_path: bytes
    query_string: bytes
    root_path: str
    headers: Iterable[tuple[bytes, bytes]]
    client: tuple[str, int] | None
    server: tuple[str, int | None] | None
    state: NotRequired[dict[str, Any]]
    extensions: NotRequired[dict[str, dict[object, object]]]


class HTTPScope(_ConnectionScope):
    type: Literal["http"]
    method: str


class WebSocketScope(_ConnectionScope):
    type: Literal["websocket"]
    subprotocols: Iterable[str]


class LifespanScope(TypedDict):
    type: Literal["lifespan"]
    asgi: ASGIVersions
    state: NotRequired[dict[str, Any]]


# --- HTTP ---------------------------------------------------------------------------


class HTTPRequestEvent(TypedDict):
    type: Literal["http.request"]
    body: bytes
    more_body: bool


class HTTPResponseStartEvent(TypedDict):
    type: Literal["http.response.start"]
    status: int
    headers: NotRequired[Headers]
    trailers: NotRequired[bool]


class HTTPResponseBodyEvent(TypedDict):
    type: Literal["http.response.body"]
    body: NotRequired[bytes]
    more_body: NotRequired[bool]


class HTTPResponseTrailersEvent(TypedDict):
    """The HTTP trailers extension (``extensions["http.response.trailers"]``)."""

    type: Literal["http.response.trailers"]
    headers: NotRequired[Headers]
    more_trailers: NotRequired[bool]


class HTTPServerPushEvent(TypedDict):
    """The HTTP/2 server push extension (``extensions["http.response.push"]``)."""

    type: Literal["http.response.push"]
    path: str
    headers: Headers


class HTTPDisconnectEvent(TypedDict):
    type: Literal["http.disconnect"]


# --- WebSocket ----------------------------------------------------------------------


class WebSocketConnectEvent(TypedDict):
    type: Literal["websocket.connect"]


class WebSocketAcceptEvent(TypedDict):
    type: Literal["websocket.accept"]
    subprotocol: NotRequired[str | None]
    headers: NotRequired[Headers]


class WebSocketReceiveEvent(TypedDict):
    type: Literal["websocket.receive"]
    bytes: NotRequired[bytes | None]
    text: NotRequired[str | None]


class WebSocketSendEvent(TypedDict):
    type: Literal["websocket.send"]
    bytes: NotRequired[bytes | None]
    text: NotRequired[str | None]


class WebSocketDisconnectEvent(TypedDict):
    type: Literal["websocket.disconnect"]
    code: int
    reason: NotRequired[str | None]


class WebSocketCloseEvent(TypedDict):
    type: Literal["websocket.close"]
    code: NotRequired[int]
    reason: NotRequired[str | None]


class WebSocketResponseStartEvent(TypedDict):
    """The WebSocket denial response extension (``extensions["websocket.http.response"]``)."""

    type: Literal["websocket.http.response.start"]
    status: int
    headers: NotRequired[Headers]


class WebSocketResponseBodyEvent(TypedDict):
    type: Literal["websocket.http.response.body"]
    body: NotRequired[bytes]
    more_body: NotRequired[bool]


# --- lifespan -----------------------------------------------------------------------


class LifespanStartupEvent(TypedDict):
    type: Literal["lifespan.startup"]


class LifespanShutdownEvent(TypedDict):
    type: Literal["lifespan.shutdown"]


class LifespanStartupCompleteEvent(TypedDict):
    type: Literal["lifespan.startup.complete"]


class LifespanStartupFailedEvent(TypedDict):
    type: Literal["lifespan.startup.failed"]
    message: NotRequired[str]


class LifespanShutdownCompleteEvent(TypedDict):
    type: Literal["lifespan.shutdown.complete"]


class LifespanShutdownFailedEvent(TypedDict):
    type: Literal["lifespan.shutdown.failed"]
    message: NotRequired[str]


#: What ``receive()`` may return.
ReceiveEvent = (
    HTTPRequestEvent
    | HTTPDisconnectEvent
    | WebSocketConnectEvent
    | WebSocketReceiveEvent
    | WebSocketDisconnectEvent
    | LifespanStartupEvent
    | LifespanShutdownEvent
)

#: What an app may pass to ``send()``.
SendEvent = (
    HTTPResponseStartEvent
    | HTTPResponseBodyEvent
    | HTTPResponseTrailersEvent
    | HTTPServerPushEvent
    | WebSocketAcceptEvent
    | WebSocketSendEvent
    | WebSocketCloseEvent
    | WebSocketResponseStartEvent
    | WebSocketResponseBodyEvent
    | LifespanStartupCompleteEvent
    | LifespanStartupFailedEvent
    | LifespanShutdownCompleteEvent
    | LifespanShutdownFailedEvent
)


# --- the one helper built on these types -------------------------------------------------


async def send_complete_response(send: Send, status: int, content_type: bytes, body: bytes) -> None:
    """Send a whole response in two messages: its head (with Content-Type and
    Content-Length) and its one body. For the server's own answers (the demo page, a WSGI
    app's 500), where the app is the server itself."""
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
