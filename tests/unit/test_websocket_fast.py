"""The inbound fast path (``tricorn/protocols/websocket_fast.py``) against wsproto alone.

``WebSocketProtocol`` reads single-frame text and binary messages itself and hands every
other frame to wsproto. Each case here is fed to the protocol as it runs and to one that
never takes the fast path (``WsprotoOnly``), whole, split at every position and byte by
byte: the events and the bytes written back must be the same. One case per rule the fast
path has to recognise before it may read a frame (FIN, RSV bits, opcode, mask bit, the
shortest length encoding, the 64-bit length's top bit, the message size limit, UTF-8),
plus control frames, fragments and compressed messages between fast ones.
"""

from __future__ import annotations

import zlib

import pytest
from wsproto.frame_protocol import FrameDecoder

from tests.unit.test_websocket import BINARY, CLOSE, CONTINUATION, PING, TEXT, frame, mask
from tricorn.protocols.events import Event, ProtocolError
from tricorn.protocols.websocket import DeflateParameters, Message, WebSocketProtocol
from tricorn.protocols.websocket_fast import (
    DEFER,
    DONE,
    PARTIAL,
    _python_apply_mask,
    apply_mask,
    scan_frames,
)

LIMIT = 1000  # max_message_size of the protocols under test
KEY = b"\x37\xfa\x21\x3d"


class WsprotoOnly(WebSocketProtocol):
    """The same protocol with the fast path off: every frame goes through wsproto."""

    __slots__ = ()

    def __init__(self, *, max_message_size: int, deflate: DeflateParameters | None) -> None:
        super().__init__(max_message_size=max_message_size, deflate=deflate)
        self._fast = False

    def _at_message_boundary(self) -> bool:
        return False


def raw_header(first: int, length_bytes: bytes) -> bytes:
    """A masked frame header with the length field given as raw bytes (after the mask bit)."""
    return bytes((first,)) + bytes((0x80 | length_bytes[0],)) + length_bytes[1:] + KEY


def drive(protocol: WebSocketProtocol, pieces: list[bytes]) -> tuple[list[Event], bytes, str]:
    events: list[Event] = []
    for piece in pieces:
        events += protocol.receive_data(piece)
    if protocol.state.name == "FAILING":
        protocol.close(1000)
    return events, protocol.data_to_send(), protocol.state.name


