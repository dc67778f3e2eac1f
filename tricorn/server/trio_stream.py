"""A leaner ``receive`` for anyio's trio socket stream.

An idle keep-alive connection spends its life in ``receive``; on anyio's trio stream that
is a stack of seven coroutines (anyio's ``receive``, trio's ``recv`` wrapper and its
non-blocking helper, then trio's I/O wait), about 3 KiB per connection. This one calls the
socket's ``recv`` itself and waits with ``trio.lowlevel.wait_readable``: three coroutine
frames fewer, about 1.2 KiB less per idle connection, and the same semantics (a checkpoint
whether or not bytes were waiting; ``EndOfStream`` on EOF; ``BrokenResourceError`` for a
reset; ``ClosedResourceError`` once closed). Sending and closing are anyio's, written
against the trio socket directly, so the anyio stream object (and its two resource guards)
is not kept for the connection's life.

This is I/O plumbing only: the connection logic above it is the same on trio and asyncio.
"""

from __future__ import annotations

import socket

import anyio
import trio
from anyio.abc import SocketStream


class TrioSocketStream(SocketStream):
    """An ``anyio.abc.SocketStream`` over the trio socket of an accepted anyio stream."""

    __slots__ = ("_closed", "_socket", "_trio_socket", "_unread")

    def __init__(self, trio_socket: trio.socket.SocketType) -> None:
        self._trio_socket = trio_socket
        self._socket: socket.socket = trio_socket._sock  # type: ignore[attr-defined]
        self._closed = False
        #: Bytes given back with ``unreceive``, returned before the socket is read again.
        self._unread = b""

    @classmethod
    def adopt(cls, stream: SocketStream) -> SocketStream:
        """Wrap ``stream`` if it is anyio's trio socket stream; else return it."""
        if type(stream).__module__ != "anyio._backends._trio":
            return stream
        trio_socket = getattr(stream, "_trio_socket", None)
        if not isinstance(trio_socket, trio.socket.SocketType) or not hasattr(trio_socket, "_sock"):
            return stream  # pragma: no cover - another anyio's layout: keep its stream
        return cls(trio_socket)

    @property
    def _raw_socket(self) -> socket.socket:
        return self._socket

    def unreceive(self, data: bytes) -> None:
        """Give back bytes read too early (past a PROXY protocol header): the next
        ``receive`` calls return them first."""
        self._unread = data + self._unread

    async def _receive_unread(self, max_bytes: int) -> bytes:
        await trio.lowlevel.checkpoint()
        if self._closed:
            raise anyio.ClosedResourceError
        data, self._unread = self._unread[:max_bytes], self._unread[max_bytes:]
        return data

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self._unread:
            return await self._receive_unread(max_bytes)
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
                if self._closed:
                    raise anyio.ClosedResourceError from None
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
        trio_socket = self._trio_socket
        view = memoryview(item)
        while view:
            try:
                sent = await trio_socket.send(view)
            except trio.ClosedResourceError:
                raise anyio.ClosedResourceError from None
            except trio.BusyResourceError:
                raise anyio.BusyResourceError("writing to") from None
            except OSError as error:
                if self._closed:
                    raise anyio.ClosedResourceError from None
                raise anyio.BrokenResourceError from error
            view = view[sent:]

    async def send_eof(self) -> None:
        self._trio_socket.shutdown(socket.SHUT_WR)

    async def aclose(self) -> None:
        self._closed = True
        self._trio_socket.close()
        await trio.lowlevel.checkpoint()
