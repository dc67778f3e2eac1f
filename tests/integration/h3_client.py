"""An HTTP/3 test client on aioquic's asyncio API, run in a thread with its own event loop.

The server under test runs in the test's event loop (trio or asyncio); the client, being
asyncio-only, gets a thread and ``asyncio.run`` of its own (``anyio.to_thread.run_sync``).
Every call opens one QUIC connection to 127.0.0.1, runs its requests on it and closes it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3 import events as h3_events
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.quic import events as quic_events
from aioquic.quic.configuration import QuicConfiguration

T = TypeVar("T")
#: Seconds any one client call may take (a hang guard, not a measurement).
GUARD = 20.0


@dataclass
class H3Response:
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    #: How many DATA pieces the body arrived in.
    pieces: int = 0
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    reset: int | None = None
    #: 1xx heads (103 Early Hints) before the final one: (status, fields).
    informational: list[tuple[int, list[tuple[bytes, bytes]]]] = field(default_factory=list)

    def header(self, name: bytes) -> bytes | None:
        return next((value for key, value in self.headers if key == name), None)


class _Exchange:
    def __init__(self) -> None:
        self.response = H3Response()
        self.head = asyncio.Event()
        self.done = asyncio.Event()
        self.pieces: list[bytes] = []


class H3Client(QuicConnectionProtocol):
    """One client QUIC connection speaking HTTP/3."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self._exchanges: dict[int, _Exchange] = {}
        self.authority = b"localhost"

    def quic_event_received(self, event: quic_events.QuicEvent) -> None:
        if isinstance(event, quic_events.StreamReset):
            exchange = self._exchanges.get(event.stream_id)
            if exchange is not None:
                exchange.response.reset = event.error_code
                exchange.head.set()
                exchange.done.set()
        for h3_event in self.h3.handle_event(event):
            exchange = self._exchanges.get(getattr(h3_event, "stream_id", -1))
            if exchange is None:
                continue
            response = exchange.response
            if isinstance(h3_event, h3_events.HeadersReceived):
                if response.status:
                    response.trailers = list(h3_event.headers)
                else:
                    headers = list(h3_event.headers)
                    status = int(dict(headers)[b":status"])
                    fields = [(k, v) for k, v in headers if k != b":status"]
                    if status >= 200:
                        response.status = status
                        response.headers = fields
                        exchange.head.set()
                    else:
                        response.informational.append((status, fields))
            elif isinstance(h3_event, h3_events.DataReceived) and h3_event.data:
                exchange.pieces.append(h3_event.data)
                response.pieces += 1
            if getattr(h3_event, "stream_ended", False):
                response.body = b"".join(exchange.pieces)
                exchange.done.set()

    def start(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
        *,
        end: bool = True,
    ) -> int:
        """Send a request head (and body); return its stream id."""
        stream_id = self._quic.get_next_available_stream_id()
        self._exchanges[stream_id] = _Exchange()
        fields = [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", self.authority),
            (b":path", path.encode()),
            *(headers or []),
        ]
        self.h3.send_headers(stream_id, fields, end_stream=body is None and end)
        if body is not None:
            self.h3.send_data(stream_id, body, end_stream=end)
        self.transmit()
        return stream_id

    def send_body(self, stream_id: int, data: bytes, *, end: bool) -> None:
        self.h3.send_data(stream_id, data, end_stream=end)
        self.transmit()

    def reset(self, stream_id: int, error_code: int = 0x10C) -> None:
        """Reset the request (RESET_STREAM and STOP_SENDING: H3_REQUEST_CANCELLED)."""
        self._quic.reset_stream(stream_id, error_code)
        self._quic.stop_stream(stream_id, error_code)
        self.transmit()

    async def head(self, stream_id: int) -> H3Response:
        exchange = self._exchanges[stream_id]
        await exchange.head.wait()
        return exchange.response

    async def response(self, stream_id: int) -> H3Response:
        exchange = self._exchanges[stream_id]
        await exchange.done.wait()
        return exchange.response

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> H3Response:
        return await self.response(self.start(method, path, body, headers))


def client_configuration(ca_file: str) -> QuicConfiguration:
    configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    configuration.server_name = "localhost"
    configuration.verify_mode = ssl.CERT_REQUIRED
    configuration.load_verify_locations(cafile=ca_file)
    return configuration


def run_client(
    port: int, ca_file: str, script: Callable[[H3Client], Awaitable[T]], host: str = "127.0.0.1"
) -> T:
    """Connect to ``host``:``port``, run ``script(client)``, close; blocking (call it
    through ``anyio.to_thread.run_sync``)."""

    async def main() -> T:
        async with asyncio.timeout(GUARD):
            async with connect(
                host,
                port,
                configuration=client_configuration(ca_file),
                create_protocol=H3Client,
            ) as client:
                assert isinstance(client, H3Client)
                return await script(client)

    return asyncio.run(main())
