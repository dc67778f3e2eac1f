"""Headless Chromium driven over the DevTools protocol (a small client on the websockets
library): load a page, poll an expression until it has a value, with a bound."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

FLAGS = [
    "--headless",
    "--no-sandbox",  # we run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--ignore-certificate-errors",  # the test's own trustme CA
    "--remote-debugging-port=0",
]


def executable() -> str | None:
    return shutil.which("chromium")


class Page:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        self.ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:  # events come in between; the answer carries our id
            reply = json.loads(self.ws.recv(timeout=30))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply["result"]
                return result

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        """Poll ``expression`` until it is truthy (bounded; fails after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except AssertionError:  # a navigation in progress destroyed the context
                value = None
            if value:
                return value
            time.sleep(0.1)  # polling the page, bounded by the deadline
        raise AssertionError(f"{expression!r} still empty after {timeout} s")


def quic_flags(port: int, spki_sha256_base64: str) -> list[str]:
    """Flags that put Chromium on QUIC for https://127.0.0.1:``port`` (HTTP/3, no Alt-Svc
    needed), trusting the certificate whose public key has that hash (QUIC ignores
    ``--ignore-certificate-errors``)."""
    return [
        "--enable-quic",
        f"--origin-to-force-quic-on=127.0.0.1:{port}",
        f"--ignore-certificate-errors-spki-list={spki_sha256_base64}",
    ]


@contextmanager
def chromium(user_data_dir: Path, extra_flags: list[str] | None = None) -> Iterator[Page]:
    """A fresh headless Chromium (new empty profile); its first tab as a Page.
    ``extra_flags`` (such as ``quic_flags``) are added; ``--enable-quic`` among them drops
    the default ``--disable-quic``."""
    path = executable()
    assert path is not None, "chromium is not installed (scripts/test.sh installs it)"
    flags = [*FLAGS, *(extra_flags or [])]
    if "--enable-quic" in flags:
        flags.remove("--disable-quic")
    user_data_dir.mkdir(parents=True, exist_ok=True)
    port_file = user_data_dir / "DevToolsActivePort"
    port_file.unlink(missing_ok=True)  # a profile used before keeps the last run's port
    log = open(user_data_dir / "chromium.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [path, *flags, f"--user-data-dir={user_data_dir}", "about:blank"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"chromium did not start: {(user_data_dir / 'chromium.log').read_text()}"
                )
            time.sleep(0.05)  # polling for the file, bounded by the deadline
        port = int(port_file.read_text().split()[0])
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        with connect(page_url, max_size=2**24, open_timeout=10) as ws:
            yield Page(ws)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
