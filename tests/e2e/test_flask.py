"""A Flask app served as WSGI by ``python -m tricorn tests.e2e.apps.flask_app:app``, detected
with no flags, on the default backend and on trio, asyncio and uvloop (the app runs in
tricorn's thread pool whatever the event loop), exercised with httpx (HTTP/1.1 and h2c) and
curl: JSON, path and query parameters, a 20 MiB multipart upload, a streamed response with
``stream_with_context``, SSE, static files (HEAD, ETag, Range), and a clean SIGINT stop.

The same app's WebSocket and lifespan routes do not exist: WSGI has neither.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import clients
from tests.e2e.apps import common
from tests.e2e.served import Served
from tests.e2e.server import RUNNING_ON

APP = "tests.e2e.apps.flask_app:app"
AUTO_ASYNCIO = "Running on asyncio (backend = auto: the app does not import trio)"
BACKENDS = ["default", "trio", "asyncio", "uvloop"]
HTTP = pytest.mark.parametrize("http", ["1.1", "2"])


@pytest.fixture(scope="module", params=BACKENDS)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    served = Served(APP, request.param, tmp_path_factory.mktemp(f"flask-{request.param}"))
    try:
        yield served
    finally:
        served.close()


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
    assert response.json() == {"framework": "flask", "ok": True}


@HTTP
def test_path_and_query_parameters(served: Served, http: str) -> None:
    with clients.http_client(http) as client:
        found = client.get(f"{served.server().url}/items/42", params={"q": "a b&c=d/é"})
        missing = client.get(f"{served.server().url}/items/not-a-number")
    assert found.http_version == clients.expected_version(http)
    assert found.json() == {"item_id": 42, "q": "a b&c=d/é"}
    assert missing.status_code == 404


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
    """curl -F: on HTTP/1.1 with "Expect: 100-continue", on HTTP/2 over h2c."""
    flag = "--http1.1" if http == "1.1" else "--http2-prior-knowledge"
    body, write_out = clients.curl_upload(f"{served.server().url}/upload", upload_file, flag)
    assert write_out == f"200 {http}", body[:500]
    assert json.loads(body) == common.upload_summary("big.bin", clients.upload_payload())


@HTTP
def test_streaming_response_with_stream_with_context(served: Served, http: str) -> None:
    with (
        clients.http_client(http) as client,
        client.stream("GET", f"{served.server().url}/stream") as response,
    ):
        body = b"".join(response.iter_bytes())
        assert response.http_version == clients.expected_version(http)
        if http == "1.1":
            assert response.headers.get("transfer-encoding") == "chunked"
    assert body == b"".join(common.STREAM_CHUNKS) + b"GET /stream\n"


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
    assert [e.get("id") for e in events] == ["0", "1", "2"]


@HTTP
def test_endless_sse_stops_when_the_client_goes(served: Served, http: str) -> None:
    """The client reads three events of an endless stream and leaves: tricorn calls the
    iterable's ``close()``, which closes the generator (its finally ran)."""
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


@HTTP
def test_static_file_head_conditional_and_range(served: Served, http: str) -> None:
    url = f"{served.server().url}/static/hello.txt"
    content = (common.STATIC_DIR / "hello.txt").read_bytes()
    with clients.http_client(http) as client:
        full = client.get(url)
        missing = client.get(f"{served.server().url}/static/nope.txt")
        head = client.head(url)
        not_modified = client.get(url, headers={"If-None-Match": full.headers["etag"]})
        partial = client.get(url, headers={"Range": "bytes=0-4"})
    assert full.status_code == 200
    assert full.content == content
    assert full.headers["content-type"].startswith("text/plain")
    assert missing.status_code == 404
    assert head.headers["content-length"] == str(len(content))
    assert head.content == b""
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert partial.status_code == 206
    assert partial.content == content[:5]
    assert partial.headers["content-range"] == f"bytes 0-4/{len(content)}"


@pytest.mark.parametrize("http", ["1.1", "2"])
def test_curl(served: Served, http: str) -> None:
    flag = "--http1.1" if http == "1.1" else "--http2-prior-knowledge"
    body, write_out = clients.curl(flag, f"{served.server().url}/items/7?q=curl")
    assert write_out == f"200 {http}"
    assert json.loads(body) == {"item_id": 7, "q": "curl"}


def test_sigint_stops_cleanly_with_the_access_log(served: Served) -> None:
    server = served.server()
    with clients.http_client("1.1") as client:
        assert client.get(f"{server.url}/json").status_code == 200
    assert server.stop() == 0, server.stderr
    assert '"GET /json HTTP/1.1" 200' in server.stdout
    errors = [line for line in server.stderr.splitlines() if line.startswith("ERROR")]
    assert errors == []
