"""max_request_body_size and the metrics on HTTP/3, both backends, with aioquic's client:
413 before the app for a Content-Length over the limit; for a body that grows past it, 413
(no response yet) or a reset (the response began), and http.disconnect for the app."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from tests.helpers import Certificates, free_port, serving
from tests.integration import test_http3
from tests.integration.h3_client import H3Client, H3Response
from tests.integration.test_http3 import h3, h3_settings
from tests.integration.test_metrics import metrics_socket, scrape, value
from tests.integration.test_metrics import parse as parse_metrics
from tricorn.server.asgi_types import Receive, Scope, Send

pytestmark = pytest.mark.anyio
certificates = test_http3.certificates  # the session's server certificate (a fixture)
LIMIT = 1000
H3_REQUEST_CANCELLED = 0x10C


def body_reader(
    seen: list[str], *, respond_first: bool = False, disconnected: anyio.Event | None = None
) -> Any:
    """Reads the body (after starting the response when ``respond_first``), noting each
    message type; answers 200 with the size read unless the client went away (then sets
    ``disconnected``)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        seen.append("called")
        if respond_first:  # the head goes out with the first piece of body
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"reading", "more_body": True})
        size = 0
        while True:
            message = await receive()
            seen.append(message["type"])
            if message["type"] == "http.disconnect":
                if disconnected is not None:
                    disconnected.set()
                return
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        if not respond_first:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % size})

    return app


def settings(certificates: Certificates, port: int, **more: Any) -> dict[str, Any]:
    return h3_settings(certificates, port, max_request_body_size=LIMIT, **more)


async def test_a_content_length_over_the_limit_is_answered_413_before_the_app(
    certificates: Certificates,
) -> None:
    seen: list[str] = []
    port = free_port()
    async with serving(body_reader(seen), **settings(certificates, port)):

        async def script(client: H3Client) -> tuple[H3Response, H3Response]:
            over = client.start("POST", "/", headers=[(b"content-length", b"1001")], end=False)
            refused = await client.response(over)
            fits = await client.request("POST", "/", b"x" * LIMIT)  # same connection
            return refused, fits

        refused, fits = await h3(certificates, port, script)
    assert refused.status == 413
    assert (fits.status, fits.body) == (200, b"1000")
    assert seen.count("called") == 1  # the app never saw the refused one


@pytest.mark.parametrize("respond_first", [False, True])
async def test_a_body_growing_past_the_limit_is_refused_and_the_app_disconnected(
    certificates: Certificates, respond_first: bool
) -> None:
    """No response yet: 413 (and STOP_SENDING); the response began: the stream is reset."""
    seen: list[str] = []
    disconnected = anyio.Event()
    port = free_port()
    app = body_reader(seen, respond_first=respond_first, disconnected=disconnected)
    async with serving(app, **settings(certificates, port)):

        async def script(client: H3Client) -> H3Response:
            stream_id = client.start("POST", "/", b"x" * 600, end=False)
            if respond_first:
                await client.head(stream_id)
            client.send_body(stream_id, b"x" * 600, end=False)
            return await client.response(stream_id)

        response = await h3(certificates, port, script)
        await disconnected.wait()
    assert seen[-1] == "http.disconnect"
    if respond_first:
        assert (response.status, response.reset) == (200, H3_REQUEST_CANCELLED)
    else:
        assert (response.status, response.reset) == (413, None)


async def test_http3_requests_are_counted_with_protocol_h3(certificates: Certificates) -> None:
    seen: list[str] = []
    port = free_port()
    with metrics_socket() as (bind, metrics_port):
        async with serving(body_reader(seen), metrics_bind=bind, **settings(certificates, port)):

            async def script(client: H3Client) -> list[int]:
                return [(await client.request("GET", "/")).status for _ in range(3)]

            statuses = await h3(certificates, port, script)
            samples = parse_metrics((await scrape(metrics_port)).text)
    assert statuses == [200, 200, 200]
    ok = {"protocol": "h3", "method": "GET", "status": "2xx", "outcome": "ok"}
    assert value(samples, "tricorn_requests_total", **ok) == 3
    assert value(samples, "tricorn_connections_total", protocol="h3") == 1
    assert value(samples, "tricorn_requests_total", **{**ok, "protocol": "h2"}) == 0
    # Every datagram read is counted under h3: at least the client's first Initial, which
    # RFC 9000 14.1 pads to 1,200 bytes; and none under another protocol label.
    assert value(samples, "tricorn_received_bytes_total", protocol="h3") >= 1200
    assert value(samples, "tricorn_sent_bytes_total", protocol="h3") > 0
    for other in ("http/1.1", "h2"):
        assert value(samples, "tricorn_received_bytes_total", protocol=other) == 0
