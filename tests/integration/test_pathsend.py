"""The ASGI ``http.response.pathsend`` extension: offered in the scope, the file sent as the
whole body over HTTP/1.1, h2c and TLS, a missing file before the response started is a 500
with one log line."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from tests.helpers import serving
from tricorn.server.asgi_types import Receive, Scope, Send

pytestmark = pytest.mark.anyio

#: Not a multiple of the read size, so the last piece is a short one.
SIZE = 3 * 1024 * 1024 + 12345
DATA = os.urandom(SIZE)


@pytest.fixture(scope="module")
def served_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pathsend") / "data.bin"
    path.write_bytes(DATA)
    return path


@pytest.fixture(scope="module")
def tls_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    folder = tmp_path_factory.mktemp("pathsend-tls")
    cert = trustme.CA().issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(folder / "cert.pem"))
    yield {"certfile": str(folder / "cert.pem")}


def file_app(path: Path, extensions: list[dict[str, Any]]) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        extensions.append(dict(scope["extensions"]))
        target = str(path) if scope["path"] == "/file" else str(path) + ".missing"
        headers = [(b"content-type", b"application/octet-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": target})

    return app


@pytest.mark.parametrize("mode", ["http1.1", "h2c", "tls-h2", "tls-http1.1"])
async def test_pathsend_sends_the_file_with_its_length(
    mode: str, served_file: Path, tls_settings: dict[str, str]
) -> None:
    extensions: list[dict[str, Any]] = []
    tls = mode.startswith("tls")
    http2 = mode.endswith("h2") or mode == "h2c"
    settings: dict[str, Any] = tls_settings if tls else {}
    async with serving(file_app(served_file, extensions), **settings) as server:
        url = f"{'https' if tls else 'http'}://127.0.0.1:{server.port}/file"
        async with httpx.AsyncClient(http1=not http2, http2=http2, verify=False) as client:
            response = await client.get(url)
            head = await client.head(url)
    assert response.status_code == 200
    assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    assert response.headers["content-length"] == str(SIZE)
    assert response.content == DATA
    assert head.headers["content-length"] == str(SIZE)
    assert head.content == b""
    assert extensions[0]["http.response.pathsend"] == {}


@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "h2c"])
async def test_a_missing_file_is_a_500_and_one_log_line(
    http2: bool, served_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        serving(file_app(served_file, [])) as server,
        httpx.AsyncClient(http1=not http2, http2=http2) as client,
    ):
        with caplog.at_level(logging.ERROR, logger="tricorn.error"):
            response = await client.get(f"http://127.0.0.1:{server.port}/missing")
        again = await client.get(f"http://127.0.0.1:{server.port}/file")
    assert response.status_code == 500
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [
        f"ASGI app sent an invalid message: http.response.pathsend cannot open "
        f"'{served_file}.missing': No such file or directory"
    ]
    assert again.content == DATA  # the connection carries on
