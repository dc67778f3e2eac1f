"""The PROXY protocol parser (tricorn/protocols/proxy_protocol.py): bytes in, a header out.

Headers are built here from the spec's layout (HAProxy's proxy-protocol.txt), so each test
reads as the bytes a proxy sends and what the receiver makes of them.
"""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tricorn.protocols.proxy_protocol import (
    PP2_CLIENT_CERT_CONN,
    PP2_CLIENT_SSL,
    PP2_SUBTYPE_SSL_CIPHER,
    PP2_SUBTYPE_SSL_CN,
    PP2_SUBTYPE_SSL_KEY_ALG,
    PP2_SUBTYPE_SSL_SIG_ALG,
    PP2_SUBTYPE_SSL_VERSION,
    PP2_TYPE_ALPN,
    PP2_TYPE_AUTHORITY,
    PP2_TYPE_CRC32C,
    PP2_TYPE_NETNS,
    PP2_TYPE_NOOP,
    PP2_TYPE_SSL,
    PP2_TYPE_UNIQUE_ID,
    V1_MAX_SIZE,
    V2_SIGNATURE,
    Mode,
    Parsed,
    ProxyHeader,
    ProxyProtocolError,
    ProxyProtocolParser,
    crc32c,
    starts_with_header,
)
from tricorn.server.proxy_protocol import EXTENSION, endpoints, extensions, scheme

# --- building headers ----------------------------------------------------------------


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack("!H", len(value)) + value


def v2(
    command: int = 1,
    family_byte: int = 0x11,
    addresses: bytes | None = None,
    tlvs: bytes = b"",
    *,
    version: int = 2,
    length: int | None = None,
) -> bytes:
    """A v2 header; ``addresses`` default to 192.0.2.1:56324 -> 198.51.100.2:443 (IPv4)."""
    if addresses is None:
        addresses = inet4("192.0.2.1", "198.51.100.2", 56324, 443) if family_byte >> 4 == 1 else b""
    body = addresses + tlvs
    size = len(body) if length is None else length
    return (
        V2_SIGNATURE + bytes([version << 4 | command, family_byte]) + struct.pack("!H", size) + body
    )


def inet4(source: str, destination: str, source_port: int, destination_port: int) -> bytes:
    return (
        ipaddress.IPv4Address(source).packed
        + ipaddress.IPv4Address(destination).packed
        + struct.pack("!HH", source_port, destination_port)
    )


def inet6(source: str, destination: str, source_port: int, destination_port: int) -> bytes:
    return (
        ipaddress.IPv6Address(source).packed
        + ipaddress.IPv6Address(destination).packed
        + struct.pack("!HH", source_port, destination_port)
    )


def unix_paths(source: bytes, destination: bytes) -> bytes:
    return source.ljust(108, b"\x00") + destination.ljust(108, b"\x00")


def with_crc(header: bytes) -> bytes:
    """Fill the CRC32C TLV, which must be the header's last, as a sender does."""
    assert header[-7:-4] == bytes([PP2_TYPE_CRC32C, 0, 4])
    zeroed = header[:-4] + b"\x00" * 4
    return header[:-4] + struct.pack("!I", crc32c(zeroed))


def ssl_tlv(client: int, verify: int, subs: bytes = b"") -> bytes:
    return tlv(PP2_TYPE_SSL, bytes([client]) + struct.pack("!I", verify) + subs)


def parse(data: bytes, mode: Mode = "auto", **options: int) -> Parsed:
    parsed = ProxyProtocolParser(mode, **options).feed(data)
    assert parsed is not None, "the header should be complete"
    return parsed


def fails(data: bytes, mode: Mode = "auto", **options: int) -> str:
    with pytest.raises(ProxyProtocolError) as caught:
        ProxyProtocolParser(mode, **options).feed(data)
    return str(caught.value)


