"""WSGI apps on a real tricorn: httpx over HTTP/1.1 and HTTP/2, raw sockets and curl, on trio
and asyncio. The apps (tests/integration/wsgi_apps.py) run under wsgiref's validator.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import ssl
import subprocess
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, cast
from wsgiref.types import WSGIApplication

import anyio
import httpx
import pytest

from tests.helpers import http_client, open_raw, read_response, serving
from tests.integration import wsgi_apps
from tests.integration.wsgi_apps import Record
from tricorn.server.app import as_asgi3
from tricorn.server.asgi_types import ASGI3App
from tricorn.server.wsgi import WSGIAdapter

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024


def wsgi_serving(app: WSGIApplication, **settings: Any) -> AbstractAsyncContextManager[Any]:
    """``serving`` a WSGI app: ``serve`` detects it and wraps it (nothing done here)."""
    return serving(cast(ASGI3App, app), **settings)


async def wait_for(predicate: Callable[[], bool], bound: float = 10.0) -> None:
    """Poll ``predicate`` (state changed in a worker thread) until true, within ``bound``."""
    with anyio.fail_after(bound):
        while True:
            if predicate():
                return
            await anyio.sleep(0.02)


@pytest.fixture(params=["http1", "http2"])
def http_version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _expected_http_version(version: str) -> str:
    return "HTTP/2" if version == "http2" else "HTTP/1.1"


@pytest.mark.parametrize("lifespan", ["auto", "off"])
async def test_hello_world_under_the_validator(http_version: str, lifespan: str) -> None:
    async with (
        wsgi_serving(wsgi_apps.hello, lifespan=lifespan) as server,
        http_client(http_version) as http,
    ):
        response = await http.get(server.url + "/")
    assert response.status_code == 200
    assert response.text == "Hello, world!"
    assert response.http_version == _expected_http_version(http_version)
    assert response.headers["content-length"] == "13"
    assert response.headers["server"] == "tricorn"


async def test_the_environ_on_the_wire(http_version: str) -> None:
    async with (
        wsgi_serving(wsgi_apps.environ_dump, root_path="/mount") as server,
        http_client(http_version) as http,
    ):
        response = await http.post(
            # a proxy took "/mount" off: tricorn adds root_path to the scope's path
            server.url + "/caf%C3%A9/a%2Fb?x=1&y=%20",
            content=b"abc",
            headers=[
                ("content-type", "text/plain"),
                ("x-multi", "one"),
                ("x-multi", "two"),
                ("cookie", "a=1"),
                ("cookie", "b=2"),
            ],
        )
    environ = response.json()
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["SCRIPT_NAME"] == "/mount"
    assert environ["PATH_INFO"] == "/café/a/b".encode().decode("latin-1")
    assert environ["QUERY_STRING"] == "x=1&y=%20"
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert environ["CONTENT_LENGTH"] == "3"
    assert "HTTP_CONTENT_TYPE" not in environ
    assert environ["HTTP_X_MULTI"] == "one, two"
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert environ["SERVER_NAME"] == "127.0.0.1"
    assert environ["SERVER_PORT"] == str(server.port)
    assert environ["REMOTE_ADDR"] == "127.0.0.1"
    assert environ["REMOTE_PORT"].isdigit()
    assert environ["SERVER_PROTOCOL"] == _expected_http_version(http_version)
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.version"] == [1, 0]
    assert environ["wsgi.multithread"] is True
    assert environ["wsgi.multiprocess"] is False
    assert environ["wsgi.run_once"] is False
    assert environ["wsgi.input_terminated"] is True


@pytest.mark.parametrize(
    "how", ["read", "read_n", "readline", "readline_n", "readlines", "iterate"]
)
async def test_wsgi_input_reads_every_way(how: str, http_version: str) -> None:
    body = b"".join(b"line %d of the body\n" % index for index in range(3000)) + b"no newline"

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 4000):  # streamed: HTTP/1.1 chunked, several frames
            yield body[start : start + 4000]

    async with wsgi_serving(wsgi_apps.read_body) as server, http_client(http_version) as http:
        response = await http.post(server.url + f"/?how={how}", content=chunks())
    answer = response.json()
    assert answer["length"] == len(body)
    assert answer["crc"] == zlib.crc32(body)
    if how.startswith("readline") or how in ("readlines", "iterate"):
        limit = 7 if how == "readline_n" else 100
        assert all(0 < size <= limit for size in answer["parts"])
        assert answer["parts"][:2] == ([7, 7] if how == "readline_n" else [19, 19])
    if how == "read_n":
        assert set(answer["parts"][:-1]) == {1000}


async def test_a_200_mib_upload_is_read_in_bounded_memory() -> None:
    record = Record()
    size = 200 * MiB
    block = bytes(range(256)) * 256  # 64 KiB

    async def upload() -> AsyncIterator[bytes]:
        for _ in range(size // len(block)):
            yield block

    expected_crc = 0
    for _ in range(size // len(block)):
        expected_crc = zlib.crc32(block, expected_crc)
    async with wsgi_serving(wsgi_apps.big_upload(record)) as server, http_client("http1") as http:
        response = await http.post(server.url + "/", content=upload())
    assert response.json() == {"length": size, "crc": expected_crc}
    growth = record.rss_max - record.rss_start
    assert growth < 50 * MiB, f"RSS grew by {growth / MiB:.1f} MiB while reading 200 MiB"


async def test_an_upload_over_http2_streams_to_the_app() -> None:
    record = Record()
    block = b"z" * 65536
    async with wsgi_serving(wsgi_apps.big_upload(record)) as server, http_client("http2") as http:

        async def upload() -> AsyncIterator[bytes]:
            for _ in range(320):
                yield block

        response = await http.post(server.url + "/", content=upload())
    expected = zlib.crc32(block * 320)
    assert response.json() == {"length": 320 * 65536, "crc": expected}
    assert response.http_version == "HTTP/2"


async def test_a_generator_response_is_chunked_and_empty_chunks_wait(http_version: str) -> None:
    async with wsgi_serving(wsgi_apps.generated) as server, http_client(http_version) as http:
        response = await http.get(server.url + "/")
    assert response.text == "one,two"
    assert response.headers["x-kind"] == "generator"
    assert "content-length" not in response.headers
    if http_version == "http1":
        assert response.headers["transfer-encoding"] == "chunked"


async def test_write_from_start_response_then_the_iterable(http_version: str) -> None:
    async with wsgi_serving(wsgi_apps.uses_write) as server, http_client(http_version) as http:
        response = await http.get(server.url + "/")
    assert response.text == "written,twice,then returned"


async def test_the_response_streams_as_the_iterable_yields(http_version: str) -> None:
    record = Record()
    app = wsgi_apps.streaming(record, chunk_size=1000, count=200, wait_after_first=True)
    async with (
        wsgi_serving(app) as server,
        http_client(http_version) as http,
        http.stream("GET", server.url + "/") as response,
    ):
        body = b""
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) >= 1000 and not record.gate.is_set():
                # the first chunk is here while the app waits before its second
                assert record.chunks_produced == 1
                record.gate.set()
    assert len(body) == 200 * 1000
    assert body[:10] == b"000000000\n"
    assert record.gate.is_set()
    assert record.closed.is_set()


async def _wait_until_stable(read: Any, bound: float = 10.0) -> int:
    """Poll ``read()`` until it stops changing for a few polls (bounded in time)."""
    last = -1
    steady = 0
    with anyio.fail_after(bound):
        while steady < 10:
            value = read()
            steady = steady + 1 if value == last else 0
            last = value
            await anyio.sleep(0.05)
    return int(last)


async def test_a_client_that_does_not_read_holds_a_thread_not_memory() -> None:
    """Backpressure reaches the app's iterator: it stops being advanced while the client waits."""
    record = Record()
    chunk = 256 * 1024
    app = wsgi_apps.streaming(record, chunk_size=chunk, count=256)  # 64 MiB
    async with wsgi_serving(app) as server:
        stream = await open_raw(server)
        await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        produced = await _wait_until_stable(lambda: record.chunks_produced)
        assert 0 < produced * chunk < 24 * MiB, f"{produced} chunks produced ahead of the client"
        received = 0
        with anyio.fail_after(30):
            while not record.closed.is_set() or received < 256 * chunk:
                received += len(await stream.receive(1 << 20))
        await stream.aclose()
    assert record.chunks_produced == 256


