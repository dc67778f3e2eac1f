"""A Flask app served as WSGI by ``python -m tricorn tests.e2e.apps.flask_app:app``, detected
with no flags, on the default backend and on trio, asyncio and uvloop (the app runs in
tricorn's thread pool whatever the event loop), exercised with httpx (HTTP/1.1 and h2c) and
curl: JSON, path and query parameters, a 20 MiB multipart upload, a streamed response with
``stream_with_context``, SSE, static files (HEAD, ETag, Range), and a clean SIGINT stop.

The same app's WebSocket and lifespan routes do not exist: WSGI has neither.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e import checks, clients
from tests.e2e.apps import common
from tests.e2e.common_tests import CommonTests
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


class TestCommon(CommonTests):
    """The checks every framework suite runs (common_tests.py)."""


@HTTP
def test_json(served: Served, http: str) -> None:
    checks.check_json(served.server().url, http, "flask")


@HTTP
def test_path_and_query_parameters(served: Served, http: str) -> None:
    checks.check_path_and_query(served.server().url, http)


@HTTP
def test_streaming_response_with_stream_with_context(served: Served, http: str) -> None:
    """Flask's generator (``stream_with_context``) ends with a line from the request."""
    expected = b"".join(common.STREAM_CHUNKS) + b"GET /stream\n"
    checks.check_streamed_body(served.server().url, http, expected)


@HTTP
def test_server_sent_events(served: Served, http: str) -> None:
    checks.check_sse(served.server().url, http)


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
