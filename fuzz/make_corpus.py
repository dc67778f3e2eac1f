"""Write the seed corpora: ``python -m fuzz.make_corpus`` (files in fuzz/corpus/TARGET/).

Each seed is ``one option byte + payload`` (see ``fuzz/harness.py``). The payloads are the
examples of the RFCs (RFC 9112's requests, RFC 7541 appendix C's HPACK blocks, RFC 6455's
frames), the shapes of our own tests (tests/unit: smuggling, chunk extensions, obs-fold,
limits) and valid conversations written by the reference clients (h2, wsproto). Beside them
the folders keep what the 30-minute runs found, minimized with libFuzzer's ``-merge=1``
(``python -m fuzz.run TARGET -merge=1 fuzz/corpus/TARGET .fuzz/TARGET/corpus``); the working
corpora under .fuzz/ (gitignored) are not committed.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent / "corpus"

# --- HTTP/1.1: RFC 9112 examples and the hostile shapes of tests/unit --------------------

HTTP11 = [
    b"GET /hello.txt HTTP/1.1\r\nUser-Agent: curl/7.64.1\r\nHost: www.example.com\r\n"
    b"Accept-Language: en, mi\r\n\r\n",  # RFC 9110 / 9112 examples
    b"GET http://www.example.org/pub/WWW/TheProject.html HTTP/1.1\r\nHost: www.example.org\r\n\r\n",
    b"CONNECT www.example.com:80 HTTP/1.1\r\nHost: www.example.com\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: www.example.org:8001\r\n\r\n",
    b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\n\r\n",
    b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",  # CL.TE
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n"
    b"0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 05\r\n\r\nhello",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n",  # obs-fold
    b"GET / HTTP/1.1\nHost: a\n\n",  # bare LF
    b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",  # whitespace before the colon
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"FFFFFFFFFFFFFFFFF\r\nx\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b'3;a="b;c"\r\nabc\r\n0\r\n\r\n',
    b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
    b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
    b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
    b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"G" * 40 + b" / HTTP/1.1\r\nHost: a\r\n\r\n",
]

# --- HTTP/2: conversations written by h2 as a client, and RFC 7541 appendix C blocks ------


def h2_conversations() -> list[bytes]:
    import h2.config
    import h2.connection
    import h2.settings

    out = []
    config = h2.config.H2Configuration(client_side=True)

    def client() -> h2.connection.H2Connection:
        connection = h2.connection.H2Connection(config=config)
        connection.initiate_connection()
        connection.data_to_send()  # the preface and SETTINGS: the harness sends them
        return connection

    get = [(":method", "GET"), (":path", "/"), (":scheme", "https"), (":authority", "a")]
    post = [
        (":method", "POST"),
        (":path", "/u"),
        (":scheme", "https"),
        (":authority", "a"),
        ("content-length", "5"),
    ]
    c = client()
    c.send_headers(1, get, end_stream=True)
    c.send_headers(3, get, end_stream=True)
    out.append(c.data_to_send())
    c = client()
    c.send_headers(1, post)
    c.send_data(1, b"hello", end_stream=True)
    c.ping(b"12345678")
    c.increment_flow_control_window(1000)
    out.append(c.data_to_send())
    c = client()
    c.send_headers(1, [*get[:1], (":path", "/t"), *get[2:], ("te", "trailers")])
    c.send_data(1, b"abc")
    c.send_headers(1, [("x-trailer", "1")], end_stream=True)
    out.append(c.data_to_send())
    c = client()
    c.send_headers(1, get)
    c.reset_stream(1)
    c.send_headers(3, get, end_stream=True, priority_weight=16, priority_depends_on=1)
    c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 100})
    out.append(c.data_to_send())
    c = client()  # RFC 8441 extended CONNECT
    c.send_headers(
        1,
        [
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":path", "/ws"),
            (":scheme", "https"),
            (":authority", "a"),
            ("sec-websocket-version", "13"),
        ],
    )
    c.send_data(1, b"\x81\x85\x00\x00\x00\x00hello")
    out.append(c.data_to_send())
    # Hand-made frames: padding, CONTINUATION, unknown type, GOAWAY, PRIORITY_UPDATE.
    out.append(
        _frame(1, 0x8 | 0x4 | 0x1, 1, b"\x02" + _C3[0] + b"\x00\x00")
        + _frame(0xFA, 0, 0, b"x")
        + _frame(16, 0, 0, b"\x00\x00\x00\x01u=1")
        + _frame(7, 0, 0, b"\x00\x00\x00\x00\x00\x00\x00\x00")
    )
    out.append(
        _frame(1, 0, 1, _C3[0][:5]) + _frame(9, 0, 1, _C3[0][5:10]) + _frame(9, 0x4, 1, _C3[0][10:])
    )
    out.append(_frame(4, 0, 0, struct.pack(">HL", 5, 0)))  # SETTINGS_MAX_FRAME_SIZE 0
    return out


def _frame(frame_type: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    length = len(payload)
    return struct.pack(">BHBBL", length >> 16, length & 0xFFFF, frame_type, flags, stream_id) + (
        payload
    )


# RFC 7541 C.3 (requests without Huffman) and C.4 (with Huffman): three blocks each, sent in
# order on one connection (the dynamic table carries over).
_C3 = [
    bytes.fromhex("828684410f7777772e6578616d706c652e636f6d"),
    bytes.fromhex("828684be58086e6f2d6361636865"),
    bytes.fromhex("828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565"),
]
_C4 = [
    bytes.fromhex("828684418cf1e3c2e5f23a6ba0ab90f4ff"),
    bytes.fromhex("828684be5886a8eb10649cbf"),
    bytes.fromhex("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"),
]
# RFC 7541 C.2: single representations.
_C2 = [
    bytes.fromhex("400a637573746f6d2d6b65790d637573746f6d2d686561646572"),
    bytes.fromhex("040c2f73616d706c652f70617468"),
    bytes.fromhex("100870617373776f726406736563726574"),
    bytes.fromhex("82"),
]


def hpack_blocks() -> list[bytes]:
    import hpack

    encoder = hpack.Encoder()
    ours = encoder.encode(
        [
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/"),
            (":authority", "example.com"),
            ("user-agent", "x"),
            ("cookie", "a=1"),
            ("cookie", "b=2"),
        ]
    )
    return [*_C3, *_C4, *(b"\x82\x86\x84\x41\x01a" + block for block in _C2), ours]


# --- WebSocket: RFC 6455 5.7 examples (masked, as a client sends them) --------------------


def _mask(frame_head: int, payload: bytes, key: bytes = b"\x37\xfa\x21\x3d") -> bytes:
    masked = bytes(byte ^ key[index % 4] for index, byte in enumerate(payload))
    length = len(payload)
    if length < 126:
        head = bytes([frame_head, 0x80 | length])
    elif length < 65536:
        head = bytes([frame_head, 0x80 | 126]) + struct.pack(">H", length)
    else:
        head = bytes([frame_head, 0x80 | 127]) + struct.pack(">Q", length)
    return head + key + masked


def _deflated(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


WEBSOCKET = [
    (0, _mask(0x81, b"Hello")),  # RFC 6455 5.7: a single-frame masked text message
    (0, _mask(0x01, b"Hel") + _mask(0x80, b"lo")),  # a fragmented unmasked... masked here
    (0, _mask(0x89, b"Hello") + _mask(0x8A, b"Hello")),  # ping, pong
    (0, _mask(0x82, bytes(256))),  # 256 bytes binary, 16-bit length
    (0, _mask(0x82, bytes(65536))[:20]),  # 64 KiB binary: the 64-bit length form (cut)
    (0, _mask(0x88, b"\x03\xe8bye")),  # close 1000
    (0, _mask(0x81, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5") + _mask(0x88, b"")),
    (0, _mask(0x01, b"\xce") + _mask(0x89, b"") + _mask(0x80, b"\xba")),
    (0, _mask(0x81, b"\xff")),  # invalid UTF-8
    (0, bytes([0x81, 0x05]) + b"Hello"),  # unmasked: 1002
    (1, _mask(0xC1, _deflated(b"Hello"))),  # RFC 7692 7.2.3.1
    (1, _mask(0x41, _deflated(b"Hel")[:3]) + _mask(0x80, _deflated(b"Hel")[3:])),
    (3, _mask(0xC1, _deflated(b"Hello")) + _mask(0xC1, _deflated(b"Hello"))),
    (0x11, _mask(0xC2, _deflated(bytes(5000)))),  # inflates past max_message_size 64
]


_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def _v2(command: int, family: int, body: bytes) -> bytes:
    return _V2_SIGNATURE + bytes([0x20 | command, family]) + len(body).to_bytes(2, "big") + body


def _tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + len(value).to_bytes(2, "big") + value


_IPV4 = bytes([192, 168, 0, 1, 192, 168, 0, 11]) + (56324).to_bytes(2, "big") + b"\x01\xbb"
_IPV6 = bytes(15) + b"\x01" + bytes(15) + b"\x02" + b"\x1f\x90\x00\x50"
_SSL = _tlv(0x20, b"\x01" + bytes(4) + _tlv(0x21, b"TLSv1.3") + _tlv(0x23, b"TLS_AES_128"))
_REQUEST = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
# The HAProxy specification's examples (v1 section 2.1, v2 section 2.2), then a request.
PROXY = [
    (0, b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n" + _REQUEST),
    (1, b"PROXY TCP6 ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"),
    (1, b"PROXY TCP6 2001:db8::1 2001:db8::2 4711 443\r\n" + _REQUEST),
    (0, b"PROXY UNKNOWN\r\n" + _REQUEST),
    (0, b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"),
    (2, _v2(1, 0x11, _IPV4) + _REQUEST),  # PROXY, TCP over IPv4
    (2, _v2(1, 0x21, _IPV6)),  # TCP over IPv6
    (0, _v2(0, 0x00, b"") + _REQUEST),  # LOCAL (a health check)
    (2, _v2(1, 0x31, bytes(108) + bytes(108))),  # AF_UNIX
    (0, _v2(1, 0x11, _IPV4 + _tlv(0x01, b"h2") + _tlv(0x02, b"example.com") + _SSL)),
    (2, _v2(1, 0x11, _IPV4 + _tlv(0x05, b"id-1") + _tlv(0x04, b"") + _tlv(0x30, b"ns"))),
    (6, _v2(1, 0x11, _IPV4 + _tlv(0x03, bytes(4)))),  # a CRC32C that does not match
]


def http3_streams() -> list[tuple[int, bytes]]:
    """HTTP/3 request streams (RFC 9114 frames, QPACK blocks with the static table only, as
    pylsqpack's encoder makes them with no dynamic table), and a client control stream."""
    import pylsqpack
    from aioquic.h3.connection import FrameType, encode_frame

    def head(fields: list[tuple[bytes, bytes]]) -> bytes:
        return encode_frame(FrameType.HEADERS, pylsqpack.Encoder().encode(0, fields)[1])

    base = [(b":scheme", b"https"), (b":authority", b"localhost"), (b":path", b"/")]
    get = head([(b":method", b"GET"), *base])
    post = head([(b":method", b"POST"), *base, (b"content-length", b"5")])
    chunked = head([(b":method", b"POST"), *base, (b"user-agent", b"fuzz")])
    trailers = head([(b"x-checksum", b"abc")])
    connect = head(
        [
            (b":method", b"CONNECT"),
            (b":protocol", b"websocket"),
            *base,
            (b"sec-websocket-version", b"13"),
        ]
    )
    data = encode_frame(FrameType.DATA, b"hello")
    unknown = b"\x21\x03abc"  # a reserved frame type (0x1f * N + 0x21): ignored
    settings = b"\x00" + encode_frame(FrameType.SETTINGS, b"\x06\x44\x00")  # control stream
    return [
        (0x01, get),
        (0x00, get),
        (0x03, post + data),
        (0x05, head([(b":method", b"POST"), *base, (b"content-length", b"40")]) + data * 8),
        (0x01, chunked + data + data + trailers),
        (0x01, unknown + get),
        (0x00, connect + data),
        (0x01, get + data),  # DATA on a bodiless GET: the body length is checked
        (0x07, head([(b":method", b"GET"), *base, (b"x-long", b"v" * 300)])),
        (0x11, settings),
        (0x11, b"\x02" + b"\x3f\xe1\x1f"),  # the encoder stream: set the table capacity
    ]


def write(target: str, seeds: list[tuple[int, bytes]]) -> None:
    folder = ROOT / target
    folder.mkdir(parents=True, exist_ok=True)  # files already there (merged finds) stay
    for option, payload in seeds:
        data = bytes([option]) + payload
        (folder / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def main() -> None:
    http11 = [(index % 4, data) for index, data in enumerate(HTTP11)]
    # Accepted upgrades (option bit 0x40), the new protocol's first bytes right behind.
    http11 += [(0x40, data + b"\x81\x80\x00\x00\x00\x00") for data in HTTP11 if b"Upgrade:" in data]
    write("http11", http11)
    write("http11_h11", http11)
    write("http1_diff", http11)
    conversations = h2_conversations()
    hpack_seeds = hpack_blocks()
    rfc_conversation = b"".join(
        _frame(1, 0x5, 2 * index + 1, block) for index, block in enumerate(_C3)
    ) + b"".join(_frame(1, 0x5, 2 * index + 7, block) for index, block in enumerate(_C4))
    write(
        "http2",
        [(index % 4, data) for index, data in enumerate([*conversations, rfc_conversation])],
    )
    write("hpack", [(0x20 | (index & 0x40), block) for index, block in enumerate(hpack_seeds)])
    write("websocket", WEBSOCKET)
    write("proxy", PROXY)
    write("http3", http3_streams())


if __name__ == "__main__":
    main()
