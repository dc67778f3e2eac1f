"""Small ASGI apps the integration tests serve."""

from __future__ import annotations

import json
from typing import Any

import anyio

from tricorn.server.asgi_types import Receive, Scope, Send


async def respond(send: Send, status: int, body: bytes, headers: list[Any] | None = None) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", str(len(body)).encode()), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await respond(send, 200, b"Hello, world!", [(b"content-type", b"text/plain")])


async def read_body(receive: Receive) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return bytes(body)
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return bytes(body)


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer with the request body."""
    if scope["type"] != "http":
        return
    body = await read_body(receive)
    await respond(send, 200, body)


def jsonable(value: Any) -> Any:
    """``value`` (a scope, say) as JSON can hold it: bytes as latin-1 strings, tuples as
    lists."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    return value


async def scope_dump(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer with the scope as JSON (bytes as latin-1 strings)."""
    if scope["type"] != "http":
        return
    await read_body(receive)
    document = jsonable({key: value for key, value in scope.items() if key != "state"})
    document["state_keys"] = sorted(scope.get("state", {}))
    await respond(
        send, 200, json.dumps(document).encode(), [(b"content-type", b"application/json")]
    )


async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
    """Stream three chunks with no content-length (chunked on HTTP/1.1)."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for part in (b"one,", b"two,", b"three"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def raises(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    raise RuntimeError("secret detail that must not reach the client")


async def raises_after_responding(scope: Scope, receive: Receive, send: Send) -> None:
    """Sends a whole 500 and then raises, as Starlette's ServerErrorMiddleware does (it
    answers the error itself and re-raises it for the server to log)."""
    if scope["type"] != "http":
        return
    await respond(send, 500, b"Internal Server Error")
    raise RuntimeError("raised after the response was complete")


async def no_response(scope: Scope, receive: Receive, send: Send) -> None:
    return


def bad_message(message: dict[str, Any]) -> Any:
    """An app that sends ``message`` first (and a valid response after, if it can)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send(message)
        await respond(send, 200, b"should not be seen")

    return app


def sleeper(seconds: float, started: anyio.Event | None = None) -> Any:
    """An app that waits ``seconds`` before answering."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if started is not None:
            started.set()
        await anyio.sleep(seconds)
        await respond(send, 200, b"slept")

    return app


async def startup_raises(scope: Scope, receive: Receive, send: Send) -> None:
    """Speaks lifespan, but its startup raises once it has the startup event."""
    if scope["type"] == "lifespan":
        await receive()
        raise RuntimeError("cannot reach the database")
    await respond(send, 200, b"served")


async def rejects_lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    """Knows only HTTP: any other scope type is refused before anything else is done."""
    if scope["type"] != "http":
        raise ValueError(f"unsupported scope type {scope['type']!r}")
    await respond(send, 200, b"served")


async def head_then_hang(scope: Scope, receive: Receive, send: Send) -> None:
    """Starts a response (the client sees the request is in the app), then hangs."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"started", "more_body": True})
    await anyio.sleep_forever()
