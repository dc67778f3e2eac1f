"""What the framework suites (test_frameworks.py, test_flask.py, test_django.py) check alike
against their app, over real clients: each function makes the requests and asserts.

The apps answer the same routes (``apps/common.py``; Django's views follow it): ``/json``,
``/items/{id}?q=``, ``/upload`` (a multipart summary), ``/sse-forever`` with
``/sse-active``, ``/static/hello.txt``.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e import clients
from tests.e2e.apps import common
from tests.e2e.apps.common import upload_summary
from tests.e2e.served import Served
from tests.e2e.server import RUNNING_ON

AUTO_ASYNCIO = "Running on asyncio (backend = auto: the app does not import trio)"


def curl_flag(http: str) -> str:
    """curl's flag for an HTTP version: "1.1" or "2" (h2c by prior knowledge)."""
    return "--http1.1" if http == "1.1" else "--http2-prior-knowledge"


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("ERROR")]


def check_start_up_log(served: Served) -> None:
    """The start-up log names the backend tricorn runs on (``auto`` picks asyncio)."""
    server = served.server()
    with clients.http_client("1.1") as client:
        assert client.get(f"{server.url}/json").status_code == 200
    expected = AUTO_ASYNCIO if served.backend == "default" else RUNNING_ON[served.backend]
    assert expected in server.stderr


def check_json(url: str, http: str, framework: str) -> None:
    """GET ``/json`` answers the framework's JSON with its content type."""
    with clients.http_client(http) as client:
        response = client.get(f"{url}/json")
    assert response.http_version == clients.expected_version(http)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"framework": framework, "ok": True}


def check_path_and_query(url: str, http: str, *, missing: tuple[int, ...] = (404,)) -> None:
    """``/items/42?q=`` decodes the path parameter and an escaped query; a path parameter
    that is not a number answers one of ``missing`` (FastAPI's validation says 422)."""
    with clients.http_client(http) as client:
        found = client.get(f"{url}/items/42", params={"q": "a b&c=d/é"})
        not_found = client.get(f"{url}/items/not-a-number")
    assert found.http_version == clients.expected_version(http)
    assert found.json() == {"item_id": 42, "q": "a b&c=d/é"}
    assert not_found.status_code in missing


def check_streamed_body(url: str, http: str, expected: bytes) -> None:
    """GET ``/stream`` comes in pieces (chunked on HTTP/1.1) and adds up to ``expected``."""
    with (
        clients.http_client(http) as client,
        client.stream("GET", f"{url}/stream") as response,
    ):
        body = b"".join(response.iter_bytes())
        assert response.http_version == clients.expected_version(http)
        if http == "1.1":
            assert response.headers.get("transfer-encoding") == "chunked"
    assert body == expected


def check_sse(url: str, http: str, *, event: str | None = None) -> None:
    """GET ``/sse``: the three events of ``common.SSE_EVENTS`` with ids 0-2 (each named
    ``event`` where the framework names them)."""
    with (
        clients.http_client(http) as client,
        client.stream("GET", f"{url}/sse") as response,
    ):
        text = "".join(response.iter_text())
        assert response.headers["content-type"].startswith("text/event-stream")
    events = clients.parse_sse(text)
    assert [e.get("data") for e in events] == common.SSE_EVENTS
    assert [e.get("id") for e in events] == ["0", "1", "2"]
    if event is not None:
        assert [e.get("event") for e in events] == [event] * 3


def check_upload_httpx(url: str) -> None:
    """A 20 MiB multipart upload with httpx over HTTP/1.1; the app answers its summary."""
    payload = clients.upload_payload()
    with clients.http_client("1.1") as client:
        response = client.post(
            f"{url}/upload", files={"file": ("big.bin", payload, "application/octet-stream")}
        )
    assert response.status_code == 200, response.text[:500]
    assert response.json() == upload_summary("big.bin", payload)


def check_upload_curl(url: str, upload_file: Path, http: str) -> None:
    """curl -F: on HTTP/1.1 with "Expect: 100-continue" (curl sends it for big bodies), on
    HTTP/2 over h2c (httpx's pure-Python HTTP/2 client takes 2-3x as long here)."""
    body, write_out = clients.curl_upload(f"{url}/upload", upload_file, curl_flag(http))
    assert write_out == f"200 {http}", body[:500]
    assert json.loads(body) == upload_summary("big.bin", clients.upload_payload())


def check_endless_sse_stops(url: str, http: str) -> None:
    """The client reads three events of an endless stream and leaves: the app's generator
    is closed (its finally ran, ``/sse-active`` says 0)."""
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


def check_static_file(url: str, http: str, *, conditional: bool = True) -> None:
    """``/static/hello.txt``: HEAD (the length, no body) and, with ``conditional``,
    If-None-Match (304, no body) and Range (206 with the bytes asked for); without, both
    200 with the whole file."""
    file_url = f"{url}/static/hello.txt"
    content = (common.STATIC_DIR / "hello.txt").read_bytes()
    with clients.http_client(http) as client:
        full = client.get(file_url)
        missing = client.get(f"{url}/static/nope.txt")
        head = client.head(file_url)
        not_modified = client.get(file_url, headers={"If-None-Match": full.headers["etag"]})
        partial = client.get(file_url, headers={"Range": "bytes=0-4"})
    assert full.status_code == 200
    assert full.content == content
    assert full.headers["content-type"].startswith("text/plain")
    assert missing.status_code == 404
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(content))
    assert head.content == b""
    if not conditional:
        assert (not_modified.status_code, partial.status_code) == (200, 200)
        return
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert partial.status_code == 206
    assert partial.content == content[:5]
    assert partial.headers["content-range"] == f"bytes 0-4/{len(content)}"


def check_curl_item(url: str, http: str) -> None:
    """curl GET ``/items/7?q=curl`` on HTTP/1.1 or h2c."""
    body, write_out = clients.curl(curl_flag(http), f"{url}/items/7?q=curl")
    assert write_out == f"200 {http}"
    assert json.loads(body) == {"item_id": 7, "q": "curl"}
