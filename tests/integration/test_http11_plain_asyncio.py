"""HTTP/1.1 under plain ``asyncio.run`` (and uvloop's loop) with no anyio around it: the
transport callbacks of ``http11_callbacks`` run outside any task, where sniffio cannot name
the library, so nothing they call may ask it. Each case of the callback path and of its
hand-over, on one server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import uvloop
import wsproto
import wsproto.events

from tests.helpers import free_port
from tests.integration import ws_apps
from tricorn import Config, serve

GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


async def _exchange(port: int, data: bytes, *, until_closed: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        if until_closed:
            return await asyncio.wait_for(reader.read(-1), 10)
        return await asyncio.wait_for(reader.readuntil(b"http ok"), 10)
    finally:
        writer.close()


async def _websocket(port: int) -> list[wsproto.events.Event]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    received: list[wsproto.events.Event] = []
    try:
        writer.write(GET)
        await asyncio.wait_for(reader.readuntil(b"http ok"), 10)
        writer.write(client.send(wsproto.events.Request(host="x", target="/")))
        while not received:
            client.receive_data(await asyncio.wait_for(reader.read(65536), 10))
            received.extend(client.events())
        writer.write(client.send(wsproto.events.TextMessage("hi")))
        while not any(isinstance(event, wsproto.events.TextMessage) for event in received):
            client.receive_data(await asyncio.wait_for(reader.read(65536), 10))
            received.extend(client.events())
    finally:
        writer.close()
    return received


async def _cases() -> dict[str, bytes | list[wsproto.events.Event]]:
    port = free_port()
    config = Config(
        bind=[f"127.0.0.1:{port}"],
        access_log=False,
        header_read_timeout=0.5,
        keep_alive_timeout=0.5,
    )
    stop = asyncio.Event()
    server = asyncio.create_task(serve(ws_apps.echo, config, shutdown_trigger=stop.wait))
    for _ in range(100):
        try:
            await _exchange(port, GET, until_closed=False)
            break
        except OSError:
            await asyncio.sleep(0.05)
    results: dict[str, bytes | list[wsproto.events.Event]] = {
        # Two requests, then the idle connection is closed by the keep-alive timeout.
        "keep_alive": await _exchange(port, GET + GET),
        "close": await _exchange(port, GET.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")),
        "bad": await _exchange(port, GET + b"GET / HTTP/1.1\r\nBad Header: y\r\n\r\n"),
        "late": await _exchange(port, GET + b"GET / HTTP/1.1\r\nHost:"),
        "websocket": await _websocket(port),
    }
    stop.set()
    await server
    return results


@pytest.mark.parametrize(
    "new_loop", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"]
)
def test_the_callback_path_and_its_hand_overs_under_plain_asyncio(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    loop = new_loop()
    try:
        results = loop.run_until_complete(_cases())
    finally:
        loop.close()
    keep_alive = results["keep_alive"]
    assert isinstance(keep_alive, bytes)
    assert keep_alive.count(b"HTTP/1.1 200") == 2
    close = results["close"]
    assert isinstance(close, bytes)
    assert close.startswith(b"HTTP/1.1 200") and close.endswith(b"http ok")
    bad = results["bad"]
    assert isinstance(bad, bytes)
    assert bad.startswith(b"HTTP/1.1 200") and b"HTTP/1.1 400" in bad
    late = results["late"]
    assert isinstance(late, bytes)
    assert late.startswith(b"HTTP/1.1 200") and b"HTTP/1.1 408" in late
    websocket = results["websocket"]
    assert isinstance(websocket, list)
    assert isinstance(websocket[0], wsproto.events.AcceptConnection)
    assert [e.data for e in websocket if isinstance(e, wsproto.events.TextMessage)] == ["hi"]
