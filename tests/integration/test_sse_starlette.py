"""sse-starlette's endless EventSourceResponse at shutdown and during a rolling restart.

The stream waits in ``receive()`` for the disconnect (sse-starlette's
``_listen_for_disconnect``), so the server's ``http.disconnect`` at the start of the
shutdown ends it: SIGTERM and a SIGHUP roll finish without waiting out graceful_timeout,
set here to 60 s, far beyond the 20 s hang guard of each wait.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import httpx
import pytest

from tests.integration.test_workers import BACKENDS, Server, supervisor, wait_until

pytest.importorskip("sse_starlette")

APP = "tests.integration.sse_apps:app"
#: Hang guard of each wait: a third of graceful_timeout.
GUARD = 20.0


class Reader:
    """Reads the event stream in a thread until it ends; records what it got."""

    def __init__(self, server: Server) -> None:
        self.url = server.url + "/events"
        self.events: list[str] = []
        self.ended: str | None = None
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        try:
            with httpx.stream("GET", self.url, timeout=GUARD) as response:
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        self.events.append(line)
            self.ended = "complete"
        except httpx.HTTPError as error:
            self.ended = repr(error)

    def join(self) -> None:
        self.thread.join(GUARD)
        assert not self.thread.is_alive(), "the event stream did not end"


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigterm_ends_an_endless_sse_stream_at_once(tmp_path: Path, backend: str) -> None:
    with supervisor(
        tmp_path, "--backend", backend, "--graceful-timeout", "60", workers=1, app=APP
    ) as server:
        reader = Reader(server)
        wait_until(lambda: len(reader.events) >= 3, "events", timeout=GUARD)
        server.signal(signal.SIGTERM)
        reader.join()
        assert server.process.wait(timeout=GUARD) == 0
        log = server.log()
    assert reader.events[:3] == ["data: tick 1", "data: tick 2", "data: tick 3"]
    # The app returned without ending its body: the server cuts the response (it must not
    # pass a cut stream off as complete); EventSource clients reconnect either way.
    assert reader.ended is not None and "incomplete chunked read" in reader.ended
    assert "sse stream closed" in log  # the app's generator was closed, not abandoned
    assert "Graceful timeout" not in log
    assert "Server stopped" in log


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_rolling_restart_ends_an_endless_sse_stream(tmp_path: Path, backend: str) -> None:
    with supervisor(
        tmp_path, "--backend", backend, "--graceful-timeout", "60", workers=2, app=APP
    ) as server:
        old = server.workers()
        reader = Reader(server)
        wait_until(lambda: len(reader.events) >= 3, "events", timeout=GUARD)
        server.signal(signal.SIGHUP)
        reader.join()  # its worker was replaced: the stream ended
        wait_until(lambda: "Rolling restart done" in server.log(), "the roll", timeout=GUARD)
        wait_until(lambda: not server.workers() & old, "the old workers gone", timeout=GUARD)
        assert httpx.get(server.url + "/", timeout=GUARD).text.startswith("ok ")
        server.signal(signal.SIGTERM)
        assert server.process.wait(timeout=GUARD) == 0
        log = server.log()
    # The app returned without ending its body: the server cuts the response (it must not
    # pass a cut stream off as complete); EventSource clients reconnect either way.
    assert reader.ended is not None and "incomplete chunked read" in reader.ended
    assert log.count("sse stream closed") == 1
    assert "Graceful timeout" not in log
