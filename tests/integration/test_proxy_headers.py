"""Trusted proxy headers on a real tricorn: HTTP/1.1, h2c and HTTP/2 over TLS (httpx),
WebSocket over HTTP/1.1 (websockets) and HTTP/2 (RFC 8441), the WSGI environ, a unix socket
peer, the access log; trusted and untrusted peers, on both backends."""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import trustme
from wsproto.events import CloseConnection

from tests.helpers import http_client, open_raw, serving
from tests.integration import apps, ws_apps, wsgi_apps
from tests.integration.test_websocket import H2WebSocketClient, ws_close, ws_connect, ws_url
from tricorn.config import FORWARDED_HEADER_NAMES
from tricorn.server.asgi_types import ASGI3App

pytestmark = pytest.mark.anyio

#: What nginx sends with the snippet of docs/deployment.md, for a client 203.0.113.7 that
#: reached it over TLS at https://www.example.com/api/...
PROXIED = {
    "X-Forwarded-For": "198.51.100.66, 203.0.113.7",  # the first one forged by the client
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "www.example.com",
    "X-Forwarded-Prefix": "/api",
}

#: Every header read (the defaults read only X-Forwarded-For and -Proto).
ALL_HEADERS = {"forwarded_headers": list(FORWARDED_HEADER_NAMES)}

#: A trust list without 127.0.0.1: the test client is an untrusted peer.
UNTRUSTED = {"forwarded_allow_ips": ["10.0.0.0/8", "unix"]}


@pytest.fixture(params=["http1", "http2"])
def http_version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def header(scope: dict[str, Any], name: str) -> list[str]:
    return [value for key, value in scope["headers"] if key == name]


async def test_a_trusted_proxy_sets_client_scheme_host_and_prefix(http_version: str) -> None:
    async with serving(apps.scope_dump, **ALL_HEADERS) as server, http_client(http_version) as http:
        response = await http.get(f"{server.url}/items/1?q=a", headers=PROXIED)
    assert response.http_version == ("HTTP/2" if http_version == "http2" else "HTTP/1.1")
    scope = response.json()
    assert scope["client"] == ["203.0.113.7", 0]
    assert scope["scheme"] == "https"
    assert scope["server"] == ["www.example.com", 443]
    assert header(scope, "host") == ["www.example.com"]
    assert (scope["root_path"], scope["path"], scope["raw_path"]) == (
        "/api",
        "/api/items/1",
        "/api/items/1",
    )
    assert scope["query_string"] == "q=a"


async def test_the_defaults_read_only_x_forwarded_for_and_proto(http_version: str) -> None:
    async with serving(apps.scope_dump) as server, http_client(http_version) as http:
        response = await http.get(f"{server.url}/items", headers=PROXIED)
    scope = response.json()
    assert (scope["client"], scope["scheme"]) == (["203.0.113.7", 0], "https")
    assert scope["server"] == ["127.0.0.1", server.port]
    assert header(scope, "host") == [f"127.0.0.1:{server.port}"]
    assert (scope["root_path"], scope["path"]) == ("", "/items")


async def test_an_untrusted_peer_changes_nothing(http_version: str) -> None:
    settings = {**ALL_HEADERS, **UNTRUSTED}
    headers = {**PROXIED, "Forwarded": "for=192.0.2.1;proto=https;host=evil.test"}
    async with serving(apps.scope_dump, **settings) as server, http_client(http_version) as http:
        response = await http.get(f"{server.url}/items", headers=headers)
    scope = response.json()
    assert scope["client"][0] == "127.0.0.1"
    assert scope["client"][1] > 0
    assert scope["scheme"] == "http"
    assert scope["server"] == ["127.0.0.1", server.port]
    assert header(scope, "host") == [f"127.0.0.1:{server.port}"]
    assert (scope["root_path"], scope["path"]) == ("", "/items")


async def test_proxy_headers_off_changes_nothing() -> None:
    async with (
        serving(apps.scope_dump, proxy_headers=False) as server,
        http_client("http1") as http,
    ):
        scope = (await http.get(server.url, headers=PROXIED)).json()
    assert (scope["client"][0], scope["scheme"]) == ("127.0.0.1", "http")


async def test_forwarded_from_a_trusted_proxy(http_version: str) -> None:
    forwarded = 'for=198.51.100.66, for="[2001:db8::17]:4711";proto=https;host=www.example.com'
    async with serving(apps.scope_dump, **ALL_HEADERS) as server, http_client(http_version) as http:
        scope = (await http.get(server.url, headers={"Forwarded": forwarded})).json()
    assert scope["client"] == ["2001:db8::17", 4711]
    assert scope["scheme"] == "https"
    assert header(scope, "host") == ["www.example.com"]


