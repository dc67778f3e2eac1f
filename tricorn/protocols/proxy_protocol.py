"""The PROXY protocol header, versions 1 and 2 (HAProxy's ``proxy-protocol.txt``), sans-IO.

A load balancer that relays TCP connections puts one header in front of each one, before any
byte of TLS or HTTP, saying who the client was: v1 is a line of text
(``PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\\r\\n``, at most 107 bytes), v2 a binary
block (a 12-byte signature, version and command, family and transport, a length, the
addresses, then TLVs: ALPN, authority, CRC32C, unique id, the client's TLS details...).

``ProxyProtocolParser`` is fed the connection's first bytes: ``feed`` answers ``None``
(need more), a ``Parsed`` (the header, and the bytes after it, which belong to TLS or HTTP)
or raises ``ProxyProtocolError`` with the reason. It never holds more than the header's
bound (107 bytes for v1, ``v2_max_size`` for v2) plus what one ``feed`` brought, and it
decides as early as the bytes allow: a first byte that cannot start a header is refused
at once. The answer does not depend on how the bytes were split across ``feed`` calls.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import Literal

from tricorn.errors import TricornError

#: The first 12 bytes of every v2 header.
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
#: The first 6 bytes of every v1 header.
V1_PREFIX = b"PROXY "
#: The longest v1 line, CRLF included ("PROXY UNKNOWN" with two full IPv6 addresses).
V1_MAX_SIZE = 107
#: Signature, version and command, family and transport, length.
V2_FIXED_SIZE = 16
#: The largest v2 header the protocol can express.
V2_MAX_SIZE = V2_FIXED_SIZE + 0xFFFF
#: The smallest v2 size limit that still takes every address block (two unix paths).
V2_MIN_LIMIT = V2_FIXED_SIZE + 216
#: The default v2 size limit: addresses plus a few hundred bytes of TLVs is what proxies send.
V2_DEFAULT_LIMIT = 4096
#: The longest PP2_TYPE_UNIQUE_ID value (spec 2.2.5).
UNIQUE_ID_MAX_SIZE = 128

Mode = Literal["v1", "v2", "auto"]
Command = Literal["proxy", "local"]
Family = Literal["inet", "inet6", "unix", "unspec"]
Transport = Literal["stream", "dgram", "unspec"]
#: An IP peer as ASGI gives it (host, port), or a unix socket path.
Address = tuple[str, int] | str

# TLV types (spec 2.2).
PP2_TYPE_ALPN = 0x01
PP2_TYPE_AUTHORITY = 0x02
PP2_TYPE_CRC32C = 0x03
PP2_TYPE_NOOP = 0x04
PP2_TYPE_UNIQUE_ID = 0x05
PP2_TYPE_SSL = 0x20
PP2_SUBTYPE_SSL_VERSION = 0x21
PP2_SUBTYPE_SSL_CN = 0x22
PP2_SUBTYPE_SSL_CIPHER = 0x23
PP2_SUBTYPE_SSL_SIG_ALG = 0x24
PP2_SUBTYPE_SSL_KEY_ALG = 0x25
PP2_TYPE_NETNS = 0x30
# The client bits of PP2_TYPE_SSL.
PP2_CLIENT_SSL = 0x01
PP2_CLIENT_CERT_CONN = 0x02
PP2_CLIENT_CERT_SESS = 0x04

#: TLVs that may appear once: a second copy is ambiguous, so the header is refused.
_SINGLE_TLVS = frozenset(
    {
        PP2_TYPE_ALPN,
        PP2_TYPE_AUTHORITY,
        PP2_TYPE_CRC32C,
        PP2_TYPE_UNIQUE_ID,
        PP2_TYPE_SSL,
        PP2_TYPE_NETNS,
    }
)
_FAMILIES: dict[int, Family] = {0x0: "unspec", 0x1: "inet", 0x2: "inet6", 0x3: "unix"}
_TRANSPORTS: dict[int, Transport] = {0x0: "unspec", 0x1: "stream", 0x2: "dgram"}
#: Size of the address block of each family: two addresses, then two ports for IP.
_ADDRESS_SIZES = {"inet": 4 + 4 + 2 + 2, "inet6": 16 + 16 + 2 + 2, "unix": 108 + 108}
_V1_PROTOCOLS: dict[bytes, Family] = {b"TCP4": "inet", b"TCP6": "inet6"}
_DIGITS = frozenset(b"0123456789")


class ProxyProtocolError(TricornError):
    """The bytes are not a valid PROXY protocol header; the message says why (one line)."""


@dataclass(frozen=True, slots=True)
class SSLInfo:
    """PP2_TYPE_SSL: how the client reached the proxy (spec 2.2.6)."""

    #: The bit field: PP2_CLIENT_SSL, PP2_CLIENT_CERT_CONN, PP2_CLIENT_CERT_SESS.
    client: int
    #: Zero if the client presented a certificate and it was verified.
    verify: int
    version: str | None = None
    cn: str | None = None
    cipher: str | None = None
    sig_alg: str | None = None
    key_alg: str | None = None
    #: Every sub-TLV as sent, (type, value), known ones included.
    tlvs: tuple[tuple[int, bytes], ...] = ()

    @property
    def client_ssl(self) -> bool:
        """The client connected to the proxy over TLS."""
        return bool(self.client & PP2_CLIENT_SSL)

    @property
    def client_cert(self) -> bool:
        """The client presented a certificate (on this connection or its TLS session)."""
        return bool(self.client & (PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS))

    @property
    def cert_verified(self) -> bool:
        return self.client_cert and self.verify == 0


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """One parsed header. ``source``/``destination`` are None where the header says nothing
    usable about them: the LOCAL command (the proxy's own connection, such as a health
    check), v1 ``UNKNOWN``, v2 ``AF_UNSPEC``; the receiver then keeps the real endpoints."""

    version: Literal[1, 2]
    command: Command
    family: Family
    transport: Transport
    source: Address | None = None
    destination: Address | None = None
    alpn: bytes | None = None
    authority: str | None = None
    unique_id: bytes | None = None
    ssl: SSLInfo | None = None
    netns: str | None = None
    #: The header carried a PP2_TYPE_CRC32C and it matched.
    checksum_verified: bool = False
    #: Every TLV as sent, (type, value), known ones included, in order.
    tlvs: tuple[tuple[int, bytes], ...] = ()

    @property
    def relayed(self) -> bool:
        """The header names the original endpoints: they replace the connection's."""
        return self.command == "proxy" and self.source is not None