def feed_in_pieces(parser: ProxyProtocolParser, data: bytes, size: int) -> Parsed | None:
    """Feed ``data`` ``size`` bytes at a time; the Parsed's rest includes what was not fed."""
    for start in range(0, len(data), size):
        parsed = parser.feed(data[start : start + size])
        if parsed is not None:
            return Parsed(parsed.header, parsed.rest + data[start + size :])
    return None


def outcome(data: bytes, mode: Mode, size: int | None = None) -> object:
    """What the parser makes of ``data`` fed whole or in pieces: a Parsed, None (need
    more) or the error's message."""
    parser = ProxyProtocolParser(mode, v2_max_size=1024)
    try:
        if size is None:
            return parser.feed(data) if data else None
        return feed_in_pieces(parser, data, size)
    except ProxyProtocolError as error:
        return str(error)


# --- v1 ------------------------------------------------------------------------------


def test_v1_tcp4_gives_addresses_and_the_bytes_after_the_line() -> None:
    parsed = parse(b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n")
    assert parsed.header == ProxyHeader(
        1, "proxy", "inet", "stream", ("192.0.2.1", 56324), ("198.51.100.2", 443)
    )
    assert parsed.header.relayed
    assert parsed.rest == b"GET / HTTP/1.1\r\n"


def test_v1_tcp6_addresses_are_canonical() -> None:
    header = parse(b"PROXY TCP6 2001:DB8:0:0::1 ::ffff:192.0.2.1 0 65535\r\n").header
    assert header.family == "inet6"
    assert header.source == ("2001:db8::1", 0)
    assert header.destination == (str(ipaddress.IPv6Address("::ffff:192.0.2.1")), 65535)


@pytest.mark.parametrize(
    "line",
    [
        b"PROXY UNKNOWN\r\n",
        b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ::1 65535 65535\r\n",
        b"PROXY UNKNOWN anything at all, ignored\r\n",
    ],
)
def test_v1_unknown_keeps_the_real_endpoints(line: bytes) -> None:
    header = parse(line).header
    assert header.command == "proxy" and header.family == "unspec"
    assert header.source is None and not header.relayed


def test_v1_longest_line_is_accepted_and_one_more_byte_is_not() -> None:
    six = "ffff:" * 7 + "ffff"
    longest = f"PROXY UNKNOWN {six} {six} 65535 65535\r\n".encode()
    assert len(longest) == V1_MAX_SIZE
    assert parse(longest).header.family == "unspec"
    too_long = longest[:-2] + b"5\r\n"
    assert "no CRLF in the first 107 bytes" in fails(too_long)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"GET / HTTP/1.1\r\n", "not a PROXY protocol header: starts with b'G'"),
        (b"PROXY\r\n", "starts with b'PROXY\\r'"),
        (b"PROXZ TCP4", "starts with b'PROXZ'"),
        (b"proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n", "starts with b'p'"),
        (b"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n", "protocol b'TCP5'"),
        (b"PROXY tcp4 1.2.3.4 1.2.3.4 1 2\r\n", "protocol b'tcp4'"),
        (b"PROXY  TCP4 1.2.3.4 1.2.3.4 1 2\r\n", "protocol b''"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n", "7 fields"),
        (b"PROXY TCP4 1.2.3.4  1.2.3.4 1 2\r\n", "7 fields"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n", "5 fields"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 \r\n", "7 fields"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n", "bare LF"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\rX", "CR not followed by LF"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\r\r\n", "CR not followed by LF"),
        (b"PROXY TCP4 1.2.3 1.2.3.4 1 2\r\n", "not an IPv4 address"),
        (b"PROXY TCP4 01.2.3.4 1.2.3.4 1 2\r\n", "not an IPv4 address"),
        (b"PROXY TCP4 256.2.3.4 1.2.3.4 1 2\r\n", "not an IPv4 address"),
        (b"PROXY TCP4 ::1 1.2.3.4 1 2\r\n", "not an IPv4 address"),
        (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "not an IPv6 address"),
        (b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", "not an IPv6 address"),
        (b"PROXY TCP6 ::1 ::g 1 2\r\n", "not an IPv6 address"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.\xff 1 2\r\n", "not an IPv4 address"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n", "port b'65536'"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n", "port b'01'"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 -2\r\n", "port b'-2'"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 +2\r\n", "port b'+2'"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 \xd9\xa3\r\n", "port"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.4 1 123456\r\n", "port b'123456'"),
    ],
)
def test_v1_malformed_lines_are_refused_with_a_reason(line: bytes, reason: str) -> None:
    assert reason in fails(line)


def test_v1_port_zero_is_a_port() -> None:
    assert parse(b"PROXY TCP4 0.0.0.0 255.255.255.255 0 0\r\n").header.source == ("0.0.0.0", 0)


def test_v1_incomplete_line_needs_more_and_is_refused_early_when_it_cannot_be_one() -> None:
    parser = ProxyProtocolParser("v1")
    assert parser.feed(b"PROXY TCP4 192.0.2.1 ") is None
    assert parser.buffered_size == 21
    assert parser.feed(b"198.51.100.2 1 2\r") is None
    assert parser.feed(b"\nrest").rest == b"rest"  # type: ignore[union-attr]
    # A request line fails at its first byte, not after 107 bytes or a timeout.
    assert "starts with b'G'" in fails(b"G", "v1")
    assert "starts with b'PO'" in fails(b"POST / HTTP/1.1\r\n", "v1")


def test_wanted_never_reads_past_a_v2_header() -> None:
    header = v2(tlvs=tlv(PP2_TYPE_NOOP, b"x" * 10))
    parser = ProxyProtocolParser("auto")
    assert parser.wanted() == 16
    assert parser.feed(header[:16]) is None
    assert parser.wanted() == len(header) - 16
    assert ProxyProtocolParser("v1").wanted() == V1_MAX_SIZE
    parser = ProxyProtocolParser("auto")
    assert parser.feed(b"PROXY ") is None
    assert parser.wanted() == V1_MAX_SIZE - 6


# --- v2: commands and families -------------------------------------------------------


def test_v2_tcp_over_ipv4() -> None:
    parsed = parse(v2() + b"\x16\x03\x01")
    assert parsed.header == ProxyHeader(
        2, "proxy", "inet", "stream", ("192.0.2.1", 56324), ("198.51.100.2", 443)
    )
    assert parsed.rest == b"\x16\x03\x01"  # the TLS ClientHello's start


def test_v2_tcp_over_ipv6() -> None:
    addresses = inet6("2001:db8::1", "2001:db8::2", 1, 65535)
    header = parse(v2(family_byte=0x21, addresses=addresses)).header
    assert header.family == "inet6" and header.transport == "stream"
    assert header.source == ("2001:db8::1", 1)
    assert header.destination == ("2001:db8::2", 65535)


def test_v2_udp_families_are_read_too() -> None:
    header = parse(v2(family_byte=0x12)).header
    assert header.transport == "dgram" and header.source == ("192.0.2.1", 56324)
    addresses = inet6("::1", "::2", 3, 4)
    assert parse(v2(family_byte=0x22, addresses=addresses)).header.destination == ("::2", 4)


def test_v2_unix_paths() -> None:
    header = parse(v2(family_byte=0x31, addresses=unix_paths(b"/run/a.sock", b"/run/b"))).header
    assert header.family == "unix"
    assert header.source == "/run/a.sock" and header.destination == "/run/b"
    assert header.relayed
    abstract = parse(v2(family_byte=0x32, addresses=unix_paths(b"\x00name", b""))).header
    assert abstract.source == "\x00name" and abstract.destination == ""


def test_v2_local_command_is_valid_and_keeps_the_real_endpoints() -> None:
    for family_byte, addresses in [(0x00, b""), (0x11, None), (0x21, b"\x00" * 36)]:
        parsed = parse(v2(0, family_byte, addresses, tlv(PP2_TYPE_UNIQUE_ID, b"id")) + b"GET")
        assert parsed.header.command == "local"
        assert parsed.header.source is None and not parsed.header.relayed
        assert parsed.header.unique_id is None  # the block is discarded
        assert parsed.rest == b"GET"


def test_v2_unspec_family_keeps_the_real_endpoints_but_reads_tlvs() -> None:
    header = parse(v2(1, 0x00, b"", tlv(PP2_TYPE_AUTHORITY, b"example.com"))).header
    assert header.family == "unspec" and not header.relayed
    assert header.authority == "example.com"


def test_v2_half_unspecified_family_byte_ignores_the_block() -> None:
    # Family IPv4 with an unspecified transport: the block's layout is unknown; skipped.
    header = parse(v2(1, 0x10, b"\x01" * 12 + tlv(PP2_TYPE_AUTHORITY, b"\xff"))).header
    assert not header.relayed and header.authority is None


def test_v2_length_covers_more_than_the_addresses_with_tlvs_only() -> None:
    assert "truncated TLV" in fails(v2(tlvs=b"\x04\x00"))


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (v2(version=1), "version 1 (2 expected)"),
        (v2(version=3), "version 3"),
        (v2(command=2), "unknown command 0x2"),
        (v2(command=0xF), "unknown command 0xf"),
        (v2(family_byte=0x41, addresses=b""), "unknown family byte 0x41"),
        (v2(family_byte=0x13, addresses=b""), "unknown family byte 0x13"),
        (v2(family_byte=0x11, addresses=b"\x00" * 11), "too short for its inet addresses"),
        (v2(family_byte=0x21, addresses=b"\x00" * 35), "too short for its inet6 addresses"),
        (v2(family_byte=0x31, addresses=b"\x00" * 215), "too short for its unix addresses"),
        (
            b"\r\n\r\n\x00\r\nQUIX\n" + b"\x21\x11\x00\x00",
            "starts with b'\\r\\n\\r\\n\\x00\\r\\nQUIX'",
        ),
        (b"\r\nGET", "starts with b'\\r\\nG'"),
    ],
)
def test_v2_malformed_fixed_part_is_refused(header: bytes, reason: str) -> None:
    assert reason in fails(header)


