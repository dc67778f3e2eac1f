"""HTTP/2 on a real tricorn: TLS with ALPN, h2c by prior knowledge and by Upgrade, real clients."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import anyio
import anyio.to_thread
import httpx
import pytest

from h2spec import run_suite
from tests.helpers import Certificates, issue_certificates, serving
from tests.integration import apps
from tests.integration.h2_client import h2_connection

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return issue_certificates(tmp_path_factory.mktemp("tls"))


def tls_settings(certificates: Certificates) -> dict[str, str]:
    return certificates.settings()


async def test_h2spec_is_green_on_h2c() -> None:
    async with serving(apps.echo) as server:
        result = await anyio.to_thread.run_sync(lambda: run_suite(server.host, server.port))
    assert result.failed == 0, result.summary()
    assert result.passed >= 140


async def test_h2spec_is_green_on_tls(certificates: Certificates) -> None:
    async with serving(apps.echo, **tls_settings(certificates)) as server:
        result = await anyio.to_thread.run_sync(
            lambda: run_suite(server.host, server.port, tls=True)
        )
    assert result.failed == 0, result.summary()
    assert result.passed >= 140


async def test_httpx_gets_http2_over_tls_and_http11_by_alpn(certificates: Certificates) -> None:
    async with serving(apps.scope_dump, **tls_settings(certificates)) as server:
        url = f"https://127.0.0.1:{server.port}/path?q=1"
        context = certificates.client_context(["h2", "http/1.1"])
        async with httpx.AsyncClient(http2=True, verify=context) as client:
            response = await client.get(url)
            assert response.http_version == "HTTP/2"
            scope = response.json()
            assert scope["http_version"] == "2"
            assert scope["scheme"] == "https"
            assert scope["path"] == "/path"
            assert ["host", f"127.0.0.1:{server.port}"] in scope["headers"]
            assert scope["extensions"]["tls"]["tls_version"] in (0x0303, 0x0304)
            assert "http.response.trailers" in scope["extensions"]
            posted = await client.post(url, content=b"x" * 200_000)
            assert posted.status_code == 200
        async with httpx.AsyncClient(http2=False, verify=context) as client:
            response = await client.get(url)
            assert response.http_version == "HTTP/1.1"
            assert response.json()["scheme"] == "https"


async def test_httpx_prior_knowledge_on_the_plain_port_next_to_http11() -> None:
    async with serving(apps.echo) as server:
        async with httpx.AsyncClient(http1=False, http2=True) as client:
            responses = [await client.post(server.url, content=b"%d" % i) for i in range(20)]
        assert {r.http_version for r in responses} == {"HTTP/2"}
        assert [r.content for r in responses] == [b"%d" % i for i in range(20)]
        async with httpx.AsyncClient() as client:
            assert (await client.post(server.url, content=b"h1")).content == b"h1"


def _curl(*args: str) -> subprocess.CompletedProcess[str]:
    curl = shutil.which("curl")
    assert curl, "curl is required (scripts/test.sh installs it)"
    return subprocess.run(
        [curl, "-sS", "--max-time", "10", *args], capture_output=True, text=True, timeout=20
    )


async def test_curl_http2_prior_knowledge_and_h2c_upgrade() -> None:
    async with serving(apps.scope_dump) as server:
        result = await anyio.to_thread.run_sync(
            lambda: _curl(
                "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version}", server.url
            )
        )
        assert result.stdout == "2", result.stderr
        upgrade = await anyio.to_thread.run_sync(
            lambda: _curl("--http2", "-w", "\n%{http_version}", server.url + "/upgraded")
        )
        body, _, version = upgrade.stdout.rpartition("\n")
        assert version == "2", upgrade.stderr
        assert '"path": "/upgraded"' in body
        assert '"http_version": "2"' in body


async def test_curl_over_tls_uses_http2(certificates: Certificates) -> None:
    async with serving(apps.hello, **tls_settings(certificates)) as server:
        url = f"https://127.0.0.1:{server.port}/"
        result = await anyio.to_thread.run_sync(
            lambda: _curl(
                "--http2", "--cacert", str(certificates.ca_file), "-w", "\n%{http_version}", url
            )
        )
    assert result.stdout == "Hello, world!\n2", result.stderr


async def test_h2load_smoke_run() -> None:
    h2load = shutil.which("h2load")
    assert h2load, "h2load is required (Debian package nghttp2-client; scripts/test.sh installs it)"
    async with serving(apps.hello) as server:
        result = await anyio.to_thread.run_sync(
            lambda: subprocess.run(
                [h2load, "-n", "2000", "-c", "4", "-m", "16", server.url],
                capture_output=True,
                text=True,
                timeout=60,
            )
        )
    assert "2000 succeeded" in result.stdout, result.stdout + result.stderr


async def test_bad_certificate_paths_are_one_line_errors(tmp_path: Path) -> None:
    from tricorn import Config, serve
    from tricorn.errors import ConfigError

    config = Config(bind=["127.0.0.1:0"], certfile=str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match=r"certfile = .*missing\.pem.*no such file"):
        await serve(apps.hello, config)


async def test_an_error_raised_after_a_complete_response_resets_nothing() -> None:
    """Starlette's shape (its own whole 500, then the error re-raised for the log): the
    stream ended with END_STREAM and stays so, no RST_STREAM after it."""
    async with (
        serving(apps.raises_after_responding) as server,
        h2_connection(server.host, server.port) as client,
    ):
        first = await client.response(await client.request(path="/1"))
        second = await client.response(await client.request(path="/2"))
    for response in (first, second):
        assert response.status == 500
        assert response.body == b"Internal Server Error"
    assert [frame for frame in client.frames if frame.kind == "RST_STREAM"] == []
