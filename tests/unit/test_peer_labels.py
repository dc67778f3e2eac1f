"""Peers in error-log lines: ``host:port``, an IPv6 host in brackets (``[::1]:56924``, as
in the access log), a unix socket peer by name: ``Connection._peer`` and the PROXY step's
label. The lines themselves, over real IPv6 sockets: tests/integration
(test_http11_server.py, test_proxy_protocol.py)."""

from __future__ import annotations

import pytest
from anyio.abc import ByteStream

from tricorn import Config
from tricorn.server import proxy_protocol
from tricorn.server.asgi_types import Receive, Scope, Send
from tricorn.server.http11_connection import HTTP11Connection
from tricorn.server.state import ServerState

pytestmark = pytest.mark.anyio

PEERS = [
    (("127.0.0.1", 56924), "127.0.0.1:56924"),
    (("::1", 56924), "[::1]:56924"),
    (("2001:db8::7", 443), "[2001:db8::7]:443"),
    (("::ffff:192.0.2.1", 80), "[::ffff:192.0.2.1]:80"),
]


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("not called")


class _Transport(ByteStream):
    async def receive(self, max_bytes: int = 65536) -> bytes:
        raise AssertionError("not read")

    async def send(self, item: bytes) -> None:
        raise AssertionError("not written")

    async def send_eof(self) -> None:
        return

    async def aclose(self) -> None:
        return


@pytest.mark.parametrize(("client", "expected"), [*PEERS, (None, "client")])
async def test_connection_peer(client: tuple[str, int] | None, expected: str) -> None:
    state = ServerState(Config(access_log=False), _app, {})
    connection = HTTP11Connection(state, _Transport(), client=client, server=None)
    assert connection._peer() == expected


@pytest.mark.parametrize(("client", "expected"), [*PEERS, (None, "unix socket peer")])
def test_proxy_protocol_label(client: tuple[str, int] | None, expected: str) -> None:
    assert proxy_protocol._label(client) == expected