async def test_malformed_values_are_ignored_and_the_request_is_served(
    http_version: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tricorn.error")
    headers = {
        "X-Forwarded-For": "not-an-address",
        "X-Forwarded-Proto": "gopher",
        "X-Forwarded-Host": "evil.test/x",
        "X-Forwarded-Prefix": "//evil.test",
        "Forwarded": 'for="unterminated',
    }
    async with serving(apps.scope_dump, **ALL_HEADERS) as server, http_client(http_version) as http:
        response = await http.get(f"{server.url}/p", headers=headers)
    assert response.status_code == 200
    scope = response.json()
    assert (scope["client"][0], scope["scheme"], scope["path"]) == ("127.0.0.1", "http", "/p")
    messages = [r.getMessage() for r in caplog.records if r.name == "tricorn.error"]
    assert any("X-Forwarded-For ignored" in m for m in messages)
    assert any("Forwarded header ignored" in m for m in messages)


# --- HTTP/2 over TLS: the connection is https; only a trusted proxy says otherwise ----------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Path]]:
    folder = tmp_path_factory.mktemp("proxy-tls")
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1")
    ca, certfile, keyfile = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    authority.cert_pem.write_to_path(str(ca))
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    yield ca, certfile, keyfile


@pytest.mark.parametrize("trusted", [True, False])
async def test_http2_over_tls_keeps_https_unless_a_trusted_proxy_says_http(
    tls_files: tuple[Path, Path, Path], trusted: bool
) -> None:
    ca, certfile, keyfile = tls_files
    settings: dict[str, Any] = {"certfile": str(certfile), "keyfile": str(keyfile)}
    if not trusted:
        settings.update(UNTRUSTED)
    context = ssl.create_default_context(cafile=str(ca))
    async with (
        serving(apps.scope_dump, **settings) as server,
        httpx.AsyncClient(http2=True, verify=context, timeout=20) as http,
    ):
        url = f"https://127.0.0.1:{server.port}/"
        plain = (await http.get(url)).json()
        told = await http.get(url, headers={"X-Forwarded-Proto": "http"})
    assert told.http_version == "HTTP/2"
    assert plain["scheme"] == "https"
    assert told.json()["scheme"] == ("http" if trusted else "https")


# --- WebSocket ---------------------------------------------------------------------------


@pytest.mark.parametrize("trusted", [True, False])
async def test_websocket_scheme_is_wss_when_a_trusted_proxy_says_https(trusted: bool) -> None:
    settings = {} if trusted else UNTRUSTED
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    async with (
        serving(ws_apps.scope_dump, **settings) as server,
        ws_connect(ws_url(server, "/chat"), additional_headers=headers) as ws,
    ):
        scope = json.loads(await ws.recv())
        await ws_close(ws)
    assert scope["type"] == "websocket"
    if trusted:
        assert (scope["scheme"], scope["client"]) == ("wss", ["203.0.113.7", 0])
    else:
        assert (scope["scheme"], scope["client"][0]) == ("ws", "127.0.0.1")


async def test_websocket_over_http2_follows_the_proxy_too() -> None:
    async with (
        serving(ws_apps.scope_dump, **ALL_HEADERS) as server,
        await open_raw(server) as stream,
    ):
        h2 = H2WebSocketClient(stream)
        await h2.start()
        response = await h2.connect(
            f"127.0.0.1:{server.port}",
            "/chat",
            ("x-forwarded-proto", "https"),
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-host", "www.example.com"),
        )
        assert dict(response.headers)[b":status"] == b"200"
        scope = json.loads(await h2.ws_message())
        await h2.ws_send(CloseConnection(1000))
    assert (scope["http_version"], scope["scheme"]) == ("2", "wss")
    assert scope["client"] == ["203.0.113.7", 0]
    assert ["host", "www.example.com"] in scope["headers"]


# --- WSGI ------------------------------------------------------------------------------


async def test_wsgi_environ_follows_the_proxy(http_version: str) -> None:
    app = cast(ASGI3App, wsgi_apps.environ_dump)
    async with serving(app, **ALL_HEADERS) as server, http_client(http_version) as http:
        response = await http.get(f"{server.url}/items", headers=PROXIED)
    environ = response.json()
    assert environ["REMOTE_ADDR"] == "203.0.113.7"
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["HTTP_HOST"] == "www.example.com"
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("www.example.com", "443")
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/api", "/items")


async def test_wsgi_environ_of_an_untrusted_peer(http_version: str) -> None:
    app = cast(ASGI3App, wsgi_apps.environ_dump)
    async with (
        serving(app, **ALL_HEADERS, **UNTRUSTED) as server,
        http_client(http_version) as http,
    ):
        environ = (await http.get(f"{server.url}/items", headers=PROXIED)).json()
    assert (environ["REMOTE_ADDR"], environ["wsgi.url_scheme"]) == ("127.0.0.1", "http")
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("", "/items")


# --- a unix socket peer, the access log -------------------------------------------------


@pytest.mark.parametrize("trusted", [True, False])
async def test_a_unix_socket_peer_is_trusted_with_unix(tmp_path: Path, trusted: bool) -> None:
    path = tmp_path / "t.sock"
    allow = ["127.0.0.1", "unix"] if trusted else ["127.0.0.1"]
    transport = httpx.AsyncHTTPTransport(uds=str(path))
    async with (
        serving(apps.scope_dump, bind=[f"unix:{path}"], forwarded_allow_ips=allow),
        httpx.AsyncClient(transport=transport, timeout=20) as http,
    ):
        scope = (await http.get("http://app.test/", headers=PROXIED)).json()
    if trusted:
        assert (scope["client"], scope["scheme"]) == (["203.0.113.7", 0], "https")
    else:
        assert (scope["client"], scope["scheme"]) == (None, "http")


async def test_the_access_log_shows_the_forwarded_client(
    http_version: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tricorn.access")
    async with (
        serving(apps.scope_dump, access_log=True) as server,
        http_client(http_version) as http,
    ):
        await http.get(f"{server.url}/seen", headers=PROXIED)
        await http.get(f"{server.url}/direct")
    lines = [r.getMessage() for r in caplog.records if r.name == "tricorn.access"]
    assert any(line.startswith("203.0.113.7:0 - ") and "/seen" in line for line in lines), lines
    assert any(line.startswith("127.0.0.1:") and "/direct" in line for line in lines), lines
