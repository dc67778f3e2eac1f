"""tricorn behind a real nginx (Debian's package, run by the test with its own config): the
app sees the client, scheme and host nginx saw, over TCP and over a unix socket, through
nginx's TLS (a Starlette redirect to https://), and for WebSockets (ws/wss), on trio and
asyncio.

The client of these tests connects from 127.0.0.2 (all of 127.0.0.0/8 is this host on
Linux): an address nginx forwards and tricorn does not trust, unlike nginx's own 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from websockets.asyncio.client import connect

from tests.e2e.nginx import Nginx, nginx
from tests.e2e.server import run_tricorn

APP = "tests.e2e.apps.proxied_app:app"
CLIENT_ADDRESS = "127.0.0.2"
HOST = "www.example.test"
#: The headers nginx sets in tests/e2e/nginx.py (Forwarded is not read: nginx passes a
#: client's Forwarded header on untouched).
READ = "x-forwarded-for,x-forwarded-proto,x-forwarded-host,x-forwarded-port,x-forwarded-prefix"

pytestmark = pytest.mark.parametrize("backend", ["trio", "asyncio"])


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Path]]:
    """(CA file, certificate file, key file) for www.example.test and 127.0.0.1."""
    folder = tmp_path_factory.mktemp("nginx-tls")
    authority = trustme.CA()
    cert = authority.issue_cert(HOST, "127.0.0.1")
    files = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    authority.cert_pem.write_to_path(str(files[0]))
    cert.cert_chain_pems[0].write_to_path(str(files[1]))
    cert.private_key_pem.write_to_path(str(files[2]))
    yield files


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A folder nginx's workers (user nobody) can reach: pytest's own tmp folders are 0700."""
    folder = Path(tempfile.mkdtemp(prefix="tricorn-nginx-"))
    os.chmod(folder, 0o755)
    yield folder
    for child in folder.iterdir():
        child.unlink()
    folder.rmdir()


def http_client(ca: Path | None = None) -> httpx.Client:
    """httpx from 127.0.0.2, verifying nginx's certificate against the test CA."""
    transport = httpx.HTTPTransport(
        local_address=CLIENT_ADDRESS,
        verify=ssl.create_default_context(cafile=str(ca)) if ca else True,
    )
    return httpx.Client(transport=transport, timeout=20, follow_redirects=False)


