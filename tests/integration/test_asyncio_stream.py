"""``AsyncioSocketStream``: the asyncio transport stream, on real loopback sockets.

What it must keep from anyio's stream: bounded reading when nobody receives, ``send``
returning only once the kernel has the bytes, end of stream, closing, cancellation.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import anyio
import pytest
from anyio.abc import SocketAttribute, SocketListener, SocketStream

from tests.helpers import connected_pair, recv_exactly
from tricorn.server.asyncio_stream import HIGH_WATER, AsyncioSocketStream

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the stream exists for asyncio only; trio keeps anyio's own


async def _wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds; fail after 5 s, naming ``what`` was awaited."""
    with anyio.move_on_after(5):
        while True:
            if condition():
                return
            await anyio.sleep(0.001)  # nothing to wait on: the state is the stream's own
    raise AssertionError(f"timed out waiting for: {what}")


def _send_all_possible(client: socket.socket, chunk: bytes) -> int:
    """Send until the kernel refuses more; return how many bytes went."""
    sent = 0
    while True:
        try:
            sent += client.send(chunk)
        except BlockingIOError:
            return sent


async def _flood_until_paused(
    stream: AsyncioSocketStream, client: socket.socket, chunk: bytes
) -> int:
    """Push while the server does not receive, until its transport paused reading and the
    kernel's buffers (ours and the client's) refuse more: nothing else can move. Return
    how many bytes went."""
    sent = 0
    with anyio.fail_after(10):
        while True:
            went = _send_all_possible(client, chunk)
            sent += went
            if went == 0 and stream._protocol.reading_paused:
                return sent
            await anyio.sleep(0.001)  # let the event loop read what it will


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
    async with connected_pair(AsyncioSocketStream) as (stream, client):
        client.send(b"hello")
        assert await stream.receive() == b"hello"
        await stream.send(b"world")
        assert await recv_exactly(client, 5) == b"world"
        remote = stream.extra(SocketAttribute.remote_address)
        assert remote == client.getsockname()


async def test_receive_respects_max_bytes_and_keeps_the_rest() -> None:
    async with connected_pair(AsyncioSocketStream) as (stream, client):
        client.send(b"abcdefghij")
        await _wait_until(lambda: stream._protocol.buffered == 10, "all ten bytes buffered")
        assert await stream.receive(4) == b"abcd"
        assert stream._protocol.buffer == b"efghij"
        assert await stream.receive(100) == b"efghij"


async def test_a_peer_that_floods_an_idle_reader_costs_bounded_memory() -> None:
    async with connected_pair(AsyncioSocketStream) as (stream, client):
        sent = await _flood_until_paused(stream, client, b"x" * 65536)
        buffered = stream._protocol.buffered
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


async def test_a_raised_high_water_bounds_a_flood_at_the_new_mark() -> None:
    """``set_read_high_water`` (an open WebSocket's 256 KiB): the transport reads on up to
    the new mark, pauses there, and a paused transport resumes when the mark is raised."""
    async with connected_pair(AsyncioSocketStream) as (stream, client):
        chunk = b"x" * 65536
        sent = 0
        with anyio.fail_after(10):
            while not stream._protocol.reading_paused:  # paused at the default HIGH_WATER
                sent += _send_all_possible(client, chunk)
                await anyio.sleep(0.001)
        raised = 8 * HIGH_WATER  # above what the first pause can hold (64 KiB + 256 KiB)
        stream.set_read_high_water(raised)
        assert not stream._protocol.reading_paused  # resumed: less than the new mark waits
        sent += await _flood_until_paused(stream, client, chunk)
        buffered = stream._protocol.buffered
        assert raised <= buffered <= raised + 256 * 1024
        received = 0
        with anyio.fail_after(10):
            while received < sent:
                received += len(await stream.receive(1 << 20))
        assert received == sent


async def test_send_waits_until_the_kernel_has_the_bytes() -> None:
    async with connected_pair(AsyncioSocketStream) as (stream, _client):
        big = b"y" * (16 * 1024 * 1024)  # far more than the socket buffers hold
        returned = anyio.Event()

        async def sender() -> None:
            await stream.send(big)
            returned.set()

        async with anyio.create_task_group() as group:
            group.start_soon(sender)
            # The transport holds what the kernel refused: the writer is paused, and send
            # can only return once the client reads (it never does here).
            await _wait_until(lambda: stream._protocol.writing_paused, "writing paused")
            await _wait_until(lambda: stream._protocol.drained.waiting, "send waits")
            assert not returned.is_set(), "send returned although the client read nothing"
            group.cancel_scope.cancel()
        assert not returned.is_set()


async def test_send_returns_once_the_client_reads() -> None:
    async with connected_pair(AsyncioSocketStream) as (stream, client):
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
    async with connected_pair(AsyncioSocketStream) as (stream, client):
        client.send(b"last words")
        client.shutdown(socket.SHUT_WR)
        assert await stream.receive() == b"last words"
        with pytest.raises(anyio.EndOfStream):
            await stream.receive()
        await stream.send(b"still answering")  # half-closed: our side can still write
        assert await recv_exactly(client, 15) == b"still answering"


