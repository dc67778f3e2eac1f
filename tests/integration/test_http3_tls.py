"""Client certificates on HTTP/3, both backends: verify_mode and ca_certs (the TCP binds'
settings) apply to QUIC's TLS; the client's certificate reaches the ASGI ``tls`` extension
as it does on HTTP/2; a client without a required certificate, or with one the CA did not
sign, is refused at the handshake. Certificates made by trustme; aioquic's client."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest
import trustme
from aioquic.tls import AlertDescription

from tests.helpers import free_port, serving
from tests.integration.h3_client import H3Client, H3Response, refused_handshake, run_client
from tricorn.server.asgi_types import Receive, Scope, Send

pytestmark = pytest.mark.anyio
CRYPTO_ERROR = 0x100  # RFC 9001 4.8: CRYPTO_ERROR + the TLS alert


@dataclass
class Files:
    ca_file: Path
    certfile: Path
    keyfile: Path
    client: tuple[str, str]
    stranger: tuple[str, str]  # a client certificate of another CA
    chained: tuple[str, str]  # one from an intermediate CA, sent with it

    def settings(self, port: int, **more: Any) -> dict[str, Any]:
        """TCP (for HTTP/2) and UDP on one port number, and the CA for client certificates."""
        return {
            "bind": [f"127.0.0.1:{port}"],
            "quic_bind": [f"127.0.0.1:{port}"],
            "certfile": str(self.certfile),
            "keyfile": str(self.keyfile),
            "ca_certs": str(self.ca_file),
            **more,
        }


def _write(cert: trustme.LeafCert, folder: Path, name: str) -> tuple[str, str]:
    (folder / f"{name}.pem").write_bytes(b"".join(pem.bytes() for pem in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(folder / f"{name}.key"))
    return str(folder / f"{name}.pem"), str(folder / f"{name}.key")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Files]:
    folder = tmp_path_factory.mktemp("h3mtls")
    authority = trustme.CA()
    authority.cert_pem.write_to_path(str(folder / "ca.pem"))
    certfile, keyfile = _write(authority.issue_cert("127.0.0.1", "localhost"), folder, "server")
    client = _write(
        authority.issue_cert("client.example.test", common_name="test-client"), folder, "client"
    )
    stranger = _write(trustme.CA().issue_cert("client.example.test"), folder, "stranger")
    intermediate = authority.create_child_ca()
    chained = _write(
        intermediate.issue_cert("client.example.test", common_name="chained"), folder, "chained"
    )
    yield Files(folder / "ca.pem", Path(certfile), Path(keyfile), client, stranger, chained)


Seen = list[dict[str, Any]]


def tls_recorder(seen: Seen) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        seen.append(scope["extensions"]["tls"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


@asynccontextmanager
async def recording(files: Files, **settings: Any) -> AsyncIterator[tuple[Seen, int]]:
    """A server on a free port whose app notes each request's ``tls`` extension."""
    seen: Seen = []
    port = free_port()
    async with serving(tls_recorder(seen), **files.settings(port, **settings)):
        yield seen, port


async def get(files: Files, port: int, client_cert: tuple[str, str] | None) -> H3Response:
    async def script(client: H3Client) -> H3Response:
        return await client.request("GET", "/")

    call = partial(run_client, port, str(files.ca_file), script, client_cert=client_cert)
    return await anyio.to_thread.run_sync(call)


async def refused(files: Files, port: int, client_cert: tuple[str, str] | None) -> int:
    call = partial(refused_handshake, port, str(files.ca_file), client_cert)
    terminated, response = await anyio.to_thread.run_sync(call)
    assert response is None
    return terminated.error_code


async def test_a_required_client_certificate_reaches_the_tls_extension_as_on_http2(
    files: Files,
) -> None:
    async with recording(files, verify_mode="required") as (seen, port):
        response = await get(files, port, files.client)
        context = ssl.create_default_context(cafile=str(files.ca_file))
        context.load_cert_chain(*files.client)
        async with httpx.AsyncClient(verify=context, http2=True) as client:
            over_h2 = await client.get(f"https://localhost:{port}/")
    assert (response.status, over_h2.status_code, over_h2.http_version) == (200, 200, "HTTP/2")
    h3_tls, h2_tls = seen
    assert h3_tls["client_cert_name"] == h2_tls["client_cert_name"]
    assert h3_tls["client_cert_name"].startswith("CN=test-client,")
    assert h3_tls["client_cert_chain"] == h2_tls["client_cert_chain"]
    assert h3_tls["client_cert_chain"][0].startswith("-----BEGIN CERTIFICATE-----")
    assert h3_tls["client_cert_error"] is None
    assert h3_tls["tls_version"] == 0x0304
    assert h3_tls["cipher_suite"] in (0x1301, 0x1302, 0x1303)


async def test_a_client_without_a_required_certificate_is_refused_at_the_handshake(
    files: Files,
) -> None:
    async with recording(files, verify_mode="required") as (seen, port):
        code = await refused(files, port, None)
        stranger = await refused(files, port, files.stranger)
        response = await get(files, port, files.client)  # the server carries on
    assert code == CRYPTO_ERROR + AlertDescription.certificate_required
    assert stranger == CRYPTO_ERROR + AlertDescription.bad_certificate
    assert response.status == 200
    assert len(seen) == 1  # no app saw the refused ones


async def test_an_optional_client_certificate_may_be_left_out(files: Files) -> None:
    async with recording(files, verify_mode="optional") as (seen, port):
        without = await get(files, port, None)
        with_cert = await get(files, port, files.client)
        stranger = await refused(files, port, files.stranger)  # one sent is verified
    assert (without.status, with_cert.status) == (200, 200)
    assert stranger == CRYPTO_ERROR + AlertDescription.bad_certificate
    assert seen[0]["client_cert_chain"] == [] and seen[0]["client_cert_name"] is None
    assert seen[1]["client_cert_name"].startswith("CN=test-client,")


async def test_no_certificate_is_asked_for_by_default(files: Files) -> None:
    async with recording(files) as (seen, port):  # verify_mode "none"
        response = await get(files, port, files.client)
    assert response.status == 200
    assert seen[0]["client_cert_chain"] == [] and seen[0]["client_cert_name"] is None


async def test_a_client_chain_through_an_intermediate_ca_is_verified(files: Files) -> None:
    async with recording(files, verify_mode="required") as (seen, port):
        response = await get(files, port, files.chained)
    assert response.status == 200
    [tls] = seen
    assert tls["client_cert_name"].startswith("CN=chained,")
    assert len(tls["client_cert_chain"]) == 2  # the client's certificate, then the one it sent
