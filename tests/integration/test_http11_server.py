"""A real tricorn on 127.0.0.1 driven by httpx and raw sockets, on trio and on asyncio."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from tests import helpers
from tests.helpers import open_raw, read_response, read_until_closed, serving
from tests.integration import apps
from tricorn.server.asgi_types import Receive, Scope, Send

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True, params=helpers.HTTP1_PARSERS)
def http1_parser(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test here runs on the three HTTP/1.1 implementations."""
    yield from helpers.use_http1_parser(request.param)


async def test_hello_world_over_httpx() -> None:
    async with serving(apps.hello) as server, httpx.AsyncClient() as client:
        response = await client.get(server.url + "/")
    assert response.status_code == 200
    assert response.text == "Hello, world!"
    assert response.headers["server"] == "tricorn"
    assert "date" in response.headers


async def test_server_header_can_be_omitted_and_date_turned_off() -> None:
    async with (
        serving(apps.hello, server_header="", date_header=False) as server,
        httpx.AsyncClient() as client,
    ):
        response = await client.get(server.url)
    assert "server" not in response.headers
    assert "date" not in response.headers


async def test_keep_alive_serves_many_requests_on_one_connection() -> None:
    async with serving(apps.echo) as server:
        stream = await open_raw(server)
        for index in range(5):
            body = f"request {index}".encode()
            await stream.send(
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            response = await read_response(stream)
            assert response.endswith(body)
        await stream.aclose()


async def test_pipelined_requests_are_answered_in_order() -> None:
    async with serving(apps.scope_dump) as server:
        stream = await open_raw(server)
        await stream.send(b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(4)))
        for index in range(4):
            response = await read_response(stream)
            assert json.loads(response.partition(b"\r\n\r\n")[2])["path"] == f"/{index}"
        await stream.aclose()


async def test_scope_has_every_http_key() -> None:
    async with (
        serving(apps.scope_dump, root_path="/api") as server,
        httpx.AsyncClient() as client,
    ):
        response = await client.get(server.url + "/caf%C3%A9/x?a=1&b=%20", headers={"X-Y": "z"})
    scope = response.json()
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/api/café/x"
    assert scope["raw_path"] == "/api/caf%C3%A9/x"
    assert scope["query_string"] == "a=1&b=%20"
    assert scope["root_path"] == "/api"
    assert ["x-y", "z"] in scope["headers"]
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ["127.0.0.1", server.port]


async def test_request_body_is_streamed_with_more_body() -> None:
    received: list[tuple[int, bool]] = []
    got, got_sizes = anyio.create_memory_object_stream[int](100)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        while True:
            message = await receive()
            received.append((len(message["body"]), message["more_body"]))
            got.send_nowait(len(message["body"]))
            if not message["more_body"]:
                break
        await apps.respond(send, 200, b"ok")

    async def body() -> Any:
        sent = delivered = 0
        for _ in range(4):
            yield b"x" * 100_000
            sent += 100_000
            # The next chunk only once the app has this one: the body is streamed, not
            # gathered before the app sees it.
            with anyio.fail_after(5):
                while delivered < sent:
                    delivered += await got_sizes.receive()

    async with serving(app) as server, httpx.AsyncClient() as client:
        response = await client.post(server.url, content=body())
    assert response.status_code == 200
    assert sum(size for size, _ in received) == 400_000
    assert len([size for size, _ in received if size]) >= 4  # at least one per chunk sent
    assert received[-1][1] is False
    assert all(more for _, more in received[:-1])


async def test_chunked_response_when_app_gives_no_length() -> None:
    async with serving(apps.streaming) as server:
        stream = await open_raw(server)
        await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        response = await read_until_closed(stream)
    assert b"transfer-encoding: chunked" in response.lower()
    assert response.endswith(b"0\r\n\r\n")
    async with serving(apps.streaming) as server, httpx.AsyncClient() as client:
        assert (await client.get(server.url)).text == "one,two,three"


