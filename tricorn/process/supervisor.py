"""The supervisor's mechanism: open the sockets, spawn workers, relay signals, reap, read pipes.

Every decision is the policy's (``policy.py``); this module only turns its actions into
system calls and the system's happenings into its events. One thread, one ``selectors``
loop: the signal wakeup fd (every signal we handle writes its number there), one pipe per
worker, and a timer tick for the policy's deadlines. Idle, it sleeps in ``select``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from tricorn.config import Config
from tricorn.config.loader import check_config, load_config
from tricorn.config.logging import reopen_logs
from tricorn.config.tls import build_ssl_context
from tricorn.constants import ERROR_LOGGER
from tricorn.errors import ConfigError
from tricorn.process.metrics import SupervisorMetrics
from tricorn.process.policy import (
    Action,
    Exit,
    Kill,
    Log,
    Notify,
    Policy,
    ReloadFailed,
    Settings,
    Spawn,
    Stop,
)
from tricorn.process.worker import CONFIG_ENV, config_to_json
from tricorn.server import systemd
from tricorn.server.listeners import close_sockets, open_config_sockets

error_log = logging.getLogger(ERROR_LOGGER)

HANDLED_SIGNALS = (
    signal.SIGCHLD,
    signal.SIGHUP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGUSR1,
)
#: Environment variables meant for the supervisor alone (systemd's).
PRIVATE_ENV = (
    "NOTIFY_SOCKET",
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "WATCHDOG_PID",
    "WATCHDOG_USEC",
)


def settings_from(config: Config) -> Settings:
    return Settings(
        workers=config.workers,
        max_requests=config.max_requests,
        max_requests_jitter=config.max_requests_jitter,
        max_worker_lifetime=config.max_worker_lifetime,
        max_worker_memory=config.max_worker_memory * 1024 * 1024,
        worker_timeout=config.worker_timeout,
        graceful_timeout=config.graceful_timeout,
        startup_timeout=config.startup_timeout,
        reload=config.reload,
    )


def beat_interval(config: Config) -> float:
    """Seconds between a worker's heartbeats: a quarter of worker_timeout, at most 1 s."""
    if not config.worker_timeout:
        return 1.0
    return max(0.05, min(1.0, config.worker_timeout / 4))