def test_v2_header_is_bounded_by_its_limit() -> None:
    big = v2(tlvs=tlv(PP2_TYPE_NOOP, b"\x00" * (4096 - 16 - 12 - 3)))
    assert len(big) == 4096
    assert parse(big, v2_max_size=4096).header.relayed
    # Refused from its 16 fixed bytes: the rest is never waited for.
    assert "4097 bytes, over the limit of 4096" in fails(
        v2(tlvs=tlv(PP2_TYPE_NOOP, b"\x00" * (4097 - 31)))[:16], v2_max_size=4096
    )
    largest = v2(tlvs=tlv(PP2_TYPE_NOOP, b"\x00" * (65535 - 12 - 3)))
    assert parse(largest, v2_max_size=65551).header.relayed


def test_limits_outside_the_protocol_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="v2_max_size"):
        ProxyProtocolParser("v2", v2_max_size=231)
    with pytest.raises(ValueError, match="v2_max_size"):
        ProxyProtocolParser("v2", v2_max_size=65552)
    with pytest.raises(ValueError, match="mode"):
        ProxyProtocolParser("v3")  # type: ignore[arg-type]


def test_v2_incomplete_header_needs_more() -> None:
    header = v2(tlvs=tlv(PP2_TYPE_ALPN, b"h2"))
    parser = ProxyProtocolParser("v2")
    assert parser.feed(header[:5]) is None
    assert parser.feed(header[5:20]) is None
    parsed = parser.feed(header[20:] + b"PRI")
    assert parsed is not None and parsed.header.alpn == b"h2" and parsed.rest == b"PRI"


