"""The WebSocket protocol: handshake validation, frames, close handshake, limits, compression.

A wsproto client produces and parses the frames; raw frames are built by hand where a client
library would refuse to misbehave.
"""

from __future__ import annotations

import gc
import tracemalloc
import zlib

import h11
import pytest
from wsproto.connection import Connection, ConnectionType
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.events import Event as WsEvent
from wsproto.events import Request as WsRequest
from wsproto.extensions import PerMessageDeflate
from wsproto.handshake import H11Handshake

from tricorn.errors import LocalProtocolError
from tricorn.protocols.events import ConnectionClosed, Event, Headers, ProtocolError, Request
from tricorn.protocols.websocket import (
    CloseReceived,
    DeflateParameters,
    ExtensionOffer,
    HandshakeError,
    Message,
    PongReceived,
    WebSocketProtocol,
    WebSocketRequestInfo,
    WebSocketState,
    accept_headers,
    accept_key,
    negotiate_deflate,
    parse_extension_offers,
    parse_upgrade_request,
)

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
TEXT, BINARY, CLOSE, PING, PONG, CONTINUATION = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0


# --- helpers -------------------------------------------------------------------------------


def upgrade_request(*extra: tuple[bytes, bytes], drop: bytes = b"") -> Request:
    headers: Headers = [
        (b"host", b"example.com"),
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-key", KEY),
        (b"sec-websocket-version", b"13"),
    ]
    headers = [(name, value) for name, value in headers if name != drop]
    return Request(1, b"GET", b"/chat", [*headers, *extra], "1.1")


def connect_request(*extra: tuple[bytes, bytes], version: bytes | None = b"13") -> Request:
    headers: Headers = [(b"host", b"example.com"), *extra]
    if version is not None:
        headers.append((b"sec-websocket-version", version))
    return Request(3, b"CONNECT", b"/chat", headers, "2", scheme=b"https", protocol=b"websocket")


