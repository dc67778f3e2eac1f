"""HTTP/2 hardening on a real tricorn: the preface timeout, early responses with real clients
(curl, httpx, a raw frame client), and the connection window kept flowing around them."""

from __future__ import annotations

import shutil
import ssl
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
import trustme

from h2spec import frames as f
from h2spec.connection import Connection, ConnectionClosed, Target
from tests.helpers import open_raw, read_until_closed, serving
from tricorn.server.asgi_types import Receive, Scope, Send

pytestmark = pytest.mark.anyio

UPLOAD = 20 << 20
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


async def early_413(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers 413 without reading the body; everything else reads the body and answers its
    size."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/early":
        body = b"too large"
        headers = [(b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"%d" % size
    headers = [(b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    folder = tmp_path_factory.mktemp("tls-hardening")
    cert = trustme.CA().issue_cert("127.0.0.1")
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    yield {"certfile": str(certfile), "keyfile": str(keyfile)}


@pytest.fixture(scope="module")
def upload_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("upload") / "body.bin"
    path.write_bytes(b"u" * UPLOAD)
    return path


# --- the preface and first SETTINGS within header_read_timeout (CVE-2026-56853 class) --------


def _goaway_codes(data: bytes) -> list[int]:
    """Error codes of the GOAWAY frames in a run of HTTP/2 frames."""
    codes = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        if data[3] == f.GOAWAY and len(data) >= 17:
            codes.append(struct.unpack_from(">L", data, 13)[0])
        data = data[9 + length :]
    return codes


async def test_prior_knowledge_preface_must_arrive_within_the_head_timeout() -> None:
    async with serving(early_413, header_read_timeout=0.3, keep_alive_timeout=60) as server:
        stream = await open_raw(server)
        await stream.send(PREFACE)  # and never the SETTINGS frame
        data = await read_until_closed(stream, timeout=10)
    assert _goaway_codes(data) == [f.PROTOCOL_ERROR]


async def test_a_preface_in_pieces_is_fine_within_the_timeout() -> None:
    async with serving(early_413, header_read_timeout=5, keep_alive_timeout=60) as server:
        conn = await anyio.to_thread.run_sync(
            lambda: Connection(Target(server.host, server.port, timeout=5))
        )
        try:
            await anyio.to_thread.run_sync(conn.handshake)
            status = await anyio.to_thread.run_sync(lambda: conn.roundtrip().status)
        finally:
            conn.close()
    assert status == 200


async def test_h2c_upgrade_preface_must_arrive_within_the_head_timeout() -> None:
    async with serving(early_413, header_read_timeout=0.3, keep_alive_timeout=60) as server:
        stream = await open_raw(server)
        await stream.send(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
        )
        data = await read_until_closed(stream, timeout=10)
    head, _, frames = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    assert _goaway_codes(frames)[-1:] == [f.PROTOCOL_ERROR]


async def test_tls_preface_must_arrive_within_the_head_timeout(tls_files: dict[str, str]) -> None:
    async with serving(
        early_413, header_read_timeout=0.3, keep_alive_timeout=60, **tls_files
    ) as server:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["h2"])
        stream = await anyio.connect_tcp(server.host, server.port, tls=True, ssl_context=context)
        data = await read_until_closed(stream, timeout=10)
    assert _goaway_codes(data) == [f.PROTOCOL_ERROR]


# --- early responses with real clients --------------------------------------------------------


def _curl(*args: str) -> subprocess.CompletedProcess[str]:
    curl = shutil.which("curl")
    assert curl, "curl is required"
    return subprocess.run(
        [curl, "-sS", "--max-time", "20", *args], capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "tls"])
async def test_curl_upload_sees_an_early_413(
    tls: bool, tls_files: dict[str, str], upload_file: Path
) -> None:
    settings: dict[str, Any] = tls_files if tls else {}
    async with serving(early_413, **settings) as server:
        scheme, flag = ("https", "--http2") if tls else ("http", "--http2-prior-knowledge")
        url = f"{scheme}://127.0.0.1:{server.port}"
        result = await anyio.to_thread.run_sync(
            lambda: _curl(
                "-k",
                flag,
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{http_version}",
                "--data-binary",
                f"@{upload_file}",
                url + "/early",
            )
        )
        # The same connection's window was given back: a full upload after it goes through.
        again = await anyio.to_thread.run_sync(
            lambda: _curl("-k", flag, "--data-binary", f"@{upload_file}", url + "/read")
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "413 2"
    assert again.stdout == str(UPLOAD), again.stderr


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "tls"])
async def test_httpx_upload_sees_an_early_413_and_the_connection_carries_on(
    tls: bool, tls_files: dict[str, str]
) -> None:
    settings: dict[str, Any] = tls_files if tls else {}
    body = b"u" * UPLOAD
    async with serving(early_413, **settings) as server:
        url = f"{'https' if tls else 'http'}://127.0.0.1:{server.port}"
        async with httpx.AsyncClient(http1=False, http2=True, verify=False, timeout=30) as client:
            early = await client.post(url + "/early", content=body)
            after = await client.post(url + "/read", content=body)
    assert early.http_version == "HTTP/2"
    assert early.status_code == 413
    assert early.content == b"too large"
    assert after.status_code == 200
    assert after.content == str(UPLOAD).encode()


def _raw_early(port: int, size: int, pause: float = 0.0) -> tuple[list[str], int]:
    """POST ``size`` bytes to /early as the windows allow, stopping at an RST_STREAM (what
    was sent by then is in flight); return the frames seen and the status of a second
    request on the same connection."""
    conn = Connection(Target("127.0.0.1", port, timeout=5))
    try:
        conn.handshake()
        sid = conn.new_stream_id()
        conn.send_headers(sid, conn.request_headers(method="POST", path="/early"), end_stream=False)
        conn.history.clear()
        piece = b"u" * f.DEFAULT_MAX_FRAME_SIZE
        sent = 0
        while sent < size:
            window = min(conn.send_window, conn.stream_windows[sid])
            if window <= 0:
                frame = conn.recv(5.0)  # a window must open, or the stream be reset
                if frame.type == f.RST_STREAM and frame.stream_id == sid:
                    break
                continue
            chunk = min(len(piece), size - sent, window)
            conn.send_data(sid, piece[:chunk], end_stream=sent + chunk == size)
            sent += chunk
            if pause:
                time.sleep(pause)  # a slow uploader (the input of the test, not a wait)
        seen = list(conn.history)
        status = conn.roundtrip().status  # (starts a new history)
        return [*seen, *conn.history], status
    except ConnectionClosed:
        return [*conn.history, "closed"], 0
    finally:
        conn.close()


async def test_raw_client_early_response_within_the_discard_limit() -> None:
    async with serving(early_413) as server:
        frames, status = await anyio.to_thread.run_sync(lambda: _raw_early(server.port, 8 << 20))
    assert any("413" in frame for frame in frames), frames
    assert not [frame for frame in frames if "RST_STREAM" in frame or "GOAWAY" in frame]
    assert status == 200


async def test_a_slow_upload_after_an_early_response_is_not_cut_as_idle() -> None:
    """Discarding the rest of the body counts as activity: an upload longer than
    keep_alive_timeout, with pauses shorter than it, ends normally (no GOAWAY, no reset) and
    the connection serves the next request. (It was cut when the upload outlasted the
    timeout: httpx under load then saw a reset.)"""
    async with serving(early_413, keep_alive_timeout=0.4) as server:
        frames, status = await anyio.to_thread.run_sync(
            lambda: _raw_early(server.port, 16 * f.DEFAULT_MAX_FRAME_SIZE, pause=0.1)
        )
    assert any("413" in frame for frame in frames), frames
    assert not [frame for frame in frames if "RST_STREAM" in frame or "GOAWAY" in frame]
    assert status == 200


async def test_raw_client_early_response_past_the_discard_limit_gets_one_reset() -> None:
    async with serving(early_413, h2_discard_body_limit=1 << 20) as server:
        frames, status = await anyio.to_thread.run_sync(lambda: _raw_early(server.port, 8 << 20))
    resets = [frame for frame in frames if "RST_STREAM" in frame]
    assert any("413" in frame for frame in frames), frames
    assert resets == ["RST_STREAM(NO_ERROR) on stream 1"], frames
    assert not [frame for frame in frames if "GOAWAY" in frame]
    assert status == 200  # the connection window came back for the ignored DATA