# --- v2: TLVs ------------------------------------------------------------------------


def test_v2_alpn_authority_unique_id_netns_and_noop() -> None:
    tlvs = (
        tlv(PP2_TYPE_NOOP, b"")
        + tlv(PP2_TYPE_ALPN, b"h2")
        + tlv(PP2_TYPE_AUTHORITY, "bücher.example".encode())
        + tlv(PP2_TYPE_UNIQUE_ID, b"\x00\x01" * 64)
        + tlv(PP2_TYPE_NETNS, b"blue")
        + tlv(0xE0, b"custom")
    )
    header = parse(v2(tlvs=tlvs)).header
    assert header.alpn == b"h2"
    assert header.authority == "bücher.example"
    assert header.unique_id == b"\x00\x01" * 64
    assert header.netns == "blue"
    assert [kind for kind, _ in header.tlvs] == [0x04, 0x01, 0x02, 0x05, 0x30, 0xE0]
    assert header.tlvs[-1] == (0xE0, b"custom")  # unknown ones are kept, as sent
    assert not header.checksum_verified


def test_v2_ssl_tlv_with_its_sub_tlvs() -> None:
    subs = (
        tlv(PP2_SUBTYPE_SSL_VERSION, b"TLSv1.3")
        + tlv(PP2_SUBTYPE_SSL_CN, "Zoë".encode())
        + tlv(PP2_SUBTYPE_SSL_CIPHER, b"TLS_AES_256_GCM_SHA384")
        + tlv(PP2_SUBTYPE_SSL_SIG_ALG, b"RSA-SHA256")
        + tlv(PP2_SUBTYPE_SSL_KEY_ALG, b"RSA2048")
        + tlv(0x2F, b"future")
    )
    ssl = parse(v2(tlvs=ssl_tlv(PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN, 0, subs))).header.ssl
    assert ssl is not None
    assert ssl.client_ssl and ssl.client_cert and ssl.cert_verified
    assert (ssl.version, ssl.cn, ssl.cipher) == ("TLSv1.3", "Zoë", "TLS_AES_256_GCM_SHA384")
    assert (ssl.sig_alg, ssl.key_alg) == ("RSA-SHA256", "RSA2048")
    assert ssl.tlvs[-1] == (0x2F, b"future")


