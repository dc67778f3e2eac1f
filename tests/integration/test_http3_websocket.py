"""WebSocket over HTTP/3 (RFC 9220) on a real tricorn, both backends: aioquic's client sends
the extended CONNECT and exchanges frames made by wsproto's client-side frame layer
(tests/integration/h3_client.py). The same ASGI websocket scope and WSStream as RFC 8441
over HTTP/2."""

from __future__ import annotations

import json
from typing import Any

import anyio.from_thread
import pytest
from aioquic.h3.connection import Setting

from tests.helpers import Certificates, free_port, serving
from tests.integration import test_http3
from tests.integration.h3_client import H3Client, H3Response
from tests.integration.test_http3 import h3, h3_settings
from tricorn.server.asgi_types import Receive, Scope, Send

pytestmark = pytest.mark.anyio
certificates = test_http3.certificates  # the session's server certificate (a fixture)


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Accepts with the first offered subprotocol; echoes; "scope" answers the scope as JSON;
    "close NNNN" closes with that code; reports the client's close code as a last text."""
    assert scope["type"] == "websocket"
    assert (await receive())["type"] == "websocket.connect"
    offered = scope["subprotocols"]
    await send({"type": "websocket.accept", "subprotocol": offered[0] if offered else None})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text == "scope":
            shown = {key: scope[key] for key in ("type", "http_version", "scheme", "path")}
            shown["subprotocols"] = scope["subprotocols"]
            shown["extensions"] = sorted(scope["extensions"])
            await send({"type": "websocket.send", "text": json.dumps(shown)})
        elif text is not None and text.startswith("close "):
            await send({"type": "websocket.close", "code": int(text[6:]), "reason": "bye"})
            return
        elif text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def denying_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Denies the handshake with a 403 and a body (the websocket.http.response extension)."""
    if scope["type"] != "websocket":
        return  # lifespan: not supported
    assert (await receive())["type"] == "websocket.connect"
    await send(
        {
            "type": "websocket.http.response.start",
            "status": 403,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "websocket.http.response.body", "body": b"not you"})


async def test_a_websocket_over_http3_echoes_in_the_websocket_scope(
    certificates: Certificates,
) -> None:
    port = free_port()
    async with serving(echo_app, **h3_settings(certificates, port)):

        async def script(client: H3Client) -> tuple[Any, ...]:
            offered = [(b"sec-websocket-protocol", b"chat, superchat")]
            head, ws = await client.websocket("/chat", offered)
            settings = client.h3.received_settings
            ws.send("scope")
            shown = await ws.receive()
            ws.send("hello")
            text = await ws.receive()
            ws.send(b"\x00\x01" * 5000)  # 10 kB: several DATA frames' worth
            data = await ws.receive()
            ws.close(1000, "done")
            closing = await ws.receive()
            ws.end()
            ended = await ws.ended()
            return head, settings, shown, text, data, closing, ended

        head, settings, shown, text, data, closing, ended = await h3(certificates, port, script)
    assert settings[Setting.ENABLE_CONNECT_PROTOCOL] == 1
    assert head.status == 200
    assert head.header(b"sec-websocket-protocol") == b"chat"
    assert json.loads(shown) == {
        "type": "websocket",
        "http_version": "3",
        "scheme": "wss",
        "path": "/chat",
        "subprotocols": ["chat", "superchat"],
        "extensions": ["http.response.pathsend", "tls", "websocket.http.response"],
    }
    assert text == "hello"
    assert data == b"\x00\x01" * 5000
    assert closing == (1000, "")  # the server answers the close with the same code
    assert ended.reset is None  # and ends its side of the stream cleanly


async def test_the_app_closes_with_its_code(certificates: Certificates) -> None:
    port = free_port()
    async with serving(echo_app, **h3_settings(certificates, port)):

        async def script(client: H3Client) -> tuple[H3Response, Any, H3Response]:
            head, ws = await client.websocket("/")
            ws.send("close 4001")
            closing = await ws.receive()
            ws.close(4001, end=True)
            return head, closing, await ws.ended()

        head, closing, ended = await h3(certificates, port, script)
    assert head.status == 200
    assert closing == (4001, "bye")
    assert ended.reset is None


async def test_a_message_over_ws_max_message_size_is_closed_1009(
    certificates: Certificates,
) -> None:
    port = free_port()
    settings = h3_settings(certificates, port, ws_max_message_size=1000)
    async with serving(echo_app, **settings):

        async def script(client: H3Client) -> tuple[Any, Any]:
            _, ws = await client.websocket("/")
            ws.send("x" * 1000)
            fits = await ws.receive()
            ws.send("x" * 1001)
            return fits, await ws.receive()

        fits, closing = await h3(certificates, port, script)
    assert fits == "x" * 1000
    assert closing[0] == 1009


async def test_the_denial_response_reaches_the_client(certificates: Certificates) -> None:
    port = free_port()
    async with serving(denying_app, **h3_settings(certificates, port)):

        async def script(client: H3Client) -> H3Response:
            _, ws = await client.websocket("/")
            return await ws.ended()

        response = await h3(certificates, port, script)
    assert response.status == 403
    assert response.header(b"content-type") == b"text/plain"
    assert response.body == b"not you"


@pytest.mark.parametrize(
    ("protocol", "version", "status"),
    [(b"websocket", None, 400), (b"websocket", b"8", 400), (b"chat", b"13", 501)],
)
async def test_a_bad_handshake_is_answered_and_the_connection_goes_on(
    certificates: Certificates, protocol: bytes, version: bytes | None, status: int
) -> None:
    port = free_port()
    async with serving(echo_app, **h3_settings(certificates, port)):

        async def script(client: H3Client) -> tuple[H3Response, Any]:
            head, _ = await client.websocket("/", protocol=protocol, version=version)
            _, ws = await client.websocket("/")  # the next one on the same connection
            ws.send("still here")
            return head, await ws.receive()

        head, echoed = await h3(certificates, port, script)
    assert head.status == status
    if version is not None and status == 400:
        assert head.header(b"sec-websocket-version") == b"13"
    assert echoed == "still here"


async def test_graceful_shutdown_closes_an_open_websocket_with_1001(
    certificates: Certificates,
) -> None:
    port = free_port()
    async with serving(echo_app, **h3_settings(certificates, port)) as server:

        async def script(client: H3Client) -> tuple[Any, H3Response]:
            _, ws = await client.websocket("/")
            ws.send("up")
            assert await ws.receive() == "up"
            anyio.from_thread.run_sync(server.shutdown.set)
            closing = await ws.receive()
            ws.close(1001, end=True)
            return closing, await ws.ended()

        closing, ended = await h3(certificates, port, script)
    assert closing[0] == 1001
    assert ended.reset is None


async def test_the_access_log_has_a_line_per_websocket_session(
    certificates: Certificates, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    caplog.set_level("INFO", logger="tricorn.access")
    async with serving(echo_app, access_log=True, **h3_settings(certificates, port)):

        async def script(client: H3Client) -> None:
            _, ws = await client.websocket("/logged")
            ws.send("close 4001")
            await ws.receive()
            ws.close(4001, end=True)
            await ws.ended()
            await client.websocket("/refused", protocol=b"chat")

        await h3(certificates, port, script)
    lines = [r.getMessage() for r in caplog.records if r.name == "tricorn.access"]
    session, refused = lines
    assert '"CONNECT /logged WS/3" 200 ' in session and "close=4001" in session, session
    assert refused.endswith('"CONNECT /refused HTTP/3" 501 0 0.0ms rejected'), refused


async def test_permessage_deflate_is_negotiated_and_spoken(certificates: Certificates) -> None:
    port = free_port()
    async with serving(echo_app, **h3_settings(certificates, port)):

        async def script(client: H3Client) -> tuple[H3Response, Any]:
            offer = [(b"sec-websocket-extensions", b"permessage-deflate")]
            head, ws = await client.websocket("/", offer, compression=True)
            ws.send("z" * 10000)
            return head, await ws.receive()

        head, echoed = await h3(certificates, port, script)
    assert head.header(b"sec-websocket-extensions") == b"permessage-deflate"
    assert echoed == "z" * 10000