@pytest.mark.parametrize("version", ["http1", "http2"])
async def test_a_client_gone_mid_response_stops_the_iteration_and_closes(version: str) -> None:
    record = Record()
    app = wsgi_apps.streaming(record, chunk_size=4096, count=0)  # endless
    async with wsgi_serving(app) as server:
        async with http_client(version) as http, http.stream("GET", server.url + "/") as response:
            async for _ in response.aiter_bytes():
                if record.chunks_produced > 20:
                    break
        await wait_for(record.closed.is_set)
        produced = record.chunks_produced
    assert record.closed.is_set()
    assert record.chunks_produced == produced  # nothing iterated after close()


async def test_content_length_is_honoured_and_extra_bytes_dropped(http_version: str) -> None:
    async with wsgi_serving(wsgi_apps.too_long) as server, http_client(http_version) as http:
        first = await http.get(server.url + "/")
        second = await http.get(server.url + "/")  # the connection is still good
    assert first.content == b"01234"
    assert first.headers["content-length"] == "5"
    assert second.content == b"01234"


async def test_a_body_short_of_its_content_length_is_cut(
    http_version: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="tricorn.error")
    async with wsgi_serving(wsgi_apps.too_short) as server, http_client(http_version) as http:
        for _ in range(2):  # each is cut; the server carries on
            with pytest.raises(httpx.HTTPError):
                await http.get(server.url + "/")
    shorts = [r for r in caplog.records if "7 bytes short of its Content-Length" in r.getMessage()]
    assert len(shorts) == 2


