"""An HTTP/3 test client on aioquic's asyncio API, run in a thread with its own event loop.

The server under test runs in the test's event loop (trio or asyncio); the client, being
asyncio-only, gets a thread and ``asyncio.run`` of its own (``anyio.to_thread.run_sync``).
Every call opens one QUIC connection to 127.0.0.1, runs its requests on it and closes it.
``H3WebSocket`` is a WebSocket over HTTP/3 (RFC 9220: extended CONNECT, frames in DATA)
framed with wsproto's client-side frame layer.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3 import events as h3_events
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.quic import events as quic_events
from aioquic.quic.configuration import QuicConfiguration
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import FrameProtocol, Opcode

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
        #: Set when a piece arrives or the stream ends (cleared by who waits on it).
        self.arrived = asyncio.Event()


class H3Client(QuicConnectionProtocol):
    """One client QUIC connection speaking HTTP/3."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self._exchanges: dict[int, _Exchange] = {}
        self.authority = b"localhost"
        #: How the connection ended, once it has.
        self.terminated: quic_events.ConnectionTerminated | None = None

    def quic_event_received(self, event: quic_events.QuicEvent) -> None:
        if isinstance(event, quic_events.ConnectionTerminated):
            self.terminated = event
        if isinstance(event, quic_events.StreamReset):
            exchange = self._exchanges.get(event.stream_id)
            if exchange is not None:
                exchange.response.reset = event.error_code
                exchange.head.set()
                exchange.done.set()
                exchange.arrived.set()
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
                exchange.arrived.set()
            if getattr(h3_event, "stream_ended", False):
                response.body = b"".join(exchange.pieces)
                exchange.done.set()
                exchange.arrived.set()

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

    async def websocket(
        self,
        path: str,
        headers: list[tuple[bytes, bytes]] | None = None,
        *,
        protocol: bytes = b"websocket",
        version: bytes | None = b"13",
        compression: bool = False,
    ) -> tuple[H3Response, H3WebSocket]:
        """RFC 9220's opening handshake: the response head (200 to accept) and the socket
        (speaking permessage-deflate when ``compression`` and the server accepted it)."""
        fields = [(b":protocol", protocol)]
        if version is not None:
            fields.append((b"sec-websocket-version", version))
        stream_id = self.start("CONNECT", path, headers=[*fields, *(headers or [])], end=False)
        head = await self.head(stream_id)
        extensions: list[Extension] = []
        accepted = head.header(b"sec-websocket-extensions")
        if compression and accepted is not None:
            deflate = PerMessageDeflate()
            deflate.finalize(accepted.decode("ascii"))
            extensions.append(deflate)
        return head, H3WebSocket(self, stream_id, extensions)


class H3WebSocket:
    """The client side of a WebSocket on one HTTP/3 request stream."""

    def __init__(
        self, client: H3Client, stream_id: int, extensions: list[Extension] | None = None
    ) -> None:
        self.client = client
        self.stream_id = stream_id
        self._frames = FrameProtocol(client=True, extensions=extensions or [])
        self._parsed = 0  # pieces of the stream handed to the frame parser

    def send(self, message: str | bytes) -> None:
        data = bytes(self._frames.send_data(message, fin=True))
        self.client.send_body(self.stream_id, data, end=False)

    def close(self, code: int = 1000, reason: str = "", *, end: bool = False) -> None:
        """Send a close frame (and end the stream with it when ``end``)."""
        self.client.send_body(self.stream_id, bytes(self._frames.close(code, reason)), end=end)

    def end(self) -> None:
        """End our side of the stream (after the closing handshake)."""
        self.client.send_body(self.stream_id, b"", end=True)

    async def receive(self) -> str | bytes | tuple[int, str]:
        """The next message, or ``(code, reason)`` of a close frame; ``EOFError`` when the
        stream ended (or was reset) first."""
        exchange = self.client._exchanges[self.stream_id]
        parts: list[Any] = []
        while True:
            for frame in self._frames.received_frames():
                if frame.opcode is Opcode.CLOSE:
                    code, reason = cast(tuple[int, str], frame.payload)
                    return int(code), str(reason)
                if frame.opcode in (Opcode.PING, Opcode.PONG):
                    continue
                parts.append(frame.payload)
                if frame.message_finished:
                    return "".join(parts) if isinstance(parts[0], str) else b"".join(parts)
            if self._parsed < len(exchange.pieces):
                for piece in exchange.pieces[self._parsed :]:
                    self._frames.receive_bytes(piece)
                self._parsed = len(exchange.pieces)
                continue
            if exchange.done.is_set():
                raise EOFError(f"stream ended (reset: {exchange.response.reset})")
            exchange.arrived.clear()
            await exchange.arrived.wait()

    async def ended(self) -> H3Response:
        """Wait for the server to end (or reset) the stream."""
        return await self.client.response(self.stream_id)


def client_configuration(
    ca_file: str, client_cert: tuple[str, str] | None = None
) -> QuicConfiguration:
    """Verify the server against ``ca_file``; offer ``client_cert`` (certificate file, key
    file) when the server asks for one."""
    configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    configuration.server_name = "localhost"
    configuration.verify_mode = ssl.CERT_REQUIRED
    configuration.load_verify_locations(cafile=ca_file)
    if client_cert is not None:
        configuration.load_cert_chain(*client_cert)
    return configuration


def run_client(
    port: int,
    ca_file: str,
    script: Callable[[H3Client], Awaitable[T]],
    host: str = "127.0.0.1",
    client_cert: tuple[str, str] | None = None,
) -> T:
    """Connect to ``host``:``port``, run ``script(client)``, close; blocking (call it
    through ``anyio.to_thread.run_sync``). A handshake the server refuses raises
    ``ConnectionError``."""

    async def main() -> T:
        async with asyncio.timeout(GUARD):
            async with connect(
                host,
                port,
                configuration=client_configuration(ca_file, client_cert),
                create_protocol=H3Client,
            ) as client:
                assert isinstance(client, H3Client)
                return await script(client)

    return asyncio.run(main())


def refused_handshake(
    port: int, ca_file: str, client_cert: tuple[str, str] | None = None
) -> tuple[quic_events.ConnectionTerminated, H3Response | None]:
    """Connect and send a request, expecting the server to refuse the handshake: how it
    closed the connection, and the response if one came all the same (blocking). In TLS
    1.3 the client's side of the handshake may complete before the server has checked the
    client's certificate: the refusal then comes as the server's CONNECTION_CLOSE."""
    made: list[H3Client] = []

    def create(*args: Any, **kwargs: Any) -> H3Client:
        made.append(H3Client(*args, **kwargs))
        return made[-1]

    async def main() -> tuple[quic_events.ConnectionTerminated, H3Response | None]:
        response = None
        async with asyncio.timeout(GUARD):
            try:
                async with connect(
                    "127.0.0.1",
                    port,
                    configuration=client_configuration(ca_file, client_cert),
                    create_protocol=create,
                    wait_connected=True,
                ) as client:
                    assert isinstance(client, H3Client)
                    stream_id = client.start("GET", "/")
                    closed = asyncio.ensure_future(client.wait_closed())
                    answered = asyncio.ensure_future(client.response(stream_id))
                    await asyncio.wait([closed, answered], return_when=asyncio.FIRST_COMPLETED)
                    if answered.done():
                        response = answered.result()
                    else:
                        answered.cancel()
            except ConnectionError:
                pass
        terminated = made[0].terminated
        assert terminated is not None
        return terminated, response

    return asyncio.run(main())
