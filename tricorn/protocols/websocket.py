"""WebSocket for the server side, sans-IO: the opening handshake (RFC 6455 over HTTP/1.1,
RFC 8441 over HTTP/2) as plain functions, and the frame layer as one transport-agnostic object.

The frame layer parses with wsproto's ``FrameProtocol``. One wsproto extension of ours,
``_InboundGuard``, sees every inbound frame header and payload chunk: it enforces the message
size and fragment limits before a payload is buffered, and it inflates permessage-deflate
(RFC 7692) with ``max_length`` so that a compression bomb costs at most ``max_message_size``
bytes. Outbound frames are serialized here (a server never masks), which keeps the echo path
to one copy per message.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import re
import struct
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from wsproto.extensions import Extension
from wsproto.frame_protocol import (
    CloseReason,
    Frame,
    FrameDecoder,
    FrameProtocol,
    Opcode,
    ParseFailed,
    RsvBits,
    XorMaskerSimple,
)

from ..constants import WSCloseCode
from ..errors import LocalProtocolError, TricornError
from .events import ConnectionClosed, Event, Headers, ProtocolError, Request
from .websocket_fast import DONE, PARTIAL, scan_frames

_c_apply_mask: Callable[[bytearray, bytes], bytes] | None
try:  # websockets' C function for masks, when installed (extra "speedups"); else wsproto's
    from websockets.speedups import apply_mask as _c_apply_mask
except ImportError:  # pragma: no cover - the test environment has websockets
    _c_apply_mask = None

__all__ = [
    "DEFAULT_COMPRESSION_LEVEL",
    "DEFAULT_MAX_FRAGMENTS",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "AcceptResponse",
    "CloseReceived",
    "ConnectionClosed",
    "DeflateParameters",
    "ExtensionOffer",
    "HandshakeError",
    "Message",
    "PongReceived",
    "ProtocolError",
    "WebSocketProtocol",
    "WebSocketRequestInfo",
    "WebSocketState",
    "accept_headers",
    "accept_key",
    "negotiate_deflate",
    "parse_extension_offers",
    "parse_upgrade_request",
]

#: Largest message (after decompression) a peer may send; larger ones are closed with 1009.
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
#: Most frames one message may be split into; more are closed with 1008 (policy violation).
#: An empty final continuation frame (how many clients end a fragmented message) is not
#: counted: it ends the message, so there is at most one per message.
DEFAULT_MAX_FRAGMENTS = 65536
#: zlib level for permessage-deflate output (-1 is zlib's default, 6).
DEFAULT_COMPRESSION_LEVEL = 1

_VERSION = b"13"
_ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_WINDOW_BITS = re.compile(r"[89]|1[0-5]")  # RFC 7692 section 7.1.2: 8..15, no leading zero
# Split a header value on commas/semicolons that are not inside a quoted string.
_LIST_ELEMENT = re.compile(r'(?:[^,"]|"(?:[^"\\]|\\.)*")+')
_PARAMETER = re.compile(r'(?:[^;"]|"(?:[^"\\]|\\.)*")+')
_QUOTED_PAIR = re.compile(r"\\(.)")


# --- opening handshake -------------------------------------------------------------------


class HandshakeError(TricornError):
    """The client's opening handshake is invalid: answer ``status`` with ``headers``.

    Raised by ``parse_upgrade_request``. ``message`` says what was wrong (for the log and,
    if the server wants, the response body).
    """

    def __init__(self, message: str, status: int = 400, headers: Headers | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.headers: Headers = headers if headers is not None else []


@dataclass(frozen=True, slots=True)
class ExtensionOffer:
    """One element of ``Sec-WebSocket-Extensions``: a name and its parameters, unquoted."""

    name: str
    params: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True, slots=True)
class WebSocketRequestInfo:
    """What a valid WebSocket request asks for.

    ``key`` is the ``Sec-WebSocket-Key`` (HTTP/1.1; ``None`` on HTTP/2, which has none).
    ``subprotocols`` are the offered subprotocols in the client's order (the ASGI scope's
    ``subprotocols``); ``extensions`` the offered extensions in the client's order.
    """

    http_version: str
    key: bytes | None
    subprotocols: tuple[str, ...]
    extensions: tuple[ExtensionOffer, ...]


@dataclass(frozen=True, slots=True)
class DeflateParameters:
    """Negotiated permessage-deflate parameters (RFC 7692 section 7.1).

    ``*_max_window_bits`` is ``None`` when the parameter is absent from the response.
    """

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int | None = None
    client_max_window_bits: int | None = None

    def header_value(self) -> bytes:
        """The ``Sec-WebSocket-Extensions`` response value that accepts these parameters."""
        parts = ["permessage-deflate"]
        if self.server_no_context_takeover:
            parts.append("server_no_context_takeover")
        if self.client_no_context_takeover:
            parts.append("client_no_context_takeover")
        if self.server_max_window_bits is not None:
            parts.append(f"server_max_window_bits={self.server_max_window_bits}")
        if self.client_max_window_bits is not None:
            parts.append(f"client_max_window_bits={self.client_max_window_bits}")
        return "; ".join(parts).encode("ascii")


class AcceptResponse(NamedTuple):
    """The response that accepts a WebSocket, and what it negotiated.

    ``status`` is 101 (HTTP/1.1) or 200 (HTTP/2, RFC 8441). ``deflate`` goes to
    ``WebSocketProtocol(deflate=...)``.
    """

    status: int
    headers: Headers
    deflate: DeflateParameters | None


def accept_key(key: bytes) -> bytes:
    """The ``Sec-WebSocket-Accept`` value for a ``Sec-WebSocket-Key`` (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + _ACCEPT_GUID).digest())


