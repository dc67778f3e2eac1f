"""What every connection of one server shares: config, app, lifespan state, clocks."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Coroutine
from email.utils import formatdate
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import anyio.lowlevel
import sniffio
from anyio.abc import TaskGroup

from tricorn.config import Config
from tricorn.protocols.events import Headers
from tricorn.server.access_log import AccessLogger
from tricorn.server.asgi_types import ASGI3App
from tricorn.server.forwarded import ProxyHeaders
from tricorn.server.metrics import metrics_for

if TYPE_CHECKING:
    from tricorn.server.asyncio_stream import AsyncioTasks

#: The name given to per-connection and per-request tasks: anyio otherwise derives one from
#: the function for every task it spawns, a measurable cost per request (about 2% on h2c).
TASK_NAME = "tricorn"


class StreamScope(Protocol):
    """A cancel scope as a request task uses it: entered once, cancelled from outside."""

    def __enter__(self) -> object: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None: ...

    def cancel(self) -> None: ...


class Closable(Protocol):
    def begin_shutdown(self) -> None:
        """Finish in-flight work, then close; close now if idle."""

    def running_streams(self) -> int:
        """The app instances running on it now (``requests_in_flight``)."""


class ServerState:
    """Shared by every connection of one ``serve`` call."""

    def __init__(self, config: Config, app: ASGI3App, lifespan_state: dict[str, Any]) -> None:
        self.config = config
        self.app = app
        self.lifespan_state = lifespan_state
        self.clock = time.monotonic
        self.access_log = (
            AccessLogger(
                config.access_log_format, config.ws_access_log_format, json=config.access_log_json
            )
            if config.access_log
            else None
        )
        #: The proxy header settings, parsed once; None when no header is ever read.
        self.proxy_headers = ProxyHeaders.from_config(
            config.proxy_headers,
            config.forwarded_allow_ips,
            config.forwarded_headers,
            config.root_path,
        )
        self.connections: set[Closable] = set()
        #: The counters (tricorn.server.metrics), or None when no metric is exported.
        self.metrics = metrics_for(config)
        if self.metrics is not None:
            self.metrics.running.append(self.running_streams)
        self.shutting_down = False
        self._all_closed: anyio.Event | None = None
        self._date_second = -1
        self._default_headers: Headers = []
        self._server_header: Headers = (
            [(b"server", config.server_header.encode("latin-1"))] if config.server_header else []
        )
        self._start_soon: Callable[..., object] | None = None
        #: ``alt-svc: h3=":PORT"; ma=N`` for responses on the TLS binds (HTTP/1.1, HTTP/2)
        #: when quic_bind is set (``serve``); empty otherwise.
        self.alt_svc: Headers = []
        self._lock_yields: bool | None = None  # write_lock's, found once
        #: The plain asyncio tasks of ``spawn`` (None on trio): ``HTTP11Connection`` keeps
        #: its request tasks' handles from ``start_soon`` to cancel them, rather than a
        #: cancel scope per request.
        self.asyncio_tasks: AsyncioTasks | None = None
        #: The backend's clock, as ``anyio.current_time`` reads it but without its backend
        #: lookup per call (set by ``use_task_group``).
        self.current_time: Callable[[], float] = anyio.current_time
        #: What makes a request task's cancel scope: trio's own on trio (anyio's wraps one
        #: in an object of its own, built through its backend lookup), else anyio's.
        self.cancel_scope: Callable[[], StreamScope] = anyio.CancelScope
        #: The protocols' settings read from ``config``, by table (``id`` of one of
        #: ``connection.py``'s tables): read once, not per connection.
        self.protocol_settings: dict[int, dict[str, Any]] = {}

    def use_task_group(self, group: TaskGroup) -> None:
        """Run the tasks of ``spawn`` (connections, HTTP/1.1 requests) under ``group``.

        anyio 4.14+ wraps every ``start_soon`` in a ``TaskHandle`` with its own cancel scope
        and event, kept for the task's life (1.3 KiB per task on trio, 2.4 KiB on asyncio),
        which nothing here uses. On trio the tasks go straight into the nursery under
        anyio's task group; on asyncio they are plain tasks (``AsyncioTasks``), which the
        caller must cancel and wait for with ``cancel_tasks`` when it leaves ``group``.
        """
        library = sniffio.current_async_library()
        nursery = getattr(group, "_nursery", None)
        if library == "trio" and nursery is not None:
            import trio  # trio runs: importing it says nothing about the app

            self._start_soon = nursery.start_soon
            self.current_time = trio.current_time
            self.cancel_scope = trio.CancelScope
        elif library == "asyncio":
            import asyncio

            from tricorn.server.asyncio_stream import AsyncioTasks

            self.asyncio_tasks = AsyncioTasks()
            self._start_soon = self.asyncio_tasks.start_soon
            self.current_time = asyncio.get_running_loop().time
        else:
            self._start_soon = group.start_soon

    async def cancel_tasks(self) -> None:
        """Cancel what ``spawn`` started outside the task group, and wait for it."""
        if self.asyncio_tasks is not None:
            await self.asyncio_tasks.cancel_all()

    def spawn(self, function: Callable[..., Coroutine[Any, Any, object]], *args: object) -> None:
        """Start ``function(*args)`` in the server's task group (see ``use_task_group``).

        The task must not raise: an exception would cancel every connection of the server.
        """
        start_soon = self._start_soon
        if start_soon is None:
            raise RuntimeError("ServerState.spawn before use_task_group")
        start_soon(function, *args, name=TASK_NAME)

    def default_headers(self) -> Headers:
        """``date`` and ``server`` headers for a response, the date recomputed once a second."""
        if not self.config.date_header:
            return self._server_header
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            date = formatdate(now, usegmt=True).encode("ascii")
            self._default_headers = [(b"date", date), *self._server_header]
        return self._default_headers

    def write_lock(self) -> WriteLock:
        """The lock a connection holds while it writes to its socket.

        On asyncio an uncontended acquire does not yield (the write that follows does when
        it must wait): that saves a trip through the event loop per write. On trio the yield
        pays for itself (about 10% more requests/s with it: the reader gets to run before
        the write), so it stays.
        """
        yields = self._lock_yields
        if yields is None:
            yields = self._lock_yields = sniffio.current_async_library() == "trio"
        return WriteLock(yield_after_acquire=yields)

    def running_streams(self) -> int:
        """The app instances running on every connection now (``Metrics.running``)."""
        return sum(connection.running_streams() for connection in self.connections)

    def add(self, connection: Closable) -> None:
        self.connections.add(connection)
        if self.shutting_down:
            connection.begin_shutdown()

    def discard(self, connection: Closable) -> None:
        self.connections.discard(connection)
        if not self.connections and self._all_closed is not None:
            self._all_closed.set()

    async def shutdown_connections(self) -> None:
        """Ask every connection to finish and close; return when all have closed."""
        self.shutting_down = True
        self._all_closed = anyio.Event()
        for connection in list(self.connections):
            connection.begin_shutdown()
        if self.connections:
            await self._all_closed.wait()


class WriteLock:
    """A FIFO lock for the one-writer-at-a-time sections around socket writes.

    Cheaper than ``anyio.Lock`` where it matters for us: an uncontended acquire is a flag,
    with no task lookup and (unless ``yield_after_acquire``) no trip through the event loop; a
    contended one waits on an ``anyio.Event`` and is handed the lock in arrival order. It
    is not reentrant and does not know its owner: only ``async with`` uses it.
    """

    __slots__ = ("_locked", "_waiters", "_yield_after_acquire")

    def __init__(self, *, yield_after_acquire: bool = False) -> None:
        self._locked = False
        # Made on the first contended acquire: an empty deque is 760 bytes, and most
        # connections (every idle keep-alive one) never have a second writer.
        self._waiters: deque[anyio.Event] | None = None
        self._yield_after_acquire = yield_after_acquire

    @property
    def locked(self) -> bool:
        return self._locked

    def acquire_nowait(self, *, skip_yield: bool = False) -> bool:
        """Take the lock if that needs no wait and no yield (then ``release`` it); False
        otherwise, and the caller uses ``async with``. Saves the two coroutine calls of
        ``async with`` on every uncontended write on asyncio. ``skip_yield``: take it
        without the ``yield_after_acquire`` yield too (a writer that gains nothing from it)."""
        if self._locked or self._waiters or (self._yield_after_acquire and not skip_yield):
            return False
        self._locked = True
        return True

    async def __aenter__(self) -> None:
        if not self._locked and not self._waiters:
            # Taken before any yield: writers get the lock in the order they asked for it,
            # which is the order they took their bytes from the protocol.
            self._locked = True
            if self._yield_after_acquire:
                await anyio.lowlevel.cancel_shielded_checkpoint()
            return
        handed_over = anyio.Event()
        waiters = self._waiters
        if waiters is None:
            waiters = self._waiters = deque()
        waiters.append(handed_over)
        try:
            await handed_over.wait()
        except BaseException:
            if handed_over.is_set():
                self._release()  # handed the lock while being cancelled: pass it on
            else:
                waiters.remove(handed_over)
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._release()

    def _release(self) -> None:
        waiters = self._waiters
        if waiters:
            waiters.popleft().set()  # still locked, now by the next in line
            if not waiters:
                self._waiters = None  # back to the lean state once nobody waits
        else:
            self._locked = False

    #: Release what ``acquire_nowait`` took (``_release`` itself: no second call).
    release = _release
