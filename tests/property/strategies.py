"""Hypothesis strategies for the protocol properties: requests, conversations, frames.

HTTP/1.1 requests stress framing (Content-Length and Transfer-Encoding together, lists,
leading zeros, chunk extensions, obs-fold, bare CR or LF, duplicate fields, whitespace
before the colon) and are then possibly damaged byte-wise. HTTP/2 conversations are written
by h2 as a client, WebSocket frames by wsproto as a client, then possibly mutated.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import h2.config
import h2.connection
import h2.settings
import hpack
from hypothesis import strategies as st
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import FrameProtocol

# --- HTTP/1.1 ------------------------------------------------------------------------------

TOKENS = st.sampled_from([b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"OPTIONS", b"PATCH"])
TARGETS = st.sampled_from([b"/", b"/a/b?c=d", b"*", b"http://example.com/x", b"/%20", b"/a b"])
VERSIONS = st.sampled_from([b"HTTP/1.1"] * 6 + [b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.2", b""])
NAMES = st.sampled_from(
    [b"Accept", b"X-Trace", b"Cookie", b"Host ", b"Ho st", b" X", b"X\t", b"content-length"]
)
VALUES = st.sampled_from([b"*/*", b"a=1; b=2", b"", b"\xc3\xa9", b"v\r\n folded", b"a\x00b"])
LENGTH_SPELLINGS = st.sampled_from(
    [b"%d", b"%d", b"0%d", b"%d, %d", b"+%d", b"%d ", b"%d.0", b"0000000000000000000%d"]
)
CODINGS = st.sampled_from(
    [
        b"chunked",
        b"chunked",
        b"Chunked",
        b"gzip, chunked",
        b"chunked, chunked",
        b"identity",
        b"chunked;q=1",
        b" chunked",
        b"",
        b"xchunked",
    ]
)
CHUNK_EXTENSIONS = st.sampled_from(
    [b"", b"", b";a=b", b';name="x;y"', b" ;a", b";a = b", b";", b'; a="b', b"\t;a"]
)
LINE_ENDS = st.sampled_from([b"\r\n"] * 8 + [b"\n", b"\r\r\n", b"\r"])


@st.composite
def chunked_body(draw: st.DrawFn, data: bytes) -> bytes:
    out = b""
    while data:
        size = draw(st.integers(1, max(1, len(data))))
        piece, data = data[:size], data[size:]
        size_text = draw(st.sampled_from([b"%x", b"%X", b"0%x"])) % len(piece)
        out += size_text + draw(CHUNK_EXTENSIONS) + b"\r\n" + piece + b"\r\n"
    out += b"0" + draw(CHUNK_EXTENSIONS) + b"\r\n"
    out += draw(st.sampled_from([b"", b"", b"X-T: 1\r\n", b"Content-Length: 1\r\n", b" x\r\n"]))
    return out + b"\r\n"


@st.composite
def http1_request(draw: st.DrawFn, *, hostile: bool = True) -> bytes:
    """One request; with ``hostile`` its framing and bytes are stressed."""
    method = draw(TOKENS)
    version = draw(VERSIONS) if hostile else draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]))
    fields: list[tuple[bytes, bytes]] = [(b"Host", b"example.com")]
    if hostile:
        fields += draw(st.lists(st.tuples(NAMES, VALUES), max_size=3))
        if draw(st.booleans()):
            fields.append((b"Host", b"other"))
    body = draw(st.binary(max_size=24))
    framing = draw(st.sampled_from(["none", "length", "chunked", "both", "lengths"]))
    if not hostile:
        framing = framing if framing in ("none", "length", "chunked") else "length"
        if version == b"HTTP/1.0" and framing == "chunked":
            framing = "length"
    framed = b""
    if framing in ("length", "both", "lengths"):
        spelling = draw(LENGTH_SPELLINGS) if hostile else b"%d"
        fields.append((b"Content-Length", spelling % ((len(body),) * spelling.count(b"%"))))
        framed = body
    if framing == "lengths":
        other = draw(st.sampled_from([len(body), len(body) + 1, 0]))
        fields.append((b"Content-Length", b"%d" % other))
    if framing in ("chunked", "both"):
        fields.append((b"Transfer-Encoding", draw(CODINGS) if hostile else b"chunked"))
        framed = draw(chunked_body(body)) if hostile else plain_chunked(body)
    if hostile and draw(st.booleans()):
        fields.append((b"Expect", b"100-continue"))
    fields = draw(st.permutations(fields))
    end = draw(LINE_ENDS) if hostile else b"\r\n"
    head = [method + b" " + draw(TARGETS if hostile else st.just(b"/x")) + b" " + version]
    head += [name + b": " + value for name, value in fields]
    return end.join(head) + end + end + framed


def plain_chunked(body: bytes) -> bytes:
    return (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"


@st.composite
def damaged(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with one byte-level change, or unchanged."""
    kind = draw(st.sampled_from(["none", "none", "flip", "insert", "delete", "cut"]))
    if kind == "none" or not data:
        return data
    position = draw(st.integers(0, len(data) - 1))
    if kind == "flip":
        return data[:position] + bytes([draw(st.integers(0, 255))]) + data[position + 1 :]
    if kind == "insert":
        extra = draw(st.sampled_from([b"\r\n", b"\r", b"\n", b"\x00", b" ", b":", b";", b"0"]))
        return data[:position] + extra + data[position:]
    if kind == "delete":
        return data[:position] + data[position + 1 :]
    return data[:position]


