"""``workers = N``: the supervisor and its worker processes, as real processes and signals.

Each test starts ``python -m tricorn --workers N`` on a free port with an app written to
``tmp_path`` (so a test can deploy new code and SIGHUP), sends signals by pid, and reads
the supervisor's log file. Worker pids come from ``/proc/PID/task/PID/children``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port
from tests.integration.sd_notify import Notifications

ROOT = Path(__file__).resolve().parents[2]
TRICORN = [sys.executable, "-m", "tricorn"]
BACKENDS = ["asyncio", "trio"]
#: Hang guard of every wait, in seconds.
GUARD = 30.0

APP = """
import os
import time

import anyio

VERSION = {version!r}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({{"type": message["type"] + ".complete"}})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] == "websocket":
        await receive()
        await send({{"type": "websocket.accept"}})
        while (await receive())["type"] != "websocket.disconnect":
            pass
        return
    path = scope["path"]
    if path == "/block":
        time.sleep(3600)  # blocks the event loop: no more heartbeats
    if path == "/slow":
        await anyio.sleep(float(scope["query_string"] or b"1"))
    if path == "/stream":  # an endless event stream
        await send({{"type": "http.response.start", "status": 200, "headers": []}})
        while True:
            event = {{"type": "http.response.body", "body": b"data: x\\n\\n", "more_body": True}}
            await send(event)
            await anyio.sleep(0.05)
    body = f"{{VERSION}} {{os.getpid()}}".encode()
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": body}})
"""


def wait_until(predicate: Callable[[], object], what: str, timeout: float = GUARD) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def children(pid: int) -> set[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return set()
    return {int(item) for item in text.split()}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    app_path: Path
    #: What the supervisor tells systemd (READY=1, RELOADING=1, ...).
    notifications: Notifications

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text()

    def workers(self) -> set[int]:
        return children(self.pid)

    def serving_lines(self) -> int:
        return self.log().count("tricorn serving on")

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait_exit(self) -> int:
        return self.process.wait(timeout=GUARD)

    def deploy(self, version: str) -> None:
        self.app_path.write_text(APP.format(version=version))

    def get(self, path: str = "/") -> httpx.Response:
        return httpx.get(self.url + path, timeout=GUARD)


@contextmanager
def supervisor(
    tmp_path: Path,
    *args: str,
    workers: int = 2,
    workers_flag: bool = True,
    wait: bool = True,
    ready: bool = True,
    app: str = "wapp:app",
) -> Iterator[Server]:
    """Start ``python -m tricorn --workers N`` (``workers_flag=False``: no flag, the count
    comes from a ``--config`` file in ``args``). With ``wait``, return once the supervisor
    has every worker ready (its READY=1 on ``NOTIFY_SOCKET``, as systemd hears it) and
    ``workers`` of them logged that they serve (``ready=False``: the log lines alone).

    A worker logs "serving on" before it tells the supervisor it is ready, so that line
    alone is no sign that the supervisor knows: a worker killed in between is, for the
    supervisor, one that died before it was ever ready (and while none had been ready yet,
    a start-up failure that ends the server).
    """
    port = free_port()
    app_path = tmp_path / "wapp.py"
    app_path.write_text(APP.format(version="v1"))
    log_path = tmp_path / "tricorn.log"
    notifications = Notifications(f"@tricorn-test-{os.getpid()}-{port}-{time.monotonic_ns()}")
    env = {**os.environ, "NOTIFY_SOCKET": notifications.address}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *TRICORN,
                *(["--workers", str(workers)] if workers_flag else []),
                "--bind",
                f"127.0.0.1:{port}",
                "--app-dir",
                str(tmp_path),
                "--no-access-log",
                "--graceful-timeout",
                "5",
                *args,
                app,
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )
    server = Server(process, port, log_path, app_path, notifications)
    try:
        if wait and ready:
            notifications.until("READY=1", timeout=GUARD)
        if wait:
            wait_until(lambda: server.serving_lines() >= workers, f"{workers} workers serving")
        yield server
    finally:
        if process.poll() is None:
            left = server.workers()
            process.kill()
            process.wait()
            for pid in left:  # only the workers this test's supervisor started
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
        notifications.close()


@dataclass
class Outcome:
    #: The response's status, or the error that ended the request (no retries).
    result: int | str
    #: The worker that answered (from the body), or 0 for an error.
    pid: int = 0


@dataclass
class Load:
    #: Each client's requests, in order.
    clients: list[list[Outcome]]

    @property
    def results(self) -> list[int | str]:
        return [outcome.result for client in self.clients for outcome in client]

    def count(self) -> int:
        return sum(len(client) for client in self.clients)

    def failed(self) -> list[str]:
        return [str(result) for result in self.results if result != 200]


@contextmanager
def client_loop(server: Server, clients: int = 4) -> Iterator[Load]:
    """``clients`` keep-alive clients, each sending GET requests one after another on its
    own connection until the block ends. A failed request is recorded, never retried: a
    rolling restart must not make a client need one."""
    load = Load([[] for _ in range(clients)])
    done = threading.Event()

    def loop(outcomes: list[Outcome]) -> None:
        with httpx.Client(timeout=GUARD) as client:
            while not done.is_set() and len(outcomes) < 20_000:
                try:
                    response = client.get(server.url + "/")
                except httpx.HTTPError as error:
                    outcomes.append(Outcome(repr(error)))
                    continue
                pid = response.text.split()[-1]
                outcomes.append(Outcome(response.status_code, int(pid) if pid.isdigit() else 0))

    threads = [threading.Thread(target=loop, args=(outcomes,)) for outcomes in load.clients]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: all(len(c) >= 10 for c in load.clients), "the first requests")
        yield load
    finally:
        done.set()
        for thread in threads:
            thread.join(GUARD)


# --- 1. workers = N -------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 4, 16])
def test_workers_start_serve_and_stop_cleanly(tmp_path: Path, count: int) -> None:
    with supervisor(tmp_path, workers=count) as server:
        assert server.get().status_code == 200
        pids = server.workers()
        assert len(pids) == (0 if count == 1 else count)  # 1: serves in this process
        server.signal(signal.SIGTERM)
        assert server.wait_exit() == 0
    assert not any(alive(pid) for pid in pids)
    if count > 1:
        assert server.log().count("Server stopped") == count


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_killed_worker_is_replaced_and_serving_goes_on(tmp_path: Path, backend: str) -> None:
    with supervisor(tmp_path, "--backend", backend) as server:
        before = server.workers()
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: len(server.workers() - before) == 1, "a new worker", timeout=GUARD)
        assert victim not in server.workers()
        wait_until(lambda: server.serving_lines() == 3, "the new worker serving")
        assert all(server.get().status_code == 200 for _ in range(20))
        assert f"Worker {victim} was killed by SIGKILL: starting another" in server.log()
        server.signal(signal.SIGINT)
        assert server.wait_exit() == 0


def test_lifespan_startup_failure_exits_3_with_one_line(tmp_path: Path) -> None:
    with supervisor(
        tmp_path, wait=False, app="tests.integration.class_app:failing_startup"
    ) as server:
        assert server.wait_exit() == 3
        log = server.log()
    assert log.count("giving up (exit status 3)") == 1
    assert "database unreachable" in log


def test_an_app_that_cannot_be_imported_exits_2(tmp_path: Path) -> None:
    with supervisor(tmp_path, wait=False, app="no_such_module_here:app") as server:
        assert server.wait_exit() == 2
        assert server.log().count("giving up (exit status 2)") == 1


def test_a_bind_that_cannot_be_opened_exits_2(tmp_path: Path) -> None:
    with supervisor(tmp_path, "--bind", "192.0.2.1:1", wait=False) as server:
        assert server.wait_exit() == 2
        assert "cannot listen" in server.log()
        assert "tricorn serving" not in server.log()


@pytest.mark.parametrize(
    ("flag", "value", "setting"),
    [
        ("--keep-alive-timeout", "-1", "keep_alive_timeout"),  # refused by the loader
        ("--certfile", "missing.pem", "certfile"),  # by the supervisor, before any worker
    ],
)
def test_a_configuration_error_exits_2_with_one_line_and_no_worker(
    tmp_path: Path, flag: str, value: str, setting: str
) -> None:
    with supervisor(tmp_path, flag, value, wait=False) as server:
        assert server.wait_exit() == 2
        log = server.log()
    lines = [line for line in log.splitlines() if setting in line]
    assert len(lines) == 1 and "config:" in lines[0], log
    assert "Worker" not in log and "tricorn serving" not in log


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigterm_lets_in_flight_requests_finish(tmp_path: Path, backend: str) -> None:
    with supervisor(tmp_path, "--backend", backend) as server:
        result: list[httpx.Response] = []
        thread = threading.Thread(target=lambda: result.append(server.get("/slow?1")))
        thread.start()
        wait_until(lambda: _established(server.port), "the slow request")
        server.signal(signal.SIGTERM)
        thread.join(GUARD)
        assert server.wait_exit() == 0
    assert result[0].status_code == 200


def test_new_connections_are_refused_at_once_while_the_workers_stop(tmp_path: Path) -> None:
    """Once SIGTERM has stopped every worker's accepting, a new connection is refused at
    once, not queued for the whole graceful_timeout and then reset: the supervisor closed
    its own copies of the listening sockets as it began to stop."""
    import socket

    with supervisor(tmp_path, "--graceful-timeout", "30") as server:
        result: list[httpx.Response] = []
        thread = threading.Thread(target=lambda: result.append(server.get("/slow?2")))
        thread.start()
        wait_until(lambda: _established(server.port), "the slow request")
        server.signal(signal.SIGTERM)
        # Logged by each worker once it has closed its listeners.
        wait_until(lambda: server.log().count("Shutting down: waiting") == 2, "both stopping")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", server.port), timeout=GUARD).close()
        thread.join(GUARD)
        assert server.wait_exit() == 0
    assert result[0].status_code == 200


def _established(port: int) -> bool:
    """Whether a connection to ``port`` on 127.0.0.1 is established (from /proc/net/tcp)."""
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return any(
        line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "01" for line in lines
    )


def test_a_second_sigterm_stops_at_once(tmp_path: Path) -> None:
    with supervisor(tmp_path, "--graceful-timeout", "3600") as server:
        thread = threading.Thread(target=lambda: _ignore_errors(lambda: server.get("/slow?3600")))
        thread.start()
        wait_until(lambda: _established(server.port), "the endless request")
        server.signal(signal.SIGTERM)
        wait_until(lambda: "stopping the workers gracefully" in server.log(), "graceful stop")
        server.signal(signal.SIGTERM)
        assert server.wait_exit() == 0
        thread.join(GUARD)
    assert "stopping now" in server.log()


def _ignore_errors(call: Callable[[], object]) -> None:
    with suppress(httpx.HTTPError):
        call()


@pytest.mark.parametrize("backend", BACKENDS)
def test_sighup_rolls_to_new_code_with_zero_failed_requests(tmp_path: Path, backend: str) -> None:
    """Keep-alive clients never stop sending while every worker is replaced, twice: not one
    request fails, and none is retried (a client's request on a connection its worker is
    closing is answered, with connection: close, not cut)."""
    with supervisor(tmp_path, "--backend", backend) as server:
        first = server.workers()
        assert server.get().text.startswith("v1 ")
        server.deploy("v2")
        with client_loop(server) as load:
            for roll in (1, 2):
                _roll(server, load, roll)
        assert len(server.workers()) == 2
        assert server.get().text.startswith("v2 ")
        server.signal(signal.SIGTERM)
        assert server.wait_exit() == 0
    failed = load.failed()
    assert failed == [], f"{len(failed)} of {load.count()} failed: {failed[:3]}"
    served_by = {outcome.pid for client in load.clients for outcome in client}
    assert served_by - first  # the replacements served the clients too


def _roll(server: Server, load: Load, roll: int) -> None:
    """SIGHUP; wait for roll number ``roll`` to be done and 100 requests served after it."""
    old = server.workers()
    server.signal(signal.SIGHUP)
    wait_until(lambda: server.log().count("Rolling restart done") == roll, "the roll")
    wait_until(lambda: not server.workers() & old, "the old workers gone")
    count = load.count()
    wait_until(lambda: load.count() >= count + 100, "requests after the roll")


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigkill_of_a_worker_fails_only_its_own_requests(tmp_path: Path, backend: str) -> None:
    """SIGKILL cuts the killed worker's connections: each of its clients loses at most the
    one request in flight there; clients of the other worker lose nothing."""
    with supervisor(tmp_path, "--backend", backend) as server:
        with client_loop(server, clients=6) as load:
            victim = min(server.workers())
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: server.serving_lines() == 3, "the replacement serving")
            count = load.count()
            wait_until(lambda: load.count() >= count + 100, "requests after the kill")
        server.signal(signal.SIGTERM)
        assert server.wait_exit() == 0
    for outcomes in load.clients:
        failures = [i for i, outcome in enumerate(outcomes) if outcome.result != 200]
        assert len(failures) <= 1, [outcomes[i].result for i in failures]
        for index in failures:
            # The request before it was answered by the killed worker, on this connection.
            assert outcomes[index - 1].pid == victim
            assert all(outcome.result == 200 for outcome in outcomes[index + 1 :])
    assert load.count() >= 200


def test_sighup_with_broken_new_code_keeps_the_old_workers(tmp_path: Path) -> None:
    with supervisor(tmp_path) as server:
        old = server.workers()
        server.app_path.write_text("this is not python(\n")
        server.signal(signal.SIGHUP)
        wait_until(lambda: "Rolling restart abandoned" in server.log(), "the abandoned roll")
        assert server.workers() == old
        assert server.get().text.startswith("v1 ")
        assert server.process.poll() is None


def test_sighup_rereads_the_config_file(tmp_path: Path) -> None:
    """workers = 2 in the file (no --workers flag, which would win over the file), then 3
    and SIGHUP: once the roll is done and the old workers are gone, three new ones serve.
    (During a roll the surge worker makes one more: the count is read after it.)"""
    config = tmp_path / "tricorn.toml"
    config.write_text("workers = 2\n")
    with supervisor(tmp_path, "--config", str(config), workers_flag=False) as server:
        old = server.workers()
        assert len(old) == 2
        config.write_text("workers = 3\n")
        server.signal(signal.SIGHUP)
        wait_until(lambda: "Rolling restart done" in server.log(), "the rolling restart")
        wait_until(lambda: not server.workers() & old, "the old workers gone")
        wait_until(lambda: server.serving_lines() == 2 + 3, "three new workers serving")
        assert len(server.workers()) == 3
        assert server.get().status_code == 200


def test_sighup_with_a_bad_config_file_keeps_serving(tmp_path: Path) -> None:
    config = tmp_path / "tricorn.toml"
    config.write_text("workers = 2\n")
    with supervisor(tmp_path, "--config", str(config), workers=2) as server:
        old = server.workers()
        config.write_text("workers = 0\n")
        server.signal(signal.SIGHUP)
        wait_until(lambda: "configuration not reloaded" in server.log(), "the reload error")
        assert server.workers() == old
        assert server.get().status_code == 200


def test_a_rolling_restart_does_not_hang_on_websockets_or_event_streams(tmp_path: Path) -> None:
    from websockets.sync.client import connect

    with (
        supervisor(tmp_path, "--graceful-timeout", "1") as server,
        connect(f"ws://127.0.0.1:{server.port}/ws"),
        httpx.Client(timeout=GUARD) as client,
        client.stream("GET", server.url + "/stream") as response,
    ):
        assert response.status_code == 200
        old = server.workers()
        server.signal(signal.SIGHUP)
        wait_until(lambda: "Rolling restart done" in server.log(), "the rolling restart")
        wait_until(lambda: not server.workers() & old, "the old workers gone")
        server.signal(signal.SIGTERM)
        assert server.wait_exit() == 0
    assert "Graceful timeout (1 s) passed" in server.log()


def test_ttin_adds_and_ttou_removes_a_worker(tmp_path: Path) -> None:
    with supervisor(tmp_path) as server:
        server.signal(signal.SIGTTIN)
        wait_until(lambda: len(server.workers()) == 3, "three workers")
        wait_until(lambda: server.serving_lines() == 3, "three serving")
        server.signal(signal.SIGTTOU)
        wait_until(lambda: len(server.workers()) == 2, "two workers")
        assert server.get().status_code == 200


def test_an_idle_supervisor_uses_no_measurable_cpu(tmp_path: Path) -> None:
    with supervisor(tmp_path, workers=4) as server:

        def cpu_seconds() -> float:
            fields = Path(f"/proc/{server.pid}/stat").read_text().rpartition(")")[2].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        before, started = cpu_seconds(), time.monotonic()
        time.sleep(2)  # the measurement window, not a wait for state
        used, elapsed = cpu_seconds() - before, time.monotonic() - started
    assert used / elapsed < 0.05


def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    with supervisor(tmp_path, "--worker-timeout", "1") as server:
        pids = server.workers()
        server.process.kill()
        server.process.wait()
        wait_until(lambda: not any(alive(pid) for pid in pids), "the orphaned workers gone")
    assert server.log().count("the supervisor is gone, stopping") == 2


def test_sigusr1_before_the_workers_are_ready_reaches_them_once_they_are(
    tmp_path: Path,
) -> None:
    """SIGUSR1 (reopen the log files) while the workers still import the app: relayed
    then, it would end them (its default action) and the server with them; the
    supervisor relays it once each is ready."""
    (tmp_path / "slow_import.py").write_text("import time\ntime.sleep(2)\nfrom wapp import app\n")
    with supervisor(tmp_path, wait=False, app="slow_import:app") as server:
        wait_until(lambda: "Supervisor" in server.log(), "the supervisor's signal handlers")
        server.signal(signal.SIGUSR1)
        wait_until(lambda: server.log().count(": reopened the log files") == 3, "the reopens")
        wait_until(lambda: server.serving_lines() == 2, "two workers serving")
        assert server.get().status_code == 200
        server.signal(signal.SIGTERM)
        assert server.wait_exit() == 0
    log = server.log()
    assert "Received SIGUSR1: reopened the log files" in log
    assert "before it was ready" not in log


# --- 2. recycling ---------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_requests_recycles_workers_without_failed_requests(
    tmp_path: Path, backend: str
) -> None:
    with supervisor(
        tmp_path, "--backend", backend, "--max-requests", "50", "--max-requests-jitter", "10"
    ) as server:
        old = server.workers()
        with client_loop(server) as load:
            wait_until(lambda: not server.workers() & old, "every first worker replaced")
        assert "(max_requests)" in server.log()
    assert load.failed() == []


def test_max_worker_lifetime_recycles(tmp_path: Path) -> None:
    with supervisor(tmp_path, "--max-worker-lifetime", "1") as server:
        old = server.workers()
        wait_until(lambda: not server.workers() & old, "every first worker replaced")
        assert "(max_worker_lifetime)" in server.log()
        assert server.get().status_code == 200


def test_max_worker_memory_recycles(tmp_path: Path) -> None:
    # 1 MiB: any Python process is past it, so every worker is replaced once it serves.
    # (No READY=1 to wait for: each worker is replaced as soon as it is sampled, so they
    # are never all ready at once, which READY=1 waits for.)
    with supervisor(
        tmp_path, "--max-worker-memory", "1", "--worker-timeout", "2", ready=False
    ) as server:
        old = server.workers()
        wait_until(lambda: not server.workers() & old, "every first worker replaced")
        assert "(max_worker_memory)" in server.log()
        assert server.get().status_code == 200


# --- 3. worker_timeout ----------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_worker_whose_loop_blocks_is_killed_and_replaced(tmp_path: Path, backend: str) -> None:
    with supervisor(tmp_path, "--backend", backend, "--worker-timeout", "1") as server:
        old = server.workers()
        thread = threading.Thread(target=lambda: _ignore_errors(lambda: server.get("/block")))
        thread.start()
        wait_until(lambda: "no heartbeat for" in server.log(), "the kill")
        thread.join(GUARD)
        # The line is logged before the kill is reaped: wait for the pid to be gone.
        wait_until(lambda: bool(old - server.workers()), "the blocked worker gone")
        gone = old - server.workers()
        assert any(f"Killing worker {pid}: no heartbeat for 1." in server.log() for pid in gone)
        wait_until(lambda: len(server.workers()) == 2, "the replacement")
        assert server.get().status_code == 200


# --- 4. CLI habits and pid_file -------------------------------------------------------


@pytest.mark.parametrize("flag", ["--host", "--port"])
def test_uvicorn_flags_get_a_hint(flag: str) -> None:
    result = subprocess.run(
        [*TRICORN, flag, "8000"], cwd=ROOT, capture_output=True, text=True, timeout=GUARD
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"ERROR:    config: unknown option {flag} (on the command line); use --bind HOST:PORT"
    ]


def test_workers_in_the_toml_file_and_w(tmp_path: Path) -> None:
    config = tmp_path / "tricorn.toml"
    config.write_text("workers = 3\n")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with supervisor(
        tmp_path / "a", "--config", str(config), workers=3, workers_flag=False
    ) as server:
        assert len(server.workers()) == 3
    with supervisor(tmp_path / "b", "-w", "3", workers=2) as server:
        wait_until(lambda: server.serving_lines() == 3, "three serving")
        assert len(server.workers()) == 3


@pytest.mark.parametrize("count", [1, 2])
def test_pid_file_is_written_and_removed(tmp_path: Path, count: int) -> None:
    pid_file = tmp_path / "tricorn.pid"
    with supervisor(tmp_path, "--pid-file", str(pid_file), workers=count) as server:
        assert pid_file.read_text() == f"{server.pid}\n"
        server.signal(signal.SIGTERM)
        assert server.wait_exit() == 0
    assert not pid_file.exists()


# --- 5. reload ------------------------------------------------------------------------


def test_reload_restarts_the_worker_on_a_change_and_survives_a_syntax_error(
    tmp_path: Path,
) -> None:
    pytest.importorskip("watchfiles")
    with supervisor(tmp_path, "--reload", "--reload-dirs", str(tmp_path), workers=1) as server:
        wait_until(lambda: "Watching" in server.log(), "the watcher")
        assert server.get().text.startswith("v1 ")
        server.deploy("v2")
        wait_until(lambda: server.get().text.startswith("v2 "), "the new code served")
        assert f"Reloading: {server.app_path} changed" in server.log()
        server.app_path.write_text("def broken(:\n")
        wait_until(lambda: "Rolling restart abandoned" in server.log(), "the failed reload")
        assert server.process.poll() is None
        assert server.get().text.startswith("v2 ")
        server.deploy("v3")
        wait_until(lambda: server.get().text.startswith("v3 "), "the fixed code served")
        server.signal(signal.SIGINT)
        assert server.wait_exit() == 0


def test_reload_with_broken_code_at_the_start_waits_for_the_next_good_save(
    tmp_path: Path,
) -> None:
    """As with Uvicorn's --reload: an app that does not import at the very start leaves the
    supervisor up with one line, and the next save that imports starts serving."""
    pytest.importorskip("watchfiles")
    broken = tmp_path / "broken.py"
    broken.write_text("def app(:\n")
    with supervisor(
        tmp_path,
        "--reload",
        "--reload-dirs",
        str(tmp_path),
        workers=1,
        wait=False,
        app="broken:app",
    ) as server:
        wait_until(lambda: "waiting for a change to try again" in server.log(), "the failure")
        assert server.process.poll() is None
        broken.write_text(APP.format(version="fixed"))
        wait_until(lambda: server.serving_lines() == 1, "the fixed code serving")
        assert server.get().text.startswith("fixed ")
        server.signal(signal.SIGINT)
        assert server.wait_exit() == 0
    log = server.log()
    assert log.count("waiting for a change to try again (reload)") == 1
    assert f"Reloading: {broken} changed" in log
    assert "giving up" not in log