def chunkings(data: bytes) -> list[list[bytes]]:
    step = max(1, len(data) // 80)
    splits = [[data[:i], data[i:]] for i in range(1, len(data), step)]
    return [[data], *splits, [data[i : i + 1] for i in range(len(data))]]


def assert_same_as_wsproto(data: bytes, deflate: DeflateParameters | None = None) -> list[Event]:
    expected = drive(WsprotoOnly(max_message_size=LIMIT, deflate=deflate), [data])
    for pieces in chunkings(data):
        got = drive(WebSocketProtocol(max_message_size=LIMIT, deflate=deflate), pieces)
        assert got == expected, pieces
    return expected[0]


def error_code(events: list[Event]) -> int | None:
    errors = [event for event in events if isinstance(event, ProtocolError)]
    return errors[0].error_code if errors else None


BEFORE = frame(TEXT, b"before") + frame(BINARY, b"\x00\x01")
AFTER = frame(TEXT, b"after")

# (case id, frames between BEFORE and AFTER, the close code wsproto answers or None)
CASES = [
    ("fin-clear-fragments", frame(TEXT, b"fr", fin=False) + frame(CONTINUATION, b"ag"), None),
    ("empty-final-continuation", frame(BINARY, b"ab", fin=False) + frame(CONTINUATION), None),
    ("rsv1-without-deflate", frame(TEXT, b"x", rsv1=True), 1002),
    ("rsv2", bytes((0xA2, 0x80)) + KEY, 1002),
    ("rsv3", bytes((0x92, 0x80)) + KEY, 1002),
    *((f"reserved-opcode-{op:#x}", frame(op, b"x"), 1002) for op in (3, 4, 5, 6, 7, 0xB, 0xF)),
    ("continuation-outside-message", frame(CONTINUATION, b"x"), 1002),
    ("unmasked", frame(BINARY, b"x", masked=False), 1002),
    ("non-minimal-16-bit-length", raw_header(0x82, b"\x7e\x00\x7d") + mask(b"x" * 125), 1002),
    ("non-minimal-64-bit-length", raw_header(0x82, b"\x7f" + (200).to_bytes(8, "big")), 1002),
    ("64-bit-length-top-bit", raw_header(0x82, b"\x7f" + (1 << 63).to_bytes(8, "big")), 1002),
    ("over-the-limit-7-bit", frame(BINARY, b"x" * 100), None),  # LIMIT is 1000: fits
    ("over-the-limit-16-bit", frame(BINARY, b"x" * (LIMIT + 1)), 1009),
    ("over-the-limit-64-bit", raw_header(0x82, b"\x7f" + (70000).to_bytes(8, "big")), 1009),
    ("at-the-limit", frame(BINARY, b"y" * LIMIT), None),
    ("invalid-utf8", frame(TEXT, b"ok \xff"), 1007),
    ("utf8-surrogate", frame(TEXT, b"\xed\xa0\x80"), 1007),
    ("utf8-overlong", frame(TEXT, b"\xc0\xaf"), 1007),
    ("utf8-truncated", frame(TEXT, "é".encode()[:1]), 1007),
    ("valid-utf8", frame(TEXT, "é€😀".encode()), None),
    ("invalid-utf8-in-binary-is-fine", frame(BINARY, b"\xff\xfe"), None),
    ("empty-text-and-binary", frame(TEXT) + frame(BINARY), None),
    ("ping-between", frame(PING, b"p") + frame(BINARY, b"z"), None),
    ("ping-inside-fragments", frame(TEXT, b"a", fin=False) + frame(PING) + frame(0, b"b"), None),
    ("long-ping", frame(PING, b"x" * 126), 1002),
    ("close", frame(CLOSE, (1000).to_bytes(2, "big") + b"bye"), None),
    ("close-bad-code", frame(CLOSE, (999).to_bytes(2, "big")), 1002),
    ("close-bad-utf8-reason", frame(CLOSE, (1000).to_bytes(2, "big") + b"\xff"), 1007),
]


@pytest.mark.parametrize(("data", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_frame_gets_what_wsproto_alone_gives(data: bytes, code: int | None) -> None:
    events = assert_same_as_wsproto(BEFORE + data + AFTER)
    assert events[:2] == [Message("before"), Message(b"\x00\x01")]
    assert error_code(events) == code


def test_with_deflate_compressed_and_plain_messages_interleave() -> None:
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    body = compressor.compress(b"squeeze " * 20) + compressor.flush(zlib.Z_SYNC_FLUSH)
    compressed = frame(TEXT, body[:-4], rsv1=True)
    data = frame(TEXT, b"plain") + compressed + frame(BINARY, b"raw") + compressed
    events = assert_same_as_wsproto(data, deflate=DeflateParameters())
    assert events == [
        Message("plain"),
        Message("squeeze " * 20),
        Message(b"raw"),
        Message("squeeze " * 20),
    ]


def test_single_frame_messages_do_not_reach_wsproto(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: FrameDecoder) -> None:
        raise AssertionError("wsproto parsed a fast-path frame")

    monkeypatch.setattr(FrameDecoder, "process_buffer", refuse)
    protocol = WebSocketProtocol()
    big = b"\x5a" * 70000  # a 64-bit length
    data = frame(TEXT, b"t") + frame(BINARY, b"m" * 300) + frame(BINARY, big)
    got: list[Event] = []
    for position in range(0, len(data), 4096):  # the large frame arrives in pieces
        got += protocol.receive_data(data[position : position + 4096])
    assert got == [Message("t"), Message(b"m" * 300), Message(big)]


def test_the_fast_path_resumes_after_wsproto_read_a_control_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    protocol = WebSocketProtocol()
    assert protocol.receive_data(frame(PING, b"p") + frame(TEXT, b"a")) == [Message("a")]
    monkeypatch.setattr(FrameDecoder, "process_buffer", None)  # any wsproto use would fail
    assert protocol.receive_data(frame(TEXT, b"b")) == [Message("b")]


@pytest.mark.parametrize("payload", [b"\xff" + b"x" * 300, b"ok" * 100 + b"\xc0"])
def test_bad_utf8_in_a_text_frame_not_all_here_fails_as_wsproto_does(payload: bytes) -> None:
    """wsproto checks UTF-8 as a frame's bytes arrive: a bad start fails at once, and the
    transport ending mid-frame after it changes nothing (found by the fuzz seed corpus)."""
    data = BEFORE + frame(TEXT, payload)
    for cut in range(len(BEFORE) + 1, len(data)):
        pieces = [data[:cut], b""]  # the peer goes away mid-frame
        expected = drive(WsprotoOnly(max_message_size=LIMIT, deflate=None), pieces)
        assert drive(WebSocketProtocol(max_message_size=LIMIT), pieces) == expected, cut


def test_scan_frames_outcomes() -> None:
    whole = frame(BINARY, b"abc")
    messages: list[str | bytes] = []
    assert scan_frames(whole + whole, LIMIT, messages) == (2 * len(whole), DONE)
    assert messages == [b"abc", b"abc"]
    assert scan_frames(whole + whole[:3], LIMIT, []) == (len(whole), PARTIAL)
    assert scan_frames(whole + frame(PING), LIMIT, []) == (len(whole), DEFER)
    long_header = frame(BINARY, b"x" * 300)[:3]  # the 16-bit length not all here
    assert scan_frames(long_header, LIMIT, []) == (0, PARTIAL)
    text = frame(TEXT, b"abc")
    assert scan_frames(text[:-1], LIMIT, []) == (0, DEFER)  # wsproto checks UTF-8 as it comes
    assert scan_frames(b"", LIMIT, []) == (0, DONE)


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 125, 4096, 65537])
def test_both_unmaskers_undo_the_mask(size: int) -> None:
    payload = bytes(range(256)) * (size // 256 + 1)
    payload = payload[:size]
    masked = mask(payload, KEY)
    assert _python_apply_mask(memoryview(masked), KEY) == payload
    assert apply_mask(memoryview(masked), KEY) == payload