def _values(headers: Headers, name: bytes) -> list[bytes]:
    return [value for header, value in headers if header == name]


def _tokens(headers: Headers, name: bytes) -> set[bytes]:
    """The lower-cased comma-separated tokens of every ``name`` header."""
    return {
        token.strip().lower()
        for value in _values(headers, name)
        for token in value.split(b",")
        if token.strip()
    }


def _version_error(message: str, missing: bool, http11: bool) -> HandshakeError:
    headers: Headers = [(b"sec-websocket-version", _VERSION)]
    if missing or not http11:
        return HandshakeError(message, 400, headers)
    # RFC 9110 15.5.22: a 426 names the protocol to upgrade to (HTTP/2 has no Upgrade).
    return HandshakeError(
        message, 426, [*headers, (b"upgrade", b"websocket"), (b"connection", b"upgrade")]
    )


def parse_upgrade_request(request: Request) -> WebSocketRequestInfo:
    """Validate a WebSocket opening handshake and return what it asks for.

    HTTP/1.1 (RFC 6455 section 4.2.1): a GET on HTTP/1.1 with ``Host``, ``Upgrade:
    websocket``, ``Connection: upgrade``, one ``Sec-WebSocket-Key`` that is 16 bytes in
    base64 and ``Sec-WebSocket-Version: 13``. HTTP/2 (RFC 8441 section 5): an extended
    CONNECT with ``:protocol websocket`` and ``Sec-WebSocket-Version: 13``; there is no key.

    Raises ``HandshakeError``: 400 for a malformed handshake (a missing version comes with
    ``Sec-WebSocket-Version: 13``), 426 with ``Sec-WebSocket-Version: 13`` (and ``Upgrade``)
    for a version other than 13 on HTTP/1.1 (RFC 6455 4.2.2; on HTTP/2, which has no
    ``Upgrade``, that is a 400 with the same header). A malformed ``Sec-WebSocket-Protocol``
    is a 400; malformed extension offers are ignored (compression is then not negotiated).
    """
    headers = request.headers
    http11 = request.http_version not in ("2", "3")  # RFC 8441 and RFC 9220: extended CONNECT
    key: bytes | None = None
    if http11:
        if request.method != b"GET":
            raise HandshakeError("a WebSocket handshake must be a GET request", 400)
        if request.http_version != "1.1":
            raise HandshakeError("a WebSocket handshake needs HTTP/1.1", 400)
        if not _values(headers, b"host"):
            raise HandshakeError("the WebSocket handshake has no Host header", 400)
        if b"websocket" not in _tokens(headers, b"upgrade"):
            raise HandshakeError("the WebSocket handshake lacks 'Upgrade: websocket'", 400)
        if b"upgrade" not in _tokens(headers, b"connection"):
            raise HandshakeError("the WebSocket handshake lacks 'Connection: upgrade'", 400)
        keys = _values(headers, b"sec-websocket-key")
        if len(keys) != 1 or not _valid_key(keys[0].strip()):
            raise HandshakeError("Sec-WebSocket-Key must be one 16-byte base64 value", 400)
        key = keys[0].strip()
    elif request.method != b"CONNECT" or request.protocol != b"websocket":
        raise HandshakeError("a WebSocket over HTTP/2 needs CONNECT :protocol websocket")
    versions = [value.strip() for value in _values(headers, b"sec-websocket-version")]
    if not versions:
        raise _version_error("the WebSocket handshake has no Sec-WebSocket-Version", True, http11)
    if versions != [_VERSION]:
        raise _version_error("unsupported Sec-WebSocket-Version (13 is spoken)", False, http11)
    return WebSocketRequestInfo(
        http_version=request.http_version,
        key=key,
        subprotocols=_parse_subprotocols(headers),
        extensions=parse_extension_offers(_values(headers, b"sec-websocket-extensions")),
    )


