"""WebSocket echo load client: messages/s over several connections, one process.

Each connection does its handshake with wsproto and checks one full echo through wsproto
(the payload comes back byte for byte). Then it switches to a lean loop built for speed:
the masked client frame is built once and re-sent as is, and the server's frames are only
parsed for their header (opcode, FIN, length) while their payload bytes are counted and
skipped. Each connection keeps one message in flight (send, wait for the echo, send again).

The client reports its own CPU time, so a run shows whether the client was the
bottleneck (a client near 100 % of its core was; well below it was not).

    python benchmarks/ws_client.py --port 8000 --size 64 --connections 16 --duration 5

prints one JSON object: messages, seconds, rate (messages/s), client_cpu_percent, errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import struct
import sys
import time
from typing import Any, cast

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, RejectConnection, Request
from wsproto.events import Message as WSMessage

OP_CONT, OP_BINARY, OP_CLOSE, OP_PING = 0x0, 0x2, 0x8, 0x9


def masked_frame(payload: bytes) -> bytes:
    """One client-to-server binary frame (FIN set, masked), built once and re-used."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | OP_BINARY, 0x80 | size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x80 | OP_BINARY, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | OP_BINARY, 0x80 | 127, size)
    # XOR the payload with the repeated mask in one big-integer operation.
    repeated = (mask * (size // 4 + 1))[:size]
    key = int.from_bytes(repeated, "big")
    body = (int.from_bytes(payload, "big") ^ key).to_bytes(size, "big")
    return header + mask + body


class EchoProtocol(asyncio.Protocol):
    """One WebSocket connection: handshake + check via wsproto, then the lean echo loop."""

    def __init__(self, host: str, port: int, path: str, payload: bytes) -> None:
        self.host, self.port, self.path = host, port, path
        self.payload = payload
        self.frame = masked_frame(payload)
        self.ws: WSConnection | None = WSConnection(ConnectionType.CLIENT)
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.checked = bytearray()
        self.running = False
        self.counting = False
        self.messages = 0
        self.error: str | None = None
        # lean-loop frame parser state
        self.header = bytearray()
        self.skip = 0
        self.fin = True
        self.opcode = 0
        self.got = 0

    # --- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        assert self.transport is not None
        assert self.ws is not None
        self.transport.write(
            self.ws.send(Request(host=f"{self.host}:{self.port}", target=self.path))
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if self.running:
            self._fail(f"connection lost: {exc!r}")
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"connection lost during handshake: {exc!r}"))
        self.running = False

    def data_received(self, data: bytes) -> None:
        if self.ws is not None:
            self._handshake_data(data)
        else:
            self._lean_data(data)

    # --- handshake and first echo, checked by wsproto ---------------------------------
    def _handshake_data(self, data: bytes) -> None:
        ws = self.ws
        assert ws is not None and self.transport is not None
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, AcceptConnection):
                self.transport.write(ws.send(WSMessage(data=self.payload)))
            elif isinstance(event, RejectConnection):
                self._handshake_failed(f"handshake rejected: status {event.status_code}")
                return
            elif isinstance(event, BytesMessage):
                self.checked += event.data
                if event.message_finished:
                    if bytes(self.checked) != self.payload:
                        self._handshake_failed("first echo differs from what was sent")
                        return
                    self.ws = None  # from here on: the lean loop
                    if not self.ready.done():
                        self.ready.set_result(None)
            else:
                self._handshake_failed(f"unexpected event during check: {event!r}")
                return

    def _handshake_failed(self, why: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))
        if self.transport is not None:
            self.transport.abort()

    # --- the lean loop ----------------------------------------------------------------
    def start(self) -> None:
        assert self.transport is not None
        self.running = True
        self.transport.write(self.frame)

    def _lean_data(self, data: bytes) -> None:
        pos, end = 0, len(data)
        header = self.header
        while pos < end:
            if self.skip:
                take = min(self.skip, end - pos)
                self.skip -= take
                self.got += take
                pos += take
                if not self.skip and self.fin:
                    self._message_done()
                continue
            if len(header) < 2:
                take = min(2 - len(header), end - pos)
                header += data[pos : pos + take]
                pos += take
                if len(header) < 2:
                    continue
            if header[1] & 0x80:
                self._fail("server frame is masked")
                return
            short = header[1] & 0x7F
            need = 2 + (2 if short == 126 else 8 if short == 127 else 0)
            if len(header) < need:
                take = min(need - len(header), end - pos)
                header += data[pos : pos + take]
                pos += take
                if len(header) < need:
                    continue
            if short == 126:
                length = struct.unpack_from("!H", header, 2)[0]
            elif short == 127:
                length = struct.unpack_from("!Q", header, 2)[0]
            else:
                length = short
            opcode = header[0] & 0x0F
            self.fin = bool(header[0] & 0x80)
            header.clear()
            if opcode == OP_CLOSE:
                self._fail("server sent a close frame")
                return
            if opcode not in (OP_BINARY, OP_CONT):
                self._fail(f"unexpected opcode {opcode}")
                return
            self.skip = length
            if not length and self.fin:
                self._message_done()

    def _message_done(self) -> None:
        if self.got != len(self.payload):
            self._fail(f"echo of {self.got} bytes, sent {len(self.payload)}")
            return
        self.got = 0
        if self.counting:
            self.messages += 1
        if self.running and self.transport is not None:
            self.transport.write(self.frame)

    def _fail(self, why: str) -> None:
        if self.error is None:
            self.error = why
        self.running = False
        if self.transport is not None:
            self.transport.abort()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    payload = os.urandom(args.size)
    protocols: list[EchoProtocol] = []
    for _ in range(args.connections):
        _, proto = await asyncio.wait_for(
            loop.create_connection(
                lambda: EchoProtocol(args.host, args.port, args.path, payload),
                args.host,
                args.port,
            ),
            timeout=10,
        )
        protocols.append(proto)
    await asyncio.wait_for(asyncio.gather(*(p.ready for p in protocols)), timeout=10)
    for p in protocols:
        p.start()
    await asyncio.sleep(args.warmup)
    cpu0, t0 = time.process_time(), time.perf_counter()
    for p in protocols:
        p.counting = True
    await asyncio.sleep(args.duration)
    for p in protocols:
        p.counting = False
    cpu1, t1 = time.process_time(), time.perf_counter()
    messages = sum(p.messages for p in protocols)
    errors = sorted({p.error for p in protocols if p.error})
    for p in protocols:
        p.running = False
        if p.transport is not None:
            p.transport.abort()
    seconds = t1 - t0
    return {
        "messages": messages,
        "seconds": round(seconds, 3),
        "rate": round(messages / seconds, 1),
        "mb_per_s": round(2 * messages * args.size / seconds / 1e6, 2),
        "client_cpu_percent": round(100 * (cpu1 - cpu0) / seconds, 1),
        "connections": args.connections,
        "size": args.size,
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/ws")
    parser.add_argument("--size", type=int, default=64, help="message size in bytes")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds before measuring")
    parser.add_argument("--no-uvloop", action="store_true", help="plain asyncio event loop")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("load is sent to the loopback interface only")
    runner: Any = asyncio.run
    loop_name = "asyncio"
    if not args.no_uvloop:
        try:
            import uvloop

            runner, loop_name = uvloop.run, "uvloop"
        except ImportError:
            pass
    try:
        result: dict[str, Any] = runner(run(args))
    except (OSError, TimeoutError, ConnectionError) as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    result["loop"] = loop_name
    print(json.dumps(result))
    return 0 if result["messages"] and not result["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