def mask(payload: bytes, key: bytes = b"\x37\xfa\x21\x3d") -> bytes:
    if not payload:
        return payload
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    value = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return value.to_bytes(len(payload), "big")


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv1: bool = False,
    masked: bool = True,
    length: int | None = None,
) -> bytes:
    """A client frame built by hand; ``length`` overrides the declared payload length."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    size = len(payload) if length is None else length
    mask_bit = 0x80 if masked else 0
    if size < 126:
        header = bytes((first, mask_bit | size))
    elif size < 65536:
        header = bytes((first, mask_bit | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((first, mask_bit | 127)) + size.to_bytes(8, "big")
    if not masked:
        return header + payload
    key = b"\x37\xfa\x21\x3d"
    return header + key + mask(payload, key)


def client(deflate: DeflateParameters | None = None) -> Connection:
    """A wsproto client whose extensions match what the server negotiated."""
    if deflate is None:
        return Connection(ConnectionType.CLIENT)
    extension = PerMessageDeflate()
    extension.finalize(deflate.header_value().decode())
    return Connection(ConnectionType.CLIENT, [extension])


def to_client(ws: WebSocketProtocol, peer: Connection) -> list[WsEvent]:
    peer.receive_data(ws.data_to_send())
    return list(peer.events())


def close_frame(code: int, reason: bytes = b"") -> bytes:
    return frame(CLOSE, code.to_bytes(2, "big") + reason)


def assert_failed(ws: WebSocketProtocol, events: list[Event], code: int) -> None:
    assert len(events) == 1
    assert isinstance(events[0], ProtocolError)
    assert events[0].error_code == code
    assert ws.state is WebSocketState.FAILING and not ws.closed  # replies may still go out
    ws.close(1000)  # the close frame carries the error's code, whatever the server asks
    assert ws.closed
    sent = [event for event in to_client(ws, client()) if not isinstance(event, Pong)]
    assert len(sent) == 1 and isinstance(sent[0], CloseConnection)
    assert sent[0].code == code


# --- opening handshake ------------------------------------------------------------------


def test_accept_key_is_the_rfc_6455_example() -> None:
    assert accept_key(KEY) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_a_valid_upgrade_request_is_parsed() -> None:
    info = parse_upgrade_request(
        upgrade_request(
            (b"sec-websocket-protocol", b"chat, superchat"),
            (b"sec-websocket-protocol", b" v2.json "),
            (b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits, foo"),
        )
    )
    assert info.http_version == "1.1"
    assert info.key == KEY
    assert info.subprotocols == ("chat", "superchat", "v2.json")
    assert info.extensions == (
        ExtensionOffer("permessage-deflate", (("client_max_window_bits", None),)),
        ExtensionOffer("foo"),
    )


def test_upgrade_and_connection_are_token_lists_compared_without_case() -> None:
    request = upgrade_request(drop=b"connection")
    request.headers.append((b"connection", b"keep-alive, UPGRADE"))
    request.headers[1] = (b"upgrade", b"WebSocket")
    assert parse_upgrade_request(request).key == KEY


@pytest.mark.parametrize(
    "request_",
    [
        Request(1, b"POST", b"/", upgrade_request().headers, "1.1"),
        Request(1, b"GET", b"/", upgrade_request().headers, "1.0"),
        upgrade_request(drop=b"host"),
        upgrade_request(drop=b"upgrade"),
        upgrade_request(drop=b"connection"),
        upgrade_request((b"connection", b"keep-alive"), drop=b"connection"),
        upgrade_request(drop=b"sec-websocket-key"),
        upgrade_request((b"sec-websocket-key", KEY)),  # two keys
        upgrade_request((b"sec-websocket-key", b"c2hvcnQ="), drop=b"sec-websocket-key"),
        upgrade_request(
            (b"sec-websocket-key", b"not base64 at all!!!!!=="), drop=b"sec-websocket-key"
        ),
        upgrade_request(
            (b"sec-websocket-protocol", b"chat, bad proto"),
        ),
    ],
    ids=[
        "post",
        "http-1.0",
        "no-host",
        "no-upgrade",
        "no-connection",
        "connection-without-upgrade",
        "no-key",
        "two-keys",
        "short-key",
        "key-not-base64",
        "bad-subprotocol",
    ],
)
def test_a_malformed_handshake_is_answered_with_400(request_: Request) -> None:
    with pytest.raises(HandshakeError) as caught:
        parse_upgrade_request(request_)
    assert caught.value.status == 400


def test_a_missing_version_is_400_naming_version_13() -> None:
    with pytest.raises(HandshakeError) as caught:
        parse_upgrade_request(upgrade_request(drop=b"sec-websocket-version"))
    assert caught.value.status == 400
    assert caught.value.headers == [(b"sec-websocket-version", b"13")]


def test_an_unsupported_version_is_426_naming_version_13() -> None:
    request = upgrade_request((b"sec-websocket-version", b"8"), drop=b"sec-websocket-version")
    with pytest.raises(HandshakeError) as caught:
        parse_upgrade_request(request)
    assert caught.value.status == 426
    assert (b"sec-websocket-version", b"13") in caught.value.headers
    assert (b"upgrade", b"websocket") in caught.value.headers


def test_the_101_response_carries_the_accept_key_and_the_chosen_subprotocol() -> None:
    info = parse_upgrade_request(upgrade_request((b"sec-websocket-protocol", b"chat, v2")))
    status, headers, deflate = accept_headers(info, "v2", [(b"x-served-by", b"tricorn")])
    assert status == 101
    assert headers == [
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-accept", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        (b"sec-websocket-protocol", b"v2"),
        (b"x-served-by", b"tricorn"),
    ]
    assert deflate is None


def test_a_subprotocol_the_client_did_not_offer_is_refused() -> None:
    info = parse_upgrade_request(upgrade_request((b"sec-websocket-protocol", b"chat")))
    with pytest.raises(LocalProtocolError, match="not offered"):
        accept_headers(info, "graphql-ws")


@pytest.mark.parametrize(
    "name", [b"sec-websocket-accept", b"Sec-WebSocket-Protocol", b"upgrade", b"connection"]
)
def test_app_headers_may_not_override_the_handshake(name: bytes) -> None:
    info = parse_upgrade_request(upgrade_request())
    with pytest.raises(LocalProtocolError):
        accept_headers(info, None, [(name, b"x")])


def test_wsproto_client_accepts_the_handshake_and_negotiates_compression() -> None:
    handshake = H11Handshake(ConnectionType.CLIENT)
    request_bytes = handshake.send(
        WsRequest(
            host="example.com",
            target="/chat",
            subprotocols=["chat"],
            extensions=[PerMessageDeflate()],
        )
    )
    server = h11.Connection(h11.SERVER)
    server.receive_data(request_bytes)
    head = server.next_event()
    assert isinstance(head, h11.Request)
    request = Request(1, head.method, head.target, list(head.headers), "1.1")
    info = parse_upgrade_request(request)
    status, headers, deflate = accept_headers(info, "chat")
    assert deflate is not None
    response = server.send(h11.InformationalResponse(status_code=status, headers=headers))
    assert response is not None
    handshake.receive_data(response)
    accepted = list(handshake.events())
    assert len(accepted) == 1 and isinstance(accepted[0], AcceptConnection)
    assert accepted[0].subprotocol == "chat"
    peer = handshake.connection
    assert peer is not None

    ws = WebSocketProtocol(deflate=deflate)
    payload = "compress me " * 100
    sent = peer.send(TextMessage(payload))
    assert sent[0] & 0x40  # the client compressed it
    assert ws.receive_data(sent) == [Message(payload)]
    ws.send_message(payload)
    assert to_client(ws, peer) == [TextMessage(payload)]


def test_http2_extended_connect_is_accepted_with_200_and_no_key() -> None:
    info = parse_upgrade_request(
        connect_request(
            (b"sec-websocket-protocol", b"chat"),
            (b"sec-websocket-extensions", b"permessage-deflate"),
        )
    )
    assert info == WebSocketRequestInfo(
        "2", None, ("chat",), (ExtensionOffer("permessage-deflate"),)
    )
    status, headers, deflate = accept_headers(info, "chat")
    assert status == 200
    assert headers == [
        (b"sec-websocket-protocol", b"chat"),
        (b"sec-websocket-extensions", b"permessage-deflate"),
    ]
    assert deflate == DeflateParameters()


@pytest.mark.parametrize(
    ("request_", "headers"),
    [
        (connect_request(version=b"8"), [(b"sec-websocket-version", b"13")]),
        (connect_request(version=None), [(b"sec-websocket-version", b"13")]),
        (Request(3, b"GET", b"/", [(b"sec-websocket-version", b"13")], "2"), []),
        (
            Request(3, b"CONNECT", b"/", [(b"sec-websocket-version", b"13")], "2", protocol=b"x"),
            [],
        ),
    ],
    ids=["version-8", "no-version", "not-connect", "other-protocol"],
)
def test_a_bad_http2_websocket_request_is_400(request_: Request, headers: Headers) -> None:
    with pytest.raises(HandshakeError) as caught:
        parse_upgrade_request(request_)
    assert caught.value.status == 400
    assert caught.value.headers == headers


# --- permessage-deflate negotiation ----------------------------------------------------------


def offers(value: bytes) -> tuple[ExtensionOffer, ...]:
    return parse_extension_offers([value])


def test_extension_offers_parse_quoted_values_and_skip_malformed_elements() -> None:
    parsed = offers(
        b'permessage-deflate; client_max_window_bits="10"; server_no_context_takeover,'
        b' x-quoted; a="b\\c", x-not-a-token; a="b,c", bad element, permessage-deflate'
    )
    assert parsed == (
        ExtensionOffer(
            "permessage-deflate",
            (("client_max_window_bits", "10"), ("server_no_context_takeover", None)),
        ),
        ExtensionOffer("x-quoted", (("a", "bc"),)),
        ExtensionOffer("permessage-deflate"),
    )


@pytest.mark.parametrize(
    ("offer", "response"),
    [
        (b"permessage-deflate", b"permessage-deflate"),
        (b"permessage-deflate; client_max_window_bits", b"permessage-deflate"),
        (
            b"permessage-deflate; client_max_window_bits=10; server_max_window_bits=12",
            b"permessage-deflate; server_max_window_bits=12; client_max_window_bits=10",
        ),
        (
            b"permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            b"permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ),
        # Declined offers fall through to the next one.
        (
            b"permessage-deflate; server_max_window_bits=8, permessage-deflate",
            b"permessage-deflate",
        ),
        (b"permessage-deflate; unknown=1, permessage-deflate", b"permessage-deflate"),
        (
            b"permessage-deflate; server_no_context_takeover; server_no_context_takeover,"
            b" permessage-deflate",
            b"permessage-deflate",
        ),
        (b"permessage-deflate; client_max_window_bits=16", None),
        (b"permessage-deflate; server_max_window_bits", None),
        (b"permessage-deflate; server_no_context_takeover=1", None),
        (b"x-webkit-deflate-frame", None),
    ],
)
def test_permessage_deflate_negotiation(offer: bytes, response: bytes | None) -> None:
    negotiated = negotiate_deflate(offers(offer))
    assert (negotiated.header_value() if negotiated else None) == response


def test_compression_off_negotiates_nothing() -> None:
    info = parse_upgrade_request(
        upgrade_request((b"sec-websocket-extensions", b"permessage-deflate"))
    )
    _, headers, deflate = accept_headers(info, compression=False)
    assert deflate is None
    assert all(name != b"sec-websocket-extensions" for name, _ in headers)


# --- messages ------------------------------------------------------------------------------


def test_text_and_binary_messages_are_received_and_sent() -> None:
    ws, peer = WebSocketProtocol(), client()
    data = peer.send(TextMessage("héllo")) + peer.send(BytesMessage(b"\x00\xff"))
    assert ws.receive_data(data) == [Message("héllo"), Message(b"\x00\xff")]
    ws.send_message("réponse")
    ws.send_message(b"\x01" * 70000)  # a 64-bit length
    ws.send_message(bytearray(b"\x02" * 300))  # a 16-bit length; bytes-like is binary
    assert ws.pending_output_size > 70300
    assert to_client(ws, peer) == [
        TextMessage("réponse"),
        BytesMessage(b"\x01" * 70000),
        BytesMessage(b"\x02" * 300),
    ]
    assert ws.pending_output_size == 0
    assert ws.data_to_send() == b""


def test_fragments_are_reassembled_and_control_frames_between_them_are_handled() -> None:
    ws, peer = WebSocketProtocol(), client()
    euro = "€".encode()
    data = (
        frame(TEXT, b"caf" + euro[:1], fin=False)  # a character split across frames
        + frame(PING, b"keepalive")
        + frame(CONTINUATION, euro[1:], fin=False)
        + frame(PONG, b"p")
        + frame(CONTINUATION, b"!")
        + frame(BINARY, b"a", fin=False)
        + frame(CONTINUATION, b"")
    )
    assert ws.receive_data(data) == [PongReceived(b"p"), Message("caf€!"), Message(b"a")]
    assert to_client(ws, peer) == [Pong(b"keepalive")]


def test_a_message_fed_one_byte_at_a_time_is_reassembled() -> None:
    ws, peer = WebSocketProtocol(max_fragments=3), client()
    data = (
        peer.send(TextMessage("ab" * 100, message_finished=False))
        + peer.send(TextMessage("cd", message_finished=False))
        + peer.send(TextMessage("é"))
    )
    events: list[Event] = []
    for index in range(len(data)):
        events += ws.receive_data(data[index : index + 1])
    assert events == [Message("ab" * 100 + "cdé")]


def test_invalid_utf8_closes_with_1007() -> None:
    ws = WebSocketProtocol()
    assert_failed(ws, ws.receive_data(frame(TEXT, b"\xce\xba\xff")), 1007)


def test_invalid_utf8_fails_fast_before_the_message_ends() -> None:
    ws = WebSocketProtocol()
    events = ws.receive_data(
        frame(TEXT, b"ok", fin=False) + frame(CONTINUATION, b"\xed\xa0\x80", fin=False)
    )
    assert_failed(ws, events, 1007)


@pytest.mark.parametrize(
    "data",
    [
        frame(TEXT, b"hi", masked=False),
        frame(0x3, b""),
        frame(0xB, b""),
        frame(TEXT, b"hi", rsv1=True),
        frame(CONTINUATION, b"orphan"),
        frame(TEXT, b"a", fin=False) + frame(BINARY, b"b"),
        frame(PING, b"", fin=False),
        frame(PING, b"x" * 126),
        frame(CLOSE, b"\x03"),
        bytes((0x81, 0x80 | 126)) + (5).to_bytes(2, "big") + b"\x00" * 9,
    ],
    ids=[
        "unmasked",
        "reserved-opcode",
        "reserved-control-opcode",
        "rsv1-without-extension",
        "continuation-without-start",
        "new-message-inside-fragmented-one",
        "fragmented-control",
        "long-control",
        "one-byte-close",
        "non-minimal-length",
    ],
)
def test_protocol_violations_close_with_1002(data: bytes) -> None:
    ws = WebSocketProtocol()
    assert_failed(ws, ws.receive_data(data), 1002)


def test_a_protocol_error_after_valid_messages_still_delivers_them() -> None:
    ws = WebSocketProtocol()
    events = ws.receive_data(frame(TEXT, b"first") + frame(0x3))
    assert events[0] == Message("first")
    assert isinstance(events[1], ProtocolError) and events[1].error_code == 1002
    assert ws.receive_data(frame(TEXT, b"ignored")) == []


# --- closing handshake ---------------------------------------------------------------------


def test_client_initiated_close_is_answered_with_the_same_code() -> None:
    ws, peer = WebSocketProtocol(), client()
    events = ws.receive_data(peer.send(CloseConnection(1000, "bye")))
    assert events == [CloseReceived(1000, "bye")]
    assert ws.state is WebSocketState.CLOSED and ws.closed
    assert to_client(ws, peer) == [CloseConnection(1000, "")]
    assert ws.receive_data(frame(TEXT, b"late")) == []
    assert ws.receive_data(b"") == []


def test_a_close_without_code_is_1005_and_answered_without_code() -> None:
    ws = WebSocketProtocol()
    assert ws.receive_data(frame(CLOSE)) == [CloseReceived(1005, "")]
    assert ws.data_to_send() == b"\x88\x00"


def test_server_initiated_close_completes_when_the_peer_answers() -> None:
    ws, peer = WebSocketProtocol(), client()
    ws.close(1001, "going away")
    assert ws.state is WebSocketState.CLOSING and not ws.closed
    assert to_client(ws, peer) == [CloseConnection(1001, "going away")]
    ws.close(1000)  # idempotent
    ws.ping(b"x")  # nothing is sent after a close frame
    assert ws.data_to_send() == b""
    with pytest.raises(LocalProtocolError):
        ws.send_message("too late")
    # Messages the peer sent before it saw our close still arrive.
    reply = peer.send(CloseConnection(1001, ""))
    events = ws.receive_data(frame(TEXT, b"in flight") + frame(PING, b"p") + reply)
    assert events == [Message("in flight"), CloseReceived(1001, "")]
    assert ws.closed
    assert ws.data_to_send() == b""  # no pong, no second close


def test_the_transport_ending_without_close_is_1006() -> None:
    ws = WebSocketProtocol()
    assert ws.receive_data(frame(TEXT, b"partial", fin=False)) == []
    assert ws.receive_data(b"") == [ConnectionClosed(error_code=1006)]
    assert ws.closed
    assert ws.data_to_send() == b""


def test_the_transport_ending_after_our_close_is_1006() -> None:
    ws = WebSocketProtocol()
    ws.close()
    ws.data_to_send()
    assert ws.receive_data(b"") == [ConnectionClosed(error_code=1006)]


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1011, 1012, 1013, 3000, 4999])
def test_valid_close_codes_are_sent(code: int) -> None:
    ws, peer = WebSocketProtocol(), client()
    ws.close(code)
    assert to_client(ws, peer) == [CloseConnection(code, "")]


def test_close_1005_sends_a_close_frame_without_code() -> None:
    ws = WebSocketProtocol()
    ws.close(1005)
    assert ws.data_to_send() == b"\x88\x00"


@pytest.mark.parametrize("code", [999, 1004, 1006, 1015, 1016, 2999, 5000])
def test_close_codes_that_may_not_go_on_the_wire_are_refused(code: int) -> None:
    ws = WebSocketProtocol()
    with pytest.raises(LocalProtocolError):
        ws.close(code)
    assert ws.state is WebSocketState.OPEN


def test_a_long_close_reason_is_cut_at_a_character_boundary() -> None:
    ws, peer = WebSocketProtocol(), client()
    ws.close(1000, "é" * 100)  # 200 bytes of UTF-8
    sent = to_client(ws, peer)
    assert sent == [CloseConnection(1000, "é" * 61)]  # 2 + 122 bytes <= 125


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000])
def test_invalid_close_codes_from_the_peer_close_with_1002(code: int) -> None:
    ws = WebSocketProtocol()
    assert_failed(ws, ws.receive_data(close_frame(code)), 1002)


def test_a_close_reason_with_invalid_utf8_closes_with_1007() -> None:
    ws = WebSocketProtocol()
    assert_failed(ws, ws.receive_data(close_frame(1000, b"\xff")), 1007)


# --- pings ---------------------------------------------------------------------------------


def test_pings_are_answered_and_pongs_reported() -> None:
    ws, peer = WebSocketProtocol(), client()
    assert ws.receive_data(peer.send(Ping(b"are you there"))) == []
    assert to_client(ws, peer) == [Pong(b"are you there")]
    ws.ping(b"keepalive")
    assert to_client(ws, peer) == [Ping(b"keepalive")]
    assert ws.receive_data(peer.send(Pong(b"keepalive"))) == [PongReceived(b"keepalive")]
    with pytest.raises(LocalProtocolError):
        ws.ping(b"x" * 126)


def test_a_ping_flood_queues_a_bounded_number_of_pongs_newest_first_kept() -> None:
    ws, peer = WebSocketProtocol(), client()
    flood = b"".join(frame(PING, str(index).encode()) for index in range(10000))
    assert ws.receive_data(flood) == []
    assert ws.pending_output_size <= 16 * 127
    pongs = to_client(ws, peer)
    assert len(pongs) == 16
    assert pongs[-1] == Pong(b"9999")


def test_pongs_are_written_before_the_close_reply() -> None:
    ws, peer = WebSocketProtocol(), client()
    ws.receive_data(frame(PING, b"1") + close_frame(1000))
    assert to_client(ws, peer) == [Pong(b"1"), CloseConnection(1000, "")]


def test_send_message_now_gives_what_send_message_and_data_to_send_would() -> None:
    """Queued pongs first, then the message; a big payload is its own chunk, uncopied."""
    ws, peer = WebSocketProtocol(), client()
    ws.receive_data(frame(PING, b"1"))
    peer.receive_data(b"".join(ws.send_message_now(b"after the pong")))
    assert list(peer.events()) == [Pong(b"1"), BytesMessage(b"after the pong", True, True)]
    peer.receive_data(b"".join(ws.send_message_now("text")))
    assert list(peer.events()) == [TextMessage("text", True, True)]
    big = bytes(range(256)) * 256
    chunks = ws.send_message_now(big)
    assert chunks[-1] is big  # not copied behind its header
    peer.receive_data(b"".join(chunks))
    assert list(peer.events()) == [BytesMessage(big, True, True)]
    assert ws.pending_output_size == 0 and ws.data_to_send() == b""


# --- limits --------------------------------------------------------------------------------


def test_a_message_of_exactly_the_maximum_size_is_accepted() -> None:
    ws = WebSocketProtocol(max_message_size=1000)
    assert ws.receive_data(frame(BINARY, b"x" * 1000)) == [Message(b"x" * 1000)]


def test_a_frame_declaring_too_much_is_refused_before_its_payload_arrives() -> None:
    ws = WebSocketProtocol(max_message_size=1000)
    header = frame(BINARY, length=2**40)
    assert_failed(ws, ws.receive_data(header), 1009)


def test_a_fragmented_message_over_the_limit_is_refused_before_it_ends() -> None:
    ws = WebSocketProtocol(max_message_size=1000)
    events = ws.receive_data(frame(TEXT, b"x" * 600, fin=False))
    assert events == []
    assert_failed(ws, ws.receive_data(frame(CONTINUATION, b"x" * 401, fin=False)), 1009)


def test_the_size_limit_counts_utf8_bytes_not_characters() -> None:
    ws = WebSocketProtocol(max_message_size=10)
    assert_failed(ws, ws.receive_data(frame(TEXT, "é".encode() * 6)), 1009)


def test_the_limit_applies_per_message() -> None:
    ws = WebSocketProtocol(max_message_size=10, max_fragments=2)
    data = b"".join(
        frame(TEXT, b"x" * 5, fin=False) + frame(CONTINUATION, b"y" * 5) for _ in range(3)
    )
    assert ws.receive_data(data) == [Message("xxxxxyyyyy")] * 3


def test_too_many_fragments_close_with_1008() -> None:
    ws = WebSocketProtocol(max_fragments=3)
    data = frame(BINARY, b"", fin=False) + frame(PING) + frame(CONTINUATION, fin=False) * 3
    assert_failed(ws, ws.receive_data(data), 1008)


def test_an_empty_final_continuation_frame_is_not_counted() -> None:
    """websockets and Autobahn end a fragmented message with an empty final frame: N
    fragments are N + 1 frames and fit a limit of N."""
    ws = WebSocketProtocol(max_fragments=3)
    data = (
        frame(BINARY, b"a", fin=False)
        + frame(CONTINUATION, b"b", fin=False)
        + frame(CONTINUATION, b"c", fin=False)
        + frame(CONTINUATION)
    )
    assert ws.receive_data(data) == [Message(b"abc")]
    ws.receive_data(frame(TEXT, b"", fin=False) + frame(CONTINUATION, b"", fin=False) * 2)
    assert ws.receive_data(frame(CONTINUATION)) == [Message("")]


def test_empty_frames_that_do_not_end_the_message_are_counted() -> None:
    ws = WebSocketProtocol(max_fragments=3)
    data = frame(BINARY, b"a", fin=False) + frame(CONTINUATION, fin=False) * 3
    assert_failed(ws, ws.receive_data(data), 1008)


@pytest.mark.parametrize("fragments", [4, 5])
def test_the_fragment_count_does_not_depend_on_how_the_bytes_are_chunked(fragments: int) -> None:
    """Whole, one byte at a time, or split at every frame boundary: the same verdict."""
    data = (
        frame(BINARY, b"0", fin=False)
        + b"".join(frame(CONTINUATION, b"%d" % i, fin=False) for i in range(1, fragments - 1))
        + frame(CONTINUATION, b"!")
        + frame(CONTINUATION)  # a new message's continuation: 1002 if the first one ended
    )
    verdicts = []
    for size in (len(data), 1, 2, 3, 7):
        ws = WebSocketProtocol(max_fragments=4)
        events: list[Event] = []
        for index in range(0, len(data), size):
            events += ws.receive_data(data[index : index + size])
        verdicts.append(
            [event.error_code if isinstance(event, ProtocolError) else event for event in events]
        )
    assert all(verdict == verdicts[0] for verdict in verdicts)
    if fragments == 4:
        assert verdicts[0] == [Message(b"012!"), 1002]
    else:
        assert verdicts[0] == [1008]


def test_a_fragmented_text_message_costs_no_object_per_fragment() -> None:
    """Text fragments are kept as one growing UTF-8 buffer, not one string each (8191
    two-character strings in a list would hold about 490 kB)."""
    ws = WebSocketProtocol()
    data = frame(TEXT, b"a", fin=False) + frame(CONTINUATION, b"bc", fin=False) * 8190
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        assert ws.receive_data(data) == []
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 100_000, f"{held} bytes held for 8191 two-byte fragments"
    assert ws.receive_data(frame(CONTINUATION)) == [Message("a" + "bc" * 8190)]


def test_after_a_protocol_error_replies_go_out_before_the_close() -> None:
    """FAILING: nothing more is read, the server may still send (its replies to what came
    before the error), and close() sends the close frame with the error's code."""
    ws, peer = WebSocketProtocol(), client()
    events = ws.receive_data(
        frame(PING, b"before") + frame(TEXT, b"valid") + frame(0x3) + frame(PING, b"after")
    )
    assert events[0] == Message("valid")
    assert isinstance(events[1], ProtocolError) and events[1].error_code == 1002
    assert ws.state is WebSocketState.FAILING
    assert ws.receive_data(frame(TEXT, b"more")) == []
    ws.ping(b"keepalive")  # nothing: the WebSocket is failing
    ws.send_message("valid")  # the echo
    ws.close(1000)
    assert ws.closed
    sent = to_client(ws, peer)
    assert sent[:2] == [Pong(b"before"), TextMessage("valid")]
    assert isinstance(sent[2], CloseConnection) and sent[2].code == 1002
    assert len(sent) == 3
    with pytest.raises(LocalProtocolError):
        ws.send_message("too late")


