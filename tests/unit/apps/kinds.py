"""One app of each kind ``load_app`` recognises, and some objects that are no app."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from tricorn.server.asgi_types import ASGI3App, Message, Receive, Scope, Send

#: What the apps below send, so the tests can see which one answered.
Sent = list[Message]


async def asgi3_function(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "app", "name": "asgi3_function", "scope_type": scope["type"]})


class ASGI3Instance:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "app", "name": "asgi3_instance"})


asgi3_instance = ASGI3Instance()


class SimpleASGIApp:
    """A class whose instances are ASGI 3 apps: given as the class, it is created once."""

    created = 0

    def __init__(self) -> None:
        SimpleASGIApp.created += 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "app", "name": "class_as_app"})


class NeedsArguments:
    def __init__(self, app: ASGI3App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class ASGI2Class:
    """ASGI 2 as a class: ``ASGI2Class(scope)`` is the instance, called with (receive, send)."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(self, receive: Receive, send: Send) -> None:
        await send({"type": "app", "name": "asgi2_class", "scope_type": self.scope["type"]})


def asgi2_function(scope: Scope) -> Callable[[Receive, Send], Awaitable[None]]:
    async def instance(receive: Receive, send: Send) -> None:
        await send({"type": "app", "name": "asgi2_function", "scope_type": scope["type"]})

    return instance


async def _with_greeting(greeting: str, scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "app", "name": "partial", "greeting": greeting})


partial_app = functools.partial(_with_greeting, "hello")


def sync_wrapper(scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
    """A plain function returning an awaitable is ASGI 3 too (a decorator's wrapper, say)."""
    return asgi3_function(scope, receive, send)


class Routes:
    class api:  # a namespace, as a framework's router object would be
        app = asgi3_function


def create_app() -> ASGI3App:
    return asgi3_function


def create_app_with(name: str, *, greeting: str = "hi") -> ASGI3App:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "app", "name": name, "greeting": greeting})

    return app


def failing_factory() -> ASGI3App:
    raise RuntimeError("database unreachable")


async def async_factory() -> ASGI3App:
    return asgi3_function


settings = {"debug": True}


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [])
    return [b"wsgi"]


async def one_argument(scope: Scope) -> None:
    pass


async def async_two_arguments(environ: dict[str, Any], start_response: Any) -> None:
    pass


class FlaskLike:
    """Like a Flask app: an instance whose __call__(self, environ, start_response) is WSGI."""

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"flask-like"]


flask_like = FlaskLike()


class WSGIAppClass:
    """PEP 3333's AppClass: calling the class with (environ, start_response) is the response."""

    def __init__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> None:
        self.start_response = start_response

    def __iter__(self) -> Iterator[bytes]:
        self.start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"app class"


class NotCallableInstances:
    pass
