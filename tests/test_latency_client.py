"""The paced latency client (benchmarks/latency_client.py) copes with what servers do.

Two servers on 127.0.0.1 in the test's own event loop: an HTTP/1.1 one that closes each
keep-alive connection after three responses (as Hypercorn does after 1,000), and an HTTP/2
one (the h2 library, server side) that allows two concurrent streams and answers each
request 5 ms late, so that the paced client reaches the limit. The client must get every
request answered without an error in both.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings

from benchmarks import latency_client

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def _h1_closing_after_three(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        for _ in range(3):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _h2_two_streams(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.local_settings = h2.settings.Settings(
        client=False, initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 2}
    )
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    pending: set[asyncio.Task[None]] = set()
    concurrent = 0
    state = {"most": 0}

    async def answer(stream_id: int) -> None:
        nonlocal concurrent
        await asyncio.sleep(0.005)
        conn.send_headers(stream_id, [(":status", "200"), ("content-length", "2")])
        conn.send_data(stream_id, b"ok", end_stream=True)
        concurrent -= 1
        writer.write(conn.data_to_send())

    try:
        while data := await reader.read(65536):
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    concurrent += 1
                    state["most"] = max(state["most"], concurrent)
                    task = asyncio.create_task(answer(event.stream_id))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
            writer.write(conn.data_to_send())
    except ConnectionError:
        pass
    finally:
        H2_MOST_CONCURRENT.append(state["most"])
        writer.close()


H2_MOST_CONCURRENT: list[int] = []


def _run_client(proto: str, handler: Any, *, rate: float, connections: int) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        args = argparse.Namespace(
            host="127.0.0.1",
            port=port,
            path="/",
            proto=proto,
            rate=rate,
            connections=connections,
            duration=0.5,
            timeout=5.0,
        )
        async with server:
            return await latency_client.run(args)

    return asyncio.run(main())


def test_h1_client_reconnects_when_the_server_closes_between_responses() -> None:
    result = _run_client("h1", _h1_closing_after_three, rate=200, connections=2)
    assert result["errors"] == 0, result["first_errors"]
    assert result["requests"] == 100  # 200/s for 0.5 s
    assert result["reconnects"] >= 100 // 3 - 2  # each connection served three


def test_h1_closed_loop_reconnects_too() -> None:
    result = _run_client("h1", _h1_closing_after_three, rate=0, connections=2)
    assert result["errors"] == 0, result["first_errors"]
    assert result["requests"] > 3 * 2
    assert result["reconnects"] > 0


def test_h2_client_waits_at_the_servers_stream_limit() -> None:
    H2_MOST_CONCURRENT.clear()
    # 2,000/s on one connection, each answered 5 ms late: about 10 in flight were wanted.
    result = _run_client("h2", _h2_two_streams, rate=2000, connections=1)
    assert result["errors"] == 0, result["first_errors"]
    assert result["requests"] == 1000
    assert H2_MOST_CONCURRENT == [2]  # the limit was reached and never passed