@dataclass(frozen=True, slots=True)
class Parsed:
    """``feed``'s answer once the header is complete."""

    header: ProxyHeader
    #: Bytes after the header: the start of the TLS ClientHello or of the HTTP request.
    rest: bytes


class ProxyProtocolParser:
    """Reads one header from the first bytes of a connection.

    ``mode`` is the version accepted: ``"v1"``, ``"v2"`` or ``"auto"`` (either, told apart
    by the first byte). ``v2_max_size`` bounds a v2 header (the 16 fixed bytes included);
    a larger one is refused as soon as its length field is read.
    """

    __slots__ = ("_buffer", "_mode", "_v2_max_size", "_version")

    def __init__(self, mode: Mode = "auto", *, v2_max_size: int = V2_DEFAULT_LIMIT) -> None:
        if mode not in ("v1", "v2", "auto"):
            raise ValueError(f"mode must be 'v1', 'v2' or 'auto', not {mode!r}")
        if not V2_MIN_LIMIT <= v2_max_size <= V2_MAX_SIZE:
            raise ValueError(f"v2_max_size must be between {V2_MIN_LIMIT} and {V2_MAX_SIZE}")
        self._mode = mode
        self._v2_max_size = v2_max_size
        self._buffer = bytearray()
        self._version: int | None = None

    @property
    def buffered_size(self) -> int:
        """Bytes received so far (0: nothing yet)."""
        return len(self._buffer)

    def wanted(self) -> int:
        """The most bytes worth reading next: as many as can still belong to the header
        where its end is known (v2 once the length is read), else its bound."""
        buffered = len(self._buffer)
        if self._version == 1 or (self._version is None and self._mode == "v1"):
            return max(V1_MAX_SIZE - buffered, 1)
        if self._version == 2 and buffered >= V2_FIXED_SIZE:
            return max(V2_FIXED_SIZE + _v2_length(self._buffer) - buffered, 1)
        return max(V2_FIXED_SIZE - buffered, 1)

    def feed(self, data: bytes) -> Parsed | None:
        """Take the next bytes; ``b""`` means the peer closed.

        Returns None while the header is incomplete, the ``Parsed`` header once it is
        whole. Raises ``ProxyProtocolError`` for anything that is not a valid header (a
        close before its end included).
        """
        if not data:
            raise ProxyProtocolError(
                "the connection closed before a PROXY protocol header"
                if not self._buffer
                else f"the connection closed after {len(self._buffer)} bytes of a PROXY "
                "protocol header"
            )
        buffer = self._buffer
        buffer += data
        if self._version is None:
            self._version = self._pick_version(buffer[0])
        if self._version == 1:
            return self._feed_v1(buffer)
        return self._feed_v2(buffer)

    def _pick_version(self, first: int) -> int:
        if first == V1_PREFIX[0] and self._mode != "v2":
            return 1
        if first == V2_SIGNATURE[0] and self._mode != "v1":
            return 2
        shown = bytes([first])
        if self._mode == "v1":
            hint = " (a v2 header? only v1 is accepted)" if first == V2_SIGNATURE[0] else ""
            raise ProxyProtocolError(f"not a PROXY protocol v1 header: starts with {shown!r}{hint}")
        if self._mode == "v2":
            hint = " (a v1 header? only v2 is accepted)" if first == V1_PREFIX[0] else ""
            raise ProxyProtocolError(f"not a PROXY protocol v2 header: starts with {shown!r}{hint}")
        raise ProxyProtocolError(f"not a PROXY protocol header: starts with {shown!r}")

    # --- v1 -----------------------------------------------------------------------

    def _feed_v1(self, buffer: bytearray) -> Parsed | None:
        _check_prefix(buffer, V1_PREFIX, "v1")
        window = bytes(buffer[:V1_MAX_SIZE])
        cr = window.find(b"\r")
        lf = window.find(b"\n")
        if lf >= 0 and (cr < 0 or lf < cr):
            raise ProxyProtocolError("PROXY v1 line ends in a bare LF (CRLF expected)")
        if cr >= 0 and cr + 1 < len(window) and window[cr + 1] != 0x0A:
            raise ProxyProtocolError("PROXY v1 line has a CR not followed by LF")
        if cr < 0 or cr + 1 >= len(window):
            if len(buffer) >= V1_MAX_SIZE:
                raise ProxyProtocolError(f"no CRLF in the first {V1_MAX_SIZE} bytes of a v1 line")
            return None
        header = _parse_v1_line(window[:cr])
        rest = bytes(buffer[cr + 2 :])
        buffer.clear()
        return Parsed(header, rest)

    # --- v2 -----------------------------------------------------------------------

    def _feed_v2(self, buffer: bytearray) -> Parsed | None:
        _check_prefix(buffer, V2_SIGNATURE, "v2")
        if len(buffer) < V2_FIXED_SIZE:
            return None
        version, command = buffer[12] >> 4, buffer[12] & 0x0F
        if version != 2:
            raise ProxyProtocolError(f"PROXY v2 header with version {version} (2 expected)")
        if command > 1:
            raise ProxyProtocolError(f"PROXY v2 header with unknown command {command:#x}")
        family = _FAMILIES.get(buffer[13] >> 4)
        transport = _TRANSPORTS.get(buffer[13] & 0x0F)
        if family is None or transport is None:
            raise ProxyProtocolError(f"PROXY v2 header with unknown family byte {buffer[13]:#04x}")
        size = V2_FIXED_SIZE + _v2_length(buffer)
        if size > self._v2_max_size:
            raise ProxyProtocolError(
                f"PROXY v2 header of {size} bytes, over the limit of {self._v2_max_size}"
            )
        if len(buffer) < size:
            return None
        block = bytes(buffer[:size])
        rest = bytes(buffer[size:])
        buffer.clear()
        if command == 0:
            # LOCAL: the proxy's own connection; the block is skipped, family and all.
            return Parsed(ProxyHeader(2, "local", family, transport), rest)
        return Parsed(_parse_v2_proxy(block, family, transport), rest)


