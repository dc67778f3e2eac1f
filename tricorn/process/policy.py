"""The supervisor's policy: which worker to start, replace, stop or kill, and when to give up.

A pure object: no processes, signals, clocks or I/O. The mechanism (``supervisor.py``) feeds
it events (a worker spawned, ready, beat, exited; a signal; a memory sample; a timer tick,
each with ``now``) and carries out the actions it returns, in order. Workers are named by
ids the policy hands out in ``Spawn``; the mechanism maps them to pids.

Rules:
- ``target`` workers run. One that exits unexpectedly is replaced at once.
- Replacing a worker that serves (SIGHUP rolling restart, max_requests, max_worker_lifetime,
  max_worker_memory) is a surge of one: the replacement is spawned, and only once it is
  ready is the old one stopped gracefully. One replacement is in flight at a time.
- A worker exiting before it was ever ready while no worker has been ready yet (start-up),
  or ``MAX_START_FAILURES`` times in a row later, ends the server with that worker's status.
  A replacement of a rolling restart that fails abandons the roll: the old workers stay.
  With ``reload`` (development) a start failure never ends the server: it waits, with no
  worker started, for the next change (``reload()``), as Uvicorn's reloader does.
- A stopping worker is killed ``graceful_timeout + STOP_MARGIN`` seconds after it was asked
  to stop; a ready worker with no heartbeat for ``worker_timeout`` seconds is killed.
- SIGTERM/SIGINT stop all gracefully, a second one (or SIGQUIT) kills all; the server exits
  once every worker has exited.
"""

from __future__ import annotations

import random
import signal
from dataclasses import dataclass, field

#: Pre-ready exits in a row (once the server has served) that make it give up.
MAX_START_FAILURES = 5
#: Seconds beyond graceful_timeout a stopping worker gets before it is killed.
STOP_MARGIN = 5.0


@dataclass(frozen=True, slots=True)
class Settings:
    workers: int = 1
    max_requests: int = 0
    max_requests_jitter: int = 0
    max_worker_lifetime: float = 0.0
    #: Bytes; 0 for no limit.
    max_worker_memory: int = 0
    worker_timeout: float = 30.0
    graceful_timeout: float = 30.0
    #: Seconds the lifespan startup may take (a worker not ready after this plus
    #: worker_timeout is taken for hung, in its import or its startup).
    startup_timeout: float = 60.0
    #: Development (``reload``): a worker that fails to start does not end the server;
    #: the next file change (``reload()``) starts the workers again.
    reload: bool = False


# --- actions ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spawn:
    """Start a worker with the current configuration; report its pid with ``spawned``."""

    wid: int


@dataclass(frozen=True, slots=True)
class Stop:
    """Ask a worker to stop gracefully (SIGTERM)."""

    wid: int
    reason: str


@dataclass(frozen=True, slots=True)
class Kill:
    """Kill a worker at once (SIGKILL)."""

    wid: int
    reason: str


@dataclass(frozen=True, slots=True)
class Notify:
    """Tell the service manager (sd_notify), e.g. ``READY=1``."""

    state: str


@dataclass(frozen=True, slots=True)
class Log:
    """A line for the error log; ``{pid}`` in it stands for worker ``wid``'s pid."""

    level: str  # "info", "warning", "error"
    message: str
    wid: int | None = None


@dataclass(frozen=True, slots=True)
class ReloadFailed:
    """A rolling restart was abandoned: spawn with the configuration from before it."""


@dataclass(frozen=True, slots=True)
class Exit:
    """Every worker is gone: exit the supervisor with ``status``."""

    status: int


Action = Spawn | Stop | Kill | Notify | Log | ReloadFailed | Exit


@dataclass(slots=True)
class Worker:
    wid: int
    started: float
    pid: int | None = None
    ready: bool = False
    last_beat: float = 0.0
    served: int = 0
    request_limit: int = 0
    #: Why it is to be replaced ("reload", "max_requests", ...), or None.
    retiring: str | None = None
    replaced_by: int | None = None
    replaces: int | None = None
    #: Spawned as a replacement (one such worker starts at a time).
    surge: bool = False
    stopping: bool = False
    stop_deadline: float = 0.0
    killed: bool = False