def _valid_key(key: bytes) -> bool:
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except binascii.Error:
        return False


def _parse_subprotocols(headers: Headers) -> tuple[str, ...]:
    subprotocols: list[str] = []
    for value in _values(headers, b"sec-websocket-protocol"):
        for raw_item in value.decode("latin-1").split(","):
            item = raw_item.strip(" \t")
            if not item:
                continue
            if not _TOKEN.fullmatch(item):
                raise HandshakeError(f"invalid subprotocol {item!r} in Sec-WebSocket-Protocol")
            subprotocols.append(item)
    return tuple(subprotocols)


def parse_extension_offers(values: list[bytes]) -> tuple[ExtensionOffer, ...]:
    """Parse ``Sec-WebSocket-Extensions`` values (RFC 6455 section 9.1, quoted strings too).

    An element that does not parse is left out, so that it is simply not negotiated.
    """
    offers: list[ExtensionOffer] = []
    for element in _LIST_ELEMENT.findall(b",".join(values).decode("latin-1")):
        parts = [part.strip(" \t") for part in _PARAMETER.findall(element)]
        if not parts or not _TOKEN.fullmatch(parts[0]):
            continue
        params: list[tuple[str, str | None]] = []
        for part in parts[1:]:
            name, equals, value = part.partition("=")
            name, value = name.strip(" \t"), value.strip(" \t")
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = _QUOTED_PAIR.sub(r"\1", value[1:-1])
            if not _TOKEN.fullmatch(name) or (equals and not _TOKEN.fullmatch(value)):
                break
            params.append((name, value if equals else None))
        else:
            offers.append(ExtensionOffer(parts[0], tuple(params)))
    return tuple(offers)


def negotiate_deflate(offers: tuple[ExtensionOffer, ...]) -> DeflateParameters | None:
    """Accept the first permessage-deflate offer we can honour, or ``None``.

    An offer with an unknown or repeated parameter or an invalid value is declined (RFC 7692
    section 5.1), and so is ``server_max_window_bits=8``, which zlib cannot produce for raw
    deflate. Offered parameters are echoed; ``client_max_window_bits`` without a value is
    left out of the response (we inflate with a 32 KiB window, which reads any window size).
    """
    for offer in offers:
        if offer.name.lower() == "permessage-deflate":
            parameters = _accept_deflate_offer(offer)
            if parameters is not None:
                return parameters
    return None


def _accept_deflate_offer(offer: ExtensionOffer) -> DeflateParameters | None:
    seen: set[str] = set()
    server_no_context_takeover = client_no_context_takeover = False
    server_bits: int | None = None
    client_bits: int | None = None
    for raw_name, value in offer.params:
        name = raw_name.lower()
        if name in seen:
            return None
        seen.add(name)
        if name in ("server_no_context_takeover", "client_no_context_takeover"):
            if value is not None:
                return None
            if name == "server_no_context_takeover":
                server_no_context_takeover = True
            else:
                client_no_context_takeover = True
        elif name == "server_max_window_bits":
            if value is None or not _WINDOW_BITS.fullmatch(value) or value == "8":
                return None
            server_bits = int(value)
        elif name == "client_max_window_bits":
            if value is not None:
                if not _WINDOW_BITS.fullmatch(value):
                    return None
                client_bits = int(value)
        else:
            return None
    return DeflateParameters(
        server_no_context_takeover, client_no_context_takeover, server_bits, client_bits
    )


_RESERVED_RESPONSE_HEADERS = frozenset(
    (
        b"upgrade",
        b"connection",
        b"sec-websocket-accept",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
    )
)


def accept_headers(
    info: WebSocketRequestInfo,
    subprotocol: str | None = None,
    extra_headers: Headers | None = None,
    compression: bool = True,
) -> AcceptResponse:
    """Build the response that accepts the WebSocket ``info`` describes.

    HTTP/1.1: status 101 with ``Upgrade``, ``Connection`` and ``Sec-WebSocket-Accept``.
    HTTP/2: status 200 and no accept key (RFC 8441 section 5). Both add
    ``Sec-WebSocket-Protocol`` when ``subprotocol`` is given and ``Sec-WebSocket-Extensions``
    when ``compression`` is on and the client offered a permessage-deflate we accept, then
    ``extra_headers`` (the app's ``websocket.accept`` headers).

    Raises ``LocalProtocolError`` when ``subprotocol`` was not offered by the client, or when
    ``extra_headers`` holds a header the handshake itself sets (use ``subprotocol`` for
    ``Sec-WebSocket-Protocol``).
    """
    if subprotocol is not None and subprotocol not in info.subprotocols:
        raise LocalProtocolError(
            f"WebSocket subprotocol {subprotocol!r} was not offered by the client "
            f"(offered: {list(info.subprotocols)})"
        )
    headers: Headers = []
    if info.http_version in ("2", "3"):
        status = 200
    else:
        assert info.key is not None
        status = 101
        headers += [
            (b"upgrade", b"websocket"),
            (b"connection", b"Upgrade"),
            (b"sec-websocket-accept", accept_key(info.key)),
        ]
    if subprotocol is not None:
        headers.append((b"sec-websocket-protocol", subprotocol.encode("ascii")))
    deflate = negotiate_deflate(info.extensions) if compression else None
    if deflate is not None:
        headers.append((b"sec-websocket-extensions", deflate.header_value()))
    for name, value in extra_headers or ():
        if name.lower() in _RESERVED_RESPONSE_HEADERS:
            raise LocalProtocolError(
                f"the WebSocket accept headers may not set {name.decode('latin-1')!r}"
            )
        headers.append((name, value))
    return AcceptResponse(status, headers, deflate)


