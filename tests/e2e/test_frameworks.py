"""Starlette, FastAPI, Litestar and Quart apps served by ``python -m tricorn module:app``,
on the default backend (no flag) and on each backend the framework runs on, exercised with
httpx (HTTP/1.1 and h2c), curl and the websockets library (Quart's push: test_quart_push.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e import clients
from tests.e2e.apps import common
from tests.e2e.served import FRAMEWORKS, Served
from tests.e2e.server import RUNNING_ON

AUTO_ASYNCIO = "Running on asyncio (backend = auto: the app does not import trio)"

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
    try:
        yield served
    finally:
        served.close()


def framework_of(served: Served) -> str:
    return str(served.framework)  # type: ignore[attr-defined]


def test_start_up_log_names_the_backend(served: Served) -> None:
    server = served.server()
    with clients.http_client("1.1") as client:
        assert client.get(f"{server.url}/json").status_code == 200
    expected = AUTO_ASYNCIO if served.backend == "default" else RUNNING_ON[served.backend]
    assert expected in server.stderr


@HTTP
def test_json(served: Served, http: str) -> None:
    with clients.http_client(http) as client:
        response = client.get(f"{served.server().url}/json")
    assert response.http_version == clients.expected_version(http)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"framework": framework_of(served), "ok": True}


@HTTP
def test_path_and_query_parameters(served: Served, http: str) -> None:
    with clients.http_client(http) as client:
        found = client.get(f"{served.server().url}/items/42", params={"q": "a b&c=d/é"})
        missing = client.get(f"{served.server().url}/items/not-a-number")
    assert found.http_version == clients.expected_version(http)
    assert found.json() == {"item_id": 42, "q": "a b&c=d/é"}
    assert missing.status_code in (404, 422)


def test_upload_20_mib_multipart_httpx_http1(served: Served) -> None:
    payload = clients.upload_payload()
    with clients.http_client("1.1") as client:
        response = client.post(
            f"{served.server().url}/upload",
            files={"file": ("big.bin", payload, "application/octet-stream")},
        )
    assert response.status_code == 200, response.text[:500]
    assert response.json() == common.upload_summary("big.bin", payload)


@pytest.mark.parametrize("http", ["1.1", "2"])
def test_upload_20_mib_multipart_curl(served: Served, upload_file: Path, http: str) -> None:
    """curl -F: on HTTP/1.1 with "Expect: 100-continue" (curl sends it for big bodies), on
    HTTP/2 over h2c (httpx's pure-Python HTTP/2 client takes 2-3x as long here)."""
    flag = "--http1.1" if http == "1.1" else "--http2-prior-knowledge"
    body, write_out = clients.curl_upload(f"{served.server().url}/upload", upload_file, flag)
    assert write_out == f"200 {http}", body[:500]
    assert json.loads(body) == common.upload_summary("big.bin", clients.upload_payload())


@HTTP
def test_streaming_response(served: Served, http: str) -> None:
    with (
        clients.http_client(http) as client,
        client.stream("GET", f"{served.server().url}/stream") as response,
    ):
        body = b"".join(response.iter_bytes())
        assert response.http_version == clients.expected_version(http)
        if http == "1.1":
            assert response.headers.get("transfer-encoding") == "chunked"
    assert body == b"".join(common.STREAM_CHUNKS)


@HTTP
def test_server_sent_events(served: Served, http: str) -> None:
    with (
        clients.http_client(http) as client,
        client.stream("GET", f"{served.server().url}/sse") as response,
    ):
        text = "".join(response.iter_text())
        assert response.headers["content-type"].startswith("text/event-stream")
    events = clients.parse_sse(text)
    assert [e.get("data") for e in events] == common.SSE_EVENTS
    assert [e.get("event") for e in events] == ["tick"] * 3
    assert [e.get("id") for e in events] == ["0", "1", "2"]


@HTTP
def test_endless_sse_stops_when_the_client_goes(served: Served, http: str) -> None:
    """An endless event stream (the usual SSE endpoint): once the client has read two events
    and closed its connection, the app's generator is closed (its finally ran)."""
    url = served.server().url
    with (
        clients.http_client(http) as client,
        client.stream("GET", f"{url}/sse-forever") as response,
    ):
        received = ""
        for text in response.iter_text():
            received += text
            if len(clients.parse_sse(received)) >= 3:
                break
    assert [e["data"] for e in clients.parse_sse(received)[:2]] == ["tick", "tick"]
    with clients.http_client("1.1") as client:
        active = clients.poll_json(client, f"{url}/sse-active", {"active": 0})
    assert active == {"active": 0}


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
    errors = [line for line in server.stderr.splitlines() if line.startswith("ERROR")]
    assert errors == []


@HTTP
def test_static_file(served: Served, http: str) -> None:
    with clients.http_client(http) as client:
        response = client.get(f"{served.server().url}/static/hello.txt")
        missing = client.get(f"{served.server().url}/static/nope.txt")
    assert response.status_code == 200
    assert response.content == (common.STATIC_DIR / "hello.txt").read_bytes()
    assert response.headers["content-type"].startswith("text/plain")
    assert missing.status_code == 404


@HTTP
def test_static_file_head_conditional_and_range(served: Served, http: str) -> None:
    """HEAD (the length, no body) and, where the framework's static files do them (not
    Litestar's: 200 with the whole file for both), If-None-Match (304, no body) and Range
    (206 with the bytes asked for)."""
    url = f"{served.server().url}/static/hello.txt"
    content = (common.STATIC_DIR / "hello.txt").read_bytes()
    with clients.http_client(http) as client:
        full = client.get(url)
        head = client.head(url)
        not_modified = client.get(url, headers={"If-None-Match": full.headers["etag"]})
        partial = client.get(url, headers={"Range": "bytes=0-4"})
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(content))
    assert head.content == b""
    if framework_of(served) == "litestar":
        assert (not_modified.status_code, partial.status_code) == (200, 200)
    else:
        assert not_modified.status_code == 304
        assert not_modified.content == b""
        assert partial.status_code == 206
        assert partial.content == content[:5]
        assert partial.headers["content-range"] == f"bytes 0-4/{len(content)}"


@HTTP
def test_lifespan_state(served: Served, http: str) -> None:
    with clients.http_client(http) as client:
        response = client.get(f"{served.server().url}/state")
    assert response.json() == {"greeting": common.GREETING}


@pytest.mark.parametrize("http", ["1.1", "2"])
def test_curl(served: Served, http: str) -> None:
    flag = "--http1.1" if http == "1.1" else "--http2-prior-knowledge"
    body, write_out = clients.curl(flag, f"{served.server().url}/items/7?q=curl")
    assert write_out == f"200 {'1.1' if http == '1.1' else '2'}"
    assert json.loads(body) == {"item_id": 7, "q": "curl"}


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
