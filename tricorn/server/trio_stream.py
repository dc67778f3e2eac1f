"""A leaner ``receive`` for anyio's trio socket stream.

An idle keep-alive connection spends its life in ``receive``; on anyio's trio stream that
is a stack of seven coroutines (anyio's ``receive``, trio's ``recv`` wrapper and its
non-blocking helper, then trio's I/O wait), about 3 KiB per connection. This one calls the
socket's ``recv`` itself and waits with ``trio.lowlevel.wait_readable``: three coroutine
frames fewer, about 1.2 KiB less per idle connection, and the same semantics (a checkpoint
whether or not bytes were waiting; ``EndOfStream`` on EOF; ``BrokenResourceError`` for a
reset; ``ClosedResourceError`` once closed). Sending and closing stay anyio's.

This is I/O plumbing only: the connection logic above it is the same on trio and asyncio.
"""

from __future__ import annotations

import socket

import anyio
import trio
from anyio.abc import SocketAttribute, SocketStream


class TrioSocketStream(SocketStream):
    """anyio's trio ``SocketStream`` with our ``receive``; the rest is delegated to it."""

    __slots__ = ("_closed", "_inner", "_socket")

    def __init__(self, inner: SocketStream, sock: socket.socket) -> None:
        self._inner = inner
        self._socket = sock
        self._closed = False

    @classmethod
    def adopt(cls, stream: SocketStream) -> SocketStream:
        """Wrap ``stream`` if it is anyio's trio socket stream; else return it."""
        if type(stream).__module__ != "anyio._backends._trio":
            return stream
        try:
            sock = stream.extra(SocketAttribute.raw_socket)
        except anyio.TypedAttributeLookupError:  # pragma: no cover - every socket has it
            return stream
        return cls(stream, sock)

    @property
    def _raw_socket(self) -> socket.socket:
        return self._socket

    async def receive(self, max_bytes: int = 65536) -> bytes:
        sock = self._socket
        await trio.lowlevel.checkpoint_if_cancelled()
        waited = False
        while True:
            if self._closed:
                raise anyio.ClosedResourceError
            try:
                data = sock.recv(max_bytes)
                break
            except BlockingIOError:
                pass
            except OSError as error:
                raise anyio.BrokenResourceError from error
            try:
                await trio.lowlevel.wait_readable(sock)
            except trio.ClosedResourceError:
                raise anyio.ClosedResourceError from None
            except trio.BusyResourceError:
                raise anyio.BusyResourceError("receiving from") from None
            waited = True
        if not waited:
            await trio.lowlevel.cancel_shielded_checkpoint()  # a checkpoint, as trio's recv
        if not data:
            raise anyio.EndOfStream
        return data

    async def send(self, item: bytes) -> None:
        await self._inner.send(item)

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    async def aclose(self) -> None:
        self._closed = True
        await self._inner.aclose()
