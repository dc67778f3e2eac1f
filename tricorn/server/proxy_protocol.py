"""The PROXY protocol step of a connection, before TLS and HTTP (``serve._handle_connection``).

With ``proxy_protocol`` on, a peer in ``proxy_protocol_allow_ips`` (the load balancer) must
begin every connection with a header (``tricorn.protocols.proxy_protocol``), read here under
``header_read_timeout`` in pieces no larger than the header can still be; the bytes read past
its end are given back to the socket stream, whose next ``receive`` returns them first (the
TLS ClientHello or the HTTP request). The header's source and destination become the
connection's ASGI ``client`` and ``server``; its SSL TLV says whether the client reached the
proxy over TLS (the scheme). A malformed, missing or late header closes the connection with
one log line; nobody else is affected.

Any other peer is served as a direct client: its bytes are never read as a header, so it
cannot claim another address. Its connection is closed (with a warning) only if it begins
with a PROXY signature anyway: a proxy missing from the allow list, said plainly rather than
as a 400 for a request line ``PROXY TCP4 ...``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
from anyio.abc import ByteStream

from tricorn.config import Config
from tricorn.constants import ERROR_LOGGER
from tricorn.errors import ConfigError
from tricorn.protocols.proxy_protocol import (
    Mode,
    ProxyHeader,
    ProxyProtocolError,
    ProxyProtocolParser,
    starts_with_header,
)
from tricorn.server.access_log import format_client
from tricorn.server.trust import TrustedPeers

error_log = logging.getLogger(ERROR_LOGGER)

#: The ASGI scope extension that carries what the header said (present only when one came).
EXTENSION = "tricorn.proxy_protocol"
#: The most bytes read at once from a peer not allowed to send a header, to look at its start.
SNIFF_SIZE = 65536
#: What a read raises when the peer has gone.
_GONE = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)

Peer = tuple[str, int] | None


@dataclass(frozen=True, slots=True)
class Refused:
    """The connection must be closed (the reason is logged already). ``result`` says why,
    for the metrics (``proxy_protocol_connections_total``): "malformed" (a bad or missing
    header), "not_allowed" (a header from a peer not in the allow list), "closed" (closed
    before sending a byte: a TCP health check), "timeout"; None for a direct client that
    left or stalled before a decisive byte (no PROXY protocol matter)."""

    result: str | None


class Unreceivable(Protocol):
    """Our socket streams (``TrioSocketStream``, ``AsyncioSocketStream``) take bytes back."""

    def unreceive(self, data: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class ProxyProtocolSetup:
    """The PROXY protocol settings of one ``serve``, parsed once."""

    mode: Mode
    allowed: TrustedPeers
    v2_max_size: int
    timeout: float

    @classmethod
    def from_config(cls, config: Config) -> ProxyProtocolSetup | None:
        """None when ``proxy_protocol`` is off; ``ConfigError`` for a bad allow list."""
        if config.proxy_protocol == "off":
            return None
        try:
            allowed = TrustedPeers.parse(config.proxy_protocol_allow_ips)
        except ValueError as error:
            raise ConfigError(f"config: proxy_protocol_allow_ips: {error}") from None
        return cls(
            config.proxy_protocol,
            allowed,
            config.proxy_protocol_v2_max_size,
            config.header_read_timeout,
        )

    def allows(self, client: Peer) -> bool:
        """Whether the connection's real peer may send a header (None: a unix socket)."""
        return self.allowed.trusts(client[0] if client else None)


def _label(client: Peer) -> str:
    """The real peer for log lines: ``host:port``, an IPv6 host in brackets."""
    return format_client(client) or "unix socket peer"


async def accept(
    transport: ByteStream, setup: ProxyProtocolSetup, client: Peer
) -> tuple[ByteStream, ProxyHeader | None] | Refused:
    """The PROXY protocol step of a new connection whose real peer is ``client``: the
    stream to go on with and the header (None from a peer not allowed to send one), or
    ``Refused`` when the connection must be closed (the reason is logged)."""
    if setup.allows(client):
        return await read_header(transport, setup, client)
    stream = await refuse_foreign_header(transport, setup, client)
    return stream if isinstance(stream, Refused) else (stream, None)


