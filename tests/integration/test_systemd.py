"""systemd socket activation and sd_notify, unix socket permissions and SIGHUP in one process:
real ``python -m tricorn`` processes, real ``systemd-socket-activate``, real signals."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port
from tests.integration.sd_notify import GUARD, Notifications
from tests.integration.test_process import ROOT, StderrLines, tricorn

TRICORN = [sys.executable, "-m", "tricorn", "--no-access-log"]
ACTIVATE = shutil.which("systemd-socket-activate")


def _spawn(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


@contextmanager
def running(
    command: list[str], env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    process = _spawn(command, env)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _unix_get(path: str, target: str = "/") -> httpx.Response:
    transport = httpx.HTTPTransport(uds=path)
    with httpx.Client(transport=transport, timeout=15) as client:
        return client.get(f"http://localhost{target}")


# --- socket activation ----------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_socket_activation_serves_every_passed_socket(tmp_path: Path, backend: str) -> None:
    """No bind given: the TCP and the unix socket systemd passed are both served, and the
    log names them with their LISTEN_FDNAMES."""
    assert ACTIVATE is not None, "scripts/test.sh installs systemd-socket-activate (systemd)"
    port = free_port()
    path = str(tmp_path / "activated.sock")
    command = [
        ACTIVATE,
        "-l",
        f"127.0.0.1:{port}",
        "-l",
        path,
        "--fdname=web:local",
        *TRICORN,
        "--backend",
        backend,
    ]
    with running(command) as process:
        lines = StderrLines(process)
        # systemd-socket-activate says "Listening on ... as 3." and "as 4." once both are
        # bound (a request before that is refused), then starts tricorn on the first
        # connection, which waits in the passed socket's backlog meanwhile.
        lines.wait_for(f"Listening on {path} as 4.")
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=15)
        lines.wait_for("serving on")
        over_unix = _unix_get(path)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        err = lines.join()
    assert page.status_code == 200
    assert over_unix.status_code == 200
    assert f"fd 3 (web): 127.0.0.1:{port}" in err
    assert f"fd 4 (local): unix:{path}" in err
    assert "127.0.0.1:8000" not in err  # the default bind was not opened
    assert process.returncode == 0
    assert os.path.exists(path)  # systemd's socket file is systemd's to remove


def test_listen_fds_for_another_process_are_ignored() -> None:
    """LISTEN_PID names someone else (a parent's variables inherited): the binds are used."""
    port = free_port()
    env = {"LISTEN_FDS": "1", "LISTEN_PID": "1"}
    with running([*TRICORN, "--bind", f"127.0.0.1:{port}"], env) as process:
        lines = StderrLines(process)
        lines.wait_for("serving on")
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
    assert "systemd passed" not in lines.join()


# --- sd_notify --------------------------------------------------------------------------------


def test_sd_notify_ready_watchdog_and_stopping(tmp_path: Path) -> None:
    port = free_port()
    with Notifications(str(tmp_path / "notify.sock")) as listener:
        env = {"NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": "200000"}
        with running([*TRICORN, "--bind", f"127.0.0.1:{port}"], env) as process:
            ready = listener.texts("READY=1")
            # READY comes once the sockets accept: a request right after it is served.
            assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
            pings = listener.texts("WATCHDOG=1")
            process.send_signal(signal.SIGTERM)
            stopping = listener.texts("STOPPING=1")
            process.wait(timeout=GUARD)
    assert ready[-1].splitlines()[0] == "READY=1"
    assert "STATUS=serving on 1 socket(s)" in ready[-1]
    assert pings[-1] == "WATCHDOG=1"
    assert "STOPPING=1" in stopping[-1]
    assert process.returncode == 0


def test_a_notify_socket_nobody_reads_does_not_stall_the_server(tmp_path: Path) -> None:
    """The service manager stops reading: its socket queue (``net.unix.max_dgram_qlen``,
    10 by default) fills with watchdog pings. The pings are dropped then, not waited for
    in the event loop, and STOPPING=1 waits at most NOTIFY_TIMEOUT: requests are served
    and SIGTERM stops the server (before, the first ping blocked the loop for good)."""
    port = free_port()
    path = str(tmp_path / "deaf.sock")
    deaf = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    deaf.bind(path)
    try:
        env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000"}  # a ping every 10 ms
        with running([*TRICORN, "--bind", f"127.0.0.1:{port}"], env) as process:
            deaf.settimeout(GUARD)
            while not deaf.recv(4096).startswith(b"READY=1"):
                pass  # READY waits for the manager (it must not be lost); pings do not
            queued = 0  # from here on nobody reads
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
                probe.connect(path)
                probe.setblocking(False)
                try:  # top the queue up, so that it is full whatever the server sent
                    while queued < 10_000:
                        probe.send(b"X")
                        queued += 1
                except BlockingIOError:
                    pass
            assert queued < 10_000  # the queue is bounded and full now
            for _ in range(20):
                response = httpx.get(f"http://127.0.0.1:{port}/", timeout=GUARD)
                assert response.status_code == 200
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=GUARD)
        assert process.returncode == 0
    finally:
        deaf.close()


