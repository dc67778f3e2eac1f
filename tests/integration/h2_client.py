"""A small raw HTTP/2 client for tests: frames in and out over an anyio byte stream.

It speaks frames (hyperframe) and HPACK (hpack) directly instead of driving h2's client
state machine, so that tests can see every frame in order, send what a normal client would
not (a stream after GOAWAY, no WINDOW_UPDATE at all) and keep reading after a GOAWAY, which
h2's client refuses to do. It answers SETTINGS and PING itself; everything else is the test's
business. Flow control is manual: received DATA is acknowledged only while ``auto_window``
is true, and the client's own send windows are tracked so that ``send_body`` never overruns
the server's windows.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
from anyio.abc import ByteStream
from anyio.streams.tls import TLSAttribute
from hpack import Decoder, Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DEFAULT_WINDOW = 65535
DEFAULT_FRAME_SIZE = 16384

Headers = list[tuple[bytes, bytes]]
Predicate = Callable[["Received"], bool]

# Setting codes (RFC 9113 6.5.2).
HEADER_TABLE_SIZE = SettingsFrame.HEADER_TABLE_SIZE
ENABLE_PUSH = SettingsFrame.ENABLE_PUSH
MAX_CONCURRENT_STREAMS = SettingsFrame.MAX_CONCURRENT_STREAMS
INITIAL_WINDOW_SIZE = SettingsFrame.INITIAL_WINDOW_SIZE
MAX_FRAME_SIZE = SettingsFrame.MAX_FRAME_SIZE

PRIORITY_UPDATE = 0x10  # frame type (RFC 9218 7.1)

# Error codes (RFC 9113 7).
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
REFUSED_STREAM = 0x7
CANCEL = 0x8


@dataclass
class Received:
    """One frame from the server; header blocks (with their CONTINUATIONs) decoded."""

    kind: str
    stream_id: int
    flags: frozenset[str]
    data: bytes = b""
    headers: Headers = field(default_factory=list)
    error_code: int = 0
    last_stream_id: int = 0
    promised_stream_id: int = 0
    increment: int = 0
    settings: dict[int, int] = field(default_factory=dict)

    @property
    def end_stream(self) -> bool:
        return "END_STREAM" in self.flags

    def header(self, name: bytes) -> bytes | None:
        return next((value for key, value in self.headers if key == name), None)


@dataclass
class Response:
    """What the server sent on one stream, in order."""

    stream_id: int
    frames: list[Received]

    @property
    def heads(self) -> list[Received]:
        return [frame for frame in self.frames if frame.kind == "HEADERS"]

    @property
    def informational(self) -> list[Received]:
        return [f for f in self.heads if (f.header(b":status") or b"").startswith(b"1")]

    @property
    def final(self) -> Received:
        return next(f for f in self.heads if f.header(b":status") and f not in self.informational)

    @property
    def status(self) -> int:
        return int(self.final.header(b":status") or b"0")

    @property
    def body(self) -> bytes:
        return b"".join(frame.data for frame in self.frames if frame.kind == "DATA")

    @property
    def trailers(self) -> Received | None:
        heads = [f for f in self.heads if f.header(b":status") is None]
        return heads[0] if heads else None

    @property
    def reset(self) -> Received | None:
        return next((f for f in self.frames if f.kind == "RST_STREAM"), None)


class ConnectionClosed(Exception):
    """The server closed the connection while the test waited for a frame."""


class H2Client:
    """One HTTP/2 connection to the server under test."""

    def __init__(
        self, transport: ByteStream, initial_data: bytes = b"", *, first_stream_id: int = 1
    ) -> None:
        """``initial_data``: bytes already read (after an h2c 101); ``first_stream_id``: 3
        after an upgrade, whose request is stream 1."""
        self.transport = transport
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.frames: list[Received] = []
        self.closed = False
        #: Acknowledge received DATA at once (WINDOW_UPDATE for the stream and connection).
        self.auto_window = True
        self.server_settings: dict[int, int] = {}
        self.connection_send_window = DEFAULT_WINDOW
        self._stream_send_windows: dict[int, int] = {}
        self._next_stream_id = first_stream_id
        self._buffer = bytearray(initial_data)
        self._block: tuple[Frame, bytearray] | None = None
        self._window_opened = anyio.Event()
        self._ping_counter = 0

    # --- connection -------------------------------------------------------------------

    async def start(self, settings: dict[int, int] | None = None, *, preface: bool = True) -> None:
        """Send the preface and our SETTINGS, then wait for the server's SETTINGS."""
        frame = SettingsFrame(0, settings=dict(settings or {}))
        await self.transport.send((PREFACE if preface else b"") + frame.serialize())
        await self.wait_for(lambda f: f.kind == "SETTINGS" and "ACK" not in f.flags)

    @property
    def alpn_protocol(self) -> str | None:
        protocol: str | None = self.transport.extra(TLSAttribute.alpn_protocol, None)
        return protocol

    async def send_frame(self, frame: Frame) -> None:
        await self.transport.send(frame.serialize())

    def next_stream_id(self) -> int:
        stream_id = self._next_stream_id
        self._next_stream_id += 2
        return stream_id

    # --- requests ---------------------------------------------------------------------

    def request_headers(
        self,
        method: str = "GET",
        path: str = "/",
        headers: Iterable[tuple[bytes, bytes]] = (),
        *,
        authority: str = "127.0.0.1",
        scheme: str = "http",
    ) -> Headers:
        return [
            (b":method", method.encode()),
            (b":scheme", scheme.encode()),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
            *headers,
        ]

    async def send_headers(
        self, stream_id: int, headers: Headers, *, end_stream: bool = False
    ) -> None:
        """Send a header block (a request head or trailers) in one HEADERS frame."""
        frame = HeadersFrame(stream_id, self.encoder.encode(headers))
        frame.flags.add("END_HEADERS")
        if end_stream:
            frame.flags.add("END_STREAM")
        self._stream_send_windows.setdefault(stream_id, self._initial_send_window())
        await self.send_frame(frame)

    async def request(
        self,
        method: str = "GET",
        path: str = "/",
        headers: Iterable[tuple[bytes, bytes]] = (),
        *,
        body: bytes | None = None,
        end_stream: bool = True,
        authority: str = "127.0.0.1",
        scheme: str = "http",
    ) -> int:
        """Open a stream; ``body`` (within the windows) follows the head. Returns its id."""
        stream_id = self.next_stream_id()
        head = self.request_headers(method, path, headers, authority=authority, scheme=scheme)
        await self.send_headers(stream_id, head, end_stream=end_stream and body is None)
        if body is not None:
            await self.send_data(stream_id, body, end_stream=end_stream)
        return stream_id

    def sendable(self, stream_id: int) -> int:
        """Body bytes the server's windows let us send on the stream now."""
        stream_window = self._stream_send_windows.get(stream_id, self._initial_send_window())
        return max(0, min(stream_window, self.connection_send_window))

    async def send_data(self, stream_id: int, data: bytes, *, end_stream: bool = False) -> None:
        """Send body bytes that fit the windows (asserts they do), split into frames."""
        assert len(data) <= self.sendable(stream_id), "the data does not fit the windows"
        frame_size = self.server_settings.get(MAX_FRAME_SIZE, DEFAULT_FRAME_SIZE)
        chunks = [data[i : i + frame_size] for i in range(0, len(data), frame_size)] or [b""]
        for index, chunk in enumerate(chunks):
            frame = DataFrame(stream_id, chunk)
            if end_stream and index == len(chunks) - 1:
                frame.flags.add("END_STREAM")
            self.connection_send_window -= len(chunk)
            self._stream_send_windows[stream_id] = self._stream_send_windows.get(
                stream_id, self._initial_send_window()
            ) - len(chunk)
            await self.send_frame(frame)

    async def send_body(self, stream_id: int, data: bytes, *, end_stream: bool = True) -> None:
        """Send the whole body, waiting for WINDOW_UPDATEs whenever a window is exhausted."""
        view = memoryview(data)
        while True:
            size = min(len(view), self.sendable(stream_id))
            last = size == len(view)
            if size or last:
                await self.send_data(stream_id, bytes(view[:size]), end_stream=end_stream and last)
                view = view[size:]
            if last:
                return
            await self.wait_for(lambda f: f.kind in {"WINDOW_UPDATE", "SETTINGS"})

    async def reset(self, stream_id: int, error_code: int = CANCEL) -> None:
        await self.send_frame(RstStreamFrame(stream_id, error_code))

    async def open_window(self, stream_id: int, increment: int) -> None:
        """Send WINDOW_UPDATE (``stream_id`` 0: the connection window)."""
        await self.send_frame(WindowUpdateFrame(stream_id, increment))

    async def priority_update(self, stream_id: int, value: bytes) -> None:
        """Send an RFC 9218 PRIORITY_UPDATE frame (type 0x10, on stream 0)."""
        payload = stream_id.to_bytes(4, "big") + value
        header = len(payload).to_bytes(3, "big") + bytes([PRIORITY_UPDATE, 0]) + bytes(4)
        await self.transport.send(header + payload)

    async def ping(self) -> None:
        """Round trip: once the PING ACK is back, the server has read all we sent before."""
        self._ping_counter += 1
        opaque = self._ping_counter.to_bytes(8, "big")
        await self.send_frame(PingFrame(0, opaque))
        await self.wait_for(lambda f: f.kind == "PING" and "ACK" in f.flags and f.data == opaque)

    # --- reading ----------------------------------------------------------------------

    async def next_frame(self) -> Received:
        """Read the next frame (or a whole header block); raise ``ConnectionClosed`` at EOF."""
        while True:
            frame = self._parse_one()
            if frame is not None:
                received = self._complete(frame)
                if received is not None:
                    await self._react(received)
                    self.frames.append(received)
                    return received
                continue
            if self.closed:
                raise ConnectionClosed("the server closed the connection")
            try:
                data = await self.transport.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, ssl.SSLError, OSError):
                data = b""
            if not data:
                self.closed = True
            self._buffer += data

    async def wait_for(
        self, predicate: Predicate, *, timeout: float = 5.0, include_seen: bool = False
    ) -> Received:
        """Read frames until one matches ``predicate`` (``include_seen``: look back first)."""
        if include_seen:
            for frame in self.frames:
                if predicate(frame):
                    return frame
        with anyio.fail_after(timeout):
            while True:
                frame = await self.next_frame()
                if predicate(frame):
                    return frame

    def stream_frames(self, stream_id: int) -> list[Received]:
        return [frame for frame in self.frames if frame.stream_id == stream_id]

    def stream_ended(self, stream_id: int) -> bool:
        return any(
            frame.end_stream or frame.kind == "RST_STREAM"
            for frame in self.stream_frames(stream_id)
        )

    async def response(self, stream_id: int, *, timeout: float = 5.0) -> Response:
        """Read until the stream ends (END_STREAM or RST_STREAM); return its frames."""
        with anyio.fail_after(timeout):
            while not self.stream_ended(stream_id):
                await self.next_frame()
        return Response(stream_id, self.stream_frames(stream_id))

    async def read_until_closed(self, *, timeout: float = 5.0) -> list[Received]:
        """Read every frame until the server closes the connection."""
        start = len(self.frames)
        with anyio.fail_after(timeout):
            try:
                while True:
                    await self.next_frame()
            except ConnectionClosed:
                pass
        return self.frames[start:]

    def _parse_one(self) -> Frame | None:
        buffer = self._buffer
        if len(buffer) < 9:
            return None
        frame, length = Frame.parse_frame_header(memoryview(bytes(buffer[:9])))
        if len(buffer) < 9 + length:
            return None
        frame.parse_body(memoryview(bytes(buffer[9 : 9 + length])))
        del buffer[: 9 + length]
        return frame

    def _complete(self, frame: Frame) -> Received | None:
        """Join header blocks with their CONTINUATIONs; convert to ``Received``."""
        if isinstance(frame, HeadersFrame | PushPromiseFrame) and "END_HEADERS" not in frame.flags:
            self._block = (frame, bytearray(frame.data))
            return None
        if isinstance(frame, ContinuationFrame):
            assert self._block is not None, "CONTINUATION outside a header block"
            first, block = self._block
            block += frame.data
            if "END_HEADERS" not in frame.flags:
                return None
            self._block = None
            return self._convert(first, bytes(block))
        return self._convert(frame, None)

    def _convert(self, frame: Frame, block: bytes | None) -> Received:
        kind = frame.type
        name = {
            0x0: "DATA",
            0x1: "HEADERS",
            0x2: "PRIORITY",
            0x3: "RST_STREAM",
            0x4: "SETTINGS",
            0x5: "PUSH_PROMISE",
            0x6: "PING",
            0x7: "GOAWAY",
            0x8: "WINDOW_UPDATE",
            0x9: "CONTINUATION",
        }.get(kind if kind is not None else -1, f"UNKNOWN_{kind}")
        received = Received(name, frame.stream_id, frozenset(frame.flags))
        if isinstance(frame, HeadersFrame | PushPromiseFrame):
            data = block if block is not None else frame.data
            received.headers = [
                (bytes(key), bytes(value)) for key, value in self.decoder.decode(data, raw=True)
            ]
            if isinstance(frame, PushPromiseFrame):
                received.promised_stream_id = frame.promised_stream_id
        elif isinstance(frame, DataFrame):
            received.data = bytes(frame.data)
            received.increment = frame.flow_controlled_length
        elif isinstance(frame, RstStreamFrame):
            received.error_code = frame.error_code
        elif isinstance(frame, GoAwayFrame):
            received.error_code = frame.error_code
            received.last_stream_id = frame.last_stream_id
            received.data = bytes(frame.additional_data)
        elif isinstance(frame, WindowUpdateFrame):
            received.increment = frame.window_increment
        elif isinstance(frame, SettingsFrame):
            received.settings = dict(frame.settings)
        elif isinstance(frame, PingFrame):
            received.data = bytes(frame.opaque_data)
        return received

    async def _react(self, frame: Received) -> None:
        """What any client does by itself: ACK SETTINGS and PING, track the send windows."""
        if frame.kind == "SETTINGS" and "ACK" not in frame.flags:
            if INITIAL_WINDOW_SIZE in frame.settings:
                delta = frame.settings[INITIAL_WINDOW_SIZE] - self._initial_send_window()
                for stream_id in self._stream_send_windows:
                    self._stream_send_windows[stream_id] += delta
            self.server_settings.update(frame.settings)
            ack = SettingsFrame(0)
            ack.flags.add("ACK")
            await self._send_quietly(ack)
        elif frame.kind == "PING" and "ACK" not in frame.flags:
            pong = PingFrame(0, frame.data)
            pong.flags.add("ACK")
            await self._send_quietly(pong)
        elif frame.kind == "WINDOW_UPDATE":
            if frame.stream_id:
                self._stream_send_windows[frame.stream_id] = (
                    self._stream_send_windows.get(frame.stream_id, self._initial_send_window())
                    + frame.increment
                )
            else:
                self.connection_send_window += frame.increment
        elif frame.kind == "DATA" and self.auto_window and frame.increment:
            await self.acknowledge(frame.stream_id, frame.increment, stream=not frame.end_stream)

    async def acknowledge(self, stream_id: int, size: int, *, stream: bool = True) -> None:
        """Give back ``size`` bytes of received DATA: WINDOW_UPDATE connection (and stream)."""
        frames = WindowUpdateFrame(0, size).serialize()
        if stream:
            frames += WindowUpdateFrame(stream_id, size).serialize()
        await self._send_bytes_quietly(frames)

    async def _send_quietly(self, frame: Frame) -> None:
        await self._send_bytes_quietly(frame.serialize())

    async def _send_bytes_quietly(self, data: bytes) -> None:
        # The server may be closing the connection: a lost ACK is of no consequence.
        if self.closed:
            return
        try:
            await self.transport.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, ssl.SSLError, OSError):
            self.closed = True

    def _initial_send_window(self) -> int:
        return self.server_settings.get(INITIAL_WINDOW_SIZE, DEFAULT_WINDOW)


def settings_payload(settings: dict[int, int]) -> str:
    """The ``HTTP2-Settings`` header value for an h2c upgrade: base64url, no padding."""
    payload = SettingsFrame(0, settings=settings).serialize_body()
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii")


@asynccontextmanager
async def h2_connection(
    host: str,
    port: int,
    *,
    settings: dict[int, int] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[H2Client]:
    """Connect (TLS with ALPN when ``ssl_context`` is given), send the preface, yield."""
    if ssl_context is None:
        transport: ByteStream = await anyio.connect_tcp(host, port)
    else:
        transport = await anyio.connect_tcp(
            host, port, ssl_context=ssl_context, tls_standard_compatible=False
        )
    async with transport:
        client = H2Client(transport)
        with anyio.fail_after(5):
            await client.start(settings)
        yield client
