"""The ASGI ``http.response.pathsend`` extension: offered in the scope, the file sent as the
whole body over HTTP/1.1, h2c and TLS, a missing file before the response started is a 500
with one log line. Over cleartext HTTP/1.1 the file goes out with ``os.sendfile`` (the debug
line ``... bytes sent with sendfile`` says so), with keep-alive, HEAD, backpressure and a
client leaving mid-file; elsewhere it is read in pieces. Every test runs on trio, asyncio
and uvloop."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import trustme
from anyio.abc import ByteStream, SocketAttribute

from tests.helpers import open_raw, read_until_closed, serving
from tests.integration.test_proxy_protocol import ssl_tlv, v2
from tricorn.server.asgi_types import Receive, Scope, Send

pytestmark = pytest.mark.anyio

#: Not a multiple of the read size, so the last piece is a short one.
SIZE = 3 * 1024 * 1024 + 12345
DATA = os.urandom(SIZE)
#: Larger than what the kernel's socket buffers hold on loopback (a few MiB each way).
BIG_SIZE = 20 * 1024 * 1024
SENDFILE_LINE = "bytes sent with sendfile"


@pytest.fixture(
    params=["trio", "asyncio", pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop")]
)
def anyio_backend(request: pytest.FixtureRequest) -> object:
    return request.param


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A 20 MiB file of random bytes and its SHA-256."""
    path = tmp_path_factory.mktemp("pathsend-big") / "big.bin"
    digest = hashlib.sha256()
    with path.open("wb") as file:
        for _ in range(BIG_SIZE // (1024 * 1024)):
            block = os.urandom(1024 * 1024)
            digest.update(block)
            file.write(block)
    return path, digest.hexdigest()


def sendfile_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if SENDFILE_LINE in r.getMessage()]


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