@st.composite
def http1_inputs(draw: st.DrawFn) -> bytes:
    """Option byte (limits, see fuzz/harness.py) + 1-3 pipelined, possibly damaged requests."""
    requests = draw(st.lists(http1_request(), min_size=1, max_size=3))
    data = draw(damaged(b"".join(requests)))
    return bytes([draw(st.integers(0, 255))]) + data


# --- HTTP/2 --------------------------------------------------------------------------------

CLIENT = h2.config.H2Configuration(
    client_side=True,
    header_encoding=None,
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
)
H2_NAMES = st.sampled_from(
    [
        b"accept",
        b"user-agent",
        b"cookie",
        b"x-a",
        b"te",
        b"content-length",
        b"X-Upper",
        b"connection",
        b":path",
        b"host",
        b"",
    ]
)
H2_VALUES = st.sampled_from([b"*/*", b"a=1", b"", b"trailers", b"5", b" lead", b"a\r\nb", b"\x00"])


def h2_client() -> h2.connection.H2Connection:
    connection = h2.connection.H2Connection(config=CLIENT)
    connection.initiate_connection()
    connection.data_to_send()  # preface + SETTINGS: fuzz/harness.py sends its own
    return connection


@dataclass
class Conversation:
    """What a well-behaved h2 client wrote, and the requests it completed."""

    data: bytes
    complete: list[int]  # streams whose request (head and body) was sent in full
    bodies: dict[int, bytes]


