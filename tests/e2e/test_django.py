"""Django and Django Channels served by ``python -m tricorn mysite.asgi:application`` (and
``mysite.wsgi:application``, the same project as a WSGI app).

The project is made the way a user makes one: ``django-admin startproject mysite``, then
``manage.py startapp demo`` (its views, URLs and consumer copied from django_demo/),
whitenoise in MIDDLEWARE, the admin on sqlite (``migrate``, ``createsuperuser``) and
``collectstatic``. The issue's "done" criterion for ASGI: with no flags, the admin login page
renders and a login POST with the form's CSRF token (and cookie) answers 302 to /admin/.
Channels: the project's second entry point ``mysite.channels_asgi:application`` routes
WebSockets to an AsyncWebsocketConsumer. Both run on the default backend, asyncio and uvloop.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e import checks, clients
from tests.e2e.common_tests import CommonTests
from tests.e2e.conftest import PASSWORD, SUPERUSER
from tests.e2e.django_demo import views
from tests.e2e.served import Served, serving

BACKENDS = ["default", "asyncio", "uvloop"]
ENTRY_POINTS = {"django": "mysite.asgi:application", "channels": "mysite.channels_asgi:application"}
HTTP = pytest.mark.parametrize("http", ["1.1", "2"])

CASES = [(entry, backend) for entry in ENTRY_POINTS for backend in BACKENDS]


@pytest.fixture(scope="module", params=CASES, ids=[f"{e}-{b}" for e, b in CASES])
def served(
    request: pytest.FixtureRequest, django_project: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    entry, backend = request.param
    served = Served(
        ENTRY_POINTS[entry],
        backend,
        tmp_path_factory.mktemp(f"{entry}-{backend}"),
        cwd=django_project,
    )
    served.entry = entry  # type: ignore[attr-defined]
    yield from serving(served)


class TestCommon(CommonTests):
    """The checks every framework suite runs (common_tests.py)."""


@HTTP
def test_admin_login_page_and_csrf_post(served: Served, http: str) -> None:
    """The done criterion: GET /admin/login/ renders the form; the POST with its CSRF token
    and cookie logs the superuser in (302 to /admin/), and the session cookie then opens
    /admin/."""
    check_admin_login(served.server().url, http)


def check_admin_login(url: str, http: str) -> None:
    with clients.http_client(http) as client:
        page = client.get(f"{url}/admin/login/?next=/admin/")
        assert page.http_version == clients.expected_version(http)
        assert page.status_code == 200
        assert '<form action="/admin/login/?next=/admin/" method="post" id="login-form">' in (
            page.text
        )
        assert 'name="username"' in page.text
        assert 'name="password"' in page.text
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token is not None
        assert "csrftoken" in client.cookies
        login = client.post(
            f"{url}/admin/login/?next=/admin/",
            data={
                "csrfmiddlewaretoken": token.group(1),
                "username": SUPERUSER,
                "password": PASSWORD,
                "next": "/admin/",
            },
            headers={"Referer": f"{url}/admin/login/"},
        )
        assert login.status_code == 302, login.text[:2000]
        assert login.headers["location"] == "/admin/"
        assert "sessionid" in client.cookies
        index = client.get(f"{url}/admin/")
    assert index.status_code == 200
    assert "Site administration" in index.text


def test_csrf_post_without_the_token_is_refused(served: Served) -> None:
    with clients.http_client("1.1") as client:
        response = client.post(
            f"{served.server().url}/admin/login/",
            data={"username": SUPERUSER, "password": PASSWORD},
        )
    assert response.status_code == 403
    assert "CSRF" in response.text


@HTTP
def test_static_files_via_whitenoise(served: Served, http: str, django_project: Path) -> None:
    with clients.http_client(http) as client:
        response = client.get(f"{served.server().url}/static/admin/css/base.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert response.content == (django_project / "staticfiles/admin/css/base.css").read_bytes()


@HTTP
def test_json_and_parameters(served: Served, http: str) -> None:
    with clients.http_client(http) as client:
        data = client.get(f"{served.server().url}/json")
        item = client.get(f"{served.server().url}/items/42", params={"q": "a b&c=d/é"})
        missing = client.get(f"{served.server().url}/items/x")
        version = client.get(f"{served.server().url}/version")
    assert data.http_version == clients.expected_version(http)
    assert data.json() == {"framework": "django", "ok": True}
    assert item.json() == {"item_id": 42, "q": "a b&c=d/é"}
    assert missing.status_code == 404
    assert version.json() == {"http_version": http}


@HTTP
def test_streaming_response_and_sse(served: Served, http: str) -> None:
    with clients.http_client(http) as client:
        with client.stream("GET", f"{served.server().url}/stream") as response:
            body = b"".join(response.iter_bytes())
        with client.stream("GET", f"{served.server().url}/sse") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            events = clients.parse_sse("".join(response.iter_text()))
    assert body == b"".join(views.STREAM_CHUNKS)
    assert [e["data"] for e in events] == views.SSE_EVENTS


def test_curl(served: Served) -> None:
    body, write_out = clients.curl("--http2-prior-knowledge", f"{served.server().url}/json")
    assert write_out == "200 2"
    assert json.loads(body) == {"framework": "django", "ok": True}


def test_channels_websocket_echo(served: Served) -> None:
    server = served.server()
    url = f"{server.ws_url}/ws"
    if served.entry == "django":  # type: ignore[attr-defined]
        # Plain Django has no WebSocket (its handler raises on the scope): the handshake gets
        # a 500 and the server keeps serving.
        with pytest.raises(InvalidStatus) as refused:
            clients.ws_echo(url, ["hello"])
        assert refused.value.response.status_code == 500
        assert httpx.get(f"{server.url}/json").status_code == 200
        return
    big = bytes(range(256)) * 256
    replies = clients.ws_echo(url, ["hello", big, "whoami"], origin=server.url)
    assert replies == ["echo: hello", big, "1.1"]


def test_no_lifespan_and_clean_shutdown(served: Served) -> None:
    """Django apps answer the lifespan scope with an error: tricorn goes on without lifespan
    and SIGINT stops it with status 0 (closing an open Channels WebSocket with 1001)."""
    server = served.server()
    with clients.http_client("1.1") as client:
        assert client.get(f"{server.url}/json").status_code == 200
    if served.entry == "channels":  # type: ignore[attr-defined]
        # An open consumer gets close code 1001 (going away) from the shutdown.
        with clients.ws_connect(f"{server.ws_url}/ws", origin=server.url) as ws:
            ws.send("before shutdown")
            assert ws.recv(timeout=10) == "echo: before shutdown"
            server.interrupt()
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=20)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1001
    assert server.stop() == 0, server.stderr
    assert '"GET /json HTTP/1.1" 200' in server.stdout
    assert "ASGI lifespan not supported by the app" in server.stderr
    errors = checks.error_lines(server.stderr)
    assert not [line for line in errors if "lifespan" in line.lower()], server.stderr


# --- the same project's WSGI entry point: ``tricorn mysite.wsgi:application``, no flags -----


@pytest.fixture(scope="module")
def served_wsgi(django_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from serving(
        Served(
            "mysite.wsgi:application",
            "default",
            tmp_path_factory.mktemp("wsgi"),
            cwd=django_project,
        )
    )


@HTTP
def test_wsgi_entry_point_serves_the_admin_login_and_csrf_post(
    served_wsgi: Served, http: str
) -> None:
    """The done criterion for WSGI: the project's own wsgi.py, detected as WSGI with no flags
    (Django's async views run through its WSGI handler)."""
    check_admin_login(served_wsgi.server().url, http)


def test_wsgi_entry_point_serves_static_files_and_json(
    served_wsgi: Served, django_project: Path
) -> None:
    server = served_wsgi.server()
    with clients.http_client("2") as client:
        css = client.get(f"{server.url}/static/admin/css/base.css")
        data = client.get(f"{server.url}/json")
    assert css.status_code == 200
    assert css.content == (django_project / "staticfiles/admin/css/base.css").read_bytes()
    assert data.json() == {"framework": "django", "ok": True}
    assert checks.AUTO_ASYNCIO in server.stderr
