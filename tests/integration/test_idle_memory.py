"""Memory per idle HTTP/1.1 keep-alive connection, on a real ``tricorn`` process.

The server is a subprocess (its RSS is its own), the clients plain blocking sockets: each
connection gets one ``GET /`` answered and is then left open and idle, as in the
benchmark's idle scenario. The bound is on RSS growth per connection, not on time.
Figures and where the bytes go: docs/memory.md.
"""

from __future__ import annotations

import resource
import select
import socket
import subprocess
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests.integration.test_process import tricorn

#: Idle connections measured, opened after WARM_UP others (kept open as well).
CONNECTIONS = 500
WARM_UP = 200
#: RSS growth per idle keep-alive connection allowed, KiB: about 1.3x what this test
#: measured (trio 7.3-8.0, asyncio 6.1-6.3), below what it measured before (trio 11.1, asyncio 8.9).
BOUND_KIB = {"trio": 10.0, "asyncio": 8.0}

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")  # pragma: no cover - Linux has it


def read_response(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"Hello, world!"):
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError(f"the server closed the connection: {data!r}")
        data += chunk
    return data


def open_idle(port: int, count: int, into: list[socket.socket]) -> None:
    """``count`` connections, each answered one GET / and then kept open, in batches."""
    for start in range(0, count, 100):
        batch = [
            socket.create_connection(("127.0.0.1", port), timeout=10)
            for _ in range(min(100, count - start))
        ]
        into.extend(batch)
        for sock in batch:
            sock.sendall(REQUEST)
        for sock in batch:
            assert read_response(sock).startswith(b"HTTP/1.1 200 ")


def server(backend: str) -> AbstractContextManager[tuple[subprocess.Popen[str], int]]:
    flags = ["--no-access-log", "--log-level", "warning", "--keep-alive-timeout", "600"]
    return tricorn("tests.integration.apps:hello", "--backend", backend, *flags)


@pytest.fixture(autouse=True)
def enough_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = CONNECTIONS + WARM_UP + 100
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"open-file limit {hard} < {needed}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))  # the server inherits it


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_idle_keep_alive_connections_cost_little_memory(backend: str) -> None:
    with server(backend) as (process, port):
        warm: list[socket.socket] = []
        idle: list[socket.socket] = []
        try:
            # One-off growth (the interpreter's arenas, the event loop's fd tables) first;
            # these stay open too, so that the measured ones reuse no memory they freed.
            open_idle(port, WARM_UP, warm)
            before = rss_kib(process.pid)
            open_idle(port, CONNECTIONS, idle)
            after = rss_kib(process.pid)
            poller = select.poll()
            for sock in idle:
                poller.register(sock, select.POLLIN | select.POLLHUP | select.POLLERR)
            assert poller.poll(0) == [], "the server closed or wrote to idle connections"
        finally:
            for sock in warm + idle:
                sock.close()
    per_connection = (after - before) / CONNECTIONS
    assert per_connection < BOUND_KIB[backend], (
        f"{backend}: {per_connection:.2f} KiB per idle keep-alive connection "
        f"(RSS {before} -> {after} KiB for {CONNECTIONS})"
    )