@dataclass(slots=True)
class Policy:
    settings: Settings
    rng: random.Random = field(default_factory=random.Random)
    workers: dict[int, Worker] = field(default_factory=dict)
    target: int = 0
    #: "running", "stopping" (graceful), "halting" (killing), "done".
    mode: str = "running"
    exit_status: int = 0
    ever_ready: bool = False
    start_failures: int = 0
    booted: bool = False
    rolling: bool = False
    #: ``reload``: a start failed; no worker is started until the next change.
    waiting_for_change: bool = False
    next_id: int = 1

    # --- events -------------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        """The supervisor starts: spawn ``settings.workers`` workers."""
        self.target = self.settings.workers
        return self._reconcile(now)

    def spawned(self, wid: int, pid: int, now: float) -> list[Action]:
        self.workers[wid].pid = pid
        return []

    def ready(self, wid: int, now: float) -> list[Action]:
        worker = self.workers.get(wid)
        if worker is None or worker.ready:
            return []
        worker.ready = True
        worker.last_beat = now
        self.ever_ready = True
        self.start_failures = 0
        actions: list[Action] = []
        if worker.replaces is not None:
            old = self.workers.get(worker.replaces)
            worker.replaces = None
            if old is not None and not old.stopping:
                actions += self._stop(old, now, f"replaced ({old.retiring})")
        if self.mode == "running":
            actions += self._reconcile(now)
            if not self.booted and self._enough_ready():
                self.booted = True
                actions.append(Notify("READY=1"))
            elif self.rolling and not any(
                w.retiring == "reload" and not w.stopping for w in self.workers.values()
            ):
                self.rolling = False
                actions.append(Log("info", "Rolling restart done"))
                actions.append(Notify("READY=1"))
        return actions

    def heartbeat(self, wid: int, served: int, now: float) -> list[Action]:
        worker = self.workers.get(wid)
        if worker is None:
            return []
        worker.last_beat = now
        worker.served = served
        if (
            worker.request_limit
            and served >= worker.request_limit
            and worker.retiring is None
            and not worker.stopping
            and self.mode == "running"
        ):
            return self._retire(worker, "max_requests", now)
        return []

    def memory(self, wid: int, rss: int, now: float) -> list[Action]:
        worker = self.workers.get(wid)
        limit = self.settings.max_worker_memory
        if worker is None or not limit or rss <= limit or worker.retiring or worker.stopping:
            return []
        if self.mode != "running":
            return []
        return self._retire(worker, "max_worker_memory", now)

    def exited(self, wid: int, status: int, now: float) -> list[Action]:
        worker = self.workers.pop(wid, None)
        if worker is None:
            return []
        actions: list[Action] = []
        expected = worker.stopping
        if worker.replaced_by is not None and worker.replaced_by in self.workers:
            # Its replacement takes its place; it has nothing left to replace.
            self.workers[worker.replaced_by].replaces = None
        if not expected and self.mode == "running":
            shown = _status_text(status)
            if not worker.ready:
                actions += self._failed_before_ready(worker, wid, shown, status, now)
            else:
                actions.append(Log("warning", f"Worker {{pid}} {shown}: starting another", wid))
        if self.mode == "running":
            actions += self._reconcile(now)
        return [*actions, *self._maybe_done()]

    def _failed_before_ready(
        self, worker: Worker, wid: int, shown: str, status: int, now: float
    ) -> list[Action]:
        """A worker died at start: abandon a roll, wait for a change (reload), try again,
        or give up when workers keep dying."""
        actions: list[Action] = []
        if worker.replaces is not None:
            old = self.workers.get(worker.replaces)
            if old is not None:
                old.replaced_by = None
        if worker.replaces is not None and self.rolling:
            self._abandon_roll()
            actions.append(
                Log(
                    "error",
                    f"Rolling restart abandoned: the new worker {{pid}} {shown} "
                    "before it was ready; the old workers keep serving",
                    wid,
                )
            )
            actions.append(ReloadFailed())
            actions.append(Notify("READY=1"))
        elif self.settings.reload:
            if not self.waiting_for_change:
                self.waiting_for_change = True
                actions.append(
                    Log(
                        "error",
                        f"Worker {{pid}} {shown} before it was ready: waiting for a "
                        "change to try again (reload)",
                        wid,
                    )
                )
        else:
            self.start_failures += 1
            if not self.ever_ready or self.start_failures >= MAX_START_FAILURES:
                code = status if status > 0 else 1
                actions.append(
                    Log(
                        "error",
                        f"Worker {{pid}} {shown} before it was ready: giving up "
                        f"(exit status {code})",
                        wid,
                    )
                )
                return [*actions, *self._begin_stop(now, code, kill=False)]
            actions.append(Log("warning", f"Worker {{pid}} {shown} before it was ready", wid))
        return actions

    def signal(self, signum: int, now: float) -> list[Action]:
        """SIGTERM/SIGINT (graceful stop, a second one kills), SIGQUIT, SIGTTIN, SIGTTOU."""
        if signum in (signal.SIGTERM, signal.SIGINT):
            name = signal.Signals(signum).name
            if self.mode == "running":
                return [
                    Log(
                        "info",
                        f"Received {name}: stopping the workers gracefully "
                        "(send it again to stop now)",
                    ),
                    *self._begin_stop(now, self.exit_status, kill=False),
                    *self._maybe_done(),
                ]
            if self.mode == "stopping":
                return [Log("warning", f"Second {name}: stopping now"), *self._halt()]
            return []
        if signum == signal.SIGQUIT:
            if self.mode in ("running", "stopping"):
                self.mode = "stopping"
                return [
                    Log("warning", "Received SIGQUIT: stopping now"),
                    Notify("STOPPING=1"),
                    *self._halt(),
                ]
            return []
        if self.mode != "running":
            return []
        if signum == signal.SIGTTIN:
            self.target += 1
            return [Log("info", f"SIGTTIN: {self.target} workers"), *self._reconcile(now)]
        if signum == signal.SIGTTOU:
            if self.target <= 1:
                return [Log("info", "SIGTTOU: keeping the last worker")]
            self.target -= 1
            return [Log("info", f"SIGTTOU: {self.target} workers"), *self._reconcile(now)]
        return []

    def reload(
        self, settings: Settings, now: float, cause: str = "Received SIGHUP"
    ) -> list[Action]:
        """SIGHUP, with the configuration re-read: replace every worker, one at a time."""
        if self.mode != "running":
            return []
        self.settings = settings
        self.target = settings.workers
        if self.waiting_for_change:  # reload: the last start failed; start afresh
            self.waiting_for_change = False
            return [Log("info", f"{cause}: starting the workers again"), *self._reconcile(now)]
        self.rolling = True
        for worker in self.workers.values():
            if not worker.stopping:
                worker.retiring = "reload"
        return [
            Notify("RELOADING=1"),
            Log("info", f"{cause}: rolling restart of the workers"),
            *self._reconcile(now),
        ]

    def tick(self, now: float) -> list[Action]:
        actions: list[Action] = []
        timeout = self.settings.worker_timeout
        lifetime = self.settings.max_worker_lifetime
        for worker in list(self.workers.values()):
            if worker.killed:
                continue
            if worker.stopping:
                if now >= worker.stop_deadline:
                    worker.killed = True
                    actions.append(Kill(worker.wid, "did not stop in time"))
                continue
            limit = self.settings.startup_timeout + timeout
            if not worker.ready and timeout and now - worker.started > limit:
                # Not "stopping": its exit counts as a start failure.
                worker.killed = True
                actions.append(Kill(worker.wid, f"not ready after {now - worker.started:.1f} s"))
                continue
            if worker.ready and timeout and now - worker.last_beat > timeout:
                worker.killed = True
                worker.stopping = True
                actions.append(
                    Kill(
                        worker.wid,
                        f"no heartbeat for {now - worker.last_beat:.1f} s "
                        f"(worker_timeout = {timeout:g})",
                    )
                )
                continue
            if (
                lifetime
                and worker.ready
                and worker.retiring is None
                and now - worker.started >= lifetime
                and self.mode == "running"
            ):
                actions += self._retire(worker, "max_worker_lifetime", now)
        if self.mode == "running":
            actions += self._reconcile(now)
        return actions

    # --- queries ------------------------------------------------------------------

    def pid(self, wid: int) -> int | None:
        worker = self.workers.get(wid)
        return None if worker is None else worker.pid

    # --- internals ----------------------------------------------------------------

    def _enough_ready(self) -> bool:
        """``target`` workers serve. A replacement still starting does not hold this back:
        the worker it replaces serves until it is ready (with ``max_worker_memory`` recycling
        each worker soon after its start, one is nearly always starting)."""
        ready = sum(1 for w in self.workers.values() if w.ready and not w.stopping)
        return ready >= self.target

    def _counts(self, worker: Worker) -> bool:
        """Whether ``worker`` fills one of the ``target`` places."""
        return not worker.stopping and not (
            worker.retiring is not None and worker.replaced_by is not None
        )

    def _spawn(self, now: float, replaces: Worker | None = None) -> Spawn:
        wid = self.next_id
        self.next_id += 1
        limit = 0
        if self.settings.max_requests:
            limit = self.settings.max_requests + self.rng.randint(
                0, self.settings.max_requests_jitter
            )
        worker = Worker(wid, started=now, request_limit=limit)
        if replaces is not None:
            worker.replaces = replaces.wid
            worker.surge = True
            replaces.replaced_by = wid
        self.workers[wid] = worker
        return Spawn(wid)

    def _reconcile(self, now: float) -> list[Action]:
        if self.waiting_for_change:
            return []
        actions: list[Action] = []
        counted = [w for w in self.workers.values() if self._counts(w)]
        for _ in range(self.target - len(counted)):
            actions.append(self._spawn(now))
        if len(counted) > self.target:
            # SIGTTOU: stop the retiring ones first, then the oldest.
            extra = sorted(counted, key=lambda w: (w.retiring is None, w.wid))
            for worker in extra[: len(counted) - self.target]:
                actions += self._stop(worker, now, "fewer workers (SIGTTOU)")
        in_flight = any(w.surge and not w.ready for w in self.workers.values())
        if not in_flight:
            waiting = [
                w
                for w in self.workers.values()
                if w.retiring is not None and w.replaced_by is None and not w.stopping
            ]
            if waiting:
                actions.append(self._spawn(now, replaces=min(waiting, key=lambda w: w.wid)))
        return actions

    def _retire(self, worker: Worker, reason: str, now: float) -> list[Action]:
        worker.retiring = reason
        return [
            Log("info", f"Replacing worker {{pid}} ({reason})", worker.wid),
            *self._reconcile(now),
        ]

    def _abandon_roll(self) -> None:
        self.rolling = False
        for worker in self.workers.values():
            if worker.retiring == "reload":
                worker.retiring = None

    def _stop(self, worker: Worker, now: float, reason: str) -> list[Action]:
        worker.stopping = True
        worker.stop_deadline = now + self.settings.graceful_timeout + STOP_MARGIN
        return [Stop(worker.wid, reason)]

    def _begin_stop(self, now: float, status: int, *, kill: bool) -> list[Action]:
        self.mode = "stopping"
        self.exit_status = status
        actions: list[Action] = [Notify("STOPPING=1")]
        for worker in self.workers.values():
            if not worker.stopping:
                actions += self._stop(worker, now, "shutdown")
        return actions

    def _halt(self) -> list[Action]:
        self.mode = "halting"
        actions: list[Action] = []
        for worker in self.workers.values():
            if not worker.killed:
                worker.killed = True
                worker.stopping = True
                actions.append(Kill(worker.wid, "stopping now"))
        return [*actions, *self._maybe_done()]

    def _maybe_done(self) -> list[Action]:
        if self.mode in ("stopping", "halting") and not self.workers:
            self.mode = "done"
            return [Exit(self.exit_status)]
        return []


def _status_text(status: int) -> str:
    if status < 0:
        try:
            return f"was killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"was killed by signal {-status}"
    return f"exited with status {status}"