@st.composite
def h2_conversation(draw: st.DrawFn, *, valid_headers: bool = False) -> Conversation:
    """A valid client conversation: requests (with bodies, trailers), pings, resets,
    SETTINGS, WINDOW_UPDATEs, priorities, written by h2."""
    client = h2_client()
    complete: list[int] = []
    bodies: dict[int, bytes] = {}
    open_streams: list[int] = []
    stream_id = 1
    for _ in range(draw(st.integers(1, 6))):
        action = draw(
            st.sampled_from(
                [
                    "get",
                    "get",
                    "post",
                    "data",
                    "end",
                    "reset",
                    "ping",
                    "settings",
                    "window",
                    "priority",
                    "trailers",
                ]
            )
        )
        if action in ("get", "post") and stream_id < 40:
            headers = [
                (b":method", b"GET" if action == "get" else b"POST"),
                (b":path", b"/p"),
                (b":scheme", b"https"),
                (b":authority", b"example.com"),
            ]
            if not valid_headers:
                headers += draw(st.lists(st.tuples(H2_NAMES, H2_VALUES), max_size=2))
            end = action == "get"
            client.send_headers(stream_id, headers, end_stream=end)
            bodies[stream_id] = b""
            if end:
                complete.append(stream_id)
            else:
                open_streams.append(stream_id)
            stream_id += 2
        elif action == "data" and open_streams:
            target = draw(st.sampled_from(open_streams))
            size = min(draw(st.integers(0, 3000)), client.local_flow_control_window(target))
            payload = bytes(size)
            client.send_data(target, payload)
            bodies[target] += payload
        elif action in ("end", "trailers") and open_streams:
            target = open_streams.pop(0)
            if action == "end":
                client.end_stream(target)
            else:
                client.send_headers(target, [(b"x-trailer", b"1")], end_stream=True)
            complete.append(target)
        elif action == "reset" and open_streams:
            target = open_streams.pop()
            client.reset_stream(target, draw(st.sampled_from([0, 1, 8])))
            bodies.pop(target, None)
        elif action == "ping":
            client.ping(draw(st.binary(min_size=8, max_size=8)))
        elif action == "settings":
            client.update_settings(
                {
                    h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: draw(st.integers(0, 2**31 - 1)),
                    h2.settings.SettingCodes.MAX_FRAME_SIZE: draw(st.integers(16384, 16777215)),
                }
            )
        elif action == "window":
            client.increment_flow_control_window(draw(st.integers(1, 2**20)))
        elif action == "priority" and stream_id > 1:
            client.prioritize(
                draw(st.integers(1, stream_id)) | 1, weight=draw(st.integers(1, 256)), depends_on=0
            )
    return Conversation(client.data_to_send(), complete, bodies)


def frame(frame_type: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    length = len(payload)
    header = struct.pack(">BHBBL", length >> 16, length & 0xFFFF, frame_type, flags, stream_id)
    return header + payload


@st.composite
def raw_frames(draw: st.DrawFn) -> bytes:
    """Frames of any type on a few streams, flags and payloads drawn: stream-state and
    flow-control sequences h2 as a client would never write."""
    out = b""
    for _ in range(draw(st.integers(1, 8))):
        frame_type = draw(st.sampled_from([0, 1, 2, 3, 4, 6, 7, 8, 9, 16, 0xFA]))
        stream_id = draw(st.sampled_from([0, 1, 1, 3, 5, 2**31 - 1]))
        flags = draw(st.sampled_from([0, 1, 4, 5, 8, 0x20, 0x25, 0xFF]))
        if frame_type == 1:
            payload = hpack.Encoder().encode(
                [(":method", "GET"), (":path", "/"), (":scheme", "https"), (":authority", "a")]
            )
            if flags & 0x8:
                payload = b"\x02" + payload + b"\x00\x00"
            if flags & 0x20:
                payload = struct.pack(">LB", draw(st.integers(0, 5)), 16) + payload
        elif frame_type == 8:
            payload = struct.pack(">L", draw(st.sampled_from([0, 1, 2**31 - 1, 2**31, 65535])))
        elif frame_type == 4:
            payload = b"".join(
                struct.pack(">HL", ident, value)
                for ident, value in draw(
                    st.lists(
                        st.tuples(
                            st.integers(0, 10),
                            st.sampled_from([0, 1, 2, 16383, 16384, 2**31, 2**32 - 1]),
                        ),
                        max_size=3,
                    )
                )
            )
        elif frame_type == 0:
            payload = draw(st.binary(max_size=70000 if draw(st.booleans()) else 40))
            if flags & 0x8:
                payload = bytes([draw(st.integers(0, 255))]) + payload
        else:
            payload = draw(st.binary(max_size=12))
        out += frame(frame_type, flags, stream_id, payload)
    return out


@st.composite
def h2_inputs(draw: st.DrawFn) -> bytes:
    """Option byte + a valid conversation, raw frames, or both; possibly damaged."""
    kind = draw(st.sampled_from(["conversation", "raw", "both"]))
    data = b""
    if kind != "raw":
        data += draw(h2_conversation()).data
    if kind != "conversation":
        data += draw(raw_frames())
    return bytes([draw(st.integers(0, 255))]) + draw(damaged(data))


HEADER_LISTS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                ":method",
                ":path",
                ":scheme",
                ":authority",
                "accept",
                "cookie",
                "x-custom",
                "content-length",
                "te",
                "Upper",
                ":status",
                "host",
            ]
        ),
        st.text(alphabet="abc /=;\x00\r\n:", max_size=12),
    ),
    max_size=8,
)


