"""HTTP/1.1 requests' tasks run in the server's task group, not in one per connection.

Connections must still be served request after request, and the server's shutdown must
still end a request that outlives the graceful timeout.
"""

from __future__ import annotations

import anyio
import pytest

from tests.helpers import open_raw, read_until_closed, serving
from tests.integration import apps

pytestmark = pytest.mark.anyio


async def test_many_idle_keep_alive_connections_are_each_served_again() -> None:
    async with serving(apps.hello, keep_alive_timeout=30) as server:
        streams = [await open_raw(server) for _ in range(50)]
        answers: list[bytes] = []
        try:
            for _ in range(2):  # a request, idle, a second request on every connection
                for stream in streams:
                    await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                for stream in streams:
                    with anyio.fail_after(5):
                        data = b""
                        while not data.endswith(b"Hello, world!"):
                            data += await stream.receive()
                    answers.append(data)
        finally:
            for stream in streams:
                await stream.aclose()
    assert len(answers) == 100
    assert all(answer.startswith(b"HTTP/1.1 200 ") for answer in answers)


async def test_shutdown_cancels_a_request_past_the_graceful_timeout() -> None:
    started = anyio.Event()
    with anyio.fail_after(10):  # a hang guard: the graceful timeout is 0.2 s
        async with serving(apps.sleeper(60, started), graceful_timeout=0.2) as server:
            stream = await open_raw(server)
            await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await started.wait()
        # serve() returned: the request's task was cancelled, the connection closed.
        leftover = await read_until_closed(stream)
        await stream.aclose()
    assert b"slept" not in leftover