def test_with_workers_the_supervisor_alone_notifies_and_pings_the_watchdog(
    tmp_path: Path,
) -> None:
    """workers = 2 under WatchdogSec: the supervisor, systemd's main pid, sends READY=1,
    WATCHDOG=1 every WATCHDOG_USEC / 2, RELOADING=1/READY=1 around a SIGHUP roll and
    STOPPING=1; no datagram comes from a worker (NotifyAccess=main would drop it)."""
    port = free_port()
    with Notifications(str(tmp_path / "notify.sock")) as listener:
        env = {"NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": "200000"}
        command = [*TRICORN, "--workers", "2", "--bind", f"127.0.0.1:{port}"]
        with running(command, env) as process:
            seen = listener.until("READY=1")
            assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
            for _ in range(3):
                seen += listener.until("WATCHDOG=1")
            process.send_signal(signal.SIGHUP)
            seen += listener.until("RELOADING=1")
            seen += listener.until("READY=1")
            seen += listener.until("WATCHDOG=1")  # still pinging
            process.send_signal(signal.SIGTERM)
            seen += listener.until("STOPPING=1")
            process.wait(timeout=GUARD)
    assert {pid for pid, _ in seen} == {process.pid}
    texts = [text for _, text in seen]
    assert texts.count("WATCHDOG=1") >= 4
    assert texts.index("RELOADING=1") < len(texts) - 1 - texts[::-1].index("READY=1")
    assert process.returncode == 0


def test_without_notify_socket_nothing_is_sent_and_serving_works() -> None:
    from tricorn.server import systemd

    assert systemd.notify("READY=1", environ={}) is False
    assert systemd.watchdog_interval(environ={}) is None
    assert systemd.listen_fds(environ={"LISTEN_FDS": "2"}) == []  # no LISTEN_PID: not ours
    mine = {"LISTEN_FDS": "2", "LISTEN_PID": str(os.getpid()), "LISTEN_FDNAMES": "a"}
    assert systemd.listen_fds(environ=mine) == [(3, "a"), (4, "unknown")]


# --- unix sockets -----------------------------------------------------------------------------


@contextmanager
def unix_server(path: str, *args: str) -> Iterator[tuple[subprocess.Popen[str], StderrLines]]:
    with running([*TRICORN, "--bind", f"unix:{path}", *args]) as process:
        lines = StderrLines(process)
        lines.wait_for("serving on")
        yield process, lines


def test_unix_socket_default_mode_is_660(tmp_path: Path) -> None:
    path = str(tmp_path / "app.sock")
    with unix_server(path) as (process, _):
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert _unix_get(path).status_code == 200
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
    assert mode == 0o660


def test_unix_socket_mode_and_group_are_applied(tmp_path: Path) -> None:
    path = str(tmp_path / "app.sock")
    group = str(os.getgid())
    with unix_server(path, "--unix-socket-mode", "666", "--unix-socket-group", group) as (
        process,
        _,
    ):
        info = os.stat(path)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
    assert stat.S_IMODE(info.st_mode) == 0o666
    assert info.st_gid == os.getgid()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_socket_file_is_removed_at_a_clean_stop(tmp_path: Path, workers: str) -> None:
    """As with Uvicorn and gunicorn: after SIGTERM no socket file is left for a proxy to
    connect to (with workers, the supervisor created it and removes it)."""
    path = str(tmp_path / "app.sock")
    with unix_server(path, "--workers", workers) as (process, _):
        assert _unix_get(path).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    assert not os.path.exists(path)


def test_a_socket_file_replaced_meanwhile_is_left_alone(tmp_path: Path) -> None:
    """Only the file the server created is removed: one put in its place since (another
    server's, here a plain file) stays."""
    path = tmp_path / "app.sock"
    with unix_server(str(path)) as (process, _):
        path.unlink()
        path.write_text("someone else's")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    assert path.read_text() == "someone else's"


def test_a_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    path = str(tmp_path / "app.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)  # a socket file nobody listens on, as a killed server leaves it
    stale.close()
    with unix_server(path) as (process, _):
        assert _unix_get(path).status_code == 200
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


def test_a_socket_in_use_is_refused_with_one_line(tmp_path: Path) -> None:
    path = str(tmp_path / "app.sock")
    with unix_server(path) as (first, _):
        second = subprocess.run(
            [*TRICORN, "--bind", f"unix:{path}"], cwd=ROOT, capture_output=True, text=True
        )
        still_served = _unix_get(path).status_code
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=15)
    assert second.returncode == 2
    assert f"bind = 'unix:{path}': in use (another server is listening on that socket)" in (
        second.stderr
    )
    assert still_served == 200


def test_a_bad_unix_socket_mode_is_one_line() -> None:
    result = subprocess.run(
        [*TRICORN, "--unix-socket-mode", "rw-rw----"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        'ERROR:    config: unix_socket_mode = "rw-rw----" (from the command line): '
        "expected file permissions in octal, such as '660' or '0666'"
    ]


# --- SIGHUP in one process ------------------------------------------------------------------


def test_sighup_in_one_process_is_logged_and_ignored() -> None:
    with tricorn() as (process, port):
        lines = StderrLines(process)
        process.send_signal(signal.SIGHUP)
        lines.wait_for("Received SIGHUP: ignored (a rolling restart needs workers >= 2)")
        served = httpx.get(f"http://127.0.0.1:{port}/").status_code
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
    assert served == 200
    assert process.returncode == 0