# --- frame layer ---------------------------------------------------------------------------


class WebSocketState(Enum):
    """Where the closing handshake stands."""

    #: Messages flow both ways.
    OPEN = "open"
    #: The peer broke the protocol (``ProtocolError``): nothing more is read, but messages may
    #: still be sent (the replies to the messages that came before the error); ``close``
    #: queues the close frame with the error's code and the state becomes ``CLOSED``.
    FAILING = "failing"
    #: We sent a close frame and wait for the peer's; we send nothing more.
    CLOSING = "closing"
    #: Both close frames are exchanged, the WebSocket failed or the transport ended:
    #: write what ``data_to_send`` holds, then close the transport.
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Message(Event):
    """A complete message from the peer (fragments reassembled): ``str`` text, ``bytes`` binary."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class CloseReceived(Event):
    """The peer sent a close frame: the WebSocket is over (state ``CLOSED``).

    If we had not sent a close frame yet, the reply (echoing ``code``) is already queued.
    ``code`` is 1005 when the peer's close frame carried no code.
    """

    code: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PongReceived(Event):
    """The peer sent a pong (an answer to ``ping``, or unsolicited)."""

    payload: bytes


# Close codes an endpoint may put on the wire (RFC 6455 7.4, IANA registry); 1005, 1006 and
# 1015 are for reporting only.
_SENDABLE_CLOSE_CODES = frozenset(
    (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014)
)
_NO_STATUS = 1005
_ABNORMAL_CLOSURE = WSCloseCode.ABNORMAL_CLOSURE
_MAX_CONTROL_PAYLOAD = 125
# A ping flood is answered with at most this many pongs per flush (the newest ones; RFC 6455
# 5.5.3 allows answering only the most recent ping), so queued pongs stay under 2 KiB.
_MAX_QUEUED_PONGS = 16
# Below this size deflate's framing costs more than it saves, so small messages go uncompressed
# (RFC 7692 lets the sender choose per message).
_COMPRESSION_THRESHOLD = 64
_SYNC_FLUSH_TAIL = b"\x00\x00\xff\xff"
_NO_RSV = RsvBits(False, False, False)
_RSV1 = RsvBits(True, False, False)
_HEADER_SHORT = struct.Struct("!BB")
_HEADER_16 = struct.Struct("!BBH")
_HEADER_64 = struct.Struct("!BBQ")
_FIN, _RSV1_BIT = 0x80, 0x40


def _frame_header(opcode: int, length: int, compressed: bool = False) -> bytes:
    first = _FIN | opcode | (_RSV1_BIT if compressed else 0)
    if length < 126:
        return _HEADER_SHORT.pack(first, length)
    if length < 65536:
        return _HEADER_16.pack(first, 126, length)
    return _HEADER_64.pack(first, 127, length)


def _truncate_utf8(text: str, limit: int) -> bytes:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return data
    return data[:limit].decode("utf-8", errors="ignore").encode("utf-8")


class _CMasker(XorMaskerSimple):
    """wsproto's unmasking, done by websockets' C ``apply_mask``: the same bytes, about 15x
    faster. wsproto's pure-Python one took a third of the server's time echoing 64 KiB
    messages (72 us per message)."""

    def process(self, data: bytearray) -> bytearray:
        if not data:
            return bytearray()
        assert _c_apply_mask is not None
        key = bytes(self._masking_key)
        unmasked = bytearray(_c_apply_mask(data, key))
        turn = len(data) % 4  # the next chunk of this frame goes on with the next key byte
        self._masking_key = key[turn:] + key[:turn]
        return unmasked


class _FastDecoder(FrameDecoder):
    """wsproto's frame decoder with ``_CMasker`` for masked frames."""

    def parse_header(self) -> bool:
        parsed = super().parse_header()
        if parsed and type(self.masker) is XorMaskerSimple:
            self.masker = _CMasker(self.masker._masking_key)
        return parsed


