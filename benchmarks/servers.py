"""How to start, check and stop each server under test.

Every server runs ``benchmarks.apps:app`` from the repository root, in its own process
group (so stopping it reaches its worker processes and nothing else), pinned to one core
when it is given one, with its open-file limit raised to the hard limit (for the idle
connection runs) and a long keep-alive timeout where the server has one.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import REPO, free_port, proc_stat

__all__ = ["REPO", "free_port"]  # still importable from here

APP = "benchmarks.apps:app"
KEEP_ALIVE = 600  # seconds: long enough for the idle-connection runs

# What a server can be asked for; a scenario needs one of these.
H1, H2C, H2TLS, WS = "h1", "h2c", "h2-tls", "ws"


@dataclass(frozen=True)
class TLSFiles:
    cert: Path  # certificate chain, PEM
    key: Path  # private key, PEM (PKCS#8)


@dataclass(frozen=True)
class ServerSpec:
    name: str  # the row label in RESULTS.md
    family: str  # tricorn, hypercorn, uvicorn, granian, daphne
    backend: str  # trio, asyncio, uvloop, or how the peer calls its fastest mode
    features: frozenset[str]
    build: Callable[[Path, int, TLSFiles | None], list[str]]  # (bin dir, port, tls) -> argv

    def command(self, bindir: Path, port: int, tls: TLSFiles | None = None) -> list[str]:
        return self.build(bindir, port, tls)


def _tricorn(
    backend: str, app: str = APP, extra: tuple[str, ...] = ()
) -> Callable[[Path, int, TLSFiles | None], list[str]]:
    def build(bindir: Path, port: int, tls: TLSFiles | None) -> list[str]:
        argv = [
            str(bindir / "tricorn"),
            app,
            "--bind",
            f"127.0.0.1:{port}",
            "--backend",
            backend,
            "--no-access-log",
            "--log-level",
            "warning",
            "--keep-alive-timeout",
            str(KEEP_ALIVE),
            *extra,
        ]
        if tls:
            argv += ["--certfile", str(tls.cert), "--keyfile", str(tls.key)]
        return argv

    return build


def _hypercorn(worker: str, app: str = APP) -> Callable[[Path, int, TLSFiles | None], list[str]]:
    def build(bindir: Path, port: int, tls: TLSFiles | None) -> list[str]:
        argv = [
            str(bindir / "hypercorn"),
            app,
            "--bind",
            f"127.0.0.1:{port}",
            "--worker-class",
            worker,
            "--workers",
            "1",
            "--keep-alive",
            str(KEEP_ALIVE),
            "--log-level",
            "WARNING",
        ]
        if tls:
            argv += ["--certfile", str(tls.cert), "--keyfile", str(tls.key)]
        return argv

    return build


def _uvicorn(http: str, loop: str) -> Callable[[Path, int, TLSFiles | None], list[str]]:
    def build(bindir: Path, port: int, tls: TLSFiles | None) -> list[str]:
        argv = [
            str(bindir / "uvicorn"),
            APP,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--http",
            http,
            "--loop",
            loop,
            "--no-access-log",
            "--log-level",
            "warning",
            "--timeout-keep-alive",
            str(KEEP_ALIVE),
        ]
        if tls:
            argv += ["--ssl-certfile", str(tls.cert), "--ssl-keyfile", str(tls.key)]
        return argv

    return build


def _granian(bindir: Path, port: int, tls: TLSFiles | None) -> list[str]:
    argv = [
        str(bindir / "granian"),
        "--interface",
        "asgi",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
        "--no-access-log",
        # Granian has no idle keep-alive timeout; the longest header-read timeout it
        # allows keeps idle keep-alive connections from being cut during the idle runs.
        "--http1-header-read-timeout",
        "60000",
        # By default Granian serves at most `backlog` (1024) connections at once and
        # leaves the rest unanswered; the idle runs hold 10,000.
        "--backpressure",
        "16384",
    ]
    if tls:
        argv += ["--ssl-certificate", str(tls.cert), "--ssl-keyfile", str(tls.key)]
    return [*argv, APP]


def _daphne(bindir: Path, port: int, tls: TLSFiles | None) -> list[str]:
    # Daphne (Twisted) keeps idle HTTP connections for hours by default. HTTP/2 needs
    # TLS (ALPN), given as a Twisted endpoint string.
    if tls:
        endpoint = f"ssl:{port}:interface=127.0.0.1:privateKey={tls.key}:certKey={tls.cert}"
        return [str(bindir / "daphne"), "-e", endpoint, "-v", "0", APP]
    return [str(bindir / "daphne"), "-b", "127.0.0.1", "-p", str(port), "-v", "0", APP]


ALL = frozenset({H1, H2C, H2TLS, WS})

SERVERS: dict[str, ServerSpec] = {
    s.name: s
    for s in [
        ServerSpec("tricorn-trio", "tricorn", "trio", ALL, _tricorn("trio")),
        ServerSpec("tricorn-asyncio", "tricorn", "asyncio", ALL, _tricorn("asyncio")),
        ServerSpec("tricorn-uvloop", "tricorn", "uvloop", ALL, _tricorn("uvloop")),
        # tricorn's fastest HTTP/1.1: llhttp reads the heads (the httptools extra).
        ServerSpec(
            "tricorn-httptools-uvloop",
            "tricorn",
            "uvloop",
            ALL,
            _tricorn("uvloop", extra=("--http1-parser", "httptools")),
        ),
        ServerSpec(
            "tricorn-httptools-asyncio",
            "tricorn",
            "asyncio",
            ALL,
            _tricorn("asyncio", extra=("--http1-parser", "httptools")),
        ),
        ServerSpec("hypercorn-trio", "hypercorn", "trio", ALL, _hypercorn("trio")),
        ServerSpec("hypercorn-asyncio", "hypercorn", "asyncio", ALL, _hypercorn("asyncio")),
        ServerSpec("hypercorn-uvloop", "hypercorn", "uvloop", ALL, _hypercorn("uvloop")),
        ServerSpec(
            "uvicorn-h11-asyncio",
            "uvicorn",
            "asyncio",
            frozenset({H1, WS}),
            _uvicorn("h11", "asyncio"),
        ),
        ServerSpec(
            "uvicorn-httptools-uvloop",
            "uvicorn",
            "uvloop",
            frozenset({H1, WS}),
            _uvicorn("httptools", "uvloop"),
        ),
        ServerSpec("granian-asgi", "granian", "rust", ALL, _granian),
        ServerSpec("daphne", "daphne", "twisted", frozenset({H1, H2TLS, WS}), _daphne),
    ]
}

# Which peer rows each tricorn row is compared with: Hypercorn on the same loop, Uvicorn-h11
# (issue 5's yardstick for every backend) and, for uvloop, Uvicorn at its fastest.
COMPARE: dict[str, tuple[str, ...]] = {
    "tricorn-trio": ("hypercorn-trio", "uvicorn-h11-asyncio"),
    "tricorn-asyncio": ("hypercorn-asyncio", "uvicorn-h11-asyncio"),
    "tricorn-uvloop": ("hypercorn-uvloop", "uvicorn-h11-asyncio", "uvicorn-httptools-uvloop"),
    "tricorn-httptools-uvloop": ("hypercorn-uvloop", "uvicorn-httptools-uvloop"),
    "tricorn-httptools-asyncio": ("hypercorn-asyncio", "uvicorn-h11-asyncio"),
}


def raise_nofile() -> int:
    """Raise this process's open-file soft limit to its hard limit; return the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def hello_check(port: int, timeout: float = 2.0) -> str | None:
    """GET / once over a fresh connection; None when the answer is the app's hello."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    if not data.startswith(b"HTTP/1.1 200") or not data.endswith(b"Hello, world!"):
        return f"unexpected answer: {data[:120]!r}"
    return None


class RunningServer:
    """One server process group that this harness started, and only that."""

    def __init__(
        self,
        spec: ServerSpec,
        bindir: Path,
        log_path: Path,
        *,
        tls: TLSFiles | None = None,
        cpu: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.spec = spec
        self.port = free_port()
        self.tls = tls
        argv = spec.command(bindir, self.port, tls)
        self.argv = argv
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu), *argv]
        nofile = raise_nofile()
        if shutil.which("prlimit"):  # the server may need as many files as we may open
            argv = ["prlimit", f"--nofile={nofile}:{nofile}", "--", *argv]
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log.write(f"$ {' '.join(argv)}\n".encode())
        self._log.flush()
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = str(REPO)
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            argv,
            cwd=REPO,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: pgid == pid
        )
        self.pgid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout: float = 30.0) -> str | None:
        """Poll the port until the app answers; None when ready, else why not."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if not self.alive():
                return f"exited with status {self.proc.returncode}: {self.log_tail()}"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
            except OSError as exc:
                last = f"{type(exc).__name__}: {exc}"
                time.sleep(0.1)
                continue
            if self.tls is not None:
                return None  # a TCP accept is all we ask of a TLS listener here
            problem = hello_check(self.port)
            if problem is None:
                return None
            last = problem
            time.sleep(0.2)
        return f"not ready after {timeout:.0f}s ({last})"

    def pids(self) -> list[int]:
        """The processes of this server's process group (found in /proc)."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            fields = proc_stat(int(entry))
            if fields is not None and int(fields[2]) == self.pgid:  # field 5 of stat: pgrp
                found.append(int(entry))
        return found

    def rss_kib(self) -> int:
        """Resident memory of the whole process group, KiB (VmRSS summed)."""
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        return total

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the server's process group, then SIGKILL what is left after timeout."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        # Worker processes of the group may outlive the parent: end them too.
        if self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        self._log.close()
