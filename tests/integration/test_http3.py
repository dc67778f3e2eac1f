"""HTTP/3 on a real tricorn (quic_bind), both backends, with aioquic's HTTP/3 client.

The server runs in the test's event loop (trio or asyncio); the client, aioquic's asyncio
API, in a thread with its own loop (tests/integration/h3_client.py). Also: Alt-Svc on the
TLS binds' HTTP/1.1 and HTTP/2 responses, and the start-up error lines of quic_bind.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import ssl
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import httpx
import pytest

from tests.helpers import Certificates, free_port, issue_certificates, serving
from tests.integration import apps
from tests.integration.h3_client import H3Client, H3Response, run_client
from tricorn.server.asgi_types import Receive, Scope, Send

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
GUARD = 20.0


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return issue_certificates(tmp_path_factory.mktemp("h3tls"))


def h3_settings(certificates: Certificates, port: int, **settings: Any) -> dict[str, Any]:
    """TCP and UDP on the same port number (quic_bind may share it with bind)."""
    return {
        "bind": [f"127.0.0.1:{port}"],
        "quic_bind": [f"127.0.0.1:{port}"],
        "certfile": str(certificates.certfile),
        "keyfile": str(certificates.keyfile),
        **settings,
    }


async def h3(certificates: Certificates, port: int, script: Any) -> Any:
    return await anyio.to_thread.run_sync(
        partial(run_client, port, str(certificates.ca_file), script)
    )


async def test_get_maps_onto_the_http_scope(certificates: Certificates) -> None:
    port = free_port()
    async with serving(apps.scope_dump, **h3_settings(certificates, port)):

        async def script(client: H3Client) -> H3Response:
            return await client.request("GET", "/path?q=1", headers=[(b"x-test", b"yes")])

        response = await h3(certificates, port, script)
    assert response.status == 200
    scope = json.loads(response.body)
    assert scope["http_version"] == "3"
    assert scope["scheme"] == "https"
    assert scope["method"] == "GET"
    assert scope["path"] == "/path"
    assert scope["query_string"] == "q=1"
    assert ["host", "localhost"] in scope["headers"]
    assert ["x-test", "yes"] in scope["headers"]
    assert scope["extensions"]["tls"]["tls_version"] == 0x0304
    assert scope["client"][0] in ("127.0.0.1", "::ffff:127.0.0.1")
    assert response.header(b"alt-svc") is None  # said on h1/h2 only


async def test_retry_validates_the_address_then_serves(certificates: Certificates) -> None:
    """quic_retry = "always": the first Initial is answered with a Retry; aioquic's client
    comes back with the token, and the connection is served as usual."""
    port = free_port()
    async with serving(apps.hello, **h3_settings(certificates, port, quic_retry="always")):

        async def script(client: H3Client) -> tuple[H3Response, bool]:
            response = await client.request("GET", "/")
            return response, client._quic._retry_source_connection_id is not None

        response, retried = await h3(certificates, port, script)
    assert retried  # the client went through a Retry
    assert (response.status, response.body) == (200, b"Hello, world!")


async def test_ipv6_quic_bind(certificates: Certificates) -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
        probe.bind(("::1", 0))
        port = probe.getsockname()[1]
    settings = h3_settings(certificates, port)
    settings["bind"] = [f"[::1]:{port}"]
    settings["quic_bind"] = [f"[::1]:{port}"]
    async with serving(apps.scope_dump, **settings):

        async def script(client: H3Client) -> H3Response:
            return await client.request("GET", "/six")

        response = await anyio.to_thread.run_sync(
            partial(run_client, port, str(certificates.ca_file), script, "::1")
        )
    scope = json.loads(response.body)
    assert scope["http_version"] == "3"
    assert scope["client"][0] == "::1"
    assert scope["server"] == ["::1", port]


@pytest.mark.parametrize("windows", ["default", "small"])
async def test_post_of_one_mib_is_echoed_intact(certificates: Certificates, windows: str) -> None:
    """With small windows the body needs many rounds of QUIC credit both ways."""
    port = free_port()
    small = {"h3_stream_window_size": 16384, "h3_connection_window_size": 65536}
    settings = h3_settings(certificates, port, **(small if windows == "small" else {}))
    body = os.urandom(1 << 20)
    async with serving(apps.echo, **settings):

        async def script(client: H3Client) -> H3Response:
            return await client.request("POST", "/echo", body)

        response = await h3(certificates, port, script)
    assert response.status == 200
    assert len(response.body) == len(body)
    assert hashlib.sha256(response.body).digest() == hashlib.sha256(body).digest()


async def streams_ten_pieces(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for index in range(10):
        await send({"type": "http.response.body", "body": b"piece %d;" % index, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def test_a_streaming_response_arrives_whole(certificates: Certificates) -> None:
    port = free_port()
    async with serving(streams_ten_pieces, **h3_settings(certificates, port)):

        async def script(client: H3Client) -> H3Response:
            return await client.request("GET", "/stream")

        response = await h3(certificates, port, script)
    assert response.status == 200
    assert response.body == b"".join(b"piece %d;" % index for index in range(10))


async def test_concurrent_requests_on_one_connection(certificates: Certificates) -> None:
    port = free_port()
    async with serving(apps.echo, **h3_settings(certificates, port)):

        async def script(client: H3Client) -> list[H3Response]:
            import asyncio

            ids = [client.start("POST", f"/{n}", b"body %d" % n) for n in range(20)]
            return list(await asyncio.gather(*(client.response(i) for i in ids)))

        responses = await h3(certificates, port, script)
    assert [r.status for r in responses] == [200] * 20
    assert [r.body for r in responses] == [b"body %d" % n for n in range(20)]


async def test_a_stream_flood_is_held_to_the_concurrency_limit(
    certificates: Certificates,
) -> None:
    """150 requests at once on one connection with h3_max_concurrent_streams = 10: the
    app never runs more than 10 at a time (QUIC MAX_STREAMS), and every one is served."""
    live = 0
    peak = 0

    async def counting(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal live, peak
        if scope["type"] != "http":
            return
        live += 1
        peak = max(peak, live)
        try:
            await anyio.lowlevel.checkpoint()  # let the others in, if the limit allowed them
            await apps.respond(send, 200, b"ok")
        finally:
            live -= 1

    port = free_port()
    async with serving(counting, **h3_settings(certificates, port, h3_max_concurrent_streams=10)):

        async def script(client: H3Client) -> list[H3Response]:
            import asyncio

            ids = [client.start("GET", f"/{n}") for n in range(150)]
            return list(await asyncio.gather(*(client.response(i) for i in ids)))

        responses = await h3(certificates, port, script)
    assert [r.body for r in responses] == [b"ok"] * 150
    assert 1 <= peak <= 10


async def test_trailers_are_sent(certificates: Certificates) -> None:
    async def with_trailers(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "trailers": True})
        await send({"type": "http.response.body", "body": b"data"})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"42")]})

    port = free_port()
    async with serving(with_trailers, **h3_settings(certificates, port)):

        async def script(client: H3Client) -> H3Response:
            return await client.request("GET", "/")

        response = await h3(certificates, port, script)
    assert response.body == b"data"
    assert response.trailers == [(b"x-checksum", b"42")]


async def test_early_hints_come_before_the_response(certificates: Certificates) -> None:
    async def hints(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.early_hint", "links": [b"</style.css>; rel=preload"]})
        await apps.respond(send, 200, b"page")

    port = free_port()
    async with serving(hints, **h3_settings(certificates, port)):

        async def script(client: H3Client) -> H3Response:
            return await client.request("GET", "/")

        response = await h3(certificates, port, script)
    assert response.informational == [(103, [(b"link", b"</style.css>; rel=preload")])]
    assert (response.status, response.body) == (200, b"page")


async def test_a_client_reset_gives_the_app_http_disconnect(certificates: Certificates) -> None:
    received: list[str] = []
    disconnected = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/after":
            # Answered only once the reset stream's app heard its disconnect: the
            # connection was still open, so the disconnect came from the reset.
            with anyio.fail_after(GUARD):
                await disconnected.wait()
            await apps.respond(send, 200, b"after")
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"started", "more_body": True})
        while True:
            message = await receive()
            received.append(message["type"])
            if message["type"] == "http.disconnect":
                disconnected.set()
                return

    port = free_port()
    async with serving(app, **h3_settings(certificates, port)):

        async def script(client: H3Client) -> H3Response:
            stream_id = client.start("POST", "/upload", b"part", end=False)
            await client.head(stream_id)
            client.reset(stream_id)
            return await client.request("GET", "/after")

        after = await h3(certificates, port, script)
    assert after.body == b"after"
    assert received[-1] == "http.disconnect"
    assert "http.request" in received  # the first part of the body reached the app


async def test_a_stalled_request_body_is_reset_after_body_read_timeout(
    certificates: Certificates,
) -> None:
    port = free_port()
    settings = h3_settings(certificates, port, body_read_timeout=0.5, body_min_rate=0)
    async with serving(apps.echo, **settings):

        async def script(client: H3Client) -> tuple[H3Response, H3Response]:
            stalled = client.start("POST", "/upload", b"part", end=False)
            return await client.response(stalled), await client.request("GET", "/", b"")

        stalled, after = await h3(certificates, port, script)
    assert stalled.reset == 0x10C  # H3_REQUEST_CANCELLED
    assert after.status == 200  # the connection goes on


async def test_connection_specific_header_resets_only_that_stream(
    certificates: Certificates,
) -> None:
    port = free_port()
    async with serving(apps.hello, **h3_settings(certificates, port)):

        async def script(client: H3Client) -> tuple[H3Response, H3Response]:
            # aioquic's own checks close the connection for its list; our rules (RFC 9114
            # 4.2, as HTTP/2's) refuse "host" differing from ":authority" per stream.
            bad = await client.request("GET", "/", headers=[(b"host", b"elsewhere")])
            good = await client.request("GET", "/")
            return bad, good

        bad, good = await h3(certificates, port, script)
    assert bad.reset == 0x10E  # H3_MESSAGE_ERROR
    assert good.status == 200
    assert good.body == b"Hello, world!"


async def test_access_log_line_says_http3(
    certificates: Certificates, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    caplog.set_level("INFO", logger="tricorn.access")
    async with serving(apps.hello, access_log=True, **h3_settings(certificates, port)):

        async def script(client: H3Client) -> H3Response:
            return await client.request("GET", "/logged")

        await h3(certificates, port, script)
    lines = [r.getMessage() for r in caplog.records if r.name == "tricorn.access"]
    assert any('"GET /logged HTTP/3" 200' in line for line in lines), lines


async def test_graceful_shutdown_lets_a_stream_finish(certificates: Certificates) -> None:
    """The server shuts down while a response is in flight: the app's response completes
    (GOAWAY, then the close once the stream is done)."""
    started = anyio.Event()
    release = anyio.Event()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started.set()
        with anyio.fail_after(GUARD):
            await release.wait()
        await apps.respond(send, 200, b"finished")

    port = free_port()
    async with serving(slow, **h3_settings(certificates, port)) as server:

        async def script(client: H3Client) -> H3Response:
            return await client.request("GET", "/slow")

        async with anyio.create_task_group() as group:
            outcome: list[H3Response] = []

            async def client() -> None:
                outcome.append(await h3(certificates, port, script))

            group.start_soon(client)
            with anyio.fail_after(GUARD):
                await started.wait()
            server.shutdown.set()
            release.set()
    assert outcome[0].status == 200
    assert outcome[0].body == b"finished"


def _initial_flood(port: int, count: int) -> dict[str, int]:
    """``count`` client Initials to 127.0.0.1:``port``, each from its own UDP socket (a
    source port of its own, as spoofed sources would look), none followed up; what kind
    of packet each socket got back first."""
    from aioquic.buffer import Buffer  # type: ignore[attr-defined]
    from aioquic.h3.connection import H3_ALPN
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection
    from aioquic.quic.packet import QuicPacketType, pull_quic_header

    sockets = []
    kinds = {"retry": 0, "handshake": 0, "none": 0}
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
            quic = QuicConnection(
                configuration=QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
            )
            quic.connect(("127.0.0.1", port), now=0.0)
            for data, _ in quic.datagrams_to_send(now=0.0):
                sock.sendto(data, ("127.0.0.1", port))
        for sock in sockets:
            sock.settimeout(5.0)  # hang guard
            try:
                data = sock.recv(65535)
            except TimeoutError:
                kinds["none"] += 1
                continue
            header = pull_quic_header(Buffer(data=data), host_cid_length=8)
            kinds["retry" if header.packet_type == QuicPacketType.RETRY else "handshake"] += 1
    finally:
        for sock in sockets:
            sock.close()
    return kinds


async def test_an_initial_flood_past_the_handshake_limit_meets_retry(
    certificates: Certificates,
) -> None:
    """60 Initials from 60 source ports that never complete: the first 10 (the
    quic_max_handshakes) get a handshake, the rest a Retry (no state kept for them); a
    real client is still served, through a Retry, while the 10 are pending."""
    port = free_port()
    settings = h3_settings(certificates, port, quic_max_handshakes=10)
    async with serving(apps.hello, **settings):
        kinds = await anyio.to_thread.run_sync(_initial_flood, port, 60)

        async def script(client: H3Client) -> H3Response:
            return await client.request("GET", "/")

        response = await h3(certificates, port, script)
    assert kinds == {"retry": 50, "handshake": 10, "none": 0}
    assert (response.status, response.body) == (200, b"Hello, world!")


# --- a browser -----------------------------------------------------------------------


def _spki_hash(certfile: Path) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    cert = x509.load_pem_x509_certificate(certfile.read_bytes())
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


async def page(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    body = b"<!doctype html><title>h3</title><p id=out>version %s</p>" % (
        scope["http_version"].encode()
    )
    await apps.respond(send, 200, body, [(b"content-type", b"text/html")])


async def test_chromium_reads_a_page_over_http3(certificates: Certificates, tmp_path: Path) -> None:
    """Headless Chromium forced onto QUIC for the origin reads a page: its navigation
    entry says h3, and the app saw http_version 3."""
    from tests.e2e import chromium

    port = free_port()
    flags = chromium.quic_flags(port, _spki_hash(certificates.certfile))

    def browse() -> tuple[Any, Any]:
        with chromium.chromium(tmp_path / "profile", flags) as tab:
            tab.call("Page.navigate", url=f"https://127.0.0.1:{port}/")
            text = tab.wait_for("(document.getElementById('out') || {}).textContent")
            protocol = tab.evaluate("performance.getEntries()[0].nextHopProtocol")
        return text, protocol

    async with serving(page, **h3_settings(certificates, port)):
        text, protocol = await anyio.to_thread.run_sync(browse)
    assert protocol == "h3"
    assert text == "version 3"


# --- Alt-Svc --------------------------------------------------------------------------


def _client_context(certificates: Certificates) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificates.ca_file))


@pytest.mark.parametrize("http2", [False, True], ids=["h1", "h2"])
async def test_alt_svc_on_tls_h1_and_h2(certificates: Certificates, http2: bool) -> None:
    port = free_port()
    settings = h3_settings(certificates, port, alt_svc_max_age=3600)
    async with serving(apps.hello, **settings):
        verify = _client_context(certificates)
        async with httpx.AsyncClient(http2=http2, verify=verify) as client:
            response = await client.get(f"https://127.0.0.1:{port}/")
    assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    assert response.headers["alt-svc"] == f'h3=":{port}"; ma=3600'


async def test_no_alt_svc_without_quic_bind(certificates: Certificates) -> None:
    tls = {"certfile": str(certificates.certfile), "keyfile": str(certificates.keyfile)}
    async with serving(apps.hello, **tls) as server:
        verify = _client_context(certificates)
        async with httpx.AsyncClient(http2=True, verify=verify) as client:
            response = await client.get(f"https://127.0.0.1:{server.port}/")
    assert response.status_code == 200
    assert "alt-svc" not in response.headers


# --- start-up errors ------------------------------------------------------------------


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tricorn", "tests.integration.apps:hello", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def _errors(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("ERROR")]


def test_quic_bind_without_aioquic_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "aioquic").mkdir()
    (tmp_path / "aioquic" / "__init__.py").write_text('raise ImportError("hidden by the test")\n')
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = _run("--bind", "127.0.0.1:0", "--quic-bind", "127.0.0.1:0", env=env)
    assert result.returncode == 2
    assert _errors(result) == [
        'ERROR:    config: quic_bind = ["127.0.0.1:0"]: aioquic is not installed '
        "(pip install 'tricorn[h3]')"
    ]


def test_quic_bind_without_a_certificate_is_one_line() -> None:
    result = _run("--bind", "127.0.0.1:0", "--quic-bind", "127.0.0.1:0")
    assert result.returncode == 2
    assert _errors(result) == [
        'ERROR:    config: quic_bind = ["127.0.0.1:0"]: needs certfile (QUIC is always TLS)'
    ]


def test_a_bad_quic_bind_is_one_line() -> None:
    result = _run("--quic-bind", "unix:/tmp/x.sock")
    assert result.returncode == 2
    assert _errors(result) == [
        'ERROR:    config: quic_bind = "unix:/tmp/x.sock" (from the command line): expected '
        "'HOST:PORT' or '[V6]:PORT' (UDP)"
    ]


def test_quic_bind_port_0_with_workers_is_one_line(certificates: Certificates) -> None:
    """Each worker binds quic_bind itself (tests/integration/test_http3_workers.py): port 0
    would give each a port of its own."""
    result = _run(
        "--workers",
        "2",
        "--quic-bind",
        "127.0.0.1:0",
        "--certfile",
        str(certificates.certfile),
        "--keyfile",
        str(certificates.keyfile),
    )
    assert result.returncode == 2
    assert _errors(result) == [
        'ERROR:    config: quic_bind = "127.0.0.1:0": port 0 with workers > 1 or reload: '
        "every worker binds the port itself; name a port"
    ]