def test_a_protocol_error_after_our_close_ends_the_websocket() -> None:
    ws = WebSocketProtocol()
    ws.close(1000)
    ws.data_to_send()
    events = ws.receive_data(frame(0x3))
    assert isinstance(events[0], ProtocolError)
    assert ws.closed
    assert ws.data_to_send() == b""  # our close frame went already


# --- permessage-deflate ----------------------------------------------------------------------


def deflated(payload: bytes) -> bytes:
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return data[:-4]


@pytest.mark.parametrize("level", [0, 1, 9, -1])
def test_the_compression_level_is_used(level: int) -> None:
    deflate = DeflateParameters()
    ws, peer = WebSocketProtocol(deflate=deflate, compression_level=level), client(deflate)
    message = ("the quick brown fox jumps over the lazy dog %d " * 400) % tuple(range(400))
    ws.send_message(message)
    sent = ws.data_to_send()
    expected = zlib.compressobj(level, zlib.DEFLATED, -15)
    body = expected.compress(message.encode()) + expected.flush(zlib.Z_SYNC_FLUSH)
    assert sent.endswith(body[:-4])
    peer.receive_data(sent)
    assert [event.data for event in peer.events()] == [message]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "deflate",
    [
        DeflateParameters(),
        DeflateParameters(True, True),
        DeflateParameters(server_max_window_bits=9, client_max_window_bits=9),
    ],
    ids=["context-takeover", "no-context-takeover", "small-windows"],
)
def test_compressed_messages_round_trip(deflate: DeflateParameters) -> None:
    ws, peer = WebSocketProtocol(deflate=deflate), client(deflate)
    messages: list[str | bytes] = ["tiny", "hello world " * 500, b"\x00" * 100000, "é" * 3000]
    for message in messages * 2:
        kind = TextMessage if isinstance(message, str) else BytesMessage
        assert ws.receive_data(peer.send(kind(message))) == [Message(message)]  # type: ignore[arg-type]
        ws.send_message(message)
        assert [event.data for event in to_client(ws, peer)] == [message]  # type: ignore[attr-defined]


