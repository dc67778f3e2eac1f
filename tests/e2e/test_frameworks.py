"""Starlette, FastAPI, Litestar and Quart apps served by ``python -m tricorn module:app``,
on the default backend (no flag) and on each backend the framework runs on, exercised with
httpx (HTTP/1.1 and h2c), curl and the websockets library (Quart's push: test_quart_push.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e import checks, clients
from tests.e2e.apps import common
from tests.e2e.common_tests import CommonTests
from tests.e2e.served import FRAMEWORKS, Served, serving

CASES = [
    (framework, backend)
    for framework, (_, backends) in FRAMEWORKS.items()
    for backend in ["default", *backends]
]
HTTP = pytest.mark.parametrize("http", ["1.1", "2"])


@pytest.fixture(scope="module", params=CASES, ids=[f"{f}-{b}" for f, b in CASES])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    framework, backend = request.param
    served = Served(
        FRAMEWORKS[framework][0],
        backend,
        tmp_path_factory.mktemp(f"{framework}-{backend}"),
    )
    served.framework = framework  # type: ignore[attr-defined]
    yield from serving(served)


class TestCommon(CommonTests):
    """The checks every framework suite runs (common_tests.py)."""


def framework_of(served: Served) -> str:
    return str(served.framework)  # type: ignore[attr-defined]


@HTTP
def test_json(served: Served, http: str) -> None:
    checks.check_json(served.server().url, http, framework_of(served))


@HTTP
def test_path_and_query_parameters(served: Served, http: str) -> None:
    checks.check_path_and_query(served.server().url, http, missing=(404, 422))


@HTTP
def test_streaming_response(served: Served, http: str) -> None:
    checks.check_streamed_body(served.server().url, http, b"".join(common.STREAM_CHUNKS))


@HTTP
def test_server_sent_events(served: Served, http: str) -> None:
    checks.check_sse(served.server().url, http, event="tick")


def test_a_client_leaving_an_endless_stream_is_no_error(served: Served) -> None:
    """A client that closes an endless event stream (h1, then h2c) is a normal event: once the
    server has stopped, its error log has no ERROR line about it."""
    server = served.server()
    for http in ("1.1", "2"):
        with (
            clients.http_client(http) as client,
            client.stream("GET", f"{server.url}/sse-forever") as response,
        ):
            for _ in response.iter_text():
                break
    with clients.http_client("1.1") as client:
        assert clients.poll_json(client, f"{server.url}/sse-active", {"active": 0}) == {"active": 0}
    assert server.stop() == 0
    assert checks.error_lines(server.stderr) == []


@HTTP
def test_static_file_head_conditional_and_range(served: Served, http: str) -> None:
    """GET, HEAD and a missing file; If-None-Match and Range where the framework's static
    files do them (not Litestar's: 200 with the whole file for both)."""
    conditional = framework_of(served) != "litestar"
    checks.check_static_file(served.server().url, http, conditional=conditional)


@HTTP
def test_lifespan_state(served: Served, http: str) -> None:
    with clients.http_client(http) as client:
        response = client.get(f"{served.server().url}/state")
    assert response.json() == {"greeting": common.GREETING}


@HTTP
def test_curl(served: Served, http: str) -> None:
    checks.check_curl_item(served.server().url, http)


@pytest.mark.parametrize("compression", ["deflate", None])
def test_websocket_echo(served: Served, compression: str | None) -> None:
    big = bytes(range(256)) * 1024  # 256 KiB, several frames
    replies = clients.ws_echo(
        f"{served.server().ws_url}/ws",
        ["hello", "ünïcode ✓", big, "whoami", "bye"],
        compression=compression,
    )
    assert replies == ["echo: hello", "echo: ünïcode ✓", big, "1.1", "echo: bye"]


def test_shutdown_closes_websockets_with_1001_then_runs_lifespan_shutdown(
    served: Served,
) -> None:
    """SIGINT with a WebSocket open: the client gets close code 1001 (going away), the app's
    lifespan shutdown runs, the process exits with status 0; the access log has the requests."""
    server = served.server()
    shutdown_file = served.shutdown_file
    with clients.http_client("1.1") as client:
        assert client.get(f"{server.url}/json").status_code == 200
    with clients.ws_connect(f"{server.ws_url}/ws") as ws:
        ws.send("before shutdown")
        assert ws.recv(timeout=10) == "echo: before shutdown"
        server.interrupt()
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=20)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1001
    assert server.stop() == 0, server.stderr
    assert shutdown_file.read_text() == "shutdown"
    assert '"GET /json HTTP/1.1" 200' in server.stdout
