"""Quart's HTTP/2 server push (``make_push_promise``) through tricorn, on the default
backend, asyncio and uvloop, seen by nghttp (nghttp2's client)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import pytest

from tests.e2e.served import FRAMEWORKS, Served


@pytest.fixture(scope="module", params=["default", *FRAMEWORKS["quart"][1]])
def quart(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    served = Served(
        FRAMEWORKS["quart"][0], request.param, tmp_path_factory.mktemp(f"push-{request.param}")
    )
    try:
        yield served
    finally:
        served.close()


def test_quart_http2_server_push(quart: Served) -> None:
    """nghttp (a real HTTP/2 client that accepts pushes) requests /push: Quart's
    make_push_promise reaches the client as a PUSH_PROMISE for /static/hello.txt, and the
    pushed stream carries the file with status 200."""
    result = subprocess.run(
        ["nghttp", "-nv", "-t", "20", f"{quart.server().url}/push"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    out = result.stdout
    assert "recv PUSH_PROMISE frame" in out, out[-3000:]
    promised = re.search(r"promised_stream_id=(\d+)", out)
    assert promised is not None, out[-3000:]
    assert ":path: /static/hello.txt" in out
    pushed = promised.group(1)
    # The pushed stream's response: its HEADERS with :status 200, then its DATA, ended.
    assert f"recv (stream_id={pushed}) :status: 200" in out, out[-3000:]
    assert f"recv DATA frame <length=26, flags=0x00, stream_id={pushed}>" in out, out[-3000:]
    assert re.search(rf"stream_id={pushed}>\s+; END_STREAM", out), out[-3000:]
