"""A Flask app served as WSGI by ``python -m tricorn tests.e2e.apps.flask_app:app``, detected
with no flags, on the default backend and on trio, asyncio and uvloop (the app runs in
tricorn's thread pool whatever the event loop), exercised with httpx (HTTP/1.1 and h2c) and
curl: JSON, path and query parameters, a 20 MiB multipart upload, a streamed response with
``stream_with_context``, SSE, static files (HEAD, ETag, Range), and a clean SIGINT stop.

The same app's WebSocket and lifespan routes do not exist: WSGI has neither.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import checks, clients
from tests.e2e.apps import common
from tests.e2e.served import Served, serving

APP = "tests.e2e.apps.flask_app:app"
BACKENDS = ["default", "trio", "asyncio", "uvloop"]
HTTP = pytest.mark.parametrize("http", ["1.1", "2"])


@pytest.fixture(scope="module", params=BACKENDS)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    yield from serving(
        Served(APP, request.param, tmp_path_factory.mktemp(f"flask-{request.param}"))
    )


def test_start_up_log_names_the_backend(served: Served) -> None:
    checks.check_start_up_log(served)


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
    checks.check_upload_httpx(served.server().url)


@HTTP
def test_upload_20_mib_multipart_curl(served: Served, upload_file: Path, http: str) -> None:
    checks.check_upload_curl(served.server().url, upload_file, http)


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
    """tricorn calls the WSGI iterable's ``close()`` when the client leaves."""
    checks.check_endless_sse_stops(served.server().url, http)


@HTTP
def test_static_file_head_conditional_and_range(served: Served, http: str) -> None:
    checks.check_static_file(served.server().url, http)


@HTTP
def test_curl(served: Served, http: str) -> None:
    checks.check_curl_item(served.server().url, http)


def test_sigint_stops_cleanly_with_the_access_log(served: Served) -> None:
    server = served.server()
    with clients.http_client("1.1") as client:
        assert client.get(f"{server.url}/json").status_code == 200
    assert server.stop() == 0, server.stderr
    assert '"GET /json HTTP/1.1" 200' in server.stdout
    assert checks.error_lines(server.stderr) == []