@st.composite
def hpack_inputs(draw: st.DrawFn) -> bytes:
    """Option byte + a header block hpack encodes (valid HPACK, any header list), mutated."""
    encoder = hpack.Encoder()
    if draw(st.booleans()):
        encoder.header_table_size = draw(st.sampled_from([0, 256, 4096]))
    pseudo = [(":method", "GET"), (":path", "/"), (":scheme", "https"), (":authority", "a")]
    headers = draw(st.sampled_from([pseudo, []])) + draw(HEADER_LISTS)
    sensitive = draw(st.booleans())
    block = encoder.encode(
        [
            hpack.HeaderTuple(n, v) if not sensitive else hpack.NeverIndexedHeaderTuple(n, v)
            for n, v in headers
        ],
        huffman=draw(st.booleans()),
    )
    return bytes([draw(st.integers(0, 255))]) + draw(damaged(block))


# --- WebSocket -----------------------------------------------------------------------------

WS_MESSAGES = st.lists(
    st.one_of(st.text(max_size=200), st.binary(max_size=300)), min_size=1, max_size=4
)


def ws_client(deflate: bool) -> FrameProtocol:
    extensions: list[Extension] = []
    if deflate:
        extension = PerMessageDeflate()
        extension._enabled = True  # as after a handshake that accepted it
        extensions.append(extension)
    return FrameProtocol(client=True, extensions=extensions)


@st.composite
def ws_frames(draw: st.DrawFn, *, deflate: bool) -> tuple[bytes, list[str | bytes]]:
    """What wsproto as a client writes for some messages (fragmented, masked, compressed
    when ``deflate``), pings interleaved; and the messages."""
    client = ws_client(deflate)
    messages = draw(WS_MESSAGES)
    out = b""
    for message in messages:
        cuts = draw(st.integers(1, 4))
        size = max(1, -(-len(message) // cuts))
        pieces = [message[i : i + size] for i in range(0, len(message), size)] or [message]
        for index, piece in enumerate(pieces):
            out += client.send_data(piece, fin=index == len(pieces) - 1)
            if draw(st.integers(0, 4)) == 0:
                out += client.ping(draw(st.binary(max_size=10)))
    if draw(st.booleans()):
        out += client.close(1000, "bye")
    return out, messages


def ws_option(deflate: bool, size_index: int = 0) -> int:
    """The harness option byte: deflate with client context takeover, max message size."""
    return (1 | 8 if deflate else 0) | (size_index << 4)


@st.composite
def ws_inputs(draw: st.DrawFn) -> bytes:
    deflate = draw(st.booleans())
    data, _ = draw(ws_frames(deflate=deflate))
    option = ws_option(deflate, draw(st.integers(0, 3))) | draw(st.sampled_from([0, 2, 4, 64]))
    extra = b""
    if draw(st.booleans()):  # a hand-made frame: reserved bits, opcodes, lengths, no mask
        first = draw(st.integers(0, 255))
        length = draw(st.sampled_from([0, 1, 125, 126, 127]))
        extra = bytes([first, 0x80 | length]) + b"\x00\x00\x00\x00"
        extra += draw(st.binary(max_size=12))
        if draw(st.booleans()):
            extra += zlib.compress(b"x" * 200)[2:-4]
    return bytes([option]) + draw(damaged(data + extra))