async def test_a_stuck_wsgi_thread_does_not_hold_shutdown_past_the_graceful_timeout() -> None:
    record = Record()  # the gate stays closed until the server has stopped
    failures: list[str] = []
    try:
        with anyio.fail_after(15):  # hang guard: the app would hold its thread for 10 s
            async with (
                wsgi_serving(wsgi_apps.blocking(record), graceful_timeout=0.2) as server,
                httpx.AsyncClient() as http,
                anyio.create_task_group() as group,
            ):

                async def request() -> None:
                    try:
                        await http.get(server.url + "/")
                    except httpx.HTTPError as error:
                        failures.append(type(error).__name__)

                group.start_soon(request)
                await wait_for(lambda: record.active == 1)
                server.shutdown.set()
        assert failures  # the request was cut by the shutdown, not answered
        assert record.active == 1  # while the thread was still inside the app
    finally:
        record.gate.set()


async def test_head_sends_the_head_only(http_version: str) -> None:
    record = Record()
    async with (
        wsgi_serving(wsgi_apps.streaming(record, chunk_size=1000, count=0)) as server,
        http_client(http_version) as http,
    ):
        response = await http.head(server.url + "/")
        hello = await http.head(server.url + "/")
        await wait_for(record.closed.is_set)
    assert response.status_code == 200
    assert response.content == b""
    assert hello.headers["content-type"] == "application/octet-stream"


async def test_head_keeps_the_content_length() -> None:
    async with wsgi_serving(wsgi_apps.hello) as server:
        stream = await open_raw(server)
        await stream.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = await read_until_closed_or(stream, b"Hello, world!")
        await stream.aclose()
    head, _, rest = data.partition(b"\r\n\r\n")
    assert b"content-length: 13" in head.lower()
    assert rest.startswith(b"HTTP/1.1 200")  # the HEAD response had no body
    assert rest.endswith(b"Hello, world!")


async def read_until_closed_or(stream: anyio.abc.SocketStream, end: bytes) -> bytes:
    data = b""
    with anyio.fail_after(5):
        while not data.endswith(end):
            data += await stream.receive()
    return data