def rss_bytes(pid: int) -> int | None:
    """A process's resident memory (Linux ``/proc``), or None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as file:
            return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


#: The byte the file watcher writes to the wakeup socket (no signal has number 0).
FILES_CHANGED = 0


class Watcher:
    """``reload``: a thread that watches ``dirs`` for .py changes and wakes the loop."""

    def __init__(self, dirs: list[str], wake: socket.socket) -> None:
        try:
            import watchfiles
        except ImportError:
            raise ConfigError(
                "config: reload = true: watchfiles is not installed (pip install 'tricorn[reload]')"
            ) from None
        self._watchfiles = watchfiles
        self.dirs = dirs
        self.wake = wake
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.changed: list[str] = []
        self.thread = threading.Thread(target=self._run, name="tricorn-reload", daemon=True)

    def start(self) -> None:
        self.thread.start()
        error_log.info("Watching %s for changes (reload)", ", ".join(self.dirs))

    def _run(self) -> None:
        for changes in self._watchfiles.watch(
            *self.dirs,
            watch_filter=self._watchfiles.PythonFilter(),
            stop_event=self.stop,
            debounce=200,
            rust_timeout=500,
            raise_interrupt=False,
        ):
            with self.lock:
                self.changed.extend(sorted(path for _, path in changes))
            try:
                self.wake.send(bytes([FILES_CHANGED]))
            except OSError:
                return

    def take(self) -> list[str]:
        with self.lock:
            changed, self.changed = self.changed, []
        return changed

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)


@dataclasses.dataclass(slots=True)
class _Child:
    process: subprocess.Popen[bytes]
    pipe: int
    buffer: bytes = b""
    #: It said "ready": its event loop handles SIGUSR1 (before, SIGUSR1 could end it).
    ready: bool = False
    #: A SIGUSR1 came before it was ready: relay it then.
    reopen_pending: bool = False


class Supervisor:
    def __init__(self, config: Config, argv: list[str]) -> None:
        self.config = config
        self.previous_config = config
        self.argv = argv
        self.children: dict[int, _Child] = {}
        self.sockets: list[socket.socket] = []
        self.selector = selectors.DefaultSelector()
        self.policy = Policy(settings_from(config))
        self.status: int | None = None
        self.watcher: Watcher | None = None
        #: Worker slots and, with metrics_bind, the workers' snapshots and the scrapes.
        self.metrics = SupervisorMetrics(config)

    # --- running ------------------------------------------------------------------

    def run(self) -> int:
        try:
            check_config(self.config, "the configuration")
            build_ssl_context(self.config)  # a bad certificate is one line, not one per worker
            self.sockets = open_config_sockets(self.config)  # systemd's, or the binds
            self.metrics.open()  # metrics_bind: the supervisor answers scrapes
        except ConfigError as error:
            error_log.error("%s", error)
            return 2
        wake_read, wake_write = socket.socketpair()
        wake_read.setblocking(False)
        wake_write.setblocking(False)
        previous = {signum: signal.getsignal(signum) for signum in HANDLED_SIGNALS}
        old_wakeup = signal.set_wakeup_fd(wake_write.fileno(), warn_on_full_buffer=False)
        for signum in HANDLED_SIGNALS:
            signal.signal(signum, _ignore)
        self.selector.register(wake_read, selectors.EVENT_READ, None)
        if self.config.reload:
            try:
                self.watcher = Watcher(self.config.reload_dirs or [self.config.app_dir], wake_write)
            except ConfigError as error:
                error_log.error("%s", error)
                return 2
            self.watcher.start()
        error_log.info("Supervisor %d starting %d workers", os.getpid(), self.config.workers)
        try:
            self._do(self.policy.start(time.monotonic()))
            return self._loop(wake_read)
        finally:
            if self.watcher is not None:
                self.watcher.close()
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            for child in self.children.values():  # only after an unexpected error
                child.process.kill()
                child.process.wait()
            self._close_listeners()
            self.metrics.close()
            wake_read.close()
            wake_write.close()
            self.selector.close()
            error_log.info("Supervisor stopped")

    def _loop(self, wake: socket.socket) -> int:
        tick = beat_interval(self.config)
        next_tick = time.monotonic() + tick
        # systemd watches the main pid (NotifyAccess=main): WATCHDOG=1 comes from this
        # loop, so a stuck supervisor stops the pings; its workers' health is its own
        # business (heartbeats, worker_timeout), and they have no NOTIFY_SOCKET.
        watchdog = systemd.watchdog_interval()
        next_watchdog = time.monotonic() if watchdog is not None else math.inf
        while self.status is None:
            timeout = max(0.0, min(next_tick, next_watchdog) - time.monotonic())
            for key, _ in self.selector.select(timeout):
                if key.data is None:
                    self._signals(wake)
                else:
                    self._read(key.data)
                if self.status is not None:
                    break
            if self.status is None:
                self._reap()
            now = time.monotonic()
            if watchdog is not None and now >= next_watchdog:
                systemd.notify("WATCHDOG=1", wait=False)
                next_watchdog = now + watchdog
            if self.status is None and now >= next_tick:
                next_tick = now + tick
                self._sample_memory(now)
                self._do(self.policy.tick(now))
        return self.status

    def _signals(self, wake: socket.socket) -> None:
        try:
            data = wake.recv(512)
        except BlockingIOError:
            return
        for signum in data:
            if signum == signal.SIGCHLD:
                continue  # reaped after the events
            if signum == FILES_CHANGED:
                self._files_changed()
                continue
            if signum == signal.SIGHUP:
                self._reload()
            elif signum == signal.SIGUSR1:
                self._reopen_logs()
            else:
                self._do(self.policy.signal(signum, time.monotonic()))

    def _reload(self) -> None:
        try:
            config = load_config(self.argv)
            check_config(config, "the configuration")
            build_ssl_context(config)  # new certificates are read by the new workers
        except (ConfigError, SystemExit) as error:
            error_log.error("SIGHUP: configuration not reloaded, keeping the workers: %s", error)
            return
        if config.bind != self.config.bind:
            error_log.warning(
                "SIGHUP: bind changed (%s -> %s): a new bind takes a full restart; "
                "keeping the open sockets",
                ", ".join(self.config.bind),
                ", ".join(config.bind),
            )
        self.previous_config, self.config = self.config, config
        self._do(self.policy.reload(settings_from(config), time.monotonic()))

    def _reopen_logs(self) -> None:
        """SIGUSR1, as with gunicorn: reopen our log files, then have every worker reopen
        its own (each process writes its lines to its own handlers)."""
        reopen_logs("Received SIGUSR1")
        for child in self.children.values():
            if child.ready:
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGUSR1)
            else:
                child.reopen_pending = True

    def _files_changed(self) -> None:
        changed = self.watcher.take() if self.watcher is not None else []
        if not changed:
            return
        more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
        error_log.info("Reloading: %s changed%s", changed[0], more)
        now = time.monotonic()
        self.previous_config = self.config  # what a failed roll goes back to
        self._do(self.policy.reload(settings_from(self.config), now, "File changed"))

    def _read(self, wid: int) -> None:
        child = self.children.get(wid)
        if child is None:
            return
        try:
            data = os.read(child.pipe, 4096)
        except BlockingIOError:
            return
        if not data:
            self.selector.unregister(child.pipe)
            return
        lines = (child.buffer + data).split(b"\n")
        child.buffer = lines.pop()
        now = time.monotonic()
        for line in lines:
            if line == b"ready":
                child.ready = True
                if child.reopen_pending:
                    child.reopen_pending = False
                    with contextlib.suppress(ProcessLookupError):
                        child.process.send_signal(signal.SIGUSR1)
                self._do(self.policy.ready(wid, now))
            elif line.startswith(b"beat "):
                try:
                    served = int(line[5:])
                except ValueError:
                    continue
                self._do(self.policy.heartbeat(wid, served, now))

    def _reap(self) -> None:
        for wid, child in list(self.children.items()):
            status = child.process.poll()
            if status is None:
                continue
            with contextlib.suppress(KeyError):
                self.selector.unregister(child.pipe)
            os.close(child.pipe)
            self.metrics.exited(wid)
            self._do(self.policy.exited(wid, status, time.monotonic()))
            del self.children[wid]

    def _sample_memory(self, now: float) -> None:
        if not self.config.max_worker_memory:
            return
        for wid, child in list(self.children.items()):
            rss = rss_bytes(child.process.pid)
            if rss is not None:
                self._do(self.policy.memory(wid, rss, now))

    # --- actions ------------------------------------------------------------------

    def _do(self, actions: list[Action]) -> None:
        if self.policy.mode != "running":
            # Stopping: no worker is started again. Our copies of the listening sockets
            # would keep them open after every worker closed its own: a new client's
            # connection would wait in the backlog for the whole graceful_timeout, then be
            # reset. Closed, it is refused at once (and a unix socket file removed).
            self._close_listeners()
        for action in actions:
            if isinstance(action, Spawn):
                self._spawn(action.wid)
            elif isinstance(action, Stop):
                self._send(action.wid, signal.SIGTERM, f"Stopping worker {{pid}} ({action.reason})")
            elif isinstance(action, Kill):
                self._send(action.wid, signal.SIGKILL, f"Killing worker {{pid}}: {action.reason}")
            elif isinstance(action, Notify):
                systemd.notify(action.state)
            elif isinstance(action, Log):
                message = action.message
                if action.wid is not None:
                    message = message.replace("{pid}", str(self._pid(action.wid)))
                error_log.log(logging.getLevelName(action.level.upper()), "%s", message)
            elif isinstance(action, ReloadFailed):
                self.config = self.previous_config
            elif isinstance(action, Exit):
                self.status = action.status

    def _close_listeners(self) -> None:
        close_sockets(self.sockets)
        self.sockets = []

    def _pid(self, wid: int) -> int | str:
        child = self.children.get(wid)
        return child.process.pid if child is not None else "?"

    def _send(self, wid: int, signum: int, message: str) -> None:
        child = self.children.get(wid)
        if child is None:
            return
        level = logging.WARNING if signum == signal.SIGKILL else logging.INFO
        error_log.log(level, "%s", message.replace("{pid}", str(child.process.pid)))
        with contextlib.suppress(ProcessLookupError):
            child.process.send_signal(signum)

    def _spawn(self, wid: int) -> None:
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        config = dataclasses.replace(
            self.config,
            bind=[f"fd://{sock.fileno()}" for sock in self.sockets],
            workers=1,
            pid_file="",
            metrics_bind="",  # the supervisor's (tricorn.process.metrics)
        )
        env: dict[str, Any] = {
            key: value for key, value in os.environ.items() if key not in PRIVATE_ENV
        }
        env[CONFIG_ENV] = config_to_json(config)
        metrics_env, metrics_fds = self.metrics.spawn_env(wid)
        env.update(metrics_env)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tricorn.process.worker",
                "--pipe",
                str(write_end),
                "--beat",
                str(beat_interval(self.config)),
            ],
            pass_fds=[write_end, *(sock.fileno() for sock in self.sockets), *metrics_fds],
            env=env,
        )
        os.close(write_end)
        self.metrics.spawned(wid, process.pid)
        self.children[wid] = _Child(process, read_end)
        self.selector.register(read_end, selectors.EVENT_READ, wid)
        self._do(self.policy.spawned(wid, process.pid, time.monotonic()))
        error_log.debug("Started worker %d", process.pid)


def _ignore(signum: int, frame: object) -> None:
    """The handler of every signal we handle: the wakeup fd carries the signal number."""