def test_v2_ssl_tlv_of_a_cleartext_client_and_an_unverified_certificate() -> None:
    cleartext = parse(v2(tlvs=ssl_tlv(0, 1))).header.ssl
    assert cleartext is not None and not cleartext.client_ssl and not cleartext.cert_verified
    unverified = parse(v2(tlvs=ssl_tlv(PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN, 20))).header.ssl
    assert unverified is not None and unverified.client_cert and not unverified.cert_verified


def test_v2_crc32c_is_verified() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    header = with_crc(v2(tlvs=tlv(PP2_TYPE_ALPN, b"h2") + tlv(PP2_TYPE_CRC32C, b"\x00" * 4)))
    parsed = parse(header + b"after")
    assert parsed.header.checksum_verified and parsed.rest == b"after"
    corrupted = header[:20] + bytes([header[20] ^ 1]) + header[21:]
    assert "fails its CRC32C checksum" in fails(corrupted)
    wrong = header[:-1] + bytes([header[-1] ^ 0x80])
    assert "fails its CRC32C checksum" in fails(wrong)


def test_v2_crc32c_in_the_middle_of_the_tlvs() -> None:
    body = inet4("10.0.0.1", "10.0.0.2", 1, 2)
    tlvs = tlv(PP2_TYPE_CRC32C, b"\x00" * 4) + tlv(PP2_TYPE_UNIQUE_ID, b"abc")
    header = v2(addresses=body, tlvs=tlvs)
    offset = 16 + 12 + 3
    checksum = struct.pack("!I", crc32c(header))
    signed = header[:offset] + checksum + header[offset + 4 :]
    parsed = parse(signed)
    assert parsed.header.checksum_verified and parsed.header.unique_id == b"abc"