def starts_with_header(data: bytes) -> bool | None:
    """Whether ``data`` begins like a PROXY header (v1 or v2): True once a whole signature
    (``PROXY `` or the 12 bytes of v2) is there, False as soon as a byte rules both out,
    None while ``data`` is a prefix of one of them. For peers not allowed to send one."""
    undecided = False
    for signature in (V1_PREFIX, V2_SIGNATURE):
        known = min(len(data), len(signature))
        if data[:known] == signature[:known]:
            if known == len(signature):
                return True
            undecided = True
    return None if undecided else False


def _v2_length(buffer: bytearray) -> int:
    return (buffer[14] << 8) | buffer[15]


def _check_prefix(buffer: bytearray, prefix: bytes, version: str) -> None:
    known = min(len(buffer), len(prefix))
    if buffer[:known] != prefix[:known]:
        mismatch = next(i for i in range(known) if buffer[i] != prefix[i])
        shown = bytes(buffer[: mismatch + 1])
        raise ProxyProtocolError(f"not a PROXY protocol {version} header: starts with {shown!r}")


def _parse_v1_line(line: bytes) -> ProxyHeader:
    """``line`` is the whole v1 line without its CRLF."""
    parts = line.split(b" ")
    protocol = parts[1] if len(parts) > 1 else b""
    if protocol == b"UNKNOWN":
        # The rest of the line is to be ignored (spec 2.1): keep the real endpoints.
        return ProxyHeader(1, "proxy", "unspec", "unspec")
    family = _V1_PROTOCOLS.get(protocol)
    if family is None:
        raise ProxyProtocolError(
            f"PROXY v1 line with protocol {protocol[:16]!r} (TCP4, TCP6 or UNKNOWN expected)"
        )
    if len(parts) != 6:
        raise ProxyProtocolError(
            f"PROXY v1 line with {len(parts)} fields separated by single spaces (6 expected)"
        )
    source = _v1_address(parts[2], family), _v1_port(parts[4])
    destination = _v1_address(parts[3], family), _v1_port(parts[5])
    return ProxyHeader(1, "proxy", family, "stream", source, destination)


