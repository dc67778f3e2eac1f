"""``AsyncioSocketStream``: the asyncio transport stream, on real loopback sockets.

What it must keep from anyio's stream: bounded reading when nobody receives, ``send``
returning only once the kernel has the bytes, end of stream, closing, cancellation.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from anyio.abc import SocketAttribute, SocketListener, SocketStream

from tricorn.server.asyncio_stream import HIGH_WATER, AsyncioSocketStream

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the stream exists for asyncio only; trio keeps anyio's own


@asynccontextmanager
async def connected_pair() -> AsyncIterator[tuple[AsyncioSocketStream, socket.socket]]:
    """An adopted server-side stream and a blocking client socket, both on 127.0.0.1."""
    multi = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    listener = multi.listeners[0]
    assert isinstance(listener, SocketListener)
    port = listener.extra(SocketAttribute.local_port)
    client = socket.create_connection(("127.0.0.1", port))
    client.setblocking(False)
    accepted = await listener.accept()
    stream = AsyncioSocketStream.adopt(accepted)
    assert isinstance(stream, AsyncioSocketStream)
    try:
        yield stream, client
    finally:
        client.close()
        await stream.aclose()
        await listener.aclose()


def _send_all_possible(client: socket.socket, chunk: bytes) -> int:
    """Send until the kernel refuses more; return how many bytes went."""
    sent = 0
    while True:
        try:
            sent += client.send(chunk)
        except BlockingIOError:
            return sent


async def test_adopt_leaves_a_trio_or_unknown_stream_alone() -> None:
    class NotAsyncio(SocketStream):  # no asyncio transport behind it
        _raw_socket = socket.socket()

        async def receive(self, max_bytes: int = 65536) -> bytes:
            return b""

        async def send(self, item: bytes) -> None:
            pass

        async def send_eof(self) -> None:
            pass

        async def aclose(self) -> None:
            self._raw_socket.close()

    stream = NotAsyncio()
    assert AsyncioSocketStream.adopt(stream) is stream
    await stream.aclose()


async def test_bytes_both_ways_and_addresses() -> None:
    async with connected_pair() as (stream, client):
        client.send(b"hello")
        assert await stream.receive() == b"hello"
        await stream.send(b"world")
        await anyio.sleep(0.01)
        assert client.recv(100) == b"world"
        remote = stream.extra(SocketAttribute.remote_address)
        assert remote == client.getsockname()


async def test_receive_respects_max_bytes_and_keeps_the_rest() -> None:
    async with connected_pair() as (stream, client):
        client.send(b"abcdefghij")
        await anyio.sleep(0.05)
        assert await stream.receive(4) == b"abcd"
        assert await stream.receive(100) == b"efghij"


async def test_a_peer_that_floods_an_idle_reader_costs_bounded_memory() -> None:
    async with connected_pair() as (stream, client):
        chunk = b"x" * 65536
        sent = 0
        for _ in range(50):  # keep pushing for 0.5 s while the server does not receive
            sent += _send_all_possible(client, chunk)
            await anyio.sleep(0.01)
        buffered = len(stream._protocol.buffer)
        # The transport paused at HIGH_WATER; one more read of at most 256 KiB may land.
        assert stream._protocol.reading_paused
        assert HIGH_WATER <= buffered <= HIGH_WATER + 256 * 1024
        assert sent > buffered  # the rest waits in the kernel, not in our memory
        # Receiving drains the buffer and resumes reading: every byte arrives, in order.
        received = 0
        with anyio.fail_after(10):
            while received < sent:
                received += len(await stream.receive())
        assert received == sent


async def test_send_waits_until_the_kernel_has_the_bytes() -> None:
    async with connected_pair() as (stream, _client):
        big = b"y" * (16 * 1024 * 1024)  # far more than the socket buffers hold
        with anyio.move_on_after(0.5) as timeout:
            await stream.send(big)
        assert timeout.cancelled_caught, "send returned although the client read nothing"
        assert stream._protocol.writing_paused


async def test_send_returns_once_the_client_reads() -> None:
    async with connected_pair() as (stream, client):
        big = b"z" * (4 * 1024 * 1024)
        received = 0

        async def drain() -> None:
            nonlocal received
            while received < len(big):
                try:
                    received += len(client.recv(1 << 20))
                except BlockingIOError:
                    await anyio.sleep(0.001)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(drain)
                await stream.send(big)
        assert received == len(big)


async def test_end_of_stream_after_the_peer_closes() -> None:
    async with connected_pair() as (stream, client):
        client.send(b"last words")
        client.shutdown(socket.SHUT_WR)
        assert await stream.receive() == b"last words"
        with pytest.raises(anyio.EndOfStream):
            await stream.receive()
        await stream.send(b"still answering")  # half-closed: our side can still write
        await anyio.sleep(0.01)
        assert client.recv(100) == b"still answering"


async def test_send_to_a_reset_peer_is_a_broken_resource() -> None:
    async with connected_pair() as (stream, client):
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        client.close()  # RST
        with anyio.fail_after(5), pytest.raises(anyio.BrokenResourceError):
            while True:
                await stream.send(b"x" * 65536)
                await anyio.sleep(0.01)


async def test_a_waiting_receive_can_be_cancelled_and_the_stream_still_works() -> None:
    async with connected_pair() as (stream, client):
        with anyio.move_on_after(0.05) as timeout:
            await stream.receive()
        assert timeout.cancelled_caught
        client.send(b"after")
        with anyio.fail_after(5):
            assert await stream.receive() == b"after"


async def test_receive_after_aclose_is_closed_resource() -> None:
    async with connected_pair() as (stream, _client):
        await stream.aclose()
        with pytest.raises(anyio.ClosedResourceError):
            await stream.receive()
        with pytest.raises(anyio.ClosedResourceError):
            await stream.send(b"x")


async def test_a_receive_waiting_when_the_stream_closes_wakes_up() -> None:
    async with connected_pair() as (stream, _client):
        outcome: list[type[BaseException]] = []

        async def reader() -> None:
            try:
                await stream.receive()
            except (anyio.ClosedResourceError, anyio.EndOfStream) as error:
                outcome.append(type(error))

        with anyio.fail_after(5):
            async with anyio.create_task_group() as group:
                group.start_soon(reader)
                await anyio.sleep(0.02)
                await stream.aclose()
        assert outcome == [anyio.ClosedResourceError]


async def test_a_peer_gone_before_the_takeover_is_seen_at_once() -> None:
    """The client resets between accept and ``adopt``: anyio's protocol already got
    connection_lost, ours never will, so ``adopt`` must carry it over."""
    multi = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    listener = multi.listeners[0]
    assert isinstance(listener, SocketListener)
    port = listener.extra(SocketAttribute.local_port)
    client = socket.create_connection(("127.0.0.1", port))
    accepted = await listener.accept()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    client.close()  # RST
    await anyio.sleep(0.1)  # anyio's transport reads the reset and closes
    stream = AsyncioSocketStream.adopt(accepted)
    try:
        with anyio.fail_after(2), pytest.raises((anyio.BrokenResourceError, anyio.EndOfStream)):
            await stream.receive()
    finally:
        await stream.aclose()
        await multi.aclose()
