"""HTTP/2 frame constants and raw frame building (RFC 9113 section 4 and 6).

Everything here builds bytes by hand with :mod:`struct`, so that the suite can send frames
no well-behaved library would produce: wrong lengths, undefined flags, bad padding, invalid
stream identifiers.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (RFC 9113 section 6).
DATA = 0x0
HEADERS = 0x1
PRIORITY = 0x2
RST_STREAM = 0x3
SETTINGS = 0x4
PUSH_PROMISE = 0x5
PING = 0x6
GOAWAY = 0x7
WINDOW_UPDATE = 0x8
CONTINUATION = 0x9
UNKNOWN_TYPE = 0xBE  # not registered; extension frames of unknown type must be ignored

FRAME_NAMES = {
    DATA: "DATA",
    HEADERS: "HEADERS",
    PRIORITY: "PRIORITY",
    RST_STREAM: "RST_STREAM",
    SETTINGS: "SETTINGS",
    PUSH_PROMISE: "PUSH_PROMISE",
    PING: "PING",
    GOAWAY: "GOAWAY",
    WINDOW_UPDATE: "WINDOW_UPDATE",
    CONTINUATION: "CONTINUATION",
}

# Flags.
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# Error codes (RFC 9113 section 7).
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
SETTINGS_TIMEOUT = 0x4
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
CONNECT_ERROR = 0xA
ENHANCE_YOUR_CALM = 0xB
INADEQUATE_SECURITY = 0xC
HTTP_1_1_REQUIRED = 0xD

ERROR_NAMES = {
    NO_ERROR: "NO_ERROR",
    PROTOCOL_ERROR: "PROTOCOL_ERROR",
    INTERNAL_ERROR: "INTERNAL_ERROR",
    FLOW_CONTROL_ERROR: "FLOW_CONTROL_ERROR",
    SETTINGS_TIMEOUT: "SETTINGS_TIMEOUT",
    STREAM_CLOSED: "STREAM_CLOSED",
    FRAME_SIZE_ERROR: "FRAME_SIZE_ERROR",
    REFUSED_STREAM: "REFUSED_STREAM",
    CANCEL: "CANCEL",
    COMPRESSION_ERROR: "COMPRESSION_ERROR",
    CONNECT_ERROR: "CONNECT_ERROR",
    ENHANCE_YOUR_CALM: "ENHANCE_YOUR_CALM",
    INADEQUATE_SECURITY: "INADEQUATE_SECURITY",
    HTTP_1_1_REQUIRED: "HTTP_1_1_REQUIRED",
}

# Settings (RFC 9113 section 6.5.2).
SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6
SETTINGS_ENABLE_CONNECT_PROTOCOL = 0x8  # RFC 8441
SETTINGS_NO_RFC7540_PRIORITIES = 0x9  # RFC 9218
SETTINGS_UNKNOWN = 0xBEEF

DEFAULT_WINDOW = 65_535
DEFAULT_MAX_FRAME_SIZE = 16_384
MAX_WINDOW = 2**31 - 1


def error_name(code: int) -> str:
    return ERROR_NAMES.get(code, f"0x{code:x}")


def frame_name(frame_type: int) -> str:
    return FRAME_NAMES.get(frame_type, f"UNKNOWN(0x{frame_type:x})")


@dataclass
class Frame:
    """One frame received from the server (HEADERS already merged with its CONTINUATIONs)."""

    type: int
    flags: int
    stream_id: int
    payload: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def end_stream(self) -> bool:
        return self.type in (DATA, HEADERS) and bool(self.flags & END_STREAM)

    @property
    def ack(self) -> bool:
        return self.type in (SETTINGS, PING) and bool(self.flags & ACK)

    @property
    def error_code(self) -> int:
        """The error code of a RST_STREAM or GOAWAY frame (-1 for other frames)."""
        if self.type == RST_STREAM and len(self.payload) >= 4:
            return int(struct.unpack("!I", self.payload[:4])[0])
        if self.type == GOAWAY and len(self.payload) >= 8:
            return int(struct.unpack("!I", self.payload[4:8])[0])
        return -1

    @property
    def last_stream_id(self) -> int:
        if self.type == GOAWAY and len(self.payload) >= 4:
            return int(struct.unpack("!I", self.payload[:4])[0]) & 0x7FFF_FFFF
        return -1

    def describe(self) -> str:
        name = frame_name(self.type)
        if self.type == RST_STREAM:
            return f"RST_STREAM({error_name(self.error_code)}) on stream {self.stream_id}"
        if self.type == GOAWAY:
            debug = self.payload[8:40]
            extra = f", debug={debug!r}" if debug else ""
            return (
                f"GOAWAY({error_name(self.error_code)}, last_stream_id={self.last_stream_id}"
                f"{extra})"
            )
        if self.type in (SETTINGS, PING):
            return f"{name}{'(ACK)' if self.ack else ''}"
        if self.type == HEADERS:
            status = dict(self.headers).get(":status", "?")
            end = ", END_STREAM" if self.end_stream else ""
            return f"HEADERS(:status={status}{end}) on stream {self.stream_id}"
        if self.type == DATA:
            end = ", END_STREAM" if self.end_stream else ""
            return f"DATA(len={len(self.payload)}{end}) on stream {self.stream_id}"
        if self.type == WINDOW_UPDATE:
            return f"WINDOW_UPDATE on stream {self.stream_id}"
        return f"{name} on stream {self.stream_id}"


def frame(
    frame_type: int,
    flags: int,
    stream_id: int,
    payload: bytes = b"",
    *,
    length: int | None = None,
    reserved_bit: bool = False,
) -> bytes:
    """Build one frame. ``length`` overrides the length field (the payload is sent as is)."""
    size = len(payload) if length is None else length
    sid = (stream_id & 0x7FFF_FFFF) | (0x8000_0000 if reserved_bit else 0)
    return struct.pack("!I", size)[1:] + struct.pack("!BBI", frame_type, flags, sid) + payload


def settings_payload(*settings: tuple[int, int]) -> bytes:
    return b"".join(struct.pack("!HI", ident, value) for ident, value in settings)


def priority_payload(depends_on: int, weight: int = 15, *, exclusive: bool = False) -> bytes:
    return struct.pack("!IB", depends_on | (0x8000_0000 if exclusive else 0), weight)


def rst_payload(code: int) -> bytes:
    return struct.pack("!I", code)


def goaway_payload(last_stream_id: int, code: int, debug: bytes = b"") -> bytes:
    return struct.pack("!II", last_stream_id, code) + debug


def window_update_payload(increment: int) -> bytes:
    return struct.pack("!I", increment)


def padded(body: bytes, pad_length: int) -> bytes:
    """Payload of a PADDED frame: pad length octet, body, then ``pad_length`` zero octets."""
    return bytes([pad_length]) + body + b"\x00" * pad_length
