"""A leaner socket stream for the asyncio backend (uvloop included).

anyio's asyncio ``SocketStream`` keeps its transport paused and resumes it around every
``receive`` that has to wait (two ``epoll_ctl`` calls per request on a keep-alive
connection), and yields to the event loop after every ``send``. Profiles of hello world
put those at about a fifth of the server's time. ``AsyncioSocketStream`` takes over the
transport of an accepted anyio stream (``transport.set_protocol``) and keeps the same
``anyio.abc.SocketStream`` face, so nothing above it knows the difference:

- reading is on while less than ``high_water`` bytes wait unread and paused above it (our
  backpressure is unchanged: a peer can never make us hold more than ``high_water`` plus
  one read);
- ``send`` writes to the transport and waits only while the transport holds unsent bytes,
  so it returns once everything is in the kernel, as before. It yields to the loop when it
  had to wait, and otherwise every ``SEND_YIELD_EVERY`` sends, so an app that streams to a
  fast client cannot starve the other connections;
- ``receive`` with bytes already waiting is still a checkpoint (a cancellation point and a
  yield), as anyio's is;
- ``sendfile_fd`` and ``wait_writable`` let ``HTTP11Connection.send_file`` write files into
  the socket with ``os.sendfile`` (``tricorn.server.sendfile``) while the transport holds
  nothing unsent.

This is I/O plumbing only: the connection logic above it is the same on trio and asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from typing import Any, cast

import anyio
from anyio.abc import SocketStream

from tricorn.constants import ERROR_LOGGER
from tricorn.server.sendfile import unsent
from tricorn.server.state import TASK_NAME

error_log = logging.getLogger(ERROR_LOGGER)

#: Unread bytes above which the transport stops reading from the socket.
HIGH_WATER = 64 * 1024
#: Sends that did not have to wait before one yields to the event loop anyway.
SEND_YIELD_EVERY = 16


class ReceiveInterrupted(Exception):
    """``receive`` was woken by ``interrupt_receive``: the reader is to stop."""


class _Wakeup:
    """Where one task waits for the protocol to call ``wake`` (data, or room to write).

    It keeps its loop: ``asyncio.get_running_loop()`` costs a ``getpid`` system call on
    Python 3.11 (the check that the loop was not inherited through ``fork``), which was one
    system call per read."""

    __slots__ = ("_future", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._future: asyncio.Future[None] | None = None

    @property
    def waiting(self) -> bool:
        return self._future is not None

    async def wait(self) -> None:
        future = self._future = self._loop.create_future()
        try:
            await future
        finally:
            self._future = None

    def wake(self) -> None:
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)


class _Protocol(asyncio.Protocol):
    """Buffers what the transport reads and wakes the one reader and the one writer."""

    def __init__(
        self,
        transport: asyncio.Transport,
        high_water: int,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """``loop``: the running loop when the caller knows it already."""
        self.transport = transport
        self.high_water = high_water
        self.buffer = bytearray()
        #: What the transport read while ``buffer`` was empty, kept as it came (it goes before
        #: ``buffer``): ``receive`` returns it without copying it twice (into ``buffer`` and
        #: out again), two copies of every 64 KiB WebSocket message.
        self.head = b""
        self.eof = False
        self.error: Exception | None = None
        self.lost = False
        self.reading_paused = False
        self.writing_paused = False
        #: The reader waits here for bytes (or EOF); the writer for the transport to drain.
        if loop is None:
            loop = asyncio.get_running_loop()  # once per connection (see _Wakeup)
        self.loop = loop
        self.readable = _Wakeup(loop)
        self.drained = _Wakeup(loop)

    def data_received(self, data: bytes) -> None:
        if not self.head and not self.buffer:
            self.head = data
        else:
            self.buffer += data
        if self.buffered >= self.high_water and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        self.readable.wake()

    @property
    def buffered(self) -> int:
        return len(self.head) + len(self.buffer)

    def take_head(self) -> None:
        """Put ``head`` into ``buffer`` (in front), for the callers that slice the buffer."""
        if self.head:
            self.buffer[:0] = self.head
            self.head = b""

    def eof_received(self) -> bool:
        self.eof = True
        self.readable.wake()
        return True  # keep the write side open: the response may still be on its way

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if exc is not None:
            self.error = exc
        self.readable.wake()
        self.drained.wake()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self.drained.wake()


def _set_done(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class AsyncioSocketStream(SocketStream):
    """An ``anyio.abc.SocketStream`` over an asyncio transport, with a steady reader."""

    def __init__(
        self,
        transport: asyncio.Transport,
        high_water: int = HIGH_WATER,
        protocol: _Protocol | None = None,
    ) -> None:
        """``protocol``: the transport's protocol already (``http11_callbacks``), else one
        is made here and the caller sets it on the transport."""
        self._transport = transport
        self._socket: socket.socket = transport.get_extra_info("socket")
        self._protocol = _Protocol(transport, high_water) if protocol is None else protocol
        #: The event loop the transport runs on.
        self.loop = self._protocol.loop
        self._closed = False
        self._interrupted = False
        self._sends_without_yield = 0
        # Unsent bytes pause our writer at once: ``send`` returns when the kernel has them.
        transport.set_write_buffer_limits(high=0)

    @classmethod
    def adopt(cls, stream: SocketStream) -> SocketStream:
        """Take over ``stream``'s transport if it is anyio's asyncio stream; else return it."""
        found = getattr(stream, "_transport", None)
        old_protocol = getattr(stream, "_protocol", None)
        # uvloop's TCPTransport is no asyncio.Transport subclass, but has the same methods.
        if not callable(getattr(found, "set_protocol", None)) or old_protocol is None:
            return stream
        transport = cast(asyncio.Transport, found)
        adopted = cls(transport)
        protocol = adopted._protocol
        # Whatever anyio read already (nothing, in practice, right after accept) is kept.
        for chunk in getattr(old_protocol, "read_queue", ()):
            protocol.buffer += chunk
        protocol.eof = bool(getattr(old_protocol, "is_at_eof", False))
        # A peer gone before the takeover was reported to anyio's protocol, never to ours.
        protocol.error = getattr(old_protocol, "exception", None)
        protocol.lost = transport.is_closing()
        transport.set_protocol(protocol)
        transport.resume_reading()
        return adopted

    @property
    def _raw_socket(self) -> socket.socket:
        return self._socket

    def unreceive(self, data: bytes) -> None:
        """Give back bytes read too early (past a PROXY protocol header): the next
        ``receive`` calls return them first."""
        self._protocol.take_head()
        self._protocol.buffer[:0] = data

    def interrupt_receive(self) -> None:
        """Wake a ``receive`` that waits for bytes: it raises ``ReceiveInterrupted`` (at once
        if it waits now, else the next time it would wait, unless it returns bytes first).
        Far cheaper than cancelling the reader's scope, for a connection that closes after
        its response (HTTP11Connection._stop_reading)."""
        self._interrupted = True
        self._protocol.readable.wake()

    async def receive(self, max_bytes: int = 65536) -> bytes:
        protocol = self._protocol
        if protocol.head or protocol.buffer:
            await anyio.lowlevel.checkpoint()
        while not protocol.head and not protocol.buffer:
            if self._interrupted:
                self._interrupted = False
                raise ReceiveInterrupted
            if self._closed:
                raise anyio.ClosedResourceError
            if protocol.error is not None:
                raise anyio.BrokenResourceError from protocol.error
            if protocol.eof or protocol.lost:
                raise anyio.EndOfStream
            await protocol.readable.wait()
            self._sends_without_yield = 0
        if self._closed:
            raise anyio.ClosedResourceError
        self._interrupted = False
        head = protocol.head
        if head and not protocol.buffer and len(head) <= max_bytes:
            protocol.head = b""
            if protocol.reading_paused:
                protocol.reading_paused = False
                self._transport.resume_reading()
            return head
        protocol.take_head()
        buffer = protocol.buffer
        if len(buffer) <= max_bytes:
            data = bytes(buffer)
            buffer.clear()
        else:
            data = bytes(buffer[:max_bytes])
            del buffer[:max_bytes]
        if protocol.reading_paused and len(buffer) < protocol.high_water:
            protocol.reading_paused = False
            self._transport.resume_reading()
        return data

    def set_read_high_water(self, high_water: int) -> None:
        """Let up to ``high_water`` unread bytes wait before the transport stops reading.

        An open WebSocket raises it to its read size (``WS_RECEIVE_SIZE``): a 64 KiB message
        is one frame of 64 KiB + 14 bytes, and at 64 KiB every such message paused and
        resumed the transport (two ``epoll_ctl`` calls, a fifth of the server's time).
        """
        protocol = self._protocol
        protocol.high_water = high_water
        if protocol.reading_paused and protocol.buffered < high_water:
            protocol.reading_paused = False
            self._transport.resume_reading()

    def send_nowait(self, item: bytes) -> None:
        """Hand ``item`` to the transport without waiting for it to drain (the next
        ``send`` waits for that): for a few bytes written from a transport callback."""
        protocol = self._protocol
        if self._closed:
            raise anyio.ClosedResourceError
        if protocol.lost or self._transport.is_closing():
            raise anyio.BrokenResourceError from protocol.error
        self._transport.write(item)

    async def send(self, item: bytes) -> None:
        protocol = self._protocol
        transport = self._transport
        if self._closed:  # send_nowait, without its call (once per response)
            raise anyio.ClosedResourceError
        if protocol.lost or transport.is_closing():
            raise anyio.BrokenResourceError from protocol.error
        transport.write(item)
        if protocol.writing_paused:
            await self._drain()
        else:
            self._sends_without_yield += 1
            if self._sends_without_yield >= SEND_YIELD_EVERY:
                self._sends_without_yield = 0
                await anyio.lowlevel.checkpoint()

    async def send_chunks(self, chunks: list[bytes]) -> None:
        """``send(b"".join(chunks))`` with one ``os.writev`` while the transport holds nothing
        unsent (asyncio 3.11's ``writelines`` joins): a 64 KiB WebSocket payload is not
        copied behind its frame header. What the kernel did not take goes by ``send``."""
        transport = self._transport
        sent = 0
        if not (self._closed or self._protocol.lost or transport.is_closing()) and not (
            transport.get_write_buffer_size()
        ):
            with contextlib.suppress(OSError):  # a failure: the transport's write meets it
                sent = os.writev(self._socket.fileno(), chunks)
        await self.send(unsent(chunks, sent))  # which counts it among the sends that yield

    async def _drain(self) -> None:
        protocol = self._protocol
        while protocol.writing_paused:
            if protocol.lost:
                break
            await protocol.drained.wait()
        self._sends_without_yield = 0
        if self._closed:
            raise anyio.ClosedResourceError
        if protocol.lost:
            raise anyio.BrokenResourceError from protocol.error

    # --- FileSocket (tricorn.server.sendfile) ------------------------------------------

    def sendfile_fd(self) -> int | None:
        transport = self._transport
        if self._closed or self._protocol.lost or transport.is_closing():
            return None  # the transport may have closed its socket already
        if transport.get_write_buffer_size():
            return None  # what the transport holds must go first
        return self._socket.fileno()

    async def wait_writable(self) -> None:
        """Wait for the socket to take more bytes, on a duplicate of its descriptor.

        The event loop refuses ``add_writer`` on a descriptor its transport owns (asyncio's
        and uvloop's checks), and asyncio's ``loop.sendfile`` for transports is not in
        uvloop. A ``dup`` of the descriptor is the same socket under another number, which
        the loop watches for us without touching the transport's own registration.
        """
        if self._closed:
            raise anyio.ClosedResourceError
        protocol = self._protocol
        if protocol.lost:
            return  # the next send raises
        loop = self.loop
        duplicate = os.dup(self._socket.fileno())
        try:
            waiter: asyncio.Future[None] = loop.create_future()
            loop.add_writer(duplicate, _set_done, waiter)
            try:
                await waiter
            finally:
                loop.remove_writer(duplicate)
        finally:
            os.close(duplicate)
        if self._closed:
            raise anyio.ClosedResourceError

    async def send_eof(self) -> None:
        with contextlib.suppress(OSError):
            self._transport.write_eof()

    async def aclose(self) -> None:
        self.close_now()
        await anyio.lowlevel.checkpoint()

    def close_now(self) -> None:
        """``aclose`` without its checkpoint, for a transport callback."""
        self._closed = True
        # abort, not close: ``send`` returns only once the transport holds nothing unsent,
        # so nothing of a completed write is dropped (the kernel still delivers its buffer;
        # tests/integration/test_http11_close.py); only a write cut short by cancellation
        # leaves bytes here, and close() would wait for a client that may never read them.
        self._transport.abort()
        self._protocol.readable.wake()
        self._protocol.drained.wake()


class AsyncioTasks:
    """Plain asyncio tasks for the server's connections and HTTP/1.1 requests.

    anyio's ``start_soon`` (4.14+) gives every task a ``TaskHandle`` with its own cancel
    scope and event (an ``asyncio.Event``, whose empty deque alone is 760 bytes), held for
    the task's life: about 2.4 KiB per idle keep-alive connection that nothing here reads.
    A plain task costs the task only. What anyio's group would do for them is done here:
    ``cancel_all`` cancels them and waits for them (the server calls it when its
    connections' task group is left, for whatever reason), and an exception that escapes
    one (none should) is logged instead of being lost.
    """

    __slots__ = ("_closed", "_loop", "_tasks")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[object]] = set()
        self._closed = False

    def start_soon(
        self, function: Callable[..., Coroutine[Any, Any, object]], *args: object, name: str
    ) -> asyncio.Task[object]:
        """Start ``function(*args)``; the task is returned so that its caller may cancel it."""
        task = self._task(function(*args), name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        if self._closed:
            task.cancel()  # started after cancel_all: it never runs
        return task

    def start_soon_quiet(self, coroutine: Coroutine[Any, Any, object]) -> asyncio.Task[object]:
        """``start_soon`` for a coroutine that handles its own errors (an HTTP/1.1 request's):
        its end is not looked at, which saves a call per request."""
        loop = self._loop
        task: asyncio.Task[object] = (
            asyncio.Task(coroutine, loop=loop, name=TASK_NAME)  # as in _task, without its call
            if loop.get_task_factory() is None
            else loop.create_task(coroutine, name=TASK_NAME)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if self._closed:
            task.cancel()
        return task

    def _task(
        self, coroutine: Coroutine[Any, Any, object], name: str = TASK_NAME
    ) -> asyncio.Task[object]:
        loop = self._loop
        if loop.get_task_factory() is None:
            # What create_task does then, without uvloop's detour: it makes the task unnamed
            # (formatting a "Task-N" name) and renames it, ~2,500 instructions a task.
            return asyncio.Task(coroutine, loop=loop, name=name)
        return loop.create_task(coroutine, name=name)

    def _done(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            error_log.error("Unexpected error in a server task", exc_info=error)

    async def cancel_all(self) -> None:
        """Cancel every task still running and wait until they have all finished."""
        self._closed = True
        while self._tasks:
            await cancel_and_wait(list(self._tasks))


async def cancel_and_wait(tasks: list[asyncio.Task[Any]]) -> None:
    """What leaving a task group does for its tasks: cancel them, and return once every one
    has finished. (A task started meanwhile is not among them: callers look again.)"""
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)