@pytest.mark.parametrize(
    ("tlvs", "reason"),
    [
        (b"\x01", "truncated TLV"),
        (b"\x01\x00", "truncated TLV"),
        (b"\x01\x00\x05h2", "TLV 0x01 of 5 bytes runs past the header's end"),
        (tlv(PP2_TYPE_ALPN, b"h2") * 2, "TLV 0x01 twice"),
        (tlv(PP2_TYPE_SSL, b"\x01\x00\x00\x00\x00") * 2, "TLV 0x20 twice"),
        (tlv(PP2_TYPE_AUTHORITY, b"\xff\xfe"), "TLV 0x02 is not utf-8 text"),
        (tlv(PP2_TYPE_NETNS, "ns-é".encode()), "TLV 0x30 is not ascii text"),
        (tlv(PP2_TYPE_UNIQUE_ID, b"x" * 129), "unique id of 129 bytes (at most 128)"),
        (tlv(PP2_TYPE_CRC32C, b"\x00\x00\x00"), "CRC32C TLV of 3 bytes"),
        (tlv(PP2_TYPE_SSL, b"\x01\x00\x00\x00"), "SSL TLV of 4 bytes"),
        (ssl_tlv(1, 0, b"\x21\x00"), "truncated SSL sub-TLV"),
        (ssl_tlv(1, 0, b"\x21\x00\x09TLSv1.3"), "SSL sub-TLV 0x21 of 9 bytes runs past"),
        (ssl_tlv(1, 0, tlv(PP2_SUBTYPE_SSL_VERSION, b"\xc3\xa9")), "TLV 0x21 is not ascii"),
        (ssl_tlv(1, 0, tlv(PP2_SUBTYPE_SSL_CN, b"\xff")), "TLV 0x22 is not utf-8"),
        (ssl_tlv(1, 0, tlv(0x21, b"a") + tlv(0x21, b"b")), "sub-TLV 0x21 twice"),
    ],
)
def test_v2_malformed_tlvs_are_refused(tlvs: bytes, reason: str) -> None:
    assert reason in fails(v2(tlvs=tlvs))


def test_v2_noop_and_unknown_tlvs_may_repeat() -> None:
    tlvs = tlv(PP2_TYPE_NOOP, b"") * 3 + tlv(0xF0, b"a") + tlv(0xF0, b"b")
    assert len(parse(v2(tlvs=tlvs)).header.tlvs) == 5


# --- modes ---------------------------------------------------------------------------


def test_modes_accept_their_version_and_say_when_it_is_the_other() -> None:
    line = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"
    assert parse(line, "v1").header.version == 1
    assert parse(v2(), "v2").header.version == 2
    assert parse(line, "auto").header.version == 1
    assert parse(v2(), "auto").header.version == 2
    assert "a v1 header? only v2 is accepted" in fails(line, "v2")
    assert "a v2 header? only v1 is accepted" in fails(v2(), "v1")
    assert "not a PROXY protocol v2 header: starts with b'\\x16'" in fails(b"\x16\x03\x01", "v2")


def test_a_close_before_the_end_is_an_error_that_says_how_far_it_got() -> None:
    assert "closed before a PROXY protocol header" in fails(b"")
    parser = ProxyProtocolParser("auto")
    assert parser.feed(b"PROXY TCP4") is None
    with pytest.raises(ProxyProtocolError, match="after 10 bytes"):
        parser.feed(b"")


def test_starts_with_header_tells_a_header_from_http_and_tls() -> None:
    assert starts_with_header(b"PROXY TCP4 ...") is True
    assert starts_with_header(V2_SIGNATURE) is True
    assert starts_with_header(b"") is None
    assert starts_with_header(b"PROX") is None
    assert starts_with_header(b"\r\n\r\n") is None
    assert starts_with_header(b"POST / HTTP/1.1") is False
    assert starts_with_header(b"PRI * HTTP/2.0") is False
    assert starts_with_header(b"\x16\x03\x01") is False
    assert starts_with_header(b"\r\nGET /") is False  # a stray CRLF before a request


# --- chunking and arbitrary input ----------------------------------------------------

