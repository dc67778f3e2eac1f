"""``--http1-parser httptools`` in a real tricorn process on each backend, and its start-up
error without httptools installed. (Every test of test_http11_server.py also runs on it.)"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.integration.test_process import stop, tricorn

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.integration.apps:hello"
PIPELINED = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"


def exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` and read until the server closes (the last request asks it to)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("backend", ["trio", "asyncio", "uvloop"])
def test_httptools_parser_serves_pipelined_requests_and_refuses_bad_ones(backend: str) -> None:
    with tricorn(APP, "--backend", backend, "--http1-parser", "httptools") as (process, port):
        with httpx.Client() as client:
            first = client.get(f"http://127.0.0.1:{port}/")
            second = client.post(f"http://127.0.0.1:{port}/", content=b"x" * 100_000)
        pipelined = exchange(
            port, PIPELINED + b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        # llhttp takes a second space and HTTP/2.0; tricorn's rules do not (same as our parser).
        spaces = exchange(port, b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n")
        version = exchange(port, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n")
        after = httpx.get(f"http://127.0.0.1:{port}/")
        status, out, _ = stop(process)
    assert (first.status_code, first.text) == (200, "Hello, world!")
    assert second.status_code == 200
    assert pipelined.count(b"HTTP/1.1 200 OK\r\n") == 3
    assert spaces.startswith(b"HTTP/1.1 400 ")
    assert version.startswith(b"HTTP/1.1 505 ")
    assert after.status_code == 200  # everyone else keeps being served
    assert '"GET /c HTTP/1.1" 200' in out
    assert status == 0


def test_without_httptools_start_up_stops_with_one_line() -> None:
    code = (
        "import sys; sys.modules['httptools'] = None; from tricorn.cli import main;"
        f"sys.exit(main(['{APP}', '--bind', '127.0.0.1:0', '--http1-parser', 'httptools']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "pip install 'tricorn[httptools]'" in lines[0]
