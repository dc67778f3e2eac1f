"""HTTP/3 with workers > 1: every worker binds quic_bind's UDP port itself (SO_REUSEPORT)
and the kernel keeps each client socket's datagrams on one worker (a hash of the
addresses), so each QUIC connection is served whole by the worker that accepted it. A real
supervisor and workers; aioquic's client, each connection from its own UDP socket. And
connection migration on one worker, through a relay that changes the client's port."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.from_thread
import anyio.to_thread
import pytest
import trustme

from tests.helpers import Certificates, free_port, serving
from tests.integration.apps import hello
from tests.integration.h3_client import H3Client, run_client
from tests.integration.test_http3 import h3_settings
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


class Rebinder:
    """A UDP relay between the client and the server that can change the source port the
    server sees (a NAT rebinding: to the server, the client migrated)."""

    def __init__(self, server_port: int) -> None:
        self.server = ("127.0.0.1", server_port)
        self.front: anyio.abc.UDPSocket | None = None
        self.back: anyio.abc.UDPSocket | None = None
        self.client: tuple[str, int] | None = None
        self.ports: list[int] = []  # the source ports the server has seen
        #: Datagrams from the server, by the source port they were sent to.
        self.answers: dict[int, int] = {}

    async def run(self, group: anyio.abc.TaskGroup, *, task_status: Any) -> None:
        self.front = await anyio.create_udp_socket(local_host="127.0.0.1")
        await self.rebind(group)
        task_status.started(self.front.extra(anyio.abc.SocketAttribute.local_port))
        async for data, client in self.front:
            self.client = (client[0], client[1])
            if self.back is not None:
                await self.back.sendto(data, *self.server)

    async def rebind(self, group: anyio.abc.TaskGroup) -> None:
        old, self.back = self.back, await anyio.create_udp_socket(local_host="127.0.0.1")
        self.ports.append(self.back.extra(anyio.abc.SocketAttribute.local_port))
        group.start_soon(self._answers, self.back)
        if old is not None:
            await old.aclose()

    async def _answers(self, back: anyio.abc.UDPSocket) -> None:
        port = back.extra(anyio.abc.SocketAttribute.local_port)
        try:
            async for data, _ in back:
                self.answers[port] = self.answers.get(port, 0) + 1
                if self.front is not None and self.client is not None:
                    await self.front.sendto(data, *self.client)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            return


@pytest.mark.anyio
async def test_a_client_that_migrates_keeps_its_connection_on_one_worker(
    certificates: Certificates,
) -> None:
    """One worker: aioquic validates the new path and the endpoint routes by connection id,
    so the connection carries on from the new port. (With workers > 1 the new port hashes
    anew: docs/architecture.md says what then happens.)"""
    port = free_port()
    async with (
        serving(hello, **h3_settings(certificates, port)),
        anyio.create_task_group() as group,
    ):
        relay = Rebinder(port)
        relay_port = await group.start(relay.run, group)

        async def script(client: H3Client) -> list[int]:
            statuses = [(await client.request("GET", "/")).status]
            anyio.from_thread.run(relay.rebind, group)
            client._quic.change_connection_id()  # RFC 9000 9.5: a new id on a new path
            statuses += [(await client.request("GET", "/")).status for _ in range(3)]
            return statuses

        call = partial(run_client, relay_port, str(certificates.ca_file), script)
        statuses = await anyio.to_thread.run_sync(call)
        group.cancel_scope.cancel()
    assert statuses == [200, 200, 200, 200]
    old, new = relay.ports
    assert relay.answers[old] and relay.answers[new]  # the server answered on both paths