def test_large_messages_are_sent_compressed_and_small_ones_not() -> None:
    ws = WebSocketProtocol(deflate=DeflateParameters())
    ws.send_message("a")
    assert ws.data_to_send() == b"\x81\x01a"
    ws.send_message("a" * 1000)
    sent = ws.data_to_send()
    assert sent[0] == 0xC1  # FIN + RSV1 + text
    assert len(sent) < 100


def test_a_fragmented_compressed_message_is_reassembled() -> None:
    ws = WebSocketProtocol(deflate=DeflateParameters())
    body = deflated(b"fragmented " * 50)
    data = (
        frame(TEXT, body[:5], fin=False, rsv1=True)
        + frame(PING)
        + frame(CONTINUATION, body[5:], fin=True)
    )
    assert ws.receive_data(data) == [Message("fragmented " * 50)]


def test_rsv1_on_a_continuation_frame_closes_with_1002() -> None:
    ws = WebSocketProtocol(deflate=DeflateParameters())
    data = frame(TEXT, b"", fin=False, rsv1=True) + frame(CONTINUATION, b"", rsv1=True)
    assert_failed(ws, ws.receive_data(data), 1002)


def test_rsv1_on_a_control_frame_closes_with_1002() -> None:
    ws = WebSocketProtocol(deflate=DeflateParameters())
    assert_failed(ws, ws.receive_data(frame(PING, rsv1=True)), 1002)


