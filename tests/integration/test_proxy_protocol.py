"""The PROXY protocol over real sockets, on trio and asyncio: raw v1/v2 headers, then
HTTP/1.1, h2c, TLS with HTTP/2, WebSocket; LOCAL; malformed, missing and slow headers;
peers not allowed to send one; and the scheme rule (the connection's, never ``:scheme``)."""

from __future__ import annotations

import ipaddress
import logging
import ssl
import struct
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import ByteStream, SocketAttribute
from anyio.streams.tls import TLSAttribute, TLSStream
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

from tests.helpers import (
    Certificates,
    RunningServer,
    ipv6_loopback,
    issue_certificates,
    read_response,
    read_until_closed,
    serving,
)
from tests.integration.apps import read_body, respond
from tests.integration.h2_client import H2Client
from tricorn.protocols.proxy_protocol import (
    PP2_CLIENT_SSL,
    PP2_SUBTYPE_SSL_VERSION,
    PP2_TYPE_AUTHORITY,
    PP2_TYPE_SSL,
    PP2_TYPE_UNIQUE_ID,
    V2_SIGNATURE,
)
from tricorn.server.asgi_types import Receive, Scope, Send

pytestmark = pytest.mark.anyio

CLIENT = ("192.0.2.1", 56324)
SERVER = ("198.51.100.2", 443)
V1 = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack("!H", len(value)) + value


def v2(tlvs: bytes = b"", *, command: int = 1) -> bytes:
    addresses = (
        ipaddress.IPv4Address(CLIENT[0]).packed
        + ipaddress.IPv4Address(SERVER[0]).packed
        + struct.pack("!HH", CLIENT[1], SERVER[1])
    )
    body = addresses + tlvs
    return V2_SIGNATURE + bytes([0x20 | command, 0x11]) + struct.pack("!H", len(body)) + body


def ssl_tlv(client_ssl: bool) -> bytes:
    subs = tlv(PP2_SUBTYPE_SSL_VERSION, b"TLSv1.3") if client_ssl else b""
    flags = PP2_CLIENT_SSL if client_ssl else 0
    return tlv(PP2_TYPE_SSL, bytes([flags]) + struct.pack("!I", 0) + subs)