@pytest.mark.parametrize(
    "mode", ["http1.1", "http1.1-h11", "http1.1-httptools", "h2c", "tls-h2", "tls-http1.1"]
)
async def test_pathsend_sends_the_file_with_its_length(
    mode: str, served_file: Path, tls_settings: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tricorn.error")
    extensions: list[dict[str, Any]] = []
    tls = mode.startswith("tls")
    http2 = mode.endswith("h2") or mode == "h2c"
    settings: dict[str, Any] = dict(tls_settings) if tls else {}
    if mode == "http1.1-h11":
        settings["http1_parser"] = "h11"  # h11's writer must see every byte: no sendfile
    if mode == "http1.1-httptools":
        settings["http1_parser"] = "httptools"  # llhttp reads heads; our writer: sendfile
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
    # Zero copy over cleartext HTTP/1.1 only (HEAD sends no body, so no line for it).
    zero_copy = mode in ("http1.1", "http1.1-httptools")
    expected = [f"stream 1: {SIZE} of {SIZE} {SENDFILE_LINE}"] if zero_copy else []
    assert sendfile_lines(caplog) == expected


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


def big_app(path: Path, events: list[str], done: anyio.Event | None = None) -> Any:
    """Serves ``path`` at /big and a short body at /small; records what ``send`` raised."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/small":
            headers = [(b"content-length", b"5")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"small"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            await send({"type": "http.response.pathsend", "path": str(path)})
        except OSError as error:
            events.append(type(error).__name__)
            raise
        else:
            events.append("sent")
        finally:
            if done is not None:
                done.set()

    return app


def body_of(response: bytes) -> bytes:
    return response.partition(b"\r\n\r\n")[2]


async def read_big_response(stream: ByteStream) -> bytes:
    """One response with a content-length, read into a bytearray (``read_response`` joins
    bytes, quadratic for 20 MiB)."""
    data = bytearray()
    with anyio.fail_after(60):
        while b"\r\n\r\n" not in data:
            data += await stream.receive()
        head, _, _ = bytes(data).partition(b"\r\n\r\n")
        length = next(
            int(line.partition(b":")[2])
            for line in head.split(b"\r\n")[1:]
            if line.lower().startswith(b"content-length:")
        )
        while len(data) < len(head) + 4 + length:
            data += await stream.receive()
    assert len(data) == len(head) + 4 + length  # nothing pipelined behind it here
    return bytes(data)


async def test_sendfile_sends_a_large_file_and_keeps_the_connection(
    big_file: tuple[Path, str], caplog: pytest.LogCaptureFixture
) -> None:
    """20 MiB twice, then HEAD, then a plain response, all on one connection."""
    caplog.set_level(logging.DEBUG, logger="tricorn.error")
    path, digest = big_file
    events: list[str] = []
    # A loaded machine may take seconds to read and hash 20 MiB: that is no idle client.
    async with serving(big_app(path, events), keep_alive_timeout=60) as server:
        stream = await open_raw(server)
        async with stream:
            bodies = []
            for _ in range(2):
                await stream.send(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
                response = await read_big_response(stream)
                assert response.startswith(b"HTTP/1.1 200 ")
                assert f"content-length: {BIG_SIZE}\r\n".encode() in response
                bodies.append(body_of(response))
            # HEAD, pipelined with a GET: the head has the file's length and no body follows.
            await stream.send(
                b"HEAD /big HTTP/1.1\r\nhost: x\r\n\r\nGET /small HTTP/1.1\r\nhost: x\r\n\r\n"
            )
            both = b""
            with anyio.fail_after(10):
                while both.count(b"\r\n\r\n") < 2 or not both.endswith(b"small"):
                    both += await stream.receive()
            head, _, small = both.partition(b"\r\n\r\n")
    assert [hashlib.sha256(body).hexdigest() for body in bodies] == [digest, digest]
    assert head.startswith(b"HTTP/1.1 200 ") and f"content-length: {BIG_SIZE}".encode() in head
    assert small.startswith(b"HTTP/1.1 200 ") and body_of(small) == b"small"
    assert sendfile_lines(caplog) == [
        f"stream 1: {BIG_SIZE} of {BIG_SIZE} {SENDFILE_LINE}",
        f"stream 2: {BIG_SIZE} of {BIG_SIZE} {SENDFILE_LINE}",
    ]
    assert events == ["sent", "sent", "sent"]


async def test_a_client_that_does_not_read_stalls_only_its_own_download(
    big_file: tuple[Path, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tricorn.error")
    path, digest = big_file
    events: list[str] = []
    async with serving(big_app(path, events)) as server:
        slow = await open_raw(server)
        async with slow:
            raw = slow.extra(SocketAttribute.raw_socket)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            await slow.send(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
            # While the slow client reads nothing, another one is served at once.
            async with httpx.AsyncClient() as client:
                with anyio.fail_after(10):
                    answers = [(await client.get(f"{server.url}/small")).text for _ in range(3)]
            stalled = sendfile_lines(caplog)
            response = await read_big_response(slow)
    assert answers == ["small"] * 3
    assert stalled == []  # the 20 MiB were still on their way (the kernel holds far less)
    assert hashlib.sha256(body_of(response)).hexdigest() == digest
    assert sendfile_lines(caplog) == [f"stream 1: {BIG_SIZE} of {BIG_SIZE} {SENDFILE_LINE}"]


async def test_a_client_that_leaves_mid_file_is_a_clean_disconnect(
    big_file: tuple[Path, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tricorn.error")
    path, digest = big_file
    events: list[str] = []
    done = anyio.Event()
    async with serving(big_app(path, events, done)) as server:
        leaving = await open_raw(server)
        raw = leaving.extra(SocketAttribute.raw_socket)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        await leaving.send(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
        received = b""
        with anyio.fail_after(10):
            while len(received) < 1024 * 1024:
                received += await leaving.receive()
        await leaving.aclose()  # unread bytes: the kernel answers the server with a reset
        with anyio.fail_after(10):
            await done.wait()
        async with httpx.AsyncClient() as client:  # the server carries on
            again = await client.get(f"{server.url}/big")
    assert received.startswith(b"HTTP/1.1 200 ")
    assert events[0] == "ClientDisconnected"
    assert hashlib.sha256(again.content).hexdigest() == digest
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert errors == []
    lines = [r.getMessage() for r in caplog.records if "the client left after" in r.getMessage()]
    assert len(lines) == 1
    sent = int(lines[0].split("after ")[1].split(" of ")[0])
    assert len(received) - len(received.partition(b"\r\n\r\n")[0]) - 4 <= sent < BIG_SIZE


async def test_a_stalled_download_is_cancelled_by_the_graceful_timeout(
    big_file: tuple[Path, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A sendfile waiting on a client that does not read ends when the graceful timeout
    passes: the server stops, the client's connection is closed with the body short."""
    caplog.set_level(logging.INFO, logger="tricorn.error")
    path, _ = big_file
    events: list[str] = []
    with anyio.fail_after(20):
        async with serving(big_app(path, events), graceful_timeout=0.5) as server:
            slow = await open_raw(server)
            raw = slow.extra(SocketAttribute.raw_socket)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            await slow.send(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
            head = await slow.receive()  # the head (and the file's first bytes): under way
        received = len(head) + len(await read_until_closed(slow, timeout=30))
        await slow.aclose()
    assert head.startswith(b"HTTP/1.1 200 ")
    assert received < BIG_SIZE
    messages = [r.getMessage() for r in caplog.records]
    assert "Graceful timeout (0.5 s) passed: cancelling 1 connection(s)" in messages
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_file_cut_short_while_it_is_sent_closes_the_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The file shrinks under a sendfile in progress (another process truncates it): the
    response cannot reach its content-length, so the connection is closed after what there
    was, with one error line, and the server carries on."""
    caplog.set_level(logging.DEBUG, logger="tricorn.error")
    path = tmp_path / "shrinking.bin"
    path.write_bytes(os.urandom(BIG_SIZE))
    events: list[str] = []
    async with serving(big_app(path, events)) as server:
        slow = await open_raw(server)
        raw = slow.extra(SocketAttribute.raw_socket)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        await slow.send(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
        head = await slow.receive()  # under way, and stalled: the client has not read on
        os.truncate(path, 1024 * 1024)
        received = len(head) + len(await read_until_closed(slow, timeout=30))
        await slow.aclose()
        async with httpx.AsyncClient() as client:
            again = await client.get(f"{server.url}/small")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert received < BIG_SIZE
    assert again.text == "small"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith("Exception in ASGI app (GET /big)")
    [line] = sendfile_lines(caplog)
    assert line.startswith("stream 1: ") and line.endswith(f" of {BIG_SIZE} {SENDFILE_LINE}")


async def test_sendfile_behind_a_tls_terminating_proxy(
    served_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Behind HAProxy's send-proxy-v2-ssl the scope's scheme is https while the socket is
    cleartext: sendfile is used all the same."""
    caplog.set_level(logging.DEBUG, logger="tricorn.error")
    schemes: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            schemes.append(scope["scheme"])
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.pathsend", "path": str(served_file)})

    async with serving(app, proxy_protocol="v2") as server:
        stream = await open_raw(server)
        async with stream:
            await stream.send(v2(ssl_tlv(True)) + b"GET /file HTTP/1.1\r\nhost: x\r\n\r\n")
            response = await read_big_response(stream)
    assert schemes == ["https"]
    assert body_of(response) == DATA
    assert sendfile_lines(caplog) == [f"stream 1: {SIZE} of {SIZE} {SENDFILE_LINE}"]