class _InboundGuard(Extension):
    """A wsproto extension that limits inbound messages and inflates permessage-deflate.

    wsproto may call ``frame_inbound_header`` more than once for the same frame (when the
    masking key has not arrived yet it rolls back), so that hook only checks the size; the
    frame is counted, and the fragment limit checked, when its first payload chunk (possibly
    empty) arrives, before any of its payload is kept. The count is the same however the
    bytes are chunked. An empty final continuation frame is not counted: clients (websockets,
    Autobahn) end a fragmented message with one, and it can come only once per message.
    """

    name = "tricorn-inbound-guard"

    def __init__(
        self, max_message_size: int, max_fragments: int, deflate: DeflateParameters | None
    ) -> None:
        self.max_message_size = max_message_size
        self.max_fragments = max_fragments
        self.deflate = deflate
        self.error = ""
        self._decompressor: zlib._Decompress | None = None
        self._pending: tuple[bool, bool] | None = None  # (starts a message, rsv1) of a new frame
        self._control = False
        self._compressed = False  # the current message is compressed
        self._message_size = 0
        self._fragments = 0
        self._in_message = False  # a fragmented message waits for its continuation frames
        #: A compressed text message's UTF-8 check, here as it is inflated (wsproto checks a
        #: frame only after its last hook, where a size fault would come first).
        self._utf8: codecs.BufferedIncrementalDecoder | None = None

    def enabled(self) -> bool:
        return True

    def offer(self) -> bool | str:
        return False

    def _fail(self, code: CloseReason, message: str) -> CloseReason:
        self.error = message
        return code

    def frame_inbound_header(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        payload_length: int,
    ) -> CloseReason | RsvBits:
        if opcode.iscontrol():
            if rsv.rsv1:
                return self._fail(CloseReason.PROTOCOL_ERROR, "RSV1 set on a control frame")
            self._pending = None
            self._control = True
            return _NO_RSV
        starts = opcode is not Opcode.CONTINUATION
        if starts == self._in_message:
            # RFC 6455 5.4, answered at the header: wsproto finds it only after the payload
            # went through the extensions, so a deflate or size fault of the same frame
            # would win or not depending on how much payload came along (found by fuzzing).
            if starts:
                return self._fail(CloseReason.PROTOCOL_ERROR, "expected a continuation frame")
            return self._fail(
                CloseReason.PROTOCOL_ERROR, "a continuation frame outside a fragmented message"
            )
        if rsv.rsv1 and not starts:
            return self._fail(CloseReason.PROTOCOL_ERROR, "RSV1 set on a continuation frame")
        compressed = rsv.rsv1 if starts else self._compressed
        if not compressed and (0 if starts else self._message_size) + payload_length > (
            self.max_message_size
        ):
            return self._fail(CloseReason.MESSAGE_TOO_BIG, self._too_big())
        if starts:
            self._utf8 = _UTF8() if opcode is Opcode.TEXT and rsv.rsv1 else None
        self._pending = (starts, rsv.rsv1)
        self._control = False
        return _RSV1 if self.deflate is not None else _NO_RSV

    def _too_big(self) -> str:
        return f"message larger than {self.max_message_size} bytes"

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        if self._control:
            return data
        if self._pending is not None:
            starts, rsv1 = self._pending
            self._pending = None
            if starts:
                self._compressed = rsv1
                self._message_size = self._fragments = 0
            header = proto.header if isinstance(proto, FrameDecoder) else None
            if starts or header is None or not (header.fin and header.payload_len == 0):
                self._fragments += 1
                if self._fragments > self.max_fragments:
                    return self._fail(
                        CloseReason.POLICY_VIOLATION,
                        f"message split into more than {self.max_fragments} frames",
                    )
        if self._compressed:
            result = self._inflate(data)
            if isinstance(result, CloseReason):
                return result
            data = result
        elif self._message_size + len(data) > self.max_message_size:
            return self._fail(CloseReason.MESSAGE_TOO_BIG, self._too_big())
        self._message_size += len(data)
        return data

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        """Inflate at most the rest of the message budget (+1 byte to notice the excess)."""
        if self._decompressor is None:
            self._decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
        budget = self.max_message_size - self._message_size
        try:
            output = self._decompressor.decompress(data, budget + 1)
        except zlib.error as exc:
            return self._fail(CloseReason.INVALID_FRAME_PAYLOAD_DATA, f"bad deflate data: {exc}")
        if self._utf8 is not None:
            # The first fault in the inflated bytes wins: bad UTF-8 before the size limit,
            # whatever the chunking (found by fuzzing: tests/property).
            try:
                self._utf8.decode(output[: budget + 1])
            except UnicodeDecodeError:
                return self._fail(
                    CloseReason.INVALID_FRAME_PAYLOAD_DATA, "invalid UTF-8 in a text message"
                )
        if len(output) > budget or self._decompressor.unconsumed_tail:
            return self._fail(CloseReason.MESSAGE_TOO_BIG, self._too_big())
        return output

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        if self._control:
            return None
        self._in_message = not fin
        if not fin or not self._compressed:
            return None
        self._compressed = False
        tail = self._inflate(_SYNC_FLUSH_TAIL)
        if isinstance(tail, CloseReason):
            return tail
        self._message_size += len(tail)
        assert self.deflate is not None and self._decompressor is not None
        if self.deflate.client_no_context_takeover or self._decompressor.eof:
            self._decompressor = None
        return tail