async def test_head_request_sends_no_body() -> None:
    async with serving(apps.hello) as server:
        stream = await open_raw(server)
        await stream.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        with anyio.fail_after(5):
            while not data.endswith(b"Hello, world!"):
                data += await stream.receive()
        head, _, rest = data.partition(b"\r\n\r\n")
        # content-length says 13, but no body follows: the next bytes are the GET's response.
        assert b"content-length: 13" in head.lower()
        assert rest.startswith(b"HTTP/1.1 200 ")
        assert rest.count(b"Hello, world!") == 1  # that body belongs to the GET
        await stream.aclose()


#: Whether an HTTP/1.0 request with ``Connection: keep-alive`` keeps its connection open,
#: per parser. A known, accepted difference: h11 never keeps an HTTP/1.0 connection alive
#: (it answers ``Connection: close``), which RFC 9112 9.3 allows (persistence for HTTP/1.0
#: is the server's choice); tricorn's own parser honours the request.
HTTP10_KEEP_ALIVE = {"tricorn": True, "h11": False, "httptools": True}


async def test_http10_closes_unless_keep_alive_asked() -> None:
    async with serving(apps.hello) as server:
        stream = await open_raw(server)
        await stream.send(b"GET / HTTP/1.0\r\n\r\n")
        response = await read_until_closed(stream)
        assert response.startswith(b"HTTP/1.1 200")
        assert response.endswith(b"Hello, world!")


async def test_http10_keep_alive_when_asked(http1_parser: str) -> None:
    async with serving(apps.hello) as server:
        stream = await open_raw(server)
        await stream.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        response = await read_response(stream)
        assert response.endswith(b"Hello, world!")
        head = response.partition(b"\r\n\r\n")[0].lower()
        if HTTP10_KEEP_ALIVE[http1_parser]:
            assert b"\r\nconnection: keep-alive" in head
            await stream.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            assert (await read_response(stream)).endswith(b"Hello, world!")
        else:
            assert b"\r\nconnection: close" in head
            assert await read_until_closed(stream) == b""  # closed right after the answer
        await stream.aclose()


