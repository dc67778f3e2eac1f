"""Small ASGI WebSocket apps the WebSocket integration tests serve.

Apps that need to tell the test something (what ``receive`` returned, how far a send loop got)
are built by a factory around a ``Probe``: the test awaits the probe's events instead of
sleeping, since the server runs in the test's own event loop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import anyio

from tests.integration.apps import jsonable, respond
from tricorn.server.asgi_types import ASGI3App, Message, Receive, Scope, Send

#: The subprotocols the apps below speak, in the server's order of preference.
SUPPORTED_SUBPROTOCOLS = ("chat.v2", "chat.v1")


def pick_subprotocol(scope: Scope) -> str | None:
    """The first offered subprotocol the app supports (ASGI leaves the choice to the app)."""
    offered: list[str] = scope["subprotocols"]
    for name in offered:
        if name in SUPPORTED_SUBPROTOCOLS:
            return name
    return None


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """WebSocket echo (text as text, bytes as bytes); plain HTTP gets ``200 http ok``."""
    if scope["type"] == "http":
        await respond(send, 200, b"http ok", [(b"content-type", b"text/plain")])
        return
    if scope["type"] != "websocket":
        return
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept", "subprotocol": pick_subprotocol(scope)})
        elif message["type"] == "websocket.receive":
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})
        else:
            return


async def scope_dump(scope: Scope, receive: Receive, send: Send) -> None:
    """Accept, send the scope as JSON text (bytes as latin-1), wait for the client to go.

    It runs the lifespan too, putting ``{"ready": True}`` in the lifespan state, so that the
    test can see the state reach the WebSocket scope.
    """
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["ready"] = True
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept", "subprotocol": pick_subprotocol(scope)})
    await send({"type": "websocket.send", "text": json.dumps(jsonable(scope))})
    await receive()  # until the client goes


async def close_with_bye(scope: Scope, receive: Receive, send: Send) -> None:
    """Accept, wait for one message, then close with 4000 "bye"."""
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    await receive()
    await send({"type": "websocket.close", "code": 4000, "reason": "bye"})


async def close_before_accept(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer the handshake with websocket.close: the client must get 403."""
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.close", "code": 1000})


async def return_before_accept(scope: Scope, receive: Receive, send: Send) -> None:
    """Return without accepting: also a 403."""
    if scope["type"] == "websocket":
        await receive()


DENIAL_BODY = b"you shall not pass"


async def deny_401(scope: Scope, receive: Receive, send: Send) -> None:
    """The denial response extension: a 401 with a body, in two body messages."""
    if scope["type"] != "websocket":
        return
    assert "websocket.http.response" in scope["extensions"]
    await receive()
    await send(
        {
            "type": "websocket.http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"www-authenticate", b'Bearer realm="tricorn"'),
            ],
        }
    )
    await send({"type": "websocket.http.response.body", "body": DENIAL_BODY[:7], "more_body": True})
    await send({"type": "websocket.http.response.body", "body": DENIAL_BODY[7:]})


async def crash_after_accept(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    await receive()
    raise RuntimeError("the app broke after accept (expected by the test)")


async def crash_before_accept(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "websocket":
        return
    await receive()
    raise RuntimeError("the app broke before accept (expected by the test)")


@dataclass
class Probe:
    """What an app saw, for the test to await."""

    messages: list[Message] = field(default_factory=list)
    done: anyio.Event = field(default_factory=anyio.Event)
    release: anyio.Event = field(default_factory=anyio.Event)
    progress: anyio.Event = field(default_factory=anyio.Event)
    count: int = 0
    size: int = 0

    def tick(self, size: int) -> None:
        """One more message: count it and wake whoever awaits ``progress``."""
        self.count += 1
        self.size += size
        self.progress.set()
        self.progress = anyio.Event()


def recording(probe: Probe) -> ASGI3App:
    """Accept, then record every message ``receive`` gives until the disconnect."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        try:
            while True:
                message = await receive()
                probe.messages.append(message)
                if message["type"] == "websocket.connect":
                    await send({"type": "websocket.accept"})
                elif message["type"] == "websocket.disconnect":
                    return
        finally:
            probe.done.set()

    return app


def lazy_reader(probe: Probe) -> ASGI3App:
    """Accept, then do not receive until ``probe.release``; then count what arrives."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        await probe.release.wait()
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    probe.messages.append(message)
                    return
                probe.tick(len(message.get("bytes") or b""))
        finally:
            probe.done.set()

    return app


def eager_sender(probe: Probe, chunk: int, total: int) -> ASGI3App:
    """Accept, then send ``chunk``-byte messages until ``total`` bytes or an error.

    Each completed ``send`` ticks the probe, so the test can see the sends stall; the error
    that ends the loop (the client went away) is recorded in ``probe.messages``.
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        payload = b"x" * chunk
        try:
            while probe.size < total:
                await send({"type": "websocket.send", "bytes": payload})
                probe.tick(chunk)
        except Exception as error:
            probe.messages.append({"type": "error", "error": repr(error)})
        finally:
            probe.done.set()

    return app


def closing(probe: Probe, code: int = 4000) -> ASGI3App:
    """Accept, take one message, close with ``code``; record when that close returned.

    ``probe.messages`` gets ``{"type": "closed"}`` once ``send(websocket.close)`` returned
    (the close handshake is complete, or the client was given up on), then ``probe.done``.
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        try:
            await receive()
            await send({"type": "websocket.accept"})
            await receive()
            await send({"type": "websocket.close", "code": code})
            probe.messages.append({"type": "closed"})
        finally:
            probe.done.set()

    return app


def with_bystander(app: ASGI3App) -> ASGI3App:
    """``app``, except that a WebSocket on ``/bystander`` gets ``echo``."""

    async def routed(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == "/bystander":
            await echo(scope, receive, send)
        else:
            await app(scope, receive, send)

    return routed