def test_corrupt_deflate_data_closes_with_1007() -> None:
    ws = WebSocketProtocol(deflate=DeflateParameters())
    assert_failed(ws, ws.receive_data(frame(BINARY, b"\xff\xff\xff\xff", rsv1=True)), 1007)


def test_a_compressed_message_over_the_limit_is_refused() -> None:
    ws = WebSocketProtocol(deflate=DeflateParameters(), max_message_size=1000)
    body = deflated(b"x" * 1001)
    assert_failed(
        ws,
        ws.receive_data(
            frame(BINARY, body[:3], fin=False, rsv1=True) + frame(CONTINUATION, body[3:])
        ),
        1009,
    )


def test_a_compressed_message_at_the_limit_is_accepted() -> None:
    ws = WebSocketProtocol(deflate=DeflateParameters(), max_message_size=1000)
    assert ws.receive_data(frame(BINARY, deflated(b"x" * 1000), rsv1=True)) == [
        Message(b"x" * 1000)
    ]


def test_a_compression_bomb_is_refused_without_inflating_it() -> None:
    # 1 GiB of zeros deflates to about 1 MiB. A full flush resets the compressor, so every
    # MiB of zeros compresses to the same bytes: deflate one MiB and repeat it.
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    one_mib = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    bomb = frame(BINARY, one_mib * 1024, rsv1=True)
    assert len(bomb) < 2 * 1024 * 1024
    inflater = zlib.decompressobj(-15)
    assert len(inflater.decompress(one_mib * 3)) == 3 << 20

    ws = WebSocketProtocol(deflate=DeflateParameters())  # the default 16 MiB limit
    gc.collect()
    tracemalloc.start()
    try:
        events = ws.receive_data(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_failed(ws, events, 1009)
    assert peak < 64 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"


# --- unmasking with websockets' C function -------------------------------------------------


def test_the_c_masker_is_in_use_and_unmasks_like_wsproto_across_any_chunking() -> None:
    """A masked frame split at every offset mod 4 (and in odd pieces) unmasks to the same
    bytes with ``_CMasker`` as with wsproto's own masker: the key turns between chunks."""
    import random

    from wsproto.frame_protocol import XorMaskerSimple

    from tricorn.protocols import websocket

    assert websocket._c_apply_mask is not None  # the test environment has websockets
    rng = random.Random(7)
    for _ in range(200):
        key = rng.randbytes(4)
        data = rng.randbytes(rng.randrange(0, 3000))
        ours, theirs = websocket._CMasker(key), XorMaskerSimple(key)
        got, want = bytearray(), bytearray()
        offset = 0
        while offset < len(data):
            size = rng.randrange(1, 50)
            piece = bytearray(data[offset : offset + size])
            got += ours.process(piece)
            want += theirs.process(bytearray(piece))
            offset += size
        assert got == want


def test_a_large_binary_message_in_odd_pieces_arrives_whole() -> None:
    client = Connection(ConnectionType.CLIENT)
    payload = bytes(range(256)) * 300  # 76,800 bytes in one masked frame
    wire = client.send(BytesMessage(payload))
    protocol = WebSocketProtocol()
    events: list[Event] = []
    for start in range(0, len(wire), 1001):
        events += protocol.receive_data(wire[start : start + 1001])
    assert events == [Message(payload)]