async def read_header(
    transport: ByteStream, setup: ProxyProtocolSetup, client: Peer
) -> tuple[ByteStream, ProxyHeader] | Refused:
    """Read the header from an allowed peer. Returns the stream to go on with (the bytes
    after the header come first) and the header; ``Refused`` when the connection must be
    closed (the reason is logged)."""
    parser = ProxyProtocolParser(setup.mode, v2_max_size=setup.v2_max_size)
    with anyio.move_on_after(setup.timeout):
        while True:
            try:
                data = await transport.receive(parser.wanted())
            except _GONE:
                data = b""
            try:
                parsed = parser.feed(data)
            except ProxyProtocolError as error:
                if not data and not parser.buffered_size:
                    # Connected and closed without a byte: a TCP health check.
                    error_log.debug("%s: closed before sending anything", _label(client))
                    return Refused("closed")
                error_log.warning("%s: %s; closing the connection", _label(client), error)
                return Refused("malformed")
            if parsed is not None:
                return _give_back(transport, parsed.rest), parsed.header
    error_log.warning(
        "%s: no complete PROXY protocol header within %g s (header_read_timeout); closing the "
        "connection (%d bytes received)",
        _label(client),
        setup.timeout,
        parser.buffered_size,
    )
    return Refused("timeout")


async def refuse_foreign_header(
    transport: ByteStream, setup: ProxyProtocolSetup, client: Peer
) -> ByteStream | Refused:
    """For a peer not allowed to send a header: read its first bytes and give them back.
    Returns the stream to serve, or ``Refused`` (logged) when those bytes begin a PROXY
    header, or when it sent nothing decisive within the head timeout."""
    data = b""
    with anyio.move_on_after(setup.timeout):
        while (verdict := starts_with_header(data)) is None:
            try:
                data += await transport.receive(SNIFF_SIZE)
            except _GONE:
                return Refused(None)  # the HTTP connection would only see the close
        if verdict:
            error_log.warning(
                "%s sent a PROXY protocol header but is not in proxy_protocol_allow_ips; "
                "closing the connection",
                _label(client),
            )
            return Refused("not_allowed")
        return _give_back(transport, data)
    error_log.info(
        "%s: request not received in time (header_read_timeout); closing", _label(client)
    )
    return Refused(None)


def _give_back(transport: ByteStream, data: bytes) -> ByteStream:
    if not data:
        return transport
    unreceive = getattr(transport, "unreceive", None)
    if unreceive is not None:
        unreceive(data)
        return transport
    return PrefixedStream(transport, data)  # pragma: no cover - anyio's own socket stream


class PrefixedStream(ByteStream):
    """A stream that returns ``prefix`` before reading ``stream``: for a socket stream that
    cannot take bytes back (anyio's own, when ``adopt`` kept it)."""

    def __init__(self, stream: ByteStream, prefix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self._prefix:
            await anyio.lowlevel.checkpoint()
            data, self._prefix = self._prefix[:max_bytes], self._prefix[max_bytes:]
            return data
        return await self._stream.receive(max_bytes)

    async def send(self, item: bytes) -> None:
        await self._stream.send(item)

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()

    @property
    def extra_attributes(self) -> Any:
        return self._stream.extra_attributes


def endpoints(header: ProxyHeader, client: Peer, server: Peer) -> tuple[Peer, Peer]:
    """The ASGI ``client`` and ``server`` after ``header``: the header's for a relayed
    connection (None for unix sockets, as ASGI has no form for a path); else the real ones
    (LOCAL, UNKNOWN, AF_UNSPEC)."""
    if not header.relayed:
        return client, server
    source, destination = header.source, header.destination
    return (
        source if isinstance(source, tuple) else None,
        destination if isinstance(destination, tuple) else None,
    )


def scheme(header: ProxyHeader, own: str) -> str:
    """The scheme after ``header``: its SSL TLV says whether the client used TLS to reach
    the proxy; without one, the connection's ``own`` (``https`` on a TLS bind)."""
    if header.command != "proxy" or header.ssl is None:
        return own
    return "https" if header.ssl.client_ssl else "http"


def extensions(header: ProxyHeader) -> dict[str, Any]:
    """The ``tricorn.proxy_protocol`` scope extension: what the header said, for apps that
    correlate with the proxy's logs (unique id) or want the client's TLS details."""
    return {EXTENSION: _describe(header)}


def _describe(header: ProxyHeader) -> dict[str, Any]:
    ssl = header.ssl
    return {
        "version": header.version,
        "command": header.command,
        "family": header.family,
        "source": header.source,
        "destination": header.destination,
        "alpn": header.alpn,
        "authority": header.authority,
        "unique_id": header.unique_id,
        "netns": header.netns,
        "ssl": None
        if ssl is None
        else {
            "client_ssl": ssl.client_ssl,
            "client_cert": ssl.client_cert,
            "cert_verified": ssl.cert_verified,
            "verify": ssl.verify,
            "version": ssl.version,
            "cipher": ssl.cipher,
            "cn": ssl.cn,
            "sig_alg": ssl.sig_alg,
            "key_alg": ssl.key_alg,
        },
        "tlvs": list(header.tlvs),
    }
