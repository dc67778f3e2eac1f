"""TLS on accepted connections: the handshake under a timeout, ALPN, the ASGI ``tls`` scope."""

from __future__ import annotations

import ssl
from typing import Any

import anyio
from anyio.abc import ByteStream
from anyio.streams.tls import TLSAttribute, TLSStream

#: TLS versions as the ASGI TLS extension wants them: the protocol's own numbers.
TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}

#: IANA cipher suite numbers (RFC 8446 B.4, RFC 5289, RFC 7905) for the suites OpenSSL
#: negotiates with TLS 1.2+ by default; anything else is reported as None.
CIPHER_SUITES = {
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
    "ECDHE-ECDSA-AES128-GCM-SHA256": 0xC02B,
    "ECDHE-ECDSA-AES256-GCM-SHA384": 0xC02C,
    "ECDHE-RSA-AES128-GCM-SHA256": 0xC02F,
    "ECDHE-RSA-AES256-GCM-SHA384": 0xC030,
    "ECDHE-RSA-CHACHA20-POLY1305": 0xCCA8,
    "ECDHE-ECDSA-CHACHA20-POLY1305": 0xCCA9,
    "DHE-RSA-AES128-GCM-SHA256": 0x009E,
    "DHE-RSA-AES256-GCM-SHA384": 0x009F,
}


#: Short attribute names of RFC 4514 section 3.
RFC4514_KEYS = {
    "commonName": "CN",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}


def _escape_rfc4514(value: str) -> str:
    escaped = "".join(f"\\{char}" if char in ',+"\\<>;' else char for char in value)
    if escaped.startswith(("#", " ")):
        escaped = "\\" + escaped
    if escaped.endswith(" ") and not escaped.endswith("\\ "):
        escaped = escaped[:-1] + "\\ "
    return escaped


def rfc4514_name(subject: tuple[tuple[tuple[str, str], ...], ...]) -> str | None:
    """A certificate subject as an RFC 4514 string: most specific part first, short names."""
    parts = [
        "+".join(f"{RFC4514_KEYS.get(key, key)}={_escape_rfc4514(value)}" for key, value in rdn)
        for rdn in reversed(subject)
    ]
    return ",".join(parts) or None


class HandshakeFailed(Exception):
    """The TLS handshake failed or timed out; the connection is dropped."""


async def wrap_server_side(
    transport: ByteStream, context: ssl.SSLContext, timeout: float
) -> TLSStream:
    """Run the server side of the TLS handshake within ``timeout`` seconds."""
    try:
        with anyio.fail_after(timeout):
            return await TLSStream.wrap(
                transport, server_side=True, ssl_context=context, standard_compatible=False
            )
    except (
        TimeoutError,
        ssl.SSLError,
        OSError,
        anyio.BrokenResourceError,
        anyio.EndOfStream,
    ) as error:
        await anyio.aclose_forcefully(transport)
        raise HandshakeFailed(str(error) or type(error).__name__) from None


def alpn_protocol(stream: TLSStream) -> str | None:
    return stream.extra(TLSAttribute.alpn_protocol, None)


def tls_extension(stream: TLSStream) -> dict[str, Any]:
    """The ASGI ``tls`` scope extension for a connection."""
    ssl_object: ssl.SSLObject = stream.extra(TLSAttribute.ssl_object)
    chain: list[str] = []
    der = ssl_object.getpeercert(binary_form=True)
    if der:
        chain.append(ssl.DER_cert_to_PEM_cert(der))
    peer: dict[str, Any] = dict(ssl_object.getpeercert() or {})
    subject: tuple[tuple[tuple[str, str], ...], ...] = peer.get("subject", ())
    name = rfc4514_name(subject)
    cipher = ssl_object.cipher()
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": CIPHER_SUITES.get(cipher[0]) if cipher else None,
    }
