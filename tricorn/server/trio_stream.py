"""A leaner ``receive`` for anyio's trio socket stream.

An idle keep-alive connection spends its life in ``receive``; on anyio's trio stream that
is a stack of seven coroutines (anyio's ``receive``, trio's ``recv`` wrapper and its
non-blocking helper, then trio's I/O wait), about 3 KiB per connection. This one calls the
socket's ``recv`` itself and waits with ``trio.lowlevel.wait_readable``: three coroutine
frames fewer, about 1.2 KiB less per idle connection, and the same semantics (a checkpoint
whether or not bytes were waiting; ``EndOfStream`` on EOF; ``BrokenResourceError`` for a
reset; ``ClosedResourceError`` once closed). ``send`` calls the socket's ``send`` itself
too, waiting with ``wait_writable`` when the kernel is full; like ``AsyncioSocketStream`` it
is a cancellation point always but yields to the scheduler only when it had to wait or
every ``SEND_YIELD_EVERY`` sends (trio's own send yields every time: one more trip through
the run loop per WebSocket echo, 7-9 % of the server's CPU per 64 B message). After a read
that took less than it asked for (the kernel had nothing more), the next ``receive`` waits
for the socket before it reads: reading first would fail with EAGAIN on nearly every
request or echoed message (a syscall and an exception each). Closing is
anyio's, written against the trio socket directly, so the anyio stream object (and its two
resource guards) is not kept for the connection's life. ``sendfile_fd`` and ``wait_writable`` let
``HTTP11Connection.send_file`` send files with ``os.sendfile`` (``tricorn.server.sendfile``).

This is I/O plumbing only: the connection logic above it is the same on trio and asyncio.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import NoReturn

import anyio
import trio
from anyio.abc import SocketStream

from tricorn.server.sendfile import unsent

#: Sends that did not have to wait before one yields to the scheduler anyway (as asyncio's).
SEND_YIELD_EVERY = 16


class TrioSocketStream(SocketStream):
    """An ``anyio.abc.SocketStream`` over the trio socket of an accepted anyio stream."""

    __slots__ = (
        "_closed",
        "_drained",
        "_sends_without_yield",
        "_socket",
        "_trio_socket",
        "_unread",
    )

    def __init__(self, trio_socket: trio.socket.SocketType) -> None:
        self._trio_socket = trio_socket
        self._socket: socket.socket = trio_socket._sock  # type: ignore[attr-defined]
        self._closed = False
        self._sends_without_yield = 0
        #: The last ``recv`` returned less than it asked for: the kernel had no more then.
        self._drained = False
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
        if self._drained:
            # The last read took all the kernel had: a read now would most likely fail
            # (EAGAIN: a syscall and an exception; an echo's next read always does), so
            # wait first. The wait is a checkpoint, and returns at once if bytes came.
            await self._wait(trio.lowlevel.wait_readable, "receiving from")
            waited = True
        else:
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
                self._failed(error)
            await self._wait(trio.lowlevel.wait_readable, "receiving from")
            waited = True
        if not waited:
            await trio.lowlevel.cancel_shielded_checkpoint()  # a checkpoint, as trio's recv
        self._drained = len(data) < max_bytes
        if not data:
            raise anyio.EndOfStream
        return data

    async def send(self, item: bytes) -> None:
        sock = self._socket
        await trio.lowlevel.checkpoint_if_cancelled()
        view = memoryview(item)
        waited = False
        while view:
            if self._closed:
                raise anyio.ClosedResourceError
            try:
                sent = sock.send(view)
            except BlockingIOError:
                await self._wait(trio.lowlevel.wait_writable, "writing to")
                waited = True
                continue
            except OSError as error:
                self._failed(error)
            view = view[sent:]
        if waited:
            self._sends_without_yield = 0
            return
        self._sends_without_yield += 1
        if self._sends_without_yield >= SEND_YIELD_EVERY:
            self._sends_without_yield = 0
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def send_chunks(self, chunks: list[bytes]) -> None:
        """``send(b"".join(chunks))`` with one ``sendmsg`` (a gathering write): a 64 KiB
        WebSocket payload is not copied behind its frame header."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._closed:
            raise anyio.ClosedResourceError
        try:
            sent = self._socket.sendmsg(chunks)
        except BlockingIOError:
            sent = 0
        except OSError as error:
            self._failed(error)
        await self.send(unsent(chunks, sent))  # which counts it among the sends that yield

    def _failed(self, error: OSError) -> NoReturn:
        """A socket call failed: the stream was closed meanwhile, or the connection broke."""
        if self._closed:
            raise anyio.ClosedResourceError from None
        raise anyio.BrokenResourceError from error

    async def _wait(self, wait: Callable[[socket.socket], Awaitable[None]], doing: str) -> None:
        """``wait_readable``/``wait_writable`` on our socket, with anyio's errors."""
        try:
            await wait(self._socket)
        except trio.ClosedResourceError:
            raise anyio.ClosedResourceError from None
        except trio.BusyResourceError:
            raise anyio.BusyResourceError(doing) from None

    # --- FileSocket (tricorn.server.sendfile) ------------------------------------------

    def sendfile_fd(self) -> int | None:
        return None if self._closed else self._socket.fileno()

    async def wait_writable(self) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        await self._wait(trio.lowlevel.wait_writable, "writing to")

    async def send_eof(self) -> None:
        self._trio_socket.shutdown(socket.SHUT_WR)

    async def aclose(self) -> None:
        self._closed = True
        self._trio_socket.close()
        await trio.lowlevel.checkpoint()
