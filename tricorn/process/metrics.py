"""Metrics with ``workers > 1``: each worker counts, the supervisor exports.

The supervisor owns ``metrics_bind``. Each worker gets one end of a unix datagram socket
pair (``TRICORN_METRICS_FD``) and sends its whole ``Snapshot`` (JSON, one datagram) every
``PUSH_INTERVAL`` seconds and once more after its graceful shutdown. A scrape is answered
from the latest snapshots, without waiting for any worker (a hung worker cannot hang a
scrape), so what it shows is at most ``PUSH_INTERVAL`` old:

- ``tricorn_*``: the server's sums. Counters and histograms add every live worker's
  latest snapshot and the last snapshot of every worker that has exited, so they never go
  back when a worker is replaced. A worker that stops gracefully sends its final counts:
  nothing is lost. One that is killed (SIGKILL, a crash) loses what it counted after its
  last push (at most ``PUSH_INTERVAL`` seconds of its traffic). Gauges add the live workers.
- ``tricorn_worker_*{worker="N"}``: the same per worker. ``N`` is the worker's slot
  (0 .. workers, the lowest free one when a worker starts: bounded, unlike pids); a
  replacement in the same slot starts from zero, which Prometheus reads as a counter reset.
- ``tricorn_workers``, ``tricorn_worker_pid{worker}``, ``tricorn_worker_exits_total``.

Why not prometheus_client's multiprocess mode: it puts an mmap'd file write (under a lock)
on every increment, keeps dead workers' files to clean up by hand, and has no per-worker
gauges unless every gauge is "all"; here the request path stays a few int additions.

Threads: a daemon thread owns the metrics socket and the workers' datagram sockets; the
supervisor's loop calls ``spawn_env``/``spawned``/``exited`` under the same lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import anyio

from tricorn.config import Config
from tricorn.constants import ERROR_LOGGER
from tricorn.server.metrics import (
    PROCESS_METRICS,
    STATSD_GAUGE_LABELS,
    Metrics,
    Snapshot,
    merge,
    snapshot_from_json,
    snapshot_to_json,
)
from tricorn.server.metrics_export import (
    MAX_SCRAPE_HEAD,
    SCRAPE_TIMEOUT,
    families,
    open_metrics_socket,
    read_scrape_head,
    render_prometheus,
    scrape_response,
)

error_log = logging.getLogger(ERROR_LOGGER)

#: The worker's end of its snapshot socket, and its slot (the ``worker`` label).
METRICS_FD_ENV = "TRICORN_METRICS_FD"
SLOT_ENV = "TRICORN_WORKER_SLOT"
#: Seconds between two snapshots a worker sends.
PUSH_INTERVAL = 1.0
#: Socket buffer of the snapshot sockets: room for a few snapshots of any size.
SNAPSHOT_BUFFER = 1 << 20
#: Scrapes answered at once; more connections wait in the listen backlog.
MAX_SCRAPES = 4


# --- in the worker ----------------------------------------------------------------------


class MetricsPusher:
    """A worker's side: counts into one ``Metrics`` and sends its snapshots."""

    def __init__(self, sock: socket.socket | None, slot: str) -> None:
        self.sock = sock
        self.slot = slot
        self.metrics = Metrics()
        self.dropped = 0

    @classmethod
    def from_environment(cls, config: Config) -> MetricsPusher | None:
        """The pusher the supervisor asked for: None unless it collects the metrics
        (``metrics_bind``) or the worker sends statsd (whose gauges carry the slot)."""
        fd = os.environ.pop(METRICS_FD_ENV, None)
        slot = os.environ.pop(SLOT_ENV, "0")
        if fd is None:
            return cls(None, slot) if config.statsd_host else None
        sock = socket.socket(fileno=int(fd))
        sock.set_inheritable(False)  # not for the app's own subprocesses
        sock.setblocking(False)
        return cls(sock, slot)

    def install(self) -> None:
        """Make the ``serve`` started from here on count into ``self.metrics`` (and label
        its statsd gauges with the slot)."""
        PROCESS_METRICS.set(self.metrics)
        STATSD_GAUGE_LABELS.set({"worker": self.slot})

    def send(self) -> None:
        """Send the snapshot now; dropped (and counted) if the socket cannot take it."""
        if self.sock is None:
            return
        try:
            self.sock.send(snapshot_to_json(self.metrics.snapshot()))
        except OSError:
            self.dropped += 1

    async def run(self) -> None:
        while True:
            self.send()
            await anyio.sleep(PUSH_INTERVAL)


