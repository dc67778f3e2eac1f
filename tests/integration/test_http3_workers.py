"""HTTP/3 with workers > 1: every worker binds quic_bind's UDP port itself (SO_REUSEPORT)
and the kernel keeps each client socket's datagrams on one worker (a hash of the
addresses), so each QUIC connection is served whole by the worker that accepted it. A real
supervisor and workers; aioquic's client, each connection from its own UDP socket."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.integration.h3_client import H3Client, run_client
from tests.integration.test_http3 import Certificates
from tests.integration.test_workers import supervisor

#: Client connections, each from its own UDP socket (its own source port): enough that all
#: landing on one of two workers (probability 2 ** -(CONNECTIONS - 1)) does not happen.
CONNECTIONS = 16


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Certificates]:
    folder = tmp_path_factory.mktemp("h3workers")
    authority = trustme.CA()
    authority.cert_pem.write_to_path(str(folder / "ca.pem"))
    cert = authority.issue_cert("127.0.0.1", "localhost")
    cert.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    yield Certificates(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_two_workers_share_the_udp_port_and_serve_whole_connections(
    tmp_path: Path, certificates: Certificates, backend: str
) -> None:
    port = free_udp_port()
    args = (
        "--quic-bind",
        f"127.0.0.1:{port}",
        "--certfile",
        str(certificates.certfile),
        "--keyfile",
        str(certificates.keyfile),
        "--backend",
        backend,
    )

    async def script(client: H3Client) -> list[tuple[int, bytes]]:
        # several requests on the connection: every datagram of it must reach its worker
        responses = [await client.request("GET", "/") for _ in range(3)]
        return [(response.status, response.body) for response in responses]

    with supervisor(tmp_path, *args, workers=2) as server:
        workers = server.workers()
        served = [run_client(port, str(certificates.ca_file), script) for _ in range(CONNECTIONS)]
        log = server.log()
    assert log.count(f"tricorn serving HTTP/3 on udp://127.0.0.1:{port}") == 2
    pids: set[int] = set()
    for responses in served:
        assert [status for status, _ in responses] == [200, 200, 200]
        bodies = {body for _, body in responses}
        assert len(bodies) == 1  # one connection, one worker
        version, pid = bodies.pop().split()
        assert version == b"v1"
        pids.add(int(pid))
    assert pids == workers  # both workers took connections