def _v1_address(text: bytes, family: Family) -> str:
    try:
        decoded = text.decode("ascii")
        if family == "inet":
            return str(ipaddress.IPv4Address(decoded))
        if "%" in decoded:
            raise ValueError("a scope id")
        return str(ipaddress.IPv6Address(decoded))
    except ValueError:
        kind = "IPv4" if family == "inet" else "IPv6"
        raise ProxyProtocolError(
            f"PROXY v1 line with {text[:48]!r}, not an {kind} address"
        ) from None


def _v1_port(text: bytes) -> int:
    if (
        not text
        or len(text) > 5
        or not _DIGITS.issuperset(text)
        or (len(text) > 1 and text[0] == 0x30)
        or int(text) > 0xFFFF
    ):
        raise ProxyProtocolError(
            f"PROXY v1 line with port {text[:16]!r} (0-65535 without leading zeros expected)"
        )
    return int(text)


def _parse_v2_proxy(block: bytes, family: Family, transport: Transport) -> ProxyHeader:
    """The PROXY command's address block and TLVs; ``block`` is the whole header."""
    body = block[V2_FIXED_SIZE:]
    source: Address | None = None
    destination: Address | None = None
    if family == "unspec" or transport == "unspec":
        if family != transport:
            # Only one half unspecified: the address block's size is not known, so neither
            # are the TLVs' start. Treated as UNSPEC: everything after the 16 bytes ignored.
            return ProxyHeader(2, "proxy", family, transport)
        offset = 0
    else:
        offset = _ADDRESS_SIZES[family]
        if len(body) < offset:
            raise ProxyProtocolError(
                f"PROXY v2 header too short for its {family} addresses "
                f"({len(body)} bytes, {offset} needed)"
            )
        source, destination = _v2_addresses(body[:offset], family)
    tlvs = tuple(_split_tlvs(body[offset:], "TLV"))
    header = ProxyHeader(2, "proxy", family, transport, source, destination, tlvs=tlvs)
    return _read_tlvs(header, block, V2_FIXED_SIZE + offset)


def _v2_addresses(block: bytes, family: Family) -> tuple[Address, Address]:
    if family == "unix":
        return _unix_path(block[:108]), _unix_path(block[108:216])
    size = 4 if family == "inet" else 16
    make = ipaddress.IPv4Address if family == "inet" else ipaddress.IPv6Address
    source_ip, destination_ip = make(block[:size]), make(block[size : 2 * size])
    ports = block[2 * size :]
    source_port = int.from_bytes(ports[:2], "big")
    destination_port = int.from_bytes(ports[2:4], "big")
    return (str(source_ip), source_port), (str(destination_ip), destination_port)


def _unix_path(raw: bytes) -> str:
    # A NUL-terminated path; an abstract socket (leading NUL) keeps its name after it.
    if raw[:1] == b"\x00":
        name = raw[1:].split(b"\x00", 1)[0]
        return "\x00" + name.decode("utf-8", "replace") if name else ""
    return raw.split(b"\x00", 1)[0].decode("utf-8", "replace")


def _split_tlvs(data: bytes, what: str) -> list[tuple[int, bytes]]:
    tlvs: list[tuple[int, bytes]] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < 3:
            raise ProxyProtocolError(f"PROXY v2 header with a truncated {what} at its end")
        kind, length = data[offset], (data[offset + 1] << 8) | data[offset + 2]
        end = offset + 3 + length
        if end > len(data):
            raise ProxyProtocolError(
                f"PROXY v2 {what} {kind:#04x} of {length} bytes runs past the header's end"
            )
        tlvs.append((kind, data[offset + 3 : end]))
        offset = end
    return tlvs