@pytest.mark.parametrize("chunked", [False, True], ids=["send", "send_chunks"])
async def test_send_to_a_reset_peer_is_a_broken_resource(chunked: bool) -> None:
    async with connected_pair(AsyncioSocketStream) as (stream, client):
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        client.close()  # RST
        with anyio.fail_after(5), pytest.raises(anyio.BrokenResourceError):
            while True:
                if chunked:
                    await stream.send_chunks([b"head", b"x" * 65536])
                else:
                    await stream.send(b"x" * 65536)
                await anyio.sleep(0.01)


async def test_a_waiting_receive_can_be_cancelled_and_the_stream_still_works() -> None:
    async with connected_pair(AsyncioSocketStream) as (stream, client):
        with anyio.CancelScope() as waiting:

            async def cancel_once_waiting() -> None:
                await _wait_until(lambda: stream._protocol.readable.waiting, "waiting")
                waiting.cancel()

            async with anyio.create_task_group() as group:
                group.start_soon(cancel_once_waiting)
                await stream.receive()
                pytest.fail("receive returned with nothing sent")
        assert waiting.cancelled_caught
        assert not stream._protocol.readable.waiting
        client.send(b"after")
        with anyio.fail_after(5):
            assert await stream.receive() == b"after"


async def test_receive_after_aclose_is_closed_resource() -> None:
    async with connected_pair(AsyncioSocketStream) as (stream, _client):
        await stream.aclose()
        with pytest.raises(anyio.ClosedResourceError):
            await stream.receive()
        with pytest.raises(anyio.ClosedResourceError):
            await stream.send(b"x")


async def test_a_receive_waiting_when_the_stream_closes_wakes_up() -> None:
    async with connected_pair(AsyncioSocketStream) as (stream, _client):
        outcome: list[type[BaseException]] = []

        async def reader() -> None:
            try:
                await stream.receive()
            except (anyio.ClosedResourceError, anyio.EndOfStream) as error:
                outcome.append(type(error))

        with anyio.fail_after(5):
            async with anyio.create_task_group() as group:
                group.start_soon(reader)
                await _wait_until(lambda: stream._protocol.readable.waiting, "waiting")
                await stream.aclose()
        assert outcome == [anyio.ClosedResourceError]


async def test_a_peer_gone_before_the_takeover_is_seen_at_once() -> None:
    """The client resets between accept and ``adopt``: anyio's protocol already got
    connection_lost, ours never will, so ``adopt`` must carry it over. "At once": the first
    ``receive`` raises without waiting for anything (it runs in a cancelled scope, where
    any wait would end in the cancellation instead of the error)."""
    multi = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    listener = multi.listeners[0]
    assert isinstance(listener, SocketListener)
    port = listener.extra(SocketAttribute.local_port)
    client = socket.create_connection(("127.0.0.1", port))
    accepted = await listener.accept()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    client.close()  # RST
    transport = accepted._transport  # type: ignore[attr-defined]
    await _wait_until(transport.is_closing, "anyio's transport read the reset and closed")
    stream = AsyncioSocketStream.adopt(accepted)
    try:
        assert isinstance(stream, AsyncioSocketStream)
        assert stream._protocol.lost  # carried over from anyio's protocol
        with pytest.raises((anyio.BrokenResourceError, anyio.EndOfStream)):
            with anyio.CancelScope() as scope:
                scope.cancel()
                await stream.receive()
        assert not scope.cancelled_caught
    finally:
        await stream.aclose()
        await multi.aclose()


async def test_send_chunks_writes_them_in_order_gathered_or_behind_unsent_bytes() -> None:
    """One gathering write while the transport holds nothing; behind bytes the transport
    still holds (the client does not read yet), the chunks queue after them, in order."""
    async with connected_pair(AsyncioSocketStream) as (stream, client):
        await stream.send_chunks([b"head:", b"payload", b":tail"])
        assert await recv_exactly(client, 17) == b"head:payload:tail"
        big = bytes(range(256)) * (16 * 1024)  # 4 MiB: more than the kernel takes at once
        received = b""

        async def drain() -> None:
            nonlocal received
            await _wait_until(lambda: stream._transport.get_write_buffer_size() > 0, "queued")
            received = await recv_exactly(client, len(big) + 2 * 65536 + 2)

        with anyio.fail_after(20):
            async with anyio.create_task_group() as group:
                group.start_soon(drain)
                await stream.send_chunks([b"<", big])  # the kernel takes only part of it
                await stream.send_chunks([b"x" * 65536, b"y" * 65536, b">"])
        assert received == b"<" + big + b"x" * 65536 + b"y" * 65536 + b">"