VALID = [
    b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n\r\n",
    b"PROXY TCP6 ::1 ::2 1 2\r\n",
    b"PROXY UNKNOWN\r\nabc",
    v2() + b"rest",
    v2(0, 0x00, b""),
    v2(family_byte=0x31, addresses=unix_paths(b"/a", b"/b")),
    with_crc(
        v2(
            tlvs=ssl_tlv(1, 0, tlv(PP2_SUBTYPE_SSL_VERSION, b"TLSv1.2"))
            + tlv(PP2_TYPE_CRC32C, b"\x00" * 4)
        )
    )
    + b"\x16\x03",
]


@pytest.mark.parametrize("data", VALID)
@pytest.mark.parametrize("size", [1, 2, 3, 7, 16, 17])
def test_byte_at_a_time_gives_the_same_result(data: bytes, size: int) -> None:
    whole = outcome(data, "auto")
    assert isinstance(whole, Parsed)
    assert outcome(data, "auto", size) == whole


@pytest.mark.parametrize(
    "data",
    [
        b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\rX",
        b"PROXY TCP4 " + b"1" * 200,
        b"PROXY TCP9 1 2 3 4\r\n",
        b"GET /",
        v2(version=1),
        v2(tlvs=b"\x01\x00\x05h2"),
        v2(tlvs=tlv(PP2_TYPE_NOOP, b"\x00" * 2000)),
    ],
)
@pytest.mark.parametrize("size", [1, 5, 16])
def test_byte_at_a_time_gives_the_same_error(data: bytes, size: int) -> None:
    whole = outcome(data, "auto")
    assert isinstance(whole, str)
    assert outcome(data, "auto", size) == whole


_MODES = st.sampled_from(["v1", "v2", "auto"])


def _mutated(data: bytes, position: int, value: int) -> bytes:
    position %= len(data)
    return data[:position] + bytes([value]) + data[position + 1 :]


_INPUTS = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda tail: V2_SIGNATURE + tail, st.binary(max_size=300)),
    st.builds(lambda tail: b"PROXY " + tail, st.binary(max_size=120)),
    st.builds(_mutated, st.sampled_from(VALID), st.integers(0, 10_000), st.integers(0, 255)),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=_INPUTS, mode=_MODES, size=st.integers(1, 40))
def test_any_input_gives_a_result_or_a_proxy_protocol_error(
    data: bytes, mode: Mode, size: int
) -> None:
    whole = outcome(data, mode)  # raises anything but ProxyProtocolError: the test fails
    assert whole is None or isinstance(whole, Parsed | str)
    assert outcome(data, mode, size) == whole


@settings(max_examples=200, deadline=None)
@given(
    source=st.ip_addresses(v=4),
    destination=st.ip_addresses(v=4),
    ports=st.tuples(st.integers(0, 65535), st.integers(0, 65535)),
    unique_id=st.binary(max_size=128),
    rest=st.binary(max_size=50),
    size=st.integers(1, 64),
)
def test_any_v2_ipv4_header_round_trips(
    source: ipaddress.IPv4Address,
    destination: ipaddress.IPv4Address,
    ports: tuple[int, int],
    unique_id: bytes,
    rest: bytes,
    size: int,
) -> None:
    header = v2(
        addresses=inet4(str(source), str(destination), *ports),
        tlvs=tlv(PP2_TYPE_UNIQUE_ID, unique_id),
    )
    parsed = outcome(header + rest, "auto", size)
    assert isinstance(parsed, Parsed)
    assert parsed.header.source == (str(source), ports[0])
    assert parsed.header.destination == (str(destination), ports[1])
    assert parsed.header.unique_id == unique_id
    assert parsed.rest == rest


