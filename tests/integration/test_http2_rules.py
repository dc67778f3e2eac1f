"""HTTP/2 rules on a real tricorn, on the wire (trio and asyncio): ``max_request_body_size``
(413 before the app runs, 413 or CANCEL once a body grows past it, the app hearing
``http.disconnect``), connection-specific response fields dropped, sensitive fields never
indexed by HPACK."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from hpack import Decoder

from tests.helpers import serving
from tests.integration.apps import respond
from tests.integration.h2_client import CANCEL, h2_connection
from tests.integration.test_access_log import Lines, lines  # noqa: F401 (a fixture)
from tests.unit import test_http2_response_rules as unit
from tests.unit.test_http2_response_rules import representations
from tricorn.server.asgi_types import Message, Receive, Scope, Send

pytestmark = pytest.mark.anyio

LIMIT = 1000


class Recorder:
    """An app that reads the request body (``/read``), or starts its response first and
    then reads (``/stream``); what it received is kept, ``done`` set when it returns."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.calls = 0
        self.done = anyio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.calls += 1
        try:
            if scope["path"] == "/stream":
                start: Message = {"type": "http.response.start", "status": 200, "headers": []}
                await send(start)
                await send({"type": "http.response.body", "body": b"started", "more_body": True})
            size = 0
            while True:
                message = await receive()
                self.messages.append(message)
                if message["type"] == "http.disconnect":
                    return
                size += len(message.get("body", b""))
                if not message.get("more_body"):
                    break
            if scope["path"] == "/stream":
                await send({"type": "http.response.body", "body": b"end"})
            else:
                await respond(send, 200, b"%d" % size)
        finally:
            self.done.set()


async def test_httpx_upload_over_the_limit_gets_413_without_the_app() -> None:
    app = Recorder()
    async with serving(app, max_request_body_size=LIMIT) as server:
        url = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient(http1=False, http2=True, timeout=10) as client:
            refused = await client.post(url + "/read", content=b"u" * (LIMIT + 1))
            assert app.calls == 0
            fine = await client.post(url + "/read", content=b"u" * LIMIT)
    assert refused.http_version == "HTTP/2"
    assert refused.status_code == 413
    assert fine.status_code == 200 and fine.content == b"%d" % LIMIT
    assert app.calls == 1


async def test_a_body_growing_past_the_limit_gets_413_and_the_app_a_disconnect() -> None:
    app = Recorder()
    async with (
        serving(app, max_request_body_size=LIMIT) as server,
        h2_connection(server.host, server.port) as client,
    ):
        stream_id = await client.request("POST", "/read", end_stream=False)
        await client.send_data(stream_id, b"a" * 600)
        await client.send_data(stream_id, b"b" * 600)
        with anyio.fail_after(5):
            await app.done.wait()
        seen = list(app.messages)
        response = await client.response(stream_id)
        assert response.status == 413
        assert response.reset is None  # the rest of the body is read and dropped
        # The stream window came back: the client can finish its upload, discarded.
        await client.send_body(stream_id, b"c" * 70000)
        after = await client.request("POST", "/read", body=b"d" * 10)
        assert (await client.response(after)).body == b"10"
    assert seen[-1] == {"type": "http.disconnect"}
    assert sum(len(m.get("body", b"")) for m in seen) <= LIMIT


async def test_a_body_past_the_limit_after_the_response_started_resets_with_cancel() -> None:
    app = Recorder()
    async with (
        serving(app, max_request_body_size=LIMIT) as server,
        h2_connection(server.host, server.port) as client,
    ):
        stream_id = await client.request("POST", "/stream", end_stream=False)
        await client.wait_for(lambda f: f.kind == "DATA" and f.stream_id == stream_id)
        await client.send_data(stream_id, b"a" * (LIMIT + 1))
        response = await client.response(stream_id)
        with anyio.fail_after(5):
            await app.done.wait()
        seen = list(app.messages)
        again = await client.request("POST", "/read", body=b"x")
        assert (await client.response(again)).body == b"1"
    assert response.status == 200
    assert response.reset is not None and response.reset.error_code == CANCEL
    assert seen == [{"type": "http.disconnect"}]


#: As the app writes them; on the wire the names are lower-case.
CONNECTION_FIELDS = unit.CONNECTION_FIELDS
SENSITIVE = [(name.lower(), value) for name, value in unit.SENSITIVE]


