"""The common case of inbound WebSocket frames, read without wsproto (sans-IO).

A client's message is nearly always one frame: FIN set, no RSV bit, text or binary, masked,
its length in the shortest encoding, within the message size limit and, for text, valid
UTF-8. ``scan_frames`` reads such frames straight from the received bytes: the mask comes off
in one pass (websockets' C ``apply_mask`` when installed) and the payload becomes the
message, with no per-frame objects, buffer copies or extension hooks. It decides nothing
else: at the first frame that is anything other than that (a control frame, a fragment, a
reserved bit or opcode, an unmasked or over-long frame, a compressed message, bad UTF-8) it
stops and says ``DEFER``; ``WebSocketProtocol`` then hands the bytes from that frame's first
byte on to wsproto, which applies every rule and answers every fault exactly as it does
without this path. A frame whose header is incomplete, or a binary fast frame whose payload
has not all arrived, is ``PARTIAL``: the caller keeps the bytes and scans again with more. A
text frame not all here is deferred too: wsproto checks its UTF-8 as it arrives, so that a
bad message fails before its last byte.

Callers use it only at a message boundary with nothing buffered in wsproto (no partial
frame, no fragmented message), so wsproto's state is the same as if it had read these
frames itself.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["DEFER", "DONE", "PARTIAL", "apply_mask", "scan_frames"]

#: All bytes were read as messages.
DONE = 0
#: The bytes from the returned position start a frame that is not all there yet.
PARTIAL = 1
#: The bytes from the returned position are for wsproto.
DEFER = 2

_FIN_TEXT = 0x81  # FIN, no RSV bit, opcode 1
_FIN_BINARY = 0x82  # FIN, no RSV bit, opcode 2
_MASKED = 0x80
_LENGTH_16 = 126
_LENGTH_64 = 127


def _python_apply_mask(data: bytes | bytearray | memoryview, mask: bytes | bytearray) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` repeated (RFC 6455 5.3), in one big-int pass."""
    size = len(data)
    if not size:
        return b""
    key = int.from_bytes((bytes(mask) * (size // 4 + 1))[:size], "little")
    return (int.from_bytes(data, "little") ^ key).to_bytes(size, "little")


apply_mask: Callable[[bytes | bytearray | memoryview, bytes | bytearray], bytes]
try:  # websockets' C function (the "speedups" extra): ~20x the speed of the big-int XOR
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - the test environment has websockets
    apply_mask = _python_apply_mask


def scan_frames(
    data: bytes | bytearray, max_size: int, messages: list[str | bytes]
) -> tuple[int, int]:
    """Read whole fast-path frames from the start of ``data`` into ``messages``.

    Returns ``(position, outcome)``: ``DONE`` (``position == len(data)``), ``PARTIAL`` (the
    frame at ``position`` needs more bytes, ``position < len(data)``) or ``DEFER`` (the frame
    at ``position`` is wsproto's to read). Text messages are ``str``, binary ``bytes``.
    """
    with memoryview(data) as view:  # released on return: the caller may resize ``data``
        return _scan(data, view, max_size, messages)


def _scan(
    data: bytes | bytearray, view: memoryview, max_size: int, messages: list[str | bytes]
) -> tuple[int, int]:
    end = len(data)
    position = 0
    while True:
        left = end - position
        if left < 2:
            return position, (PARTIAL if left else DONE)
        first = data[position]
        if first not in (_FIN_BINARY, _FIN_TEXT):
            return position, DEFER  # fragment, control frame, RSV bit or reserved opcode
        second = data[position + 1]
        if not second & _MASKED:
            return position, DEFER  # a client's frames must be masked (RFC 6455 5.1)
        length = second & 0x7F
        if length < _LENGTH_16:
            head = 6
        elif length == _LENGTH_16:
            head = 8
            if left < 4:  # the length first: wsproto checks it before the mask is here
                return position, PARTIAL
            length = int.from_bytes(data[position + 2 : position + 4], "big")
            if length < _LENGTH_16:
                return position, DEFER  # not the shortest encoding (RFC 6455 5.2)
        else:
            head = 14
            if left < 10:  # as above (found by fuzzing: a non-minimal length, mask not here)
                return position, PARTIAL
            length = int.from_bytes(data[position + 2 : position + 10], "big")
            if length < 65536 or length >> 63:
                return position, DEFER  # not the shortest encoding, or the top bit set
        if length > max_size:
            return position, DEFER  # wsproto's guard answers 1009
        start = position + head
        frame_end = start + length
        if frame_end > end:
            # A text frame not all here is wsproto's: it checks UTF-8 as the bytes come and
            # fails a bad message before its end (found by fuzzing: the seed corpus).
            return position, (DEFER if first == _FIN_TEXT else PARTIAL)
        payload = apply_mask(view[start:frame_end], data[start - 4 : start])
        if first == _FIN_TEXT:
            try:
                messages.append(payload.decode("utf-8"))
            except UnicodeDecodeError:
                return position, DEFER  # wsproto answers 1007
        else:
            messages.append(payload)
        position = frame_end
