"""Real clients for the end-to-end tests: httpx (HTTP/1.1 and h2c), curl, websockets."""

from __future__ import annotations

import random
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import httpx
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

UPLOAD_SIZE = 20 * 1024 * 1024
TIMEOUT = 30.0


@cache
def upload_payload() -> bytes:
    """20 MiB of reproducible, incompressible bytes."""
    return random.Random(20).randbytes(UPLOAD_SIZE)


@contextmanager
def http_client(http: str, *, verify: bool | str = True) -> Iterator[httpx.Client]:
    """httpx over HTTP/1.1 ("1.1") or HTTP/2 ("2": h2c by prior knowledge, or ALPN on TLS)."""
    if http == "2":
        client = httpx.Client(http1=False, http2=True, timeout=TIMEOUT, verify=verify)
    else:
        client = httpx.Client(timeout=TIMEOUT, verify=verify)
    with client:
        yield client


def expected_version(http: str) -> str:
    return "HTTP/2" if http == "2" else "HTTP/1.1"


def parse_sse(text: str) -> list[dict[str, str]]:
    """Events of a text/event-stream body, each as {field: value} (comments dropped)."""
    events = []
    for block in re.split(r"\r\n\r\n|\n\n|\r\r", text):
        fields: dict[str, str] = {}
        for line in re.split(r"\r\n|\n|\r", block):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        if fields:
            events.append(fields)
    return events


def poll_json(client: httpx.Client, url: str, wanted: object, timeout: float = 10.0) -> object:
    """GET ``url`` until its JSON equals ``wanted`` (bounded); the last JSON seen."""
    deadline = time.monotonic() + timeout
    while True:
        seen = client.get(url).json()
        if seen == wanted or time.monotonic() > deadline:
            return seen
        time.sleep(0.05)  # polling the app's state, bounded by the deadline


def curl(*args: str, timeout: float = TIMEOUT) -> tuple[str, str]:
    """Run curl; (body, the -w write-out after the body's last line: "CODE VERSION")."""
    result = subprocess.run(
        ["curl", "-sS", "--max-time", str(timeout), "-w", "\n%{http_code} %{http_version}", *args],
        capture_output=True,
        text=True,
        timeout=timeout + 10,
    )
    assert result.returncode == 0, f"curl {args} failed ({result.returncode}): {result.stderr}"
    body, _, write_out = result.stdout.rpartition("\n")
    return body, write_out


def curl_upload(url: str, path: Path, *version: str) -> tuple[str, str]:
    return curl(*version, "-F", f"file=@{path};type=application/octet-stream", url)


def ws_connect(url: str, *, origin: str | None = None) -> ClientConnection:
    return connect(
        url, open_timeout=TIMEOUT, close_timeout=5, origin=Origin(origin) if origin else None
    )


def ws_echo(
    url: str,
    messages: list[str | bytes],
    *,
    compression: str | None = "deflate",
    origin: str | None = None,
) -> list[str | bytes]:
    """Open a WebSocket with the websockets library, send each message, return the replies."""
    replies: list[str | bytes] = []
    with connect(
        url,
        open_timeout=TIMEOUT,
        close_timeout=5,
        max_size=2**24,
        compression=compression,
        origin=Origin(origin) if origin else None,
    ) as ws:
        for message in messages:
            ws.send(message)
            replies.append(ws.recv(timeout=TIMEOUT))
    return replies