class RecordingDecoder(Decoder):
    """hpack's decoder, keeping every header block it decodes, as received."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[bytes] = []

    def decode(self, data: bytes, raw: bool = False) -> Any:
        self.blocks.append(bytes(data))
        return super().decode(data, raw)


async def test_response_fields_on_the_wire_no_connection_fields_sensitive_never_indexed() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = [*CONNECTION_FIELDS, *unit.SENSITIVE, (b"x-plain", b"1")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"ok"})

    async with serving(app) as server, h2_connection(server.host, server.port) as client:
        decoder = client.decoder = RecordingDecoder()
        heads = []
        for _ in range(3):  # the first time, and from the server's caches
            stream_id = await client.request("GET", "/")
            heads.append((await client.response(stream_id)).final)
    for head in heads:
        names = {name for name, _ in head.headers}
        assert not names & {name.lower() for name, _ in CONNECTION_FIELDS}
        fields = [(n, v) for n, v in head.headers if n not in (b":status", b"date", b"server")]
        assert fields == [*SENSITIVE, (b"x-plain", b"1")]
    for block in decoder.blocks:
        kinds = representations(block)
        assert kinds[1 : 1 + len(SENSITIVE)] == ["never"] * len(SENSITIVE), kinds
    sensitive = {name for name, _ in SENSITIVE}
    assert not [n for n, _ in decoder.header_table.dynamic_entries if n in sensitive]


async def test_413s_get_rejected_access_lines(lines: Lines) -> None:  # noqa: F811
    app = Recorder()
    async with (
        serving(app, access_log=True, max_request_body_size=LIMIT) as server,
        h2_connection(server.host, server.port) as client,
    ):
        length = [(b"content-length", b"%d" % (LIMIT + 1))]
        early = await client.request("POST", "/read?cl", length, end_stream=False)
        assert (await client.response(early)).status == 413
        text, head = await lines.next()
        grown = await client.request("POST", "/read?grown", end_stream=False)
        await client.send_data(grown, b"g" * (LIMIT + 1))
        assert (await client.response(grown)).status == 413
        _, body = await lines.next()
    assert (head["status"], head["outcome"], head["target"]) == (413, "rejected", "/read?cl")
    assert '"POST /read?cl HTTP/2" 413 ' in text
    assert (body["status"], body["outcome"], body["target"]) == (413, "rejected", "/read?grown")


# --- stream tasks (no anyio TaskHandle): cancelled exactly when the connection ends ----------


class Sleeper:
    """Answers ``/quick``; on any other path starts a response and sleeps until cancelled
    (``cancelled`` is set then), ignoring ``http.disconnect``."""

    def __init__(self) -> None:
        self.started = anyio.Event()
        self.cancelled = anyio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/quick":
            await respond(send, 200, b"quick")
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        self.started.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            self.cancelled.set()
            raise


async def test_graceful_timeout_cancels_the_streams_and_closes_the_connection() -> None:
    app = Sleeper()
    with anyio.fail_after(10):  # a hang guard: the graceful timeout is 0.2 s
        async with (
            serving(app, graceful_timeout=0.2) as server,
            h2_connection(server.host, server.port) as client,
        ):
            quick = await client.request("GET", "/quick")
            assert (await client.response(quick)).body == b"quick"
            await client.request("GET", "/sleep")
            await app.started.wait()
            server.shutdown.set()
            # GOAWAY first; then, past the graceful timeout, the stream's task is cancelled
            # and the connection closed.
            frames = await client.read_until_closed(timeout=8)
            assert app.cancelled.is_set()
    assert [frame for frame in frames if frame.kind == "GOAWAY"]


async def test_a_reset_stream_app_hears_disconnect_and_others_carry_on() -> None:
    app = Recorder()
    async with (
        serving(app) as server,
        h2_connection(server.host, server.port) as client,
    ):
        stream_id = await client.request("POST", "/read", end_stream=False)
        await client.send_data(stream_id, b"part")
        await client.reset(stream_id)
        with anyio.fail_after(5):
            await app.done.wait()
        seen = list(app.messages)
        other = await client.request("POST", "/read", body=b"abc")
        assert (await client.response(other)).body == b"3"
    assert seen[-1] == {"type": "http.disconnect"}