def _text(kind: int, value: bytes, encoding: str) -> str:
    try:
        return value.decode(encoding)
    except UnicodeDecodeError:
        raise ProxyProtocolError(f"PROXY v2 TLV {kind:#04x} is not {encoding} text") from None


def _read_tlvs(header: ProxyHeader, block: bytes, tlv_start: int) -> ProxyHeader:
    """``header`` with the fields of its known TLVs filled in (unknown ones stay raw in
    ``tlvs``); ``block`` is the whole header, whose TLVs start at ``tlv_start``."""
    values: dict[int, bytes] = {}
    offset = tlv_start  # where the current TLV starts in ``block``: for the CRC32C
    checksum_verified = False
    for kind, value in header.tlvs:
        if kind in _SINGLE_TLVS:
            if kind in values:
                raise ProxyProtocolError(f"PROXY v2 header with TLV {kind:#04x} twice")
            values[kind] = value
        if kind == PP2_TYPE_CRC32C:
            _check_crc32c(block, offset + 3, value)
            checksum_verified = True
        offset += 3 + len(value)
    unique_id = values.get(PP2_TYPE_UNIQUE_ID)
    if unique_id is not None and len(unique_id) > UNIQUE_ID_MAX_SIZE:
        raise ProxyProtocolError(
            f"PROXY v2 unique id of {len(unique_id)} bytes (at most {UNIQUE_ID_MAX_SIZE})"
        )
    authority = values.get(PP2_TYPE_AUTHORITY)
    netns = values.get(PP2_TYPE_NETNS)
    ssl = values.get(PP2_TYPE_SSL)
    return replace(
        header,
        alpn=values.get(PP2_TYPE_ALPN),
        authority=None if authority is None else _text(PP2_TYPE_AUTHORITY, authority, "utf-8"),
        unique_id=unique_id,
        ssl=None if ssl is None else _read_ssl(ssl),
        netns=None if netns is None else _text(PP2_TYPE_NETNS, netns, "ascii"),
        checksum_verified=checksum_verified,
    )


_SSL_TEXT_FIELDS = {
    PP2_SUBTYPE_SSL_VERSION: ("version", "ascii"),
    PP2_SUBTYPE_SSL_CN: ("cn", "utf-8"),
    PP2_SUBTYPE_SSL_CIPHER: ("cipher", "ascii"),
    PP2_SUBTYPE_SSL_SIG_ALG: ("sig_alg", "ascii"),
    PP2_SUBTYPE_SSL_KEY_ALG: ("key_alg", "ascii"),
}


def _read_ssl(value: bytes) -> SSLInfo:
    if len(value) < 5:
        raise ProxyProtocolError(f"PROXY v2 SSL TLV of {len(value)} bytes (at least 5 expected)")
    client, verify = value[0], int.from_bytes(value[1:5], "big")
    subs = _split_tlvs(value[5:], "SSL sub-TLV")
    texts: dict[str, str] = {}
    for kind, sub in subs:
        known = _SSL_TEXT_FIELDS.get(kind)
        if known is None:
            continue
        name, encoding = known
        if name in texts:
            raise ProxyProtocolError(f"PROXY v2 SSL TLV with sub-TLV {kind:#04x} twice")
        texts[name] = _text(kind, sub, encoding)
    return SSLInfo(
        client,
        verify,
        version=texts.get("version"),
        cn=texts.get("cn"),
        cipher=texts.get("cipher"),
        sig_alg=texts.get("sig_alg"),
        key_alg=texts.get("key_alg"),
        tlvs=tuple(subs),
    )


def _check_crc32c(header: bytes, value_offset: int, value: bytes) -> None:
    if len(value) != 4:
        raise ProxyProtocolError(f"PROXY v2 CRC32C TLV of {len(value)} bytes (4 expected)")
    zeroed = header[:value_offset] + b"\x00\x00\x00\x00" + header[value_offset + 4 :]
    if crc32c(zeroed) != int.from_bytes(value, "big"):
        raise ProxyProtocolError("PROXY v2 header fails its CRC32C checksum")


def _crc32c_table() -> tuple[int, ...]:
    # CRC-32C (Castagnoli, RFC 4960 appendix B): reflected polynomial 0x82F63B78.
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """The CRC-32C of ``data`` (a header is at most a few KiB: a table loop is enough)."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