_UTF8 = codecs.getincrementaldecoder("utf-8")


class _Deflater:
    """Compresses outbound messages for a negotiated permessage-deflate."""

    __slots__ = ("_compressor", "_level", "_no_context_takeover", "_window_bits")

    def __init__(self, parameters: DeflateParameters, level: int) -> None:
        self._window_bits = parameters.server_max_window_bits or zlib.MAX_WBITS
        self._no_context_takeover = parameters.server_no_context_takeover
        self._level = level
        self._compressor: zlib._Compress | None = None

    def compress(self, payload: bytes) -> bytes:
        if self._compressor is None:
            self._compressor = zlib.compressobj(self._level, zlib.DEFLATED, -self._window_bits)
        data = self._compressor.compress(payload) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        if self._no_context_takeover:
            self._compressor = None
        return data[: -len(_SYNC_FLUSH_TAIL)]  # RFC 7692 7.2.1: drop the empty block's tail


def _failure_reason(error: ParseFailed) -> str:
    """What a wsproto parse failure tells the peer (the close reason) and the log.

    wsproto's invalid UTF-8 message quotes the codec, with a byte position counted from the
    start of the piece it was decoding: it would differ with how the bytes arrived (found by
    fuzzing, tests/property/test_websocket_properties.py). The reason is fixed text instead.
    """
    if isinstance(error.__context__, UnicodeDecodeError):
        if str(error).startswith("Error decoding CLOSE reason"):
            return "invalid UTF-8 in the close reason"
        return "invalid UTF-8 in a text message"
    return str(error)