# --- in the supervisor ------------------------------------------------------------------


@dataclass(slots=True)
class _Worker:
    slot: int
    sock: socket.socket | None
    child_end: socket.socket | None
    pid: int | None = None
    snapshot: Snapshot = field(default_factory=dict)
    gone: bool = False


class SupervisorMetrics:
    """The supervisor's side: worker slots, their snapshots, and the scrape socket."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.lock = threading.Lock()
        self.workers: dict[int, _Worker] = {}
        #: What exited workers counted (counters and histograms only).
        self.retired: Snapshot = {}
        self.exits = 0
        self.listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = False
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)
        self._scrapes = threading.BoundedSemaphore(MAX_SCRAPES)

    @property
    def enabled(self) -> bool:
        return self.listener is not None

    def open(self) -> None:
        """Bind ``metrics_bind`` (ConfigError if it cannot be, or without prometheus_client)
        and start the thread that serves it."""
        self.listener = open_metrics_socket(self.config)
        if self.listener is None:
            return
        self.listener.setblocking(False)
        from tricorn.server.listeners import bound_address

        url = bound_address(self.listener).url("http")
        error_log.info("Metrics (Prometheus, all workers) at %s/metrics", url)
        self._thread = threading.Thread(target=self._run, name="tricorn-metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop = True
        self._wake()
        if self._thread is not None:
            self._thread.join(2)
        with self.lock:
            for worker in self.workers.values():
                for sock in (worker.sock, worker.child_end):
                    if sock is not None:
                        sock.close()
        if self.listener is not None:
            self.listener.close()
        self._wake_read.close()
        self._wake_write.close()

    # --- the supervisor's hooks ---------------------------------------------------

    def spawn_env(self, wid: int) -> tuple[dict[str, str], list[int]]:
        """For a worker about to start: its environment additions and the fds it inherits."""
        with self.lock:
            used = {worker.slot for worker in self.workers.values() if not worker.gone}
            slot = next(number for number in range(len(used) + 1) if number not in used)
            env = {SLOT_ENV: str(slot)}
            if not self.enabled:
                self.workers[wid] = _Worker(slot, None, None)
                return env, []
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            for sock in (ours, theirs):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNAPSHOT_BUFFER)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SNAPSHOT_BUFFER)
            ours.setblocking(False)
            self.workers[wid] = _Worker(slot, ours, theirs)
            env[METRICS_FD_ENV] = str(theirs.fileno())
        self._wake()
        return env, [theirs.fileno()]

    def spawned(self, wid: int, pid: int | None) -> None:
        """The worker started (``pid``) or could not be (None): our copy of its end goes."""
        with self.lock:
            worker = self.workers.get(wid)
            if worker is None:
                return
            worker.pid = pid
            if worker.child_end is not None:
                worker.child_end.close()
                worker.child_end = None
            if pid is None:
                worker.gone = True
        self._wake()

    def exited(self, wid: int) -> None:
        """The worker has exited: its last snapshot (the final one after a graceful stop)
        joins the retired counts; its slot is free again."""
        with self.lock:
            worker = self.workers.get(wid)
            if worker is None:
                return
            self._receive(worker)
            self.retired = merge([self.retired, worker.snapshot], gauges=False)
            worker.gone = True
            self.exits += 1
            if not self.enabled:
                del self.workers[wid]
        self._wake()

    # --- the thread ----------------------------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_write.send(b"x")

    def _receive(self, worker: _Worker) -> None:
        """Take every snapshot waiting on the worker's socket (the last one wins). Under
        the lock."""
        sock = worker.sock
        if sock is None:
            return
        while True:
            try:
                data = sock.recv(SNAPSHOT_BUFFER)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if not data:
                return
            try:
                worker.snapshot = snapshot_from_json(data)
            except ValueError as error:
                error_log.warning("Metrics: a bad snapshot from worker %s: %s", worker.pid, error)

    def _sync(self, selector: selectors.BaseSelector) -> None:
        """Register new workers' sockets; close those of exited workers. Under the lock."""
        registered = {key.fileobj for key in selector.get_map().values()}
        for wid, worker in list(self.workers.items()):
            sock = worker.sock
            if worker.gone:
                if sock is not None:
                    if sock in registered:
                        selector.unregister(sock)
                    sock.close()
                del self.workers[wid]
            elif sock is not None and sock not in registered:
                selector.register(sock, selectors.EVENT_READ, wid)

    def _run(self) -> None:
        assert self.listener is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.listener, selectors.EVENT_READ, "listener")
            selector.register(self._wake_read, selectors.EVENT_READ, "wake")
            while not self._stop:
                with self.lock:
                    self._sync(selector)
                for key, _ in selector.select(5.0):
                    if key.data == "wake":
                        with contextlib.suppress(OSError):
                            self._wake_read.recv(4096)
                    elif key.data == "listener":
                        self._accept()
                    else:
                        with self.lock:
                            worker = self.workers.get(key.data)
                            if worker is not None and not worker.gone:
                                self._receive(worker)

    def _accept(self) -> None:
        assert self.listener is not None
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        if not self._scrapes.acquire(blocking=False):
            conn.close()  # MAX_SCRAPES are being answered: a client holding one is slow
            return
        threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        try:
            conn.setblocking(True)
            conn.settimeout(SCRAPE_TIMEOUT)
            data = b""
            deadline = time.monotonic() + SCRAPE_TIMEOUT
            while (head := read_scrape_head(data)) is None:
                if len(data) > MAX_SCRAPE_HEAD or time.monotonic() > deadline:
                    return
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            conn.sendall(scrape_response(head, self.render))
        except OSError:
            pass
        except Exception:
            error_log.exception("Metrics: answering a scrape failed")
        finally:
            conn.close()
            self._scrapes.release()

    # --- the exposition -------------------------------------------------------------

    def render(self) -> bytes:
        with self.lock:
            live = {
                str(worker.slot): (worker.snapshot, worker.pid)
                for worker in self.workers.values()
                if not worker.gone
            }
            retired = self.retired
            exits = self.exits
        return render_prometheus(lambda: self.collect(live, retired, exits))

    @staticmethod
    def collect(
        live: dict[str, tuple[Snapshot, int | None]], retired: Snapshot, exits: int
    ) -> list[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        total = merge([retired, *(snapshot for snapshot, _ in live.values())])
        result = families([({}, total)])
        result += families(
            [({"worker": slot}, snapshot) for slot, (snapshot, _) in sorted(live.items())],
            prefix="tricorn_worker_",
        )
        workers = GaugeMetricFamily("tricorn_workers", "Worker processes running.")
        workers.add_metric([], len(live))
        pids = GaugeMetricFamily(
            "tricorn_worker_pid", "Process id of each worker.", labels=["worker"]
        )
        for slot, (_, pid) in sorted(live.items()):
            if pid is not None:
                pids.add_metric([slot], pid)
        exited = CounterMetricFamily("tricorn_worker_exits", "Worker processes that exited.")
        exited.add_metric([], exits)
        return [*result, workers, pids, exited]
