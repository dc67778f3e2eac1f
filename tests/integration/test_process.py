"""The ``tricorn`` command as a user runs it: a real process, real signals, exit statuses."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import trio

from tests.helpers import free_port
from tests.integration import apps
from tricorn import Config, serve

ROOT = Path(__file__).resolve().parents[2]
TRICORN = [sys.executable, "-m", "tricorn"]


def wait_for_port(port: int, process: subprocess.Popen[str], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"tricorn exited early: {process.communicate()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("tricorn did not start listening")


@contextmanager
def tricorn(*args: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    process = subprocess.Popen(
        [*TRICORN, "--bind", f"127.0.0.1:{port}", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, process)
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def stop(process: subprocess.Popen[str], signum: int = signal.SIGINT) -> tuple[int, str, str]:
    process.send_signal(signum)
    out, err = process.communicate(timeout=15)
    return process.returncode, out, err


@pytest.mark.parametrize("backend", ["trio", "asyncio", "uvloop"])
def test_no_app_serves_the_demo_page(backend: str) -> None:
    with tricorn("--backend", backend) as (process, port):
        page = httpx.get(f"http://127.0.0.1:{port}/").text
        status, out, err = stop(process)
    assert "HTTP/1.1" in page
    expected = {"trio": "trio", "asyncio": "asyncio", "uvloop": "asyncio with uvloop"}[backend]
    assert f"<strong>{expected}</strong>" in page
    assert status == 0
    assert "tricorn module:app" in err  # how to serve your own app
    assert f"http://127.0.0.1:{port}" in err
    assert '"GET / HTTP/1.1" 200' in out  # the access log goes to stdout


def test_serves_an_app_from_a_toml_config(tmp_path: Path) -> None:
    config = tmp_path / "tricorn.toml"
    config.write_text('app = "tests.integration.apps:hello"\naccess_log = false\n')
    with tricorn("--config", str(config)) as (process, port):
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "Hello, world!"
        status, out, _ = stop(process, signal.SIGTERM)
    assert status == 0
    assert out == ""


def test_serves_a_class_given_as_the_app() -> None:
    with tricorn("tests.integration.class_app:SimpleASGIApp") as (process, port):
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "class app"
        assert stop(process)[0] == 0


def test_lifespan_startup_failure_exits_3() -> None:
    result = subprocess.run(
        [*TRICORN, "--bind", "127.0.0.1:0", "tests.integration.class_app:failing_startup"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 3
    assert "database unreachable" in result.stderr


def test_missing_app_exits_2_with_one_line() -> None:
    result = subprocess.run(
        [*TRICORN, "tests.integration.no_such_module:app"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "no_such_module" in lines[0]


class StderrLines:
    """Reads a running process's stderr in a thread, so a test can wait for a log line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        self._stream = process.stderr
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stream:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = 15.0) -> None:
        """Return once a line containing ``text`` was logged; fail after ``timeout``."""
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(text in line for line in self.lines), timeout=timeout
            )
        assert found, f"no {text!r} in stderr: {''.join(self.lines)}"

    def join(self) -> str:
        self._thread.join(timeout=15)
        return "".join(self.lines)


def test_second_signal_stops_at_once() -> None:
    with tricorn("tests.integration.apps:head_then_hang", "--graceful-timeout", "60") as (
        process,
        port,
    ):
        stderr = StderrLines(process)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert client.recv(100).startswith(b"HTTP/1.1 200")  # the request is in the app
            process.send_signal(signal.SIGINT)
            stderr.wait_for("Shutting down: waiting for in-flight requests to finish")
            assert process.poll() is None  # still waiting for the in-flight request
            process.send_signal(signal.SIGINT)
            # Not the 60 s graceful timeout: the wait's timeout is only a guard against a hang.
            status = process.wait(timeout=15)
        log = stderr.join()
    assert status == 0, log
    assert "Second signal: stopping now" in log


def test_embedding_in_a_trio_nursery() -> None:
    async def main() -> str:
        config = Config(bind=["127.0.0.1:0"], access_log=False)
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(serve, apps.hello, config)
            port = addresses[0].address[1]
            async with httpx.AsyncClient() as client:
                text = (await client.get(f"http://127.0.0.1:{port}/")).text
            nursery.cancel_scope.cancel()
        return text

    assert trio.run(main) == "Hello, world!"


def test_embedding_in_plain_asyncio_with_a_shutdown_trigger() -> None:
    async def main() -> str:
        port = free_port()
        config = Config(bind=[f"127.0.0.1:{port}"], access_log=False)
        stop_event = asyncio.Event()
        task = asyncio.create_task(serve(apps.hello, config, shutdown_trigger=stop_event.wait))
        async with httpx.AsyncClient() as client:
            for _ in range(100):
                try:
                    text = (await client.get(f"http://127.0.0.1:{port}/")).text
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.05)
        stop_event.set()
        await task
        return text

    assert asyncio.run(main()) == "Hello, world!"


def test_run_blocks_until_sigterm() -> None:
    port = free_port()
    code = (
        "import tricorn, tests.integration.apps as a;"
        f"raise SystemExit(tricorn.run(a.hello, tricorn.Config(bind=['127.0.0.1:{port}'])))"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        wait_for_port(port, process)
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
        assert stop(process, signal.SIGTERM)[0] == 0
    finally:
        if process.poll() is None:
            process.kill()