async def test_expect_100_continue_is_sent_when_the_app_reads() -> None:
    started = anyio.Event()
    reading = anyio.Event()
    proceed = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started.set()
        await proceed.wait()
        reading.set()
        body = await apps.read_body(receive)
        await apps.respond(send, 200, body)

    async with serving(app) as server:
        stream = await open_raw(server)
        await stream.send(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        with anyio.fail_after(5):
            await started.wait()
            await anyio.wait_all_tasks_blocked()  # the server did all it would do unasked
        fileno = stream.extra(anyio.abc.SocketAttribute.raw_socket).fileno()
        # Nothing came: no 100 Continue before the app reads the body.
        with (
            socket.fromfd(fileno, socket.AF_INET, socket.SOCK_STREAM) as peek,
            pytest.raises(BlockingIOError),
        ):
            early = peek.recv(100, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            pytest.fail(f"100 Continue sent before the app read the body: {early!r}")
        proceed.set()
        with anyio.fail_after(5):
            interim = await stream.receive()
        assert reading.is_set()
        assert interim.startswith(b"HTTP/1.1 100 ")
        await stream.send(b"hello")
        assert (await read_response(stream)).endswith(b"hello")
        await stream.aclose()


async def test_app_exception_gives_500_without_detail(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="tricorn.error")
    async with serving(apps.raises) as server, httpx.AsyncClient() as client:
        response = await client.get(server.url)
        assert response.status_code == 500
        assert b"secret" not in response.content
        assert (await client.get(server.url)).status_code == 500  # the server stays up
    assert any("Exception in ASGI app" in r.message and r.exc_info for r in caplog.records)


async def test_an_error_raised_after_a_complete_response_keeps_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Starlette and FastAPI answer an unhandled error with their own whole 500 and then
    re-raise it: the error is logged, and the keep-alive connection serves what the client
    sent next (closing it reset the next request, already on its way)."""
    caplog.set_level(logging.ERROR, logger="tricorn.error")
    async with serving(apps.raises_after_responding) as server:
        stream = await open_raw(server)
        for index in range(3):
            await stream.send(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % index)
            response = await read_response(stream)
            assert response.startswith(b"HTTP/1.1 500 ")
            assert response.endswith(b"Internal Server Error")
        await stream.aclose()
    errors = [r for r in caplog.records if "Exception in ASGI app" in r.message]
    assert len(errors) == 3 and all(r.exc_info for r in errors)


async def test_app_returning_without_response_gives_500(caplog: pytest.LogCaptureFixture) -> None:
    async with serving(apps.no_response) as server, httpx.AsyncClient() as client:
        assert (await client.get(server.url)).status_code == 500
    assert any("without sending a response" in r.message for r in caplog.records)


@pytest.mark.parametrize(
    "message",
    [
        {"type": "http.response.body", "body": b"early"},
        {"type": "http.response.start", "status": "200"},
        {"type": "http.response.start", "status": 200, "headers": [("a", "b")]},
        {"type": "http.response.start", "status": 200, "headers": [(b"a",)]},
        {"type": "no.such.message"},
    ],
)
async def test_invalid_message_is_logged_and_answered_500(
    message: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(apps.bad_message(message)) as server, httpx.AsyncClient() as client:
        response = await client.get(server.url)
    assert response.status_code == 500
    assert any("invalid message" in r.message for r in caplog.records)


async def test_second_start_after_body_began_closes_the_connection() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async with serving(app) as server:
        stream = await open_raw(server)
        await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response = await read_until_closed(stream)
    assert response.startswith(b"HTTP/1.1 200")
    assert not response.endswith(b"0\r\n\r\n")  # the chunked body was cut short, not completed


async def test_disconnect_is_reported_while_the_app_streams() -> None:
    disconnected = anyio.Event()
    failed_send = anyio.Event()
    received: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        received.append((await receive())["type"])
        received.append((await receive())["type"])
        disconnected.set()
        try:
            await send({"type": "http.response.body", "body": b"more", "more_body": True})
        except OSError:
            failed_send.set()

    async with serving(app) as server:
        stream = await open_raw(server)
        await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await stream.receive()
        await stream.aclose()
        with anyio.fail_after(5):
            await disconnected.wait()
            await failed_send.wait()
    assert received == ["http.request", "http.disconnect"]


async def test_keep_alive_timeout_closes_idle_connections() -> None:
    async with serving(apps.hello, keep_alive_timeout=0.2) as server:
        stream = await open_raw(server)
        await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await read_response(stream)
        # The guard is half the 5 s default: if the setting were ignored it would fire.
        assert await read_until_closed(stream, timeout=2.5) == b""


async def test_slow_request_head_gets_408() -> None:
    async with serving(apps.hello, header_read_timeout=0.3) as server:
        stream = await open_raw(server)
        await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finishes the head
        response = await read_until_closed(stream, timeout=5)
    assert response.startswith(b"HTTP/1.1 408")


async def test_bad_request_gets_400_and_the_server_keeps_serving() -> None:
    async with serving(apps.hello) as server:
        stream = await open_raw(server)
        await stream.send(
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        assert (await read_until_closed(stream)).startswith(b"HTTP/1.1 400")
        async with httpx.AsyncClient() as client:
            assert (await client.get(server.url)).status_code == 200


@pytest.mark.skipif(not helpers.ipv6_loopback(), reason="no IPv6 loopback here")
async def test_an_ipv6_client_is_logged_in_brackets(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tricorn.error")
    async with serving(apps.hello, bind=["[::1]:0"]) as server:
        stream = await open_raw(server)
        port = stream.extra(anyio.abc.SocketAttribute.local_port)
        await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n")
        assert (await read_until_closed(stream)).startswith(b"HTTP/1.1 400")
    lines = [r.getMessage() for r in caplog.records if "bad request" in r.getMessage()]
    assert lines and lines[0].startswith(f"[::1]:{port}: bad request"), lines


async def test_http2_preface_on_plain_port_switches_to_http2() -> None:
    async with serving(apps.hello) as server:
        stream = await open_raw(server)
        await stream.send(
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
        )
        with anyio.fail_after(5):
            frame = await stream.receive()
        assert frame[3] == 0x4  # the server's SETTINGS frame: it speaks HTTP/2 now
        await stream.aclose()


async def test_websocket_to_an_app_that_does_not_accept_gets_403() -> None:
    async with serving(apps.hello) as server:
        stream = await open_raw(server)
        await stream.send(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        assert (await read_response(stream)).startswith(b"HTTP/1.1 403")
        await stream.aclose()


async def test_client_that_does_not_read_stalls_the_app_not_memory() -> None:
    sent = 0
    chunk = b"x" * 65536
    chunks = 1024  # 64 MiB if nothing held it back
    finished = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal sent
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent += len(chunk)
        await send({"type": "http.response.body", "body": b""})
        finished.set()

    async with serving(app) as server:
        stream = await open_raw(server)
        await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        with anyio.fail_after(10):
            await anyio.wait_all_tasks_blocked()  # the app runs until something holds it
        # It is held in send: only what the kernel's socket buffers take went out (a
        # server that buffered the response in memory would have let the app finish).
        assert not finished.is_set()
        assert 0 < sent < 16 * 1024 * 1024
        # Once the client reads, the app goes on and every byte arrives.
        received, tail = 0, b""
        with anyio.fail_after(30):
            while not tail.endswith(b"\r\n0\r\n\r\n"):
                piece = await stream.receive()
                received += len(piece)
                tail = (tail + piece)[-16:]
            await finished.wait()
        assert sent == chunks * len(chunk)
        assert received > sent  # the body, its chunk framing and the head
        await stream.aclose()


async def test_app_that_does_not_read_stops_the_server_reading() -> None:
    release = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await release.wait()
        body = await apps.read_body(receive)
        await apps.respond(send, 200, str(len(body)).encode())

    total = 48 * 1024 * 1024
    async with serving(app) as server:
        stream = await open_raw(server)
        await stream.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % total)
        pushed = 0

        async def push() -> None:
            nonlocal pushed
            while pushed < total:
                size = min(total - pushed, 65536)
                await stream.send(b"y" * size)
                pushed += size

        async with anyio.create_task_group() as group:
            group.start_soon(push)
            with anyio.fail_after(10):
                await anyio.wait_all_tasks_blocked()  # the client pushes until it is held
            # The server stopped reading: the client is stuck well before the whole body
            # (a server that kept reading into memory would have taken all of it).
            assert 0 < pushed < 24 * 1024 * 1024
            release.set()
            response = await read_response(stream, timeout=30)
        assert pushed == total
        assert response.endswith(str(total).encode())
        await stream.aclose()


async def test_graceful_shutdown_lets_in_flight_requests_finish() -> None:
    started = anyio.Event()
    release = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started.set()
        await release.wait()
        await apps.respond(send, 200, b"finished")

    async with serving(app) as server:
        result: list[bytes] = []

        async def request() -> None:
            async with httpx.AsyncClient() as client:
                result.append((await client.get(server.url)).content)

        async with anyio.create_task_group() as group:
            group.start_soon(request)
            with anyio.fail_after(5):
                await started.wait()
            server.shutdown.set()
            with anyio.fail_after(5):
                await _wait_until_not_accepting(server)  # the shutdown is under way
            assert not result  # the in-flight request is not cut short
            release.set()
    assert result == [b"finished"]


async def _wait_until_not_accepting(server: helpers.RunningServer) -> None:
    """Return once the server refuses new connections (its listener is closed)."""
    while True:
        try:
            probe = await open_raw(server)
        except OSError:
            return
        await probe.aclose()
        await anyio.sleep(0.01)  # poll: there is no event for a closed listener


async def test_graceful_timeout_cancels_slow_requests(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tricorn.error")
    started = anyio.Event()
    cancelled: list[bool] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append(True)
            raise

    # The guard is far below the 30 s default: without the setting the shutdown waits it out.
    with anyio.fail_after(10):
        async with serving(app, graceful_timeout=0.3) as server:
            stream = await open_raw(server)
            await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await started.wait()
            server.shutdown.set()
    assert cancelled == [True]
    assert any("Graceful timeout (0.3 s) passed" in r.getMessage() for r in caplog.records)
    assert await read_until_closed(stream) == b""


async def test_several_binds_and_ipv6() -> None:
    async with serving(apps.hello, bind=["127.0.0.1:0", "[::1]:0"]) as server:
        assert len(server.addresses) == 2
        async with httpx.AsyncClient() as client:
            for address in server.addresses:
                assert (await client.get(address.url())).status_code == 200


class _PausesAfterSend(anyio.abc.ByteStream):
    """A real socket stream whose ``send`` lingers after the bytes are out, as trio's does
    (a checkpoint after every send), until the reader has the client's next request head:
    the client acts on a response before the server's write of it has returned."""

    def __init__(self, inner: anyio.abc.SocketStream) -> None:
        self.inner = inner
        self.heads_read = 0
        self.head_read = anyio.Event()
        self.write_returned = anyio.Event()

    async def receive(self, max_bytes: int = 65536) -> bytes:
        data = await self.inner.receive(max_bytes)
        if b" HTTP/1.1\r\n" in data:
            self.heads_read += 1
            self.head_read.set()
        return data

    async def send(self, item: bytes) -> None:
        heads = self.heads_read
        await self.inner.send(item)
        while self.heads_read == heads:  # linger until the next head arrived
            await self.head_read.wait()
            self.head_read = anyio.Event()
        self.write_returned.set()

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_next_request_arriving_while_the_last_write_lingers_is_not_lost() -> None:
    """Regression: the client gets a response, sends its next request with a body, and the
    reader starts it before the previous response's write has returned. Finishing the old
    response must not drop the new stream (its body went nowhere and the upload hung)."""
    from tricorn import Config
    from tricorn.server.http11_connection import HTTP11Connection
    from tricorn.server.state import ServerState

    state = ServerState(Config(access_log=False), apps.echo, {})
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)

        wrapped: list[_PausesAfterSend] = []

        async def serve_one(task_status: anyio.abc.TaskStatus[None]) -> None:
            async def handle(stream: anyio.abc.SocketStream) -> None:
                wrapped.append(_PausesAfterSend(stream))
                connection = HTTP11Connection(state, wrapped[-1], client=None, server=None)
                await connection.run()

            task_status.started()
            await listener.serve(handle)

        async with anyio.create_task_group() as group:
            state.use_task_group(group)  # where the connection starts its requests' tasks
            await group.start(serve_one)
            client = await anyio.connect_tcp("127.0.0.1", port)
            with anyio.fail_after(5):
                for index, body in enumerate((b"first body", b"second body", b"third body")):
                    await client.send(
                        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
                    )
                    if index:
                        # The head alone first, read while the last response's write lingers;
                        # the body once that write returned.
                        await wrapped[0].write_returned.wait()
                        wrapped[0].write_returned = anyio.Event()
                    await client.send(body)
                    response = await read_response(client)
                    assert response.startswith(b"HTTP/1.1 200 ")
                    assert response.endswith(body)
            await client.aclose()
            group.cancel_scope.cancel()