def recorder(scopes: list[Scope]) -> Any:
    """Keeps every scope; answers HTTP with "ok" and echoes one WebSocket message."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scopes.append(scope)
            await read_body(receive)
            await respond(send, 200, b"ok")
        elif scope["type"] == "websocket":
            scopes.append(scope)
            assert (await receive())["type"] == "websocket.connect"
            await send({"type": "websocket.accept"})
            message = await receive()
            await send({"type": "websocket.send", "text": message.get("text")})
            await send({"type": "websocket.close", "code": 1000})

    return app


def proxy_settings(**more: Any) -> dict[str, Any]:
    return {"proxy_protocol": "auto", "header_read_timeout": 5.0, **more}


async def connect(server: RunningServer) -> anyio.abc.SocketStream:
    return await anyio.connect_tcp(server.host, server.port)


def local_port(stream: anyio.abc.SocketStream) -> int:
    return int(stream.extra(SocketAttribute.local_address)[1])


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return issue_certificates(tmp_path_factory.mktemp("proxy-tls"))


async def get(stream: ByteStream, path: str = "/") -> bytes:
    await stream.send(f"GET {path} HTTP/1.1\r\nHost: example.com\r\n\r\n".encode())
    return await read_response(stream)


async def h2_get(transport: ByteStream, *, scheme: str) -> int:
    client = H2Client(transport)
    with anyio.fail_after(5):
        await client.start()
        response = await client.response(await client.request("GET", "/", scheme=scheme))
    return response.status


# --- headers, then every protocol -----------------------------------------------------


@pytest.mark.parametrize("header", [V1, v2()], ids=["v1", "v2"])
async def test_header_then_http11_sets_client_and_server_for_every_request(header: bytes) -> None:
    scopes: list[Scope] = []
    async with serving(recorder(scopes), **proxy_settings()) as server:
        stream = await connect(server)
        async with stream:
            await stream.send(header)  # alone: the request comes in a later segment
            assert (await get(stream)).endswith(b"ok")
            assert (await get(stream, "/again")).endswith(b"ok")  # keep-alive
    assert [scope["client"] for scope in scopes] == [CLIENT, CLIENT]
    assert [scope["server"] for scope in scopes] == [SERVER, SERVER]
    assert scopes[0]["scheme"] == "http"
    extension = scopes[0]["extensions"]["tricorn.proxy_protocol"]
    assert extension["source"] == CLIENT and extension["command"] == "proxy"
    assert "tls" not in scopes[0]["extensions"]


async def test_header_and_request_in_one_segment() -> None:
    scopes: list[Scope] = []
    async with serving(recorder(scopes), **proxy_settings(proxy_protocol="v1")) as server:
        stream = await connect(server)
        async with stream:
            await stream.send(V1 + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await read_response(stream)).endswith(b"ok")
    assert scopes[0]["client"] == CLIENT


async def test_v2_header_then_h2c_and_the_scheme_is_not_the_clients_pseudo_header() -> None:
    scopes: list[Scope] = []
    unique = tlv(PP2_TYPE_UNIQUE_ID, b"req-42") + tlv(PP2_TYPE_AUTHORITY, b"shop.example")
    async with serving(recorder(scopes), **proxy_settings(proxy_protocol="v2")) as server:
        stream = await connect(server)
        async with stream:
            await stream.send(v2(unique))
            assert await h2_get(stream, scheme="https") == 200
    scope = scopes[0]
    assert scope["http_version"] == "2"
    assert scope["client"] == CLIENT and scope["server"] == SERVER
    assert scope["scheme"] == "http"  # cleartext to us, no SSL TLV: ":scheme https" is not it
    extension = scope["extensions"]["tricorn.proxy_protocol"]
    assert extension["unique_id"] == b"req-42"
    assert extension["authority"] == "shop.example"


async def test_header_then_h2c_upgrade() -> None:
    scopes: list[Scope] = []
    async with serving(recorder(scopes), **proxy_settings()) as server:
        stream = await connect(server)
        async with stream:
            await stream.send(
                V1 + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
            )
            head = b""
            with anyio.fail_after(5):
                while b"\r\n\r\n" not in head:
                    head += await stream.receive()
            assert head.startswith(b"HTTP/1.1 101")
    assert scopes[0]["client"] == CLIENT and scopes[0]["http_version"] == "2"


@pytest.mark.parametrize("header", [V1, v2()], ids=["v1", "v2"])
async def test_header_before_the_tls_client_hello_then_http2(
    header: bytes, certificates: Certificates
) -> None:
    scopes: list[Scope] = []
    settings = proxy_settings(
        certfile=str(certificates.certfile), keyfile=str(certificates.keyfile)
    )
    async with serving(recorder(scopes), **settings) as server:
        raw = await connect(server)
        await raw.send(header)
        tls = await TLSStream.wrap(
            raw,
            hostname="127.0.0.1",
            ssl_context=certificates.client_context(["h2"]),
            standard_compatible=False,
        )
        async with tls:
            assert tls.extra(TLSAttribute.alpn_protocol) == "h2"
            assert await h2_get(tls, scheme="https") == 200
    scope = scopes[0]
    assert scope["client"] == CLIENT and scope["server"] == SERVER
    assert scope["scheme"] == "https" and scope["http_version"] == "2"
    assert "tls" in scope["extensions"] and "tricorn.proxy_protocol" in scope["extensions"]


async def test_header_before_tls_then_http11(certificates: Certificates) -> None:
    scopes: list[Scope] = []
    settings = proxy_settings(
        certfile=str(certificates.certfile), keyfile=str(certificates.keyfile)
    )
    async with serving(recorder(scopes), **settings) as server:
        raw = await connect(server)
        # One segment: the header and the ClientHello's first bytes arrive together.
        tls_context = certificates.client_context(["http/1.1"])
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls_object = tls_context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
        with pytest.raises(ssl.SSLWantReadError):
            tls_object.do_handshake()
        await raw.send(V1 + outgoing.read())
        while True:
            incoming.write(await raw.receive())
            try:
                tls_object.do_handshake()
                break
            except ssl.SSLWantReadError:
                await raw.send(outgoing.read())
        await raw.send(outgoing.read())
        tls_object.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await raw.send(outgoing.read())
        answer = b""
        with anyio.fail_after(5):
            while b"ok" not in answer:
                incoming.write(await raw.receive())
                try:
                    answer += tls_object.read()
                except ssl.SSLWantReadError:
                    continue
        await raw.aclose()
    assert answer.startswith(b"HTTP/1.1 200")
    assert scopes[0]["client"] == CLIENT and scopes[0]["scheme"] == "https"


async def _websocket(stream: ByteStream, header: bytes, *, cut: int | None = None) -> str:
    """Send ``header``, open a WebSocket, send "hi" and return the echo. With ``cut``, the
    header and the upgrade request go in two sends, split ``cut`` bytes in."""
    ws = WSConnection(ConnectionType.CLIENT)
    data = header + ws.send(Request(host="example.com", target="/chat"))
    if cut is None:
        await stream.send(data)
    else:
        await stream.send(data[:cut])
        await stream.send(data[cut:])
    events: list[Any] = []
    with anyio.fail_after(5):
        while not any(isinstance(event, AcceptConnection) for event in events):
            ws.receive_data(await stream.receive())
            events.extend(ws.events())
        await stream.send(ws.send(TextMessage("hi")))
        while True:
            for event in events:
                if isinstance(event, TextMessage):
                    return str(event.data)
                if isinstance(event, CloseConnection):
                    raise AssertionError("closed before the echo")
            events = []
            ws.receive_data(await stream.receive())
            events.extend(ws.events())


@pytest.mark.parametrize(
    ("header", "scheme"),
    [(V1, "ws"), (v2(), "ws"), (v2(ssl_tlv(True)), "wss"), (v2(ssl_tlv(False)), "ws")],
    ids=["v1", "v2", "v2-ssl", "v2-ssl-cleartext"],
)
async def test_header_then_websocket(header: bytes, scheme: str) -> None:
    scopes: list[Scope] = []
    async with serving(recorder(scopes), **proxy_settings()) as server:
        stream = await connect(server)
        async with stream:
            assert await _websocket(stream, header) == "hi"
    assert scopes[0]["type"] == "websocket"
    assert scopes[0]["client"] == CLIENT and scopes[0]["server"] == SERVER
    assert scopes[0]["scheme"] == scheme


@pytest.mark.parametrize("header", [V1, v2(ssl_tlv(True))], ids=["v1", "v2-ssl"])
async def test_header_and_websocket_upgrade_split_at_every_byte(header: bytes) -> None:
    """The header and the upgrade request in two sends, cut at every byte of the header
    and just past it (HAProxy's send-proxy then the request, however TCP splits them)."""
    scopes: list[Scope] = []
    cuts = range(1, len(header) + 2)
    async with serving(recorder(scopes), **proxy_settings()) as server:
        for cut in cuts:
            stream = await connect(server)
            async with stream:
                assert await _websocket(stream, header, cut=cut) == "hi", cut
    assert len(scopes) == len(cuts)
    assert all(scope["client"] == CLIENT and scope["server"] == SERVER for scope in scopes)


async def test_ssl_tlv_says_the_client_used_tls_to_the_proxy() -> None:
    scopes: list[Scope] = []
    async with serving(recorder(scopes), **proxy_settings()) as server:
        for header in (v2(ssl_tlv(True)), v2(ssl_tlv(False))):
            stream = await connect(server)
            async with stream:
                await stream.send(header)
                assert await h2_get(stream, scheme="http") == 200
    assert [scope["scheme"] for scope in scopes] == ["https", "http"]
    ssl_info = scopes[0]["extensions"]["tricorn.proxy_protocol"]["ssl"]
    assert ssl_info["client_ssl"] is True and ssl_info["version"] == "TLSv1.3"


async def test_local_command_keeps_the_real_addresses() -> None:
    scopes: list[Scope] = []
    async with serving(recorder(scopes), **proxy_settings()) as server:
        stream = await connect(server)
        async with stream:
            await stream.send(v2(command=0))
            assert (await get(stream)).endswith(b"ok")
            port = local_port(stream)
    assert scopes[0]["client"] == ("127.0.0.1", port)
    assert scopes[0]["server"] == ("127.0.0.1", server.port)
    assert scopes[0]["extensions"]["tricorn.proxy_protocol"]["command"] == "local"


async def test_unknown_v1_keeps_the_real_addresses() -> None:
    scopes: list[Scope] = []
    async with serving(recorder(scopes), **proxy_settings()) as server:
        stream = await connect(server)
        async with stream:
            await stream.send(b"PROXY UNKNOWN\r\n")
            assert (await get(stream)).endswith(b"ok")
            port = local_port(stream)
    assert scopes[0]["client"] == ("127.0.0.1", port)


async def test_unix_socket_peer_is_allowed_by_unix(tmp_path: Path) -> None:
    scopes: list[Scope] = []
    path = tmp_path / "t.sock"
    settings = proxy_settings(bind=[f"unix:{path}"], proxy_protocol_allow_ips=["unix"])
    async with serving(recorder(scopes), **settings):
        stream = await anyio.connect_unix(path)
        async with stream:
            await stream.send(V1)
            assert (await get(stream)).endswith(b"ok")
    assert scopes[0]["client"] == CLIENT


# --- what closes a connection ----------------------------------------------------------


def warnings_about(caplog: pytest.LogCaptureFixture, port: int) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "tricorn.error"
        and record.levelno >= logging.INFO
        and f":{port}" in record.getMessage()
    ]