class WebSocketProtocol:
    """The server side of an open WebSocket: bytes in -> events out, calls in -> bytes out.

    Transport-agnostic: feed it what follows the 101 response on HTTP/1.1, or the DATA of the
    extended CONNECT stream on HTTP/2. ``receive_data`` returns events: ``Message``,
    ``PongReceived``, and exactly one terminal event, after which the state is ``CLOSED``
    (or ``FAILING``, see ``ProtocolError``):

    - ``CloseReceived(code, reason)``: the peer closed (our reply, if due, is queued);
    - ``ProtocolError(None, message, error_code=code)``: the peer broke the protocol or a
      limit (1002 protocol error, 1007 invalid UTF-8 or deflate data, 1008 too many
      fragments, 1009 message too big). The events before it (messages that arrived before
      the bad frame) are valid. If we had not sent a close frame yet the state becomes
      ``FAILING``: the server may still send (its replies to those messages), then calls
      ``close`` to queue the close frame with that code (state ``CLOSED``); else ``CLOSED``;
    - ``ConnectionClosed(error_code=1006)``: the transport ended without a close handshake.

    After the terminal event nothing more is read. Pings are answered with pongs
    automatically. Once ``closed``, write ``data_to_send()`` and close the transport (RFC
    6455 7.1.1: the server closes TCP first); after ``close`` (state ``CLOSING``) keep
    reading until the peer's close frame or a timeout.
    """

    __slots__ = (
        "_binary",
        "_deflater",
        "_failure",
        "_fast",
        "_frames",
        "_guard",
        "_output",
        "_output_size",
        "_partial",
        "_pongs",
        "_state",
        "_text",
    )

    def __init__(
        self,
        *,
        deflate: DeflateParameters | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_fragments: int = DEFAULT_MAX_FRAGMENTS,
        compression_level: int = DEFAULT_COMPRESSION_LEVEL,
    ) -> None:
        """``deflate`` is ``AcceptResponse.deflate`` (``None``: no compression).

        ``max_message_size`` bounds a message after decompression, checked as frames arrive
        and before they are buffered; ``max_fragments`` bounds the frames of one message (an
        empty final continuation frame is not counted); ``compression_level`` is the zlib
        level (0-9, -1 for zlib's default) of the messages we compress.
        """
        self._guard = _InboundGuard(max_message_size, max_fragments, deflate)
        self._frames = FrameProtocol(client=False, extensions=[self._guard])
        if _c_apply_mask is not None:
            self._frames._frame_decoder = _FastDecoder(False, [self._guard])
        self._deflater = _Deflater(deflate, compression_level) if deflate is not None else None
        #: At a message boundary with nothing in wsproto: single-frame messages are read by
        #: ``websocket_fast.scan_frames`` (``_receive_fast``), everything else by wsproto.
        self._fast = True
        self._partial = bytearray()  # the start of a fast-path frame that is not all here
        self._failure: tuple[int, str] | None = None
        self._state = WebSocketState.OPEN
        self._output: list[bytes] = []
        self._output_size = 0
        self._pongs: deque[bytes] = deque(maxlen=_MAX_QUEUED_PONGS)
        self._text: bytearray | None = None  # a fragmented text message so far, UTF-8
        self._binary = bytearray()

    @property
    def state(self) -> WebSocketState:
        return self._state

    @property
    def closed(self) -> bool:
        """True once the WebSocket is over: flush ``data_to_send`` and close the transport."""
        return self._state is WebSocketState.CLOSED

    @property
    def pending_output_size(self) -> int:
        """Bytes queued for ``data_to_send``: what was sent plus at most a few pongs."""
        if not self._pongs:
            return self._output_size
        return self._output_size + sum(len(pong) for pong in self._pongs)

    # --- input ---

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the transport; ``b""`` means it ended. Returns the events.

        Once ``FAILING`` or ``CLOSED``, further data is ignored and no events come.
        """
        if self._state is WebSocketState.CLOSED or self._state is WebSocketState.FAILING:
            return []
        if not data:
            self._finish()
            return [ConnectionClosed(error_code=_ABNORMAL_CLOSURE)]
        events: list[Event] = []
        if self._fast:
            data = self._receive_fast(data, events)
            if not data:
                return events
        self._frames.receive_bytes(data)
        try:
            for frame in self._frames.received_frames():
                event = self._receive_frame(frame)
                if event is not None:
                    events.append(event)
                    if self.closed:
                        break
        except ParseFailed as exc:
            events.append(self._fail(int(exc.code), self._guard.error or _failure_reason(exc)))
            return events
        self._fast = self._at_message_boundary()
        return events

    def _receive_fast(self, data: bytes, events: list[Event]) -> bytes:
        """Read whole single-frame messages without wsproto (``websocket_fast``); return the
        bytes that are wsproto's (from the first frame that is not such a message on), or
        ``b""`` when there are none (an incomplete frame is kept for the next call)."""
        partial = self._partial
        if partial:
            partial += data
            buffer: bytes | bytearray = partial
        else:
            buffer = data
        messages: list[str | bytes] = []
        position, outcome = scan_frames(buffer, self._guard.max_message_size, messages)
        for message in messages:
            events.append(Message(message))
        if outcome == DONE:
            if partial:
                partial.clear()
            return b""
        if outcome == PARTIAL:
            if partial:
                del partial[:position]
            else:
                self._partial = bytearray(memoryview(buffer)[position:])
            return b""
        self._fast = False
        rest = bytes(buffer[position:])
        if partial:
            partial.clear()
        return rest

    def _at_message_boundary(self) -> bool:
        """wsproto holds no bytes, no partial frame and no fragmented message: the fast path
        may read what comes next."""
        decoder = self._frames._frame_decoder
        return (
            decoder.header is None
            and not decoder.buffer.buffer
            and self._frames._message_decoder.opcode is None
        )

    def _receive_frame(self, frame: Frame) -> Event | None:
        opcode, payload = frame.opcode, frame.payload
        if opcode is Opcode.TEXT:
            assert isinstance(payload, str)
            # A fragmented text message is kept as UTF-8 in one buffer (wsproto validated and
            # decoded each fragment): one str per fragment would cost ~60 bytes for each,
            # possibly two-byte, fragment.
            if frame.message_finished and self._text is None:
                return Message(payload)
            if self._text is None:
                self._text = bytearray()
            self._text += payload.encode("utf-8")
            if frame.message_finished:
                text = self._text.decode("utf-8")
                self._text = None
                return Message(text)
        elif opcode is Opcode.BINARY:
            assert isinstance(payload, bytes)
            if frame.message_finished and not self._binary:
                return Message(payload)
            self._binary += payload
            if frame.message_finished:
                binary = bytes(self._binary)
                self._binary = bytearray()
                return Message(binary)
        elif opcode is Opcode.PING:
            assert isinstance(payload, bytes)
            if self._state is WebSocketState.OPEN:
                self._pongs.append(_frame_header(Opcode.PONG, len(payload)) + payload)
        elif opcode is Opcode.PONG:
            assert isinstance(payload, bytes)
            return PongReceived(payload)
        elif opcode is Opcode.CLOSE:
            assert isinstance(payload, tuple)
            code, reason = payload
            if self._state is WebSocketState.OPEN:
                self._queue_close(None if code == _NO_STATUS else int(code), "")
            self._finish()
            return CloseReceived(int(code), reason)
        return None

    def _fail(self, code: int, message: str) -> ProtocolError:
        if self._state is WebSocketState.OPEN:
            self._finish()
            self._failure = (code, message)
            self._state = WebSocketState.FAILING  # the close frame goes out with close()
        else:
            self._finish()
        return ProtocolError(None, message, error_code=code)

    def _finish(self) -> None:
        self._state = WebSocketState.CLOSED
        self._text = None
        self._binary = bytearray()
        self._partial = bytearray()

    # --- output ---

    def send_message(self, data: str | bytes | bytearray | memoryview) -> None:
        """Queue one message: ``str`` as text, ``bytes`` (or bytes-like) as binary.

        Raises ``LocalProtocolError`` unless the state is ``OPEN`` or ``FAILING`` (after
        ``close`` or once the peer closed, the app's messages are to be refused as a
        disconnect).
        """
        if self._state is not WebSocketState.OPEN and self._state is not WebSocketState.FAILING:
            raise LocalProtocolError(f"cannot send a WebSocket message in state {self._state.name}")
        if isinstance(data, str):
            opcode, payload = Opcode.TEXT, data.encode("utf-8")
        else:
            opcode, payload = Opcode.BINARY, data if type(data) is bytes else bytes(data)
        compressed = self._deflater is not None and len(payload) >= _COMPRESSION_THRESHOLD
        if compressed:
            assert self._deflater is not None
            payload = self._deflater.compress(payload)
        header = _frame_header(opcode, len(payload), compressed)
        self._output += (header, payload)
        self._output_size += len(header) + len(payload)

    def send_message_now(self, data: str | bytes | bytearray | memoryview) -> list[bytes]:
        """``send_message(data)``, then what to write now, this message last, as chunks
        for one gathering write (``b"".join`` of them is what ``data_to_send`` returns):
        a 64 KiB message goes out without being copied behind its frame header."""
        self.send_message(data)
        if self._pongs:
            chunks = [*self._pongs, *self._output]
            self._pongs.clear()
        else:
            chunks = self._output
        self._output = []
        self._output_size = 0
        return chunks

    def ping(self, payload: bytes = b"") -> None:
        """Queue a ping (a keepalive); its answer comes as ``PongReceived``.

        Does nothing unless ``OPEN``. Raises ``LocalProtocolError`` for a payload over 125
        bytes.
        """
        if len(payload) > _MAX_CONTROL_PAYLOAD:
            raise LocalProtocolError("a WebSocket ping payload is at most 125 bytes")
        if self._state is WebSocketState.OPEN:
            self._queue(_frame_header(Opcode.PING, len(payload)) + payload)

    def close(self, code: int | None = 1000, reason: str = "") -> None:
        """Start the closing handshake: queue a close frame, state becomes ``CLOSING``.

        ``code`` ``None`` (or 1005) sends a close frame without a code. ``reason`` is cut to
        123 bytes of UTF-8 at a character boundary. Does nothing unless ``OPEN`` or
        ``FAILING``; in ``FAILING`` the close frame carries the protocol error's code and
        message whatever ``code`` says, and the state becomes ``CLOSED`` (RFC 6455 7.1.7: a
        failed WebSocket does not wait for the peer's close). Raises ``LocalProtocolError``
        for a code that may not go on the wire (1004, 1006, 1015, other codes under 3000 that
        are not registered, or above 4999).
        """
        if code == _NO_STATUS:
            code = None
        if code is not None and code not in _SENDABLE_CLOSE_CODES and not 3000 <= code <= 4999:
            raise LocalProtocolError(f"WebSocket close code {code} may not be sent")
        if self._state is WebSocketState.FAILING:
            assert self._failure is not None
            self._queue_close(*self._failure)
            self._failure = None
            self._state = WebSocketState.CLOSED
            return
        if self._state is not WebSocketState.OPEN:
            return
        self._queue_close(code, reason)
        self._state = WebSocketState.CLOSING

    def _queue_close(self, code: int | None, reason: str) -> None:
        payload = b""
        if code is not None:
            payload = code.to_bytes(2, "big") + _truncate_utf8(reason, _MAX_CONTROL_PAYLOAD - 2)
        # Queued pongs are written ahead of this frame by data_to_send; nothing follows it.
        self._queue(_frame_header(Opcode.CLOSE, len(payload)) + payload)

    def _queue(self, frame: bytes) -> None:
        self._output.append(frame)
        self._output_size += len(frame)

    def data_to_send(self) -> bytes:
        """Everything to write to the transport now (pongs first, then frames in order)."""
        if self._pongs:
            chunks = [*self._pongs, *self._output]
            self._pongs.clear()
        else:
            chunks = self._output
        data = b"".join(chunks)
        self._output = []
        self._output_size = 0
        return data
