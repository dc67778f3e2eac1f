"""What the benchmark scripts share: ports, starting and stopping a tricorn process, waiting
for it to listen, reading wrk's report, the process table, the revision and versions a
report names, and the test certificates for TLS runs (``make_certs``).

``run.py`` (with ``servers.py`` and ``scenarios.py``) drives many servers and tools; the
single-purpose scripts (``upload.py``, ``pathsend.py``, ``restart_load.py``, ``wsgi.py``)
start tricorn with ``tricorn_process`` and read wrk with ``parse_wrk``, so that none of
them carries its own copy. Everything is on 127.0.0.1 and bounded in time.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

#: The checkout the servers run from (``benchmarks.*`` apps are imported from here).
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Certs:
    """PEM files for TLS runs: the throwaway CA, the certificate chain, its key (PKCS#8)."""

    ca: Path
    cert: Path
    key: Path


def make_certs(folder: Path) -> Certs:
    """A throwaway CA (trustme) and a certificate for 127.0.0.1 and localhost from it, as
    ``ca.pem``, ``cert.pem`` and ``key.pem`` in ``folder``. The key is PKCS#8, which every
    server takes (Granian takes nothing else)."""
    import trustme
    from cryptography.hazmat.primitives import serialization

    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1", "localhost")
    certs = Certs(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    authority.cert_pem.write_to_path(str(certs.ca))
    certs.cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), None)
    certs.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certs


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_listening(
    port: int, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll until 127.0.0.1:``port`` accepts a connection; RuntimeError after ``timeout``
    seconds, or as soon as ``process`` (the server, when given) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:g} s")


@contextlib.contextmanager
def tricorn_process(
    args: Sequence[str],
    *,
    root: Path = REPO,
    env: dict[str, str] | None = None,
    cpu: int | None = None,
    quiet: bool = False,
    stop_timeout: float = 30.0,
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``python -m tricorn ARGS`` on a free port of 127.0.0.1 (no access log, warnings
    only), run from ``root``, pinned to ``cpu`` when given; yields (process, port) once it
    listens. On exit: SIGTERM, then SIGKILL after ``stop_timeout`` seconds."""
    port = free_port()
    command = [sys.executable, "-m", "tricorn", *args, "--bind", f"127.0.0.1:{port}"]
    command += ["--no-access-log", "--log-level", "warning"]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    output = subprocess.DEVNULL if quiet else None
    process = subprocess.Popen(command, cwd=root, env=env, stdout=output, stderr=output)
    try:
        wait_listening(port, process=process)
        yield process, port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class WrkReport:
    """What wrk printed: the requests in how many seconds, and what went wrong."""

    requests: int
    seconds: float
    non_2xx: int  # "Non-2xx or 3xx responses"
    #: connect, read, write, timeout ("Socket errors: ..."), all 0 when the line is absent.
    socket_errors: tuple[int, int, int, int]
    socket_errors_line: str  # that line after "Socket errors: ", "" when absent

    @property
    def failed(self) -> int:
        return sum(self.socket_errors) + self.non_2xx


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def seconds(number: str, unit: str) -> float:
    """A duration as wrk and h2load print it (``12.5ms``), in seconds."""
    return float(number) * _UNITS[unit]


def parse_wrk(out: str) -> WrkReport | None:
    """wrk's report, or None when it has no "N requests in T" line (wrk failed)."""
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", out)
    if not done:
        return None
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    line = re.search(r"Socket errors: (.*)", out)
    counts = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (0, 0, 0, 0)
    if counts:
        errors = tuple(int(value) for value in counts.groups())  # type: ignore[assignment]
    return WrkReport(
        requests=int(done.group(1)),
        seconds=seconds(done.group(2), done.group(3)),
        non_2xx=int(bad.group(1)) if bad else 0,
        socket_errors=errors,
        socket_errors_line=line.group(1).strip() if line else "",
    )


def proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (field 3, the state, is
    item 0); None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()


def git_revision() -> str:
    """The short revision of the checkout, marked when it has uncommitted changes."""
    try:
        rev = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + (" (with uncommitted changes)" if dirty else "")