class LineWaiter(logging.Handler):
    """Sets ``seen`` when a line containing ``needle`` is logged (in the event loop)."""

    def __init__(self, needle: str) -> None:
        super().__init__(logging.DEBUG)
        self.needle = needle
        self.seen = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.needle in record.getMessage():
            self.seen.set()


async def _bystander_is_served(server: RunningServer, scopes: list[Scope]) -> None:
    stream = await connect(server)
    async with stream:
        await stream.send(V1)
        assert (await get(stream, "/bystander")).endswith(b"ok")
    assert scopes[-1]["path"] == "/bystander" and scopes[-1]["client"] == CLIENT


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "not a PROXY protocol header: starts with b'G'"),
        (b"PROXY TCP4 192.0.2.1 198.51.100.2 99999 443\r\n", "port b'99999'"),
        (b"PROXY TCP4 192.0.2.1\n", "bare LF"),
        (b"PROXY " + b"1" * 120, "no CRLF in the first 107 bytes"),
        (V2_SIGNATURE + b"\x11\x11\x00\x0c" + b"\x00" * 12, "version 1 (2 expected)"),
        (V2_SIGNATURE + b"\x21\x11\xff\xff", "65551 bytes, over the limit of 4096"),
        (v2(b"\x01\x00\x09h2"), "runs past the header's end"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "starts with b'\\x16'"),
    ],
    ids=["http", "port", "lf", "long-v1", "v2-version", "v2-size", "v2-tlv", "tls"],
)
async def test_malformed_or_missing_header_closes_with_one_log_line(
    data: bytes, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tricorn.error")
    scopes: list[Scope] = []
    async with serving(recorder(scopes), **proxy_settings()) as server:
        stream = await connect(server)
        async with stream:
            port = local_port(stream)
            await stream.send(data)
            assert await read_until_closed(stream) == b""  # closed, nothing answered
            await _bystander_is_served(server, scopes)
    lines = warnings_about(caplog, port)
    assert len(lines) == 1, lines
    assert reason in lines[0]
    assert [scope["path"] for scope in scopes] == ["/bystander"]


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
async def test_an_ipv6_proxy_is_logged_in_brackets(caplog: pytest.LogCaptureFixture) -> None:
    """``::1`` is allowed by default; its malformed header is named ``[::1]:port``."""
    caplog.set_level(logging.INFO, logger="tricorn.error")
    async with serving(recorder([]), **proxy_settings(bind=["[::1]:0"])) as server:
        stream = await connect(server)
        async with stream:
            port = local_port(stream)
            await stream.send(b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 0443\r\n")
            assert await read_until_closed(stream) == b""
    lines = warnings_about(caplog, port)
    assert len(lines) == 1 and lines[0].startswith(f"[::1]:{port}: "), lines


async def test_slow_header_is_closed_at_the_head_timeout_while_others_are_served(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tricorn.error")
    scopes: list[Scope] = []
    async with serving(recorder(scopes), **proxy_settings(header_read_timeout=0.5)) as server:
        slow = await connect(server)
        silent = await connect(server)
        async with slow, silent:
            await slow.send(V1[:10])
            await _bystander_is_served(server, scopes)
            assert await read_until_closed(slow) == b""
            assert await read_until_closed(silent) == b""
            slow_lines = warnings_about(caplog, local_port(slow))
            silent_lines = warnings_about(caplog, local_port(silent))
    assert len(slow_lines) == 1 and "no complete PROXY protocol header" in slow_lines[0]
    assert "(10 bytes received)" in slow_lines[0]
    assert len(silent_lines) == 1 and "(0 bytes received)" in silent_lines[0]


async def test_a_connection_closed_without_a_byte_is_only_a_debug_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="tricorn.error")
    scopes: list[Scope] = []
    logged = LineWaiter("closed before sending anything")
    logging.getLogger("tricorn.error").addHandler(logged)
    try:
        async with serving(recorder(scopes), **proxy_settings()) as server:
            stream = await connect(server)
            port = local_port(stream)
            await stream.aclose()  # a TCP health check
            await _bystander_is_served(server, scopes)
            with anyio.fail_after(5):
                await logged.seen.wait()
    finally:
        logging.getLogger("tricorn.error").removeHandler(logged)
    assert warnings_about(caplog, port) == []
    assert any(
        record.levelno == logging.DEBUG and "closed before sending anything" in record.getMessage()
        for record in caplog.records
    )


async def test_a_peer_not_allowed_is_served_as_a_direct_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tricorn.error")
    scopes: list[Scope] = []
    settings = proxy_settings(proxy_protocol_allow_ips=["10.0.0.0/8"])
    async with serving(recorder(scopes), **settings) as server:
        stream = await connect(server)
        async with stream:
            assert (await get(stream)).endswith(b"ok")
            assert (await get(stream)).endswith(b"ok")
            port = local_port(stream)
        # h2 with prior knowledge: its preface begins with "P" too.
        stream = await connect(server)
        async with stream:
            assert await h2_get(stream, scheme="http") == 200
        # A PROXY header from it is refused: it may not say who the client is.
        liar = await connect(server)
        async with liar:
            await liar.send(V1 + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert await read_until_closed(liar) == b""
            lines = warnings_about(caplog, local_port(liar))
    assert [scope["client"] for scope in scopes[:2]] == [("127.0.0.1", port)] * 2
    assert len(scopes) == 3 and scopes[2]["http_version"] == "2"
    assert "tricorn.proxy_protocol" not in scopes[0]["extensions"]
    assert len(lines) == 1 and "not in proxy_protocol_allow_ips" in lines[0]


async def test_a_peer_not_allowed_is_served_over_tls_too(certificates: Certificates) -> None:
    scopes: list[Scope] = []
    settings = proxy_settings(
        proxy_protocol_allow_ips=["10.0.0.0/8"],
        certfile=str(certificates.certfile),
        keyfile=str(certificates.keyfile),
    )
    async with serving(recorder(scopes), **settings) as server:
        stream = await anyio.connect_tcp(
            server.host,
            server.port,
            ssl_context=certificates.client_context(["http/1.1"]),
            tls_standard_compatible=False,
        )
        async with stream:
            assert (await get(stream)).endswith(b"ok")
    assert scopes[0]["client"][0] == "127.0.0.1" and scopes[0]["scheme"] == "https"


# --- the scheme without any proxy --------------------------------------------------------


async def test_h2c_scope_scheme_is_http_whatever_the_pseudo_header_says() -> None:
    scopes: list[Scope] = []
    async with serving(recorder(scopes)) as server:
        for scheme in ("https", "http"):
            stream = await connect(server)
            async with stream:
                assert await h2_get(stream, scheme=scheme) == 200
    assert [scope["scheme"] for scope in scopes] == ["http", "http"]


async def test_h2_over_tls_scope_scheme_is_https_whatever_the_pseudo_header_says(
    certificates: Certificates,
) -> None:
    scopes: list[Scope] = []
    settings = certificates.settings()
    async with serving(recorder(scopes), **settings) as server:
        stream = await anyio.connect_tcp(
            server.host,
            server.port,
            ssl_context=certificates.client_context(["h2"]),
            tls_standard_compatible=False,
        )
        async with stream:
            assert await h2_get(stream, scheme="http") == 200
    assert scopes[0]["scheme"] == "https"