@settings(max_examples=200, deadline=None)
@given(
    source=st.ip_addresses(v=6),
    destination=st.ip_addresses(v=6),
    ports=st.tuples(st.integers(0, 65535), st.integers(0, 65535)),
    size=st.integers(1, 64),
)
def test_any_v1_tcp6_line_round_trips(
    source: ipaddress.IPv6Address,
    destination: ipaddress.IPv6Address,
    ports: tuple[int, int],
    size: int,
) -> None:
    line = f"PROXY TCP6 {source} {destination} {ports[0]} {ports[1]}\r\n".encode()
    parsed = outcome(line + b"GET", "v1", size)
    assert isinstance(parsed, Parsed)
    assert parsed.header.source == (str(source), ports[0])
    assert parsed.header.destination == (str(destination), ports[1])
    assert parsed.rest == b"GET"


# --- what the server takes from a header (server/proxy_protocol.py, pure parts) ---------

REAL_CLIENT, REAL_SERVER = ("127.0.0.1", 40000), ("127.0.0.1", 8000)


@pytest.mark.parametrize(
    ("data", "client", "server"),
    [
        (
            b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n",
            ("192.0.2.1", 56324),
            ("198.51.100.2", 443),
        ),
        (b"PROXY UNKNOWN\r\n", REAL_CLIENT, REAL_SERVER),
        (v2(0), REAL_CLIENT, REAL_SERVER),
        (v2(1, 0x00, b""), REAL_CLIENT, REAL_SERVER),
        (v2(family_byte=0x31, addresses=unix_paths(b"/a", b"/b")), None, None),
    ],
    ids=["tcp4", "unknown", "local", "unspec", "unix"],
)
def test_endpoints_come_from_a_relayed_header_only(
    data: bytes, client: tuple[str, int] | None, server: tuple[str, int] | None
) -> None:
    assert endpoints(parse(data).header, REAL_CLIENT, REAL_SERVER) == (client, server)


@pytest.mark.parametrize(
    ("data", "own", "expected"),
    [
        (v2(), "http", "http"),
        (v2(), "https", "https"),
        (v2(tlvs=ssl_tlv(PP2_CLIENT_SSL, 0)), "http", "https"),
        (v2(tlvs=ssl_tlv(0, 1)), "https", "http"),
        (v2(0, 0x00, b"", ssl_tlv(PP2_CLIENT_SSL, 0)), "http", "http"),  # LOCAL: discarded
        (b"PROXY TCP6 ::1 ::2 1 2\r\n", "https", "https"),
    ],
    ids=["plain", "tls-bind", "ssl-tlv", "ssl-tlv-cleartext", "local", "v1"],
)
def test_the_ssl_tlv_decides_the_scheme_when_present(data: bytes, own: str, expected: str) -> None:
    assert scheme(parse(data).header, own) == expected


def test_the_scope_extension_carries_what_the_header_said() -> None:
    subs = tlv(PP2_SUBTYPE_SSL_VERSION, b"TLSv1.3") + tlv(PP2_SUBTYPE_SSL_CN, b"alice")
    tlvs = (
        tlv(PP2_TYPE_ALPN, b"h2")
        + tlv(PP2_TYPE_AUTHORITY, b"shop.example")
        + tlv(PP2_TYPE_UNIQUE_ID, b"id-1")
        + ssl_tlv(PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN, 0, subs)
    )
    described = extensions(parse(v2(tlvs=tlvs)).header)[EXTENSION]
    assert described["version"] == 2 and described["command"] == "proxy"
    assert described["source"] == ("192.0.2.1", 56324)
    assert described["destination"] == ("198.51.100.2", 443)
    assert (described["alpn"], described["authority"], described["unique_id"]) == (
        b"h2",
        "shop.example",
        b"id-1",
    )
    assert described["ssl"]["client_ssl"] and described["ssl"]["cert_verified"]
    assert described["ssl"]["version"] == "TLSv1.3" and described["ssl"]["cn"] == "alice"
    assert [kind for kind, _ in described["tlvs"]] == [0x01, 0x02, 0x05, 0x20]
    assert extensions(parse(b"PROXY UNKNOWN\r\n").header)[EXTENSION]["ssl"] is None
