"""``TrioSocketStream.send`` on real loopback sockets (trio only): every byte arrives, a
send the kernel takes at once yields to the scheduler only every ``SEND_YIELD_EVERY`` sends,
a full socket makes it wait until the client reads, cancellation and a reset peer are the
errors anyio's stream gives."""

from __future__ import annotations

import socket

import anyio
import anyio.lowlevel
import pytest
import trio

from tests.helpers import connected_pair, recv_exactly
from tricorn.server.trio_stream import SEND_YIELD_EVERY, TrioSocketStream

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "trio"  # the asyncio backend has its own stream (test_asyncio_stream.py)


class _Steps(trio.abc.Instrument):
    """Counts the steps trio runs of one task: each new step follows a yield."""

    def __init__(self, task: trio.lowlevel.Task) -> None:
        self.task = task
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.steps += 1


async def test_sends_yield_only_every_few_when_the_kernel_takes_them() -> None:
    """Counted by trio's scheduler, not by another task's progress: which of two runnable
    tasks trio runs first after a yield is random, so a ticker task could not tell."""
    async with connected_pair(TrioSocketStream) as (stream, client):
        steps = _Steps(trio.lowlevel.current_task())
        trio.lowlevel.add_instrument(steps)
        try:
            for _ in range(SEND_YIELD_EVERY - 1):
                await stream.send(b"m")
            assert steps.steps == 0  # no send yielded
            await stream.send(b"m")  # the SEND_YIELD_EVERY-th does
            assert steps.steps == 1
        finally:
            trio.lowlevel.remove_instrument(steps)
        assert await recv_exactly(client, SEND_YIELD_EVERY) == b"m" * SEND_YIELD_EVERY


async def test_a_send_bigger_than_the_socket_buffers_waits_for_the_client() -> None:
    async with connected_pair(TrioSocketStream) as (stream, client):
        big = bytes(range(256)) * (16 * 1024)  # 4 MiB
        received = b""

        async def drain() -> None:
            nonlocal received
            received = await recv_exactly(client, len(big))

        async with anyio.create_task_group() as group:
            group.start_soon(drain)
            await stream.send(big)
        assert received == big


async def test_a_send_in_a_cancelled_scope_is_cancelled_and_sends_nothing() -> None:
    async with connected_pair(TrioSocketStream) as (stream, client):
        with anyio.CancelScope() as scope:
            scope.cancel()
            await stream.send(b"never")
        assert scope.cancelled_caught
        await stream.send(b"after")
        assert await recv_exactly(client, 5) == b"after"


@pytest.mark.parametrize("chunked", [False, True], ids=["send", "send_chunks"])
async def test_sending_to_a_reset_peer_is_a_broken_resource(chunked: bool) -> None:
    async with connected_pair(TrioSocketStream) as (stream, client):
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        client.close()  # RST
        with pytest.raises(anyio.BrokenResourceError), anyio.fail_after(10):
            for _ in range(1000):  # the first send may still be taken before the RST lands
                if chunked:
                    await stream.send_chunks([b"head", b"x" * 65536])
                else:
                    await stream.send(b"x" * 65536)


async def test_send_after_aclose_is_closed_resource() -> None:
    async with connected_pair(TrioSocketStream) as (stream, _client):
        await stream.aclose()
        with pytest.raises(anyio.ClosedResourceError):
            await stream.send(b"x")


async def test_after_a_short_read_the_next_receive_waits_then_reads_what_came() -> None:
    """A read that took less than it asked for makes the next ``receive`` wait for the
    socket first: bytes that came meanwhile are read at once, later ones when they come."""
    async with connected_pair(TrioSocketStream) as (stream, client):
        client.send(b"first")
        with anyio.fail_after(10):  # hang guard
            assert await stream.receive(100) == b"first"
        client.send(b"second")  # here before the next receive
        with anyio.fail_after(10):
            assert await stream.receive(100) == b"second"
        async with anyio.create_task_group() as group:
            received: list[bytes] = []

            async def receive() -> None:
                received.append(await stream.receive(100))

            group.start_soon(receive)
            await anyio.wait_all_tasks_blocked()
            client.send(b"third")  # after the receive began to wait
        assert received == [b"third"]


async def test_a_full_read_is_followed_by_a_read_of_the_rest() -> None:
    async with connected_pair(TrioSocketStream) as (stream, client):
        client.send(b"abcdefgh")
        await anyio.wait_all_tasks_blocked()
        with anyio.fail_after(10):
            data = await stream.receive(4)
            while len(data) < 8:
                data += await stream.receive(4)
        assert data == b"abcdefgh"


async def test_a_receive_waiting_after_a_short_read_is_cancelled_cleanly() -> None:
    async with connected_pair(TrioSocketStream) as (stream, client):
        client.send(b"x")
        with anyio.fail_after(10):
            assert await stream.receive(100) == b"x"
        with anyio.move_on_after(0.05) as scope:
            await stream.receive(100)
        assert scope.cancelled_caught
        client.send(b"y")
        with anyio.fail_after(10):
            assert await stream.receive(100) == b"y"  # the cancelled wait left no trace


async def test_send_chunks_sends_them_in_order_and_waits_when_the_kernel_is_full() -> None:
    async with connected_pair(TrioSocketStream) as (stream, client):
        await stream.send_chunks([b"head:", b"payload", b":tail"])
        assert await recv_exactly(client, 17) == b"head:payload:tail"
        big = bytes(range(256)) * (16 * 1024)  # 4 MiB: more than the kernel takes at once
        received = b""

        async def drain() -> None:
            nonlocal received
            received = await recv_exactly(client, len(big) + 2)  # "<" big ">"

        async with anyio.create_task_group() as group:
            group.start_soon(drain)
            await stream.send_chunks([b"<", big])
            await stream.send_chunks([b">"])
        assert received == b"<" + big + b">"
