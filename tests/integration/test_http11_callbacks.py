"""What only the callback-driven HTTP/1.1 path does (``tricorn/server/http11_callbacks.py``):
no task for a connection between its requests, and the hand-over to the reader task in the
middle of a connection (an upgrade, a bad request, a timeout after requests it served
itself). The hand-over cases run on trio too, where they are the ordinary path."""

from __future__ import annotations

import asyncio
import socket

import anyio
import pytest
import wsproto
import wsproto.events

from tests.helpers import open_raw, read_response, read_until_closed, serving
from tests.integration import apps, ws_apps
from tests.integration.h2_client import H2Client, settings_payload
from tricorn import Config, serve
from tricorn.server.http11_callbacks import _bound_address

pytestmark = pytest.mark.anyio

GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


async def _one_request(stream: anyio.abc.ByteStream) -> None:
    """A plain request served (by the callbacks, on asyncio) before what the test is about."""
    await stream.send(GET)
    assert (await read_response(stream)).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize(
    "anyio_backend",
    ["asyncio", pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop")],
)
async def test_idle_keep_alive_connections_are_no_tasks_on_asyncio() -> None:
    async with serving(apps.hello) as server:
        before = len(asyncio.all_tasks())  # the server's own, no connection yet
        streams = []
        try:
            for _ in range(20):
                stream = await open_raw(server)
                streams.append(stream)
                await _one_request(stream)
            for _ in range(500):  # a bounded poll: request tasks end just after responding
                if len(asyncio.all_tasks()) <= before:
                    break
                await anyio.sleep(0.01)
            assert len(asyncio.all_tasks()) == before
        finally:
            for stream in streams:
                await stream.aclose()


async def test_a_websocket_after_plain_requests_on_one_connection() -> None:
    async with serving(ws_apps.echo) as server:
        stream = await open_raw(server)
        async with stream:
            for _ in range(2):
                await stream.send(GET)
                assert (await read_response(stream)).endswith(b"http ok")
            client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
            await stream.send(client.send(wsproto.events.Request(host="x", target="/ws")))
            received: list[wsproto.events.Event] = []
            with anyio.fail_after(5):
                while not received:
                    client.receive_data(await stream.receive())
                    received.extend(client.events())
                assert isinstance(received[0], wsproto.events.AcceptConnection)
                await stream.send(client.send(wsproto.events.TextMessage("after two requests")))
                while not any(isinstance(e, wsproto.events.TextMessage) for e in received):
                    client.receive_data(await stream.receive())
                    received.extend(client.events())
            texts = [e.data for e in received if isinstance(e, wsproto.events.TextMessage)]
            assert texts == ["after two requests"]


async def test_an_h2c_upgrade_after_a_plain_request_on_one_connection() -> None:
    async with serving(apps.scope_dump) as server:
        stream = await open_raw(server)
        async with stream:
            await _one_request(stream)
            await stream.send(
                b"GET /upgraded HTTP/1.1\r\nHost: x\r\n"
                b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                b"HTTP2-Settings: " + settings_payload({}).encode() + b"\r\n\r\n"
            )
            data = b""
            with anyio.fail_after(5):
                while b"\r\n\r\n" not in data:
                    data += await stream.receive()
            head, _, rest = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101")
            client = H2Client(stream, rest, first_stream_id=3)
            with anyio.fail_after(5):
                await client.start()
            response = await client.response(1)
            assert response.status == 200
            assert b'"path": "/upgraded"' in response.body


async def test_a_bad_request_after_a_good_one_is_answered_400_and_closed() -> None:
    async with serving(apps.hello) as server:
        stream = await open_raw(server)
        async with stream:
            await _one_request(stream)
            await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n")
            answer = await read_until_closed(stream)
            assert answer.startswith(b"HTTP/1.1 400")


async def test_a_late_head_after_a_request_is_answered_408() -> None:
    async with serving(apps.hello, header_read_timeout=0.3, keep_alive_timeout=5.0) as server:
        stream = await open_raw(server)
        async with stream:
            await _one_request(stream)
            await stream.send(b"GET / HTTP/1.1\r\nHost:")  # and nothing more
            answer = await read_until_closed(stream)
            assert answer.startswith(b"HTTP/1.1 408")


async def test_an_idle_keep_alive_connection_is_closed_after_its_timeout() -> None:
    async with serving(apps.hello, keep_alive_timeout=0.3) as server:
        stream = await open_raw(server)
        async with stream:
            await _one_request(stream)
            assert await read_until_closed(stream) == b""  # closed, nothing more said


async def test_pipelined_requests_around_a_large_body_are_answered_in_order() -> None:
    async with serving(apps.echo) as server:
        stream = await open_raw(server)
        async with stream:
            body = b"x" * 300_000  # over max_body_buffer: reading pauses and resumes
            await stream.send(
                GET
                + b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
                + body
                + b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nlast"
            )
            answers = [await read_response(stream, timeout=10) for _ in range(3)]
            assert all(answer.startswith(b"HTTP/1.1 200") for answer in answers)
            assert answers[1].endswith(b"\r\n\r\n" + body)
            assert answers[2].endswith(b"\r\n\r\nlast")


async def test_cancelling_serve_closes_idle_keep_alive_connections() -> None:
    # Between requests a connection of the callback path has no task that the cancellation
    # could reach: serve closes it itself.
    config = Config(bind=["127.0.0.1:0"], access_log=False)
    async with anyio.create_task_group() as group:
        addresses = await group.start(serve, apps.hello, config)
        address = addresses[0].address
        assert isinstance(address, tuple)
        stream = await anyio.connect_tcp(*address)
        async with stream:
            await _one_request(stream)
            group.cancel_scope.cancel()
            with anyio.CancelScope(shield=True):
                assert await read_until_closed(stream) == b""


def test_a_listener_bound_to_one_address_gives_it_to_its_connections() -> None:
    """The scope's ``server`` of a connection on a listener bound to one address is that
    address (not asked of each connection); a wildcard's connections are each asked."""
    with socket.socket() as one, socket.socket() as wildcard:
        one.bind(("127.0.0.1", 0))
        wildcard.bind(("0.0.0.0", 0))  # bound, never listening: nothing can connect
        assert _bound_address(one) == ("127.0.0.1", one.getsockname()[1])
        assert _bound_address(wildcard) is None
    if socket.has_ipv6:
        with socket.socket(socket.AF_INET6) as one, socket.socket(socket.AF_INET6) as wildcard:
            try:
                one.bind(("::1", 0))
            except OSError:
                return  # no IPv6 loopback here
            wildcard.bind(("::", 0))
            assert _bound_address(one) == ("::1", one.getsockname()[1])
            assert _bound_address(wildcard) is None
