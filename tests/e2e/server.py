"""Run ``python -m tricorn module:app`` as a real process, the way a user does, and stop it.

Output goes to files (not pipes), so a chatty server never blocks on a full pipe; the test
reads the access log (stdout) and error log (stderr) after the server stopped.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]

#: Backends as the test ids name them; "default" passes no --backend flag at all.
BACKEND_FLAGS: dict[str, list[str]] = {
    "default": [],
    "trio": ["--backend", "trio"],
    "asyncio": ["--backend", "asyncio"],
    "uvloop": ["--backend", "uvloop"],
}

#: What the start-up log says for each backend (the default is the framework's business).
RUNNING_ON = {
    "trio": "Running on trio (backend = trio)",
    "asyncio": "Running on asyncio (backend = asyncio)",
    "uvloop": "Running on uvloop (backend = uvloop)",
}


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    scheme: str
    log_dir: Path
    returncode: int | None = None
    _stopped: bool = field(default=False, repr=False)
    _interrupted: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.scheme == 'https' else 'ws'}://127.0.0.1:{self.port}"

    @property
    def stdout(self) -> str:
        return (self.log_dir / "stdout.log").read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return (self.log_dir / "stderr.log").read_text(errors="replace")

    def interrupt(self) -> None:
        """Send SIGINT (Ctrl-C) and return at once; ``stop()`` then waits for the exit."""
        if self.process.poll() is None and not self._interrupted:
            self._interrupted = True
            self.process.send_signal(signal.SIGINT)

    def stop(self) -> int:
        """SIGINT (Ctrl-C), as a user stops it; the exit status (killed after 20 s)."""
        if not self._stopped:
            self._stopped = True
            self.interrupt()  # once: a second SIGINT means "stop now"
            try:
                self.returncode = self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                self.returncode = None
        assert self.returncode is not None, f"tricorn did not stop on SIGINT:\n{self.stderr}"
        return self.returncode


def _wait_for_port(port: int, server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(
                f"tricorn exited early ({server.process.returncode}):\n{server.stderr}"
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)  # polling for the port, bounded by the deadline
    raise AssertionError(f"tricorn did not start listening in {timeout} s:\n{server.stderr}")


@contextmanager
def run_tricorn(
    app: str,
    *args: str,
    log_dir: Path,
    backend: str = "default",
    cwd: Path = ROOT,
    env: dict[str, str] | None = None,
    tls: tuple[Path, Path] | None = None,
    timeout: float = 30.0,
) -> Iterator[Server]:
    """Serve ``app`` with ``python -m tricorn`` on a free port for the ``with`` body."""
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "tricorn", app, "--bind", f"127.0.0.1:{port}"]
    command += BACKEND_FLAGS[backend]
    if tls is not None:
        command += ["--certfile", str(tls[0]), "--keyfile", str(tls[1])]
    command += list(args)
    full_env = {**os.environ, **(env or {})}
    # The app's imports resolve from cwd (--app-dir "."); tricorn and tests from the clone.
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), full_env.get("PYTHONPATH", "")) if p
    )
    with (
        open(log_dir / "stdout.log", "wb") as stdout,
        open(log_dir / "stderr.log", "wb") as stderr,
    ):
        process = subprocess.Popen(command, cwd=cwd, env=full_env, stdout=stdout, stderr=stderr)
    server = Server(process, port, "https" if tls else "http", log_dir)
    try:
        _wait_for_port(port, server, timeout)
        yield server
    finally:
        if process.poll() is None:
            with suppress(AssertionError):
                server.stop()