@pytest.mark.parametrize(
    ("status", "headers", "logged"),
    [
        ("200", [("Content-Type", "text/plain")], "status '200' is not a final status"),
        ("abc OK", [], "is not a final status"),
        ("100 Continue", [], "is not a final status"),
        (200, [], "status must be a str"),
        ("200 OK", [("Bad Name", "x")], "is not a token"),
        ("200 OK", [("X-Injected", "a\r\nSet-Cookie: evil=1")], "without CR/LF"),
        ("200 OK", [("X-Snowman", "\u2603")], "is not latin-1"),
        ("200 OK", [("Content-Length", "ten")], "is not one number"),
        ("200 OK", {"Content-Type": "text/plain"}, "headers must be a list"),
        ("200 OK", [("Content-Type",)], "is not a (name, value) tuple"),
    ],
)
async def test_an_invalid_status_or_header_is_a_500_and_one_log_line(
    status: Any, headers: Any, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="tricorn.error")
    async with (
        wsgi_serving(wsgi_apps.bad_response(status, headers)) as server,
        httpx.AsyncClient() as http,
    ):
        response = await http.get(server.url + "/x")
        after = await http.get(server.url + "/x")
    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    assert "set-cookie" not in response.headers
    assert after.status_code == 500
    lines = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(lines) == 2  # one per request
    assert logged in lines[0].getMessage()
    assert "WSGI app gave an invalid response to GET /x" in lines[0].getMessage()
    assert "\n" not in lines[0].getMessage()
    assert lines[0].exc_info is None


async def test_hop_by_hop_headers_from_the_app_are_dropped(http_version: str) -> None:
    headers = [("Content-Type", "text/plain"), ("Transfer-Encoding", "gzip"), ("Upgrade", "x")]
    async with (
        wsgi_serving(wsgi_apps.bad_response("200 OK", headers)) as server,
        http_client(http_version) as http,
    ):
        response = await http.get(server.url + "/")
    assert response.status_code == 200
    assert response.text == "never sent"
    assert "upgrade" not in response.headers
    assert response.headers.get("transfer-encoding") in (None, "chunked")


async def test_an_exception_before_the_head_is_a_500(
    http_version: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="tricorn.error")
    async with (
        wsgi_serving(wsgi_apps.raises(after_head=False)) as server,
        http_client(http_version) as http,
    ):
        response = await http.get(server.url + "/")
    assert response.status_code == 500
    assert any(r.exc_info and "the app broke" in str(r.exc_info[1]) for r in caplog.records)


async def test_an_exception_after_the_head_cuts_the_response(http_version: str) -> None:
    async with (
        wsgi_serving(wsgi_apps.raises(after_head=True)) as server,
        http_client(http_version) as http,
    ):
        with pytest.raises(httpx.HTTPError):
            await http.get(server.url + "/")


async def test_exc_info_replaces_headers_not_yet_sent(http_version: str) -> None:
    async with (
        wsgi_serving(wsgi_apps.replaces_headers) as server,
        http_client(http_version) as http,
    ):
        response = await http.get(server.url + "/")
    assert response.status_code == 503
    assert response.text == "sorry"
    assert "x-first" not in response.headers


async def test_exc_info_after_the_head_is_re_raised(http_version: str) -> None:
    record = Record()
    async with (
        wsgi_serving(wsgi_apps.exc_info_after_head(record)) as server,
        http_client(http_version) as http,
    ):
        with pytest.raises(httpx.HTTPError):
            await http.get(server.url + "/")
    assert record.errors == ["re-raised KeyError('late failure')"]


async def test_start_response_twice_without_exc_info_is_an_error() -> None:
    async with wsgi_serving(wsgi_apps.start_response_twice) as server, httpx.AsyncClient() as http:
        response = await http.get(server.url + "/")
    assert response.status_code == 500


async def test_file_wrapper_serves_a_file(tmp_path: Path, http_version: str) -> None:
    path = tmp_path / "data.bin"
    data = bytes(range(256)) * 1000
    path.write_bytes(data)
    async with wsgi_serving(wsgi_apps.file_app) as server, http_client(http_version) as http:
        response = await http.get(server.url + "/", params={"path": str(path)})
    assert response.content == data