def get(
    url: str, port: int, ca: Path | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    """GET ``url`` (on 127.0.0.1) from 127.0.0.2, asking for www.example.test:``port``."""
    with http_client(ca) as client:
        return client.get(url, headers={"host": f"{HOST}:{port}", **(headers or {})})


def ws_receive(scheme: str, port: int, ca: Path | None = None) -> dict[str, Any]:
    """The scope summary the app sends on ``/ws``, the client connected from 127.0.0.2
    (the URL names www.example.test: the Host header and the TLS server name).

    websockets' asyncio client, not its sync one: over TLS the sync client reads in a thread
    of its own while the caller's thread writes the upgrade, two threads in one OpenSSL
    object, which loses the request now and then (tests/e2e/test_haproxy.py
    ``_websocket_scope`` and docs/decisions.md have the evidence)."""
    sock = socket.create_connection(
        ("127.0.0.1", port), timeout=10, source_address=(CLIENT_ADDRESS, 0)
    )
    context = ssl.create_default_context(cafile=str(ca)) if ca else None

    async def exchange() -> str | bytes:
        async with asyncio.timeout(20):  # a hang guard: the handshake and one message
            async with connect(
                f"{scheme}://{HOST}:{port}/ws", sock=sock, ssl=context, proxy=None
            ) as ws:
                return await ws.recv()

    try:
        message = asyncio.run(exchange())
    finally:
        sock.close()
    seen: dict[str, Any] = json.loads(message)
    return seen


def tricorn_args(backend: str, *extra: str) -> list[str]:
    return ["--backend", backend, "--forwarded-headers", READ, *extra]


def check_through_nginx(proxy: Nginx, ca: Path) -> None:
    """What the app sees through nginx, over its plain port and its TLS port."""
    port = proxy.https_port
    seen = get(f"https://127.0.0.1:{port}/whoami", port, ca).json()
    assert seen["client"] == [CLIENT_ADDRESS, 0]
    assert seen["scheme"] == "https"
    assert seen["host"] == f"{HOST}:{port}"
    assert seen["server"] == [HOST, port]
    assert seen["url_for"] == f"https://{HOST}:{port}/whoami"
    # A framework's redirect goes back to https and the host the client asked for.
    redirect = get(f"https://127.0.0.1:{port}/go", port, ca)
    assert redirect.status_code == 303
    assert redirect.headers["location"] == f"https://{HOST}:{port}/whoami"
    # nginx mounts the app under /api too (X-Forwarded-Prefix): links keep the prefix.
    redirect = get(f"https://127.0.0.1:{port}/api/go", port, ca)
    assert redirect.headers["location"] == f"https://{HOST}:{port}/api/whoami"
    seen = get(f"https://127.0.0.1:{port}/api/whoami", port, ca).json()
    assert (seen["root_path"], seen["url"]) == ("/api", f"https://{HOST}:{port}/api/whoami")
    # The plain port: http, and a forged X-Forwarded-For/-Prefix from the client is no use.
    plain = proxy.http_port
    seen = get(
        f"http://127.0.0.1:{plain}/whoami",
        plain,
        headers={"x-forwarded-for": "6.6.6.6", "x-forwarded-prefix": "/forged"},
    ).json()
    assert (seen["client"], seen["scheme"]) == ([CLIENT_ADDRESS, 0], "http")
    assert seen["url_for"] == f"http://{HOST}:{plain}/whoami"
    # WebSockets: wss through nginx's TLS, ws through its plain port.
    seen = ws_receive("wss", port, ca)
    assert (seen["scheme"], seen["client"]) == ("wss", [CLIENT_ADDRESS, 0])
    assert seen["url"] == f"wss://{HOST}:{port}/ws"
    seen = ws_receive("ws", plain)
    assert (seen["scheme"], seen["client"]) == ("ws", [CLIENT_ADDRESS, 0])


def test_behind_nginx_over_tcp(
    backend: str, certificate: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    ca, certfile, keyfile = certificate
    with run_tricorn(APP, *tricorn_args(backend), log_dir=tmp_path / "tricorn") as server:
        upstream = f"127.0.0.1:{server.port}"
        with nginx(tmp_path / "nginx", upstream, (certfile, keyfile)) as proxy:
            check_through_nginx(proxy, ca)
        assert server.stop() == 0
    # The access log names the client nginx forwarded.
    assert f'{CLIENT_ADDRESS}:0 - "GET /whoami HTTP/1.1" 200' in server.stdout


def test_behind_nginx_over_a_unix_socket(
    backend: str, certificate: tuple[Path, Path, Path], tmp_path: Path, socket_dir: Path
) -> None:
    """nginx's workers run as nobody:nogroup: tricorn gives its socket that group (mode 660,
    the default), as docs/deployment.md says; the unix peer is trusted by the default list."""
    ca, certfile, keyfile = certificate
    path = socket_dir / "tricorn.sock"
    args = tricorn_args(backend, "--bind", f"unix:{path}", "--unix-socket-group", "nogroup")
    with run_tricorn(APP, *args, log_dir=tmp_path / "tricorn") as server:
        with nginx(tmp_path / "nginx", f"unix:{path}", (certfile, keyfile)) as proxy:
            check_through_nginx(proxy, ca)
            assert "connect() to unix" not in proxy.error_log
        assert server.stop() == 0


def test_behind_nginx_not_trusted(
    backend: str, certificate: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """With nginx's address left out of forwarded_allow_ips the app sees nginx itself."""
    ca, certfile, keyfile = certificate
    args = tricorn_args(backend, "--forwarded-allow-ips", "10.0.0.0/8")
    with run_tricorn(APP, *args, log_dir=tmp_path / "tricorn") as server:
        with nginx(tmp_path / "nginx", f"127.0.0.1:{server.port}", (certfile, keyfile)) as proxy:
            port = proxy.https_port
            seen = get(f"https://127.0.0.1:{port}/whoami", port, ca).json()
            assert seen["client"][0] == "127.0.0.1"
            assert seen["scheme"] == "http"
            assert seen["url_for"] == f"http://{HOST}/whoami"  # nginx's Host $host: no port
        assert server.stop() == 0
