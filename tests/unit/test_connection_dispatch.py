"""How ``serve`` picks a connection class: by ALPN protocol, and by the ``Handoff`` a
connection returns when it gives its transport to another protocol (both backends)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from tricorn import Config
from tricorn.server.asgi_types import Receive, Scope, Send
from tricorn.server.connection import Connection, Handoff
from tricorn.server.http2_connection import HTTP2Connection
from tricorn.server.http11_connection import HTTP11Connection
from tricorn.server.serve import CONNECTION_CLASSES, connection_class
from tricorn.server.state import ServerState

pytestmark = pytest.mark.anyio

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@pytest.mark.parametrize(
    ("alpn", "expected"),
    [
        (None, HTTP11Connection),  # cleartext, or TLS without ALPN
        ("http/1.1", HTTP11Connection),
        ("h2", HTTP2Connection),
        ("spdy/3.1", HTTP11Connection),  # a protocol we have no class for: HTTP/1.1
    ],
)
def test_the_alpn_protocol_picks_the_connection_class(
    alpn: str | None, expected: type[Connection[Any]]
) -> None:
    assert connection_class(alpn) is expected


def test_every_table_entry_is_a_connection() -> None:
    assert all(issubclass(cls, Connection) for cls in CONNECTION_CLASSES.values())


class _Transport(anyio.abc.ByteStream):
    """The client's bytes, then its end; what the server writes is kept."""

    def __init__(self, incoming: bytes) -> None:
        self.incoming = [incoming]
        self.written = b""
        self.closed = False

    async def receive(self, max_bytes: int = 65536) -> bytes:
        await anyio.lowlevel.checkpoint()
        if not self.incoming:
            raise anyio.EndOfStream
        return self.incoming.pop(0)

    async def send(self, item: bytes) -> None:
        self.written += item

    async def send_eof(self) -> None:
        return

    async def aclose(self) -> None:
        self.closed = True


async def test_http11_hands_an_http2_preface_to_the_h2_entry() -> None:
    state = ServerState(Config(access_log=False), _app, {})
    transport = _Transport(PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    connection = HTTP11Connection(state, transport, client=None, server=None)

    with anyio.fail_after(5):
        handoff = await connection.run()

    assert isinstance(handoff, Handoff)
    assert CONNECTION_CLASSES[handoff.protocol] is HTTP2Connection
    assert handoff.data.startswith(PREFACE)  # the bytes read go on to HTTP/2
    assert handoff.upgrade is None  # prior knowledge: no request to answer on stream 1
    assert not transport.closed  # the transport is left open for the next connection
    assert transport.written == b""  # HTTP/1.1 answered nothing
    assert not state.connections
    assert not _app_calls


async def test_a_connection_that_ends_closes_its_transport_and_returns_no_handoff() -> None:
    state = ServerState(Config(access_log=False), _app, {})
    transport = _Transport(b"")
    connection = HTTP11Connection(state, transport, client=None, server=None)

    with anyio.fail_after(5):
        handoff = await connection.run()

    assert handoff is None
    assert transport.closed
    assert not state.connections


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    _app_calls.append(scope)


_app_calls: list[Scope] = []