@pytest.mark.parametrize("lifespan", ["auto", "off"])  # the worker pool, or one thread each
async def test_wsgi_max_threads_bounds_the_requests_running_at_once(lifespan: str) -> None:
    record = Record()
    results: list[int] = []
    async with (
        wsgi_serving(wsgi_apps.blocking(record), wsgi_max_threads=2, lifespan=lifespan) as server,
        httpx.AsyncClient(timeout=20) as http,
        anyio.create_task_group() as group,
    ):

        async def one() -> None:
            results.append((await http.get(server.url + "/")).status_code)

        for _ in range(5):
            group.start_soon(one)
        await wait_for(lambda: record.active >= 2)
        await _wait_until_stable(lambda: record.active, bound=5)
        record.gate.set()
    assert results == [200] * 5
    assert record.max_active == 2


async def test_a_websocket_to_a_wsgi_app_is_refused() -> None:
    async with wsgi_serving(wsgi_apps.hello) as server:
        stream = await open_raw(server)
        await stream.send(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        response = await read_response(stream)
        await stream.aclose()
    assert response.startswith(b"HTTP/1.1 403")


async def test_over_tls_with_http2(certificates_dir: Path) -> None:
    settings = {
        "certfile": str(certificates_dir / "cert.pem"),
        "keyfile": str(certificates_dir / "key.pem"),
    }
    async with (
        wsgi_serving(wsgi_apps.environ_dump, **settings) as server,
        httpx.AsyncClient(
            http2=True, verify=ssl.create_default_context(cafile=str(certificates_dir / "ca.pem"))
        ) as http,
    ):
        response = await http.get(server.url.replace("http://", "https://") + "/tls")
    assert response.http_version == "HTTP/2"
    assert response.json()["wsgi.url_scheme"] == "https"
    assert response.json()["PATH_INFO"] == "/tls"


@pytest.fixture(scope="module")
def certificates_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    import trustme

    folder = tmp_path_factory.mktemp("wsgi-tls")
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1", "localhost")
    authority.cert_pem.write_to_path(str(folder / "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    yield folder


# --- curl -------------------------------------------------------------------------------


def _curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    curl = shutil.which("curl")
    assert curl, "curl is required (scripts/test.sh installs it)"
    return subprocess.run([curl, "-sS", "--max-time", "20", *args], capture_output=True, timeout=30)


@pytest.mark.parametrize("flag", ["--http1.1", "--http2-prior-knowledge"])
async def test_curl_uploads_a_file_and_gets_the_echo(flag: str, tmp_path: Path) -> None:
    data = b"".join(b"%d\n" % index for index in range(200_000))
    path = tmp_path / "upload.txt"
    path.write_bytes(data)
    async with wsgi_serving(wsgi_apps.read_body) as server:
        result = await anyio.to_thread.run_sync(
            lambda: _curl(flag, "-T", str(path), server.url + "/?how=read_n")
        )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["length"] == len(data)
    assert answer["crc"] == zlib.crc32(data)


async def test_curl_chunked_upload_from_stdin() -> None:
    data = b"x" * 300_000
    async with wsgi_serving(wsgi_apps.read_body) as server:
        curl = shutil.which("curl")
        assert curl
        result = await anyio.to_thread.run_sync(
            lambda: subprocess.run(
                [curl, "-sS", "--max-time", "20", "-T", "-", server.url + "/?how=iterate"],
                input=data,
                capture_output=True,
                timeout=30,
            )
        )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["length"] == len(data)


# --- Flask ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flask_app() -> Any:
    from tests.integration import wsgi_flask

    return wsgi_flask.app


def test_a_flask_app_is_detected_as_wsgi(flask_app: Any) -> None:
    adapter = as_asgi3(flask_app)
    assert isinstance(adapter, WSGIAdapter)
    assert adapter.app is flask_app


async def test_flask_hello_and_multipart_upload(flask_app: Any, http_version: str) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    async with wsgi_serving(flask_app) as server, http_client(http_version) as http:
        hello = await http.get(server.url + "/")
        upload = await http.post(
            server.url + "/upload", files={"file": ("data.bin", data, "application/octet-stream")}
        )
    assert hello.text == "Hello from Flask"
    assert upload.json() == {"name": "data.bin", "length": len(data), "crc": zlib.crc32(data)}


async def test_flask_raw_streamed_upload(flask_app: Any, http_version: str) -> None:
    block = b"q" * 65536

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield block

    async with wsgi_serving(flask_app) as server, http_client(http_version) as http:
        response = await http.post(
            server.url + "/raw",
            content=chunks(),
            headers={"content-length": str(64 * len(block))},
        )
    assert response.json() == {"length": 64 * len(block), "crc": zlib.crc32(block * 64)}


async def test_flask_stream_with_context(flask_app: Any, http_version: str) -> None:
    async with wsgi_serving(flask_app) as server, http_client(http_version) as http:
        response = await http.get(server.url + "/stream", params={"count": "50"})
    assert response.status_code == 200
    assert response.text == "".join(f"/stream:{index}\n" for index in range(50))


# --- Django -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def django_app() -> Any:
    from tests.integration import wsgi_django

    return wsgi_django.application


def test_django_wsgi_handler_is_detected_as_wsgi(django_app: Any) -> None:
    assert isinstance(as_asgi3(django_app), WSGIAdapter)


async def test_django_view_admin_login_and_post(django_app: Any, http_version: str) -> None:
    async with wsgi_serving(django_app) as server, http_client(http_version) as http:
        hello = await http.get(server.url + "/hello/")
        login = await http.get(server.url + "/admin/login/")
        redirect = await http.get(server.url + "/admin/")
        echo = await http.post(server.url + "/echo/", content=b"z" * 100_000)
    assert hello.status_code == 200
    assert hello.text == f"Hello from Django at /hello/ (127.0.0.1:{server.port})"
    assert login.status_code == 200
    assert 'name="csrfmiddlewaretoken"' in login.text
    assert "csrftoken" in login.cookies
    assert redirect.status_code == 302
    assert redirect.headers["location"].startswith("/admin/login/")
    assert echo.json() == {"length": 100_000, "script_name": "", "path": "/echo/"}


async def test_django_under_a_root_path(django_app: Any) -> None:
    async with wsgi_serving(django_app, root_path="/site") as server, httpx.AsyncClient() as http:
        echo = await http.post(server.url + "/echo/", content=b"abc")  # "/site" stripped by a proxy
    assert echo.json() == {"length": 3, "script_name": "/site", "path": "/site/echo/"}


# --- the command line -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "path", "text"),
    [
        ("tests.integration.wsgi_flask:app", "/", "Hello from Flask"),
        ("tests.integration.wsgi_django:application", "/hello/", "Hello from Django at /hello/"),
    ],
)
def test_the_tricorn_command_serves_flask_and_django(spec: str, path: str, text: str) -> None:
    from tests.integration.test_process import stop, tricorn

    with tricorn(spec, "--wsgi-max-threads", "4") as (process, port):
        response = httpx.get(f"http://127.0.0.1:{port}{path}")
        status, _, err = stop(process)
    assert response.status_code == 200
    assert response.text.startswith(text)
    assert status == 0
    assert "not an ASGI app" not in err


def test_interface_wsgi_on_the_command_line() -> None:
    from tests.integration.test_process import stop, tricorn

    with tricorn("tests.integration.wsgi_apps:hello", "--interface", "wsgi") as (process, port):
        response = httpx.get(f"http://127.0.0.1:{port}/")
        status, _, _ = stop(process)
    assert response.text == "Hello, world!"
    assert status == 0


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_sigterm_with_a_hung_wsgi_request_exits_after_the_graceful_timeout(backend: str) -> None:
    import socket

    from tests.integration.test_process import stop, tricorn

    args = ("tests.integration.wsgi_apps:stuck", "--backend", backend, "--graceful-timeout", "0.5")
    with tricorn(*args) as (process, port), socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert process.stderr is not None
        for line in process.stderr:  # bounded: the app prints this as it starts
            if "stuck app entered" in line:
                break
        status, _, err = stop(process, signal.SIGTERM)  # communicate(timeout=15) guards a hang
    assert status == 0
    assert "Graceful timeout (0.5 s) passed: cancelling 1 connection(s)" in err
