"""The worker threads of WSGI apps: a pool of long-lived daemon threads fed by one queue.

Used by ``tricorn.server.wsgi.WSGIAdapter`` while the app's lifespan runs (see
``ThreadPool``). Works on trio and asyncio: the only backend-specific part is how a worker
wakes the event loop without waiting (``_threadsafe_caller``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Final

import anyio
import anyio.abc
import sniffio

#: Seconds requests may wait with every worker busy and none taking a request before the
#: pool adds a worker (see ``ThreadPool._grow``).
GROW_AFTER: Final = 0.002


class _Done:
    """A request handed to the pool: set (from the worker, via the loop) when it has run."""

    __slots__ = ("error", "event")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.error: BaseException | None = None

    def set(self, error: BaseException | None) -> None:
        self.error = error
        self.event.set()


def _threadsafe_caller() -> Callable[..., object]:
    """``call_soon_threadsafe`` of the running loop: call a function in it, from any thread,
    without waiting (``anyio.from_thread.run_sync`` would block the worker for a loop turn).
    """
    if sniffio.current_async_library() == "trio":
        import trio

        return trio.lowlevel.current_trio_token().run_sync_soon
    import asyncio

    return asyncio.get_running_loop().call_soon_threadsafe


class ThreadPool:
    """Long-lived worker threads that take requests from one queue, for one event loop run.

    A request costs one queue append and one wake-up of the loop, not a thread hand-off
    both ways: a busy worker takes the next request without going back to the event loop,
    and a sleeping worker is woken only when no worker is busy. When requests wait and no
    worker has taken one for ``GROW_AFTER`` (all stuck on a database, a slow client), a
    sleeping worker is woken or a new one started: a fast app keeps few threads (no GIL
    fights), a slow one gets as many as it needs. Each worker holds a token of the adapter's
    ``CapacityLimiter`` for its life, so the pool and per-request threads together stay
    within ``max_threads``. Workers are daemon threads: one stuck in the app after the
    graceful timeout does not keep the process from exiting.
    """

    __slots__ = (
        "_call_soon",
        "_group",
        "_growing",
        "_jobs",
        "_lock",
        "_token",
        "_wake",
        "closed",
        "idle",
        "last_start",
        "limiter",
        "threads",
    )

    def __init__(self, group: anyio.abc.TaskGroup, limiter: anyio.CapacityLimiter) -> None:
        self._group = group
        self._jobs: deque[tuple[Callable[[], None], _Done]] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Semaphore(0)
        self._call_soon = _threadsafe_caller()
        self.limiter = limiter
        self.threads = 0
        self.idle = 0  # workers asleep (or about to be) waiting for a request
        self.closed = False
        self.last_start = 0.0  # when a worker last took a request (time.monotonic)
        self._growing = False

    async def run(self, job: Callable[[], None]) -> None:
        """Run ``job`` in a worker thread; raise what it raised."""
        done = _Done()
        self._jobs.append((job, done))
        if self.threads == self.idle and self.threads:
            self._wake.release()  # nobody is busy: wake one sleeper
        elif (self.threads or not self._spawn()) and not self._growing:
            # A busy worker will take it, unless they are all stuck (or no thread could be
            # had: the limiter's tokens are held by per-request threads).
            self._growing = True
            self._group.start_soon(self._grow)
        await done.event.wait()
        if done.error is not None:
            raise done.error

    def _spawn(self) -> bool:
        """Start a worker if a limiter token is free; whether it was started."""
        marker = object()
        try:
            self.limiter.acquire_on_behalf_of_nowait(marker)
        except anyio.WouldBlock:
            return False
        self.threads += 1
        thread = threading.Thread(
            target=self._work, args=(marker,), name="tricorn WSGI worker", daemon=True
        )
        thread.start()
        return True

    def _worker_ended(self, marker: object) -> None:
        self.threads -= 1
        self.limiter.release_on_behalf_of(marker)

    async def _grow(self) -> None:
        try:
            while self._jobs and not self.closed:
                await anyio.sleep(GROW_AFTER)
                if self._jobs and time.monotonic() - self.last_start >= GROW_AFTER:
                    if self.idle:
                        self._wake.release()
                    else:
                        self._spawn()
        finally:
            self._growing = False

    def _work(self, marker: object) -> None:
        try:
            self._serve_jobs()
        finally:
            with contextlib.suppress(RuntimeError):  # the event loop has ended
                self._call_soon(self._worker_ended, marker)

    def _serve_jobs(self) -> None:
        lock = self._lock
        jobs = self._jobs
        while True:
            try:
                job, done = jobs.popleft()
            except IndexError:
                if self.closed:
                    return
                with lock:
                    self.idle += 1
                if not jobs and not self.closed:  # checked again once counted as idle
                    self._wake.acquire()
                with lock:
                    self.idle -= 1
                continue
            self.last_start = time.monotonic()
            error: BaseException | None = None
            try:
                job()
            except BaseException as raised:  # handed to the request's task, which raises it
                error = raised
            try:
                self._call_soon(done.set, error)
            except RuntimeError:  # the event loop has ended: nobody waits any more
                return
            del job, done, error

    def close(self) -> None:
        """No more requests: idle workers end; busy ones end after their request."""
        self.closed = True
        for _ in range(self.threads):
            self._wake.release()
