"""What a trusted proxy says about a request: the client, scheme, host and mount prefix it
saw, read from ``X-Forwarded-*`` and RFC 7239 ``Forwarded`` headers.

Pure: no I/O (a malformed value is a debug log line and is otherwise ignored). The server
parses the settings once (``ProxyHeaders.from_config``) and calls ``ProxyHeaders.apply`` on
each scope after ``build_scope`` made it (``Connection._scope``), so HTTP/1.1, HTTP/2,
WebSocket and WSGI (whose environ is made from the scope) all follow.

The rules (docs/decisions.md, "Proxy headers"):

- Nothing is read unless the connection's peer is trusted (``TrustedPeers``; a unix socket
  peer is ``None``). Only the headers named in ``forwarded_headers`` are read.
- Chains are walked from the right, skipping hops that are themselves trusted: the client
  is the nearest untrusted hop, or the leftmost when every hop is trusted. An unparseable
  hop stops the walk: the client is then the last good hop passed (if any).
- ``X-Forwarded-Proto/-Host/-Port/-Prefix`` with several values (several proxies
  appended): the value of the client's hop (the same position from the right as the
  client in ``X-Forwarded-For``) when there are that many values, else the rightmost
  (the one the nearest proxy wrote).
- ``Forwarded`` wins over ``X-Forwarded-For/-Proto/-Host/-Port`` when both are read and it
  yields a hop: it is the standard, and one element carries every field of one hop, so
  nothing has to be lined up across headers. ``X-Forwarded-Prefix`` has no ``Forwarded``
  counterpart and applies either way.
- A forwarded host or port rewrites both the ``host`` header and ``scope["server"]`` (what
  frameworks rebuild URLs from: Starlette's ``request.url``, WSGI's ``HTTP_HOST`` and
  ``SERVER_NAME``/``SERVER_PORT``). A forwarded prefix replaces ``root_path`` (the
  configured one too), and ``path``/``raw_path`` are the prefix plus the path below the
  configured root path, as ASGI wants them (the path includes the root path).
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import unquote

from tricorn.config import FORWARDED_HEADER_NAMES, forwarded_header_names
from tricorn.constants import ERROR_LOGGER
from tricorn.protocols.events import Headers
from tricorn.server.asgi_types import Scope
from tricorn.server.trust import TrustedPeers

log = logging.getLogger(ERROR_LOGGER)

T = TypeVar("T")
Node = tuple[str, int]

#: Entries kept in each of a server's caches (peer trust, X-Forwarded-For entries); a full
#: cache is emptied: addresses repeat (the proxy's, returning clients), ``ipaddress`` is slow.
CACHE_SIZE = 4096

#: Every header this module can read, as ``forwarded_headers`` names them.
HEADER_NAMES = FORWARDED_HEADER_NAMES

#: A forwarded scheme -> the HTTP scope's scheme (a WebSocket scope turns it into ws/wss).
SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}

DEFAULT_PORTS = {"http": 80, "https": 443}

#: A host name or IPv4 address (no comma, slash, at-sign or space), or an IPv6 in brackets,
#: with an optional port.
_HOST = re.compile(r"(?P<name>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(?::(?P<port>[0-9]{1,5}))?")
#: A path prefix: absolute, not ``//`` (which a browser reads as another host), of URL path
#: characters (no query, fragment, comma or space).
_PREFIX = re.compile(r"/(?!/)[A-Za-z0-9._~!$&'()*+=:@%/-]*|/")
#: An obfuscated identifier (RFC 7239 6.3) or port.
_OBFUSCATED = re.compile(r"_[A-Za-z0-9._-]+")


class Malformed(ValueError):
    """A forwarding header's value does not parse (logged at debug level, then ignored)."""


@dataclass(frozen=True, slots=True)
class Hop:
    """One proxy hop: the node that connected to the proxy and what the proxy saw."""

    #: The node that connected (``for``): an address, or an obfuscated name or ``unknown``.
    client: tuple[str, int] | None = None
    #: Whether ``client`` is an address a trust list can match.
    address: bool = False
    proto: str | None = None
    host: str | None = None
    #: The proxy's interface the request came in on (``by``), when it is an address.
    by: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True)
class Forwarded:
    """What trusted proxies say, as final values for the scope."""

    client: tuple[str, int] | None
    scheme: str
    server: tuple[str, int] | None
    #: The new ``host`` header value; None keeps the request's.
    host: bytes | None = None
    #: The forwarded mount prefix as (root_path, its raw bytes); None keeps the configured.
    prefix: tuple[str, bytes] | None = None


# --- parsing one value ------------------------------------------------------------------


def _address(text: str) -> str:
    """An IP address as ``scope["client"]`` holds it (no brackets); else ``Malformed``."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise Malformed(f"{text!r} is not an IP address") from None


def parse_node(text: str, *, obfuscated: bool) -> tuple[tuple[str, int], bool]:
    """A node (``1.2.3.4``, ``1.2.3.4:80``, ``2001:db8::1``, ``[2001:db8::1]:80``; with
    ``obfuscated`` also ``unknown`` and ``_name``, with ``_port``) as ((host, port), whether
    the host is an address). A missing or obfuscated port is 0."""
    text = text.strip()
    port_text = ""
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise Malformed(f"{text!r}: bad bracketed address")
        host, port_text = inside, rest[1:]
        if not host or ":" not in host:
            raise Malformed(f"{text!r}: brackets hold an IPv6 address")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host = text
    port = 0
    if port_text:
        if _is_port(port_text, zero=True):
            port = int(port_text)
        elif not (obfuscated and _OBFUSCATED.fullmatch(port_text)):
            raise Malformed(f"{text!r}: bad port")
    if obfuscated and (host.lower() == "unknown" or _OBFUSCATED.fullmatch(host)):
        return (host, port), False
    return (_address(host), port), True


def _host(text: str) -> str:
    """A forwarded host (``example.com``, ``example.com:8443``, ``[::1]:80``), checked."""
    text = text.strip()
    match = _HOST.fullmatch(text)
    if match is None:
        raise Malformed(f"{text!r} is not a host")
    port = match.group("port")
    if port is not None and int(port) > 65535:
        raise Malformed(f"{text!r}: bad port")
    return text


def _proto(text: str) -> str:
    scheme = SCHEMES.get(text.strip().lower())
    if scheme is None:
        raise Malformed(f"{text!r} is not http, https, ws or wss")
    return scheme


def _is_port(text: str, *, zero: bool = False) -> bool:
    """1-5 ASCII digits up to 65535 (0 only with ``zero``); never ``int`` of a long text."""
    return (
        0 < len(text) <= 5
        and text.isascii()
        and text.isdigit()
        and (1 if not zero else 0) <= int(text) <= 65535
    )


def _port(text: str) -> int:
    text = text.strip()
    if not _is_port(text):
        raise Malformed(f"{text!r} is not a port")
    return int(text)


def _prefix(text: str) -> tuple[str, bytes]:
    text = text.strip()
    if _PREFIX.fullmatch(text) is None:
        raise Malformed(f"{text!r} is not an absolute path")
    raw = text.rstrip("/")
    return unquote(raw), raw.encode("ascii")


# --- RFC 7239 Forwarded -----------------------------------------------------------------


def _split_outside_quotes(text: str, separator: str) -> tuple[list[str], bool]:
    """``text`` split at ``separator`` outside quoted strings (backslash escapes inside
    them), and whether the last quoted string never ends."""
    parts: list[str] = []
    start = 0
    quoted = False
    index = 0
    while index < len(text):
        char = text[index]
        if quoted:
            if char == "\\":
                index += 1
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == separator:
            parts.append(text[start:index])
            start = index + 1
        index += 1
    parts.append(text[start:])
    return parts, quoted


def _split_elements(value: str) -> list[str | None]:
    """The forwarded-elements of one header line (split at commas outside quoted
    strings). A quoted string that never ends makes the rest one bad element (None)."""
    elements: list[str | None] = []
    parts, unterminated = _split_outside_quotes(value, ",")
    elements.extend(parts)
    if unterminated:
        elements[-1] = None
    return elements


def _unquote_value(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    if '"' in text:
        raise Malformed(f"{text!r}: stray quote")
    return text


def _split_pairs(element: str) -> list[str]:
    """``a=1;b="x;y"`` -> [``a=1``, ``b="x;y"``]: split at semicolons outside quotes."""
    return _split_outside_quotes(element, ";")[0]


def parse_forwarded_element(element: str) -> Hop:
    """One forwarded-element (``for=...;proto=...;host=...;by=...``) as a ``Hop``."""
    fields: dict[str, str] = {}
    for pair in _split_pairs(element):
        if not pair.strip():
            continue
        name, equals, raw = pair.partition("=")
        name = name.strip().lower()
        if not equals or not name or name in fields:
            raise Malformed(f"{pair.strip()!r}: not a single name=value pair")
        fields[name] = _unquote_value(raw)
    if not fields:
        raise Malformed("an empty element")
    client, address = (None, False)
    if "for" in fields:
        client, address = parse_node(fields["for"], obfuscated=True)
    by: tuple[str, int] | None = None
    if "by" in fields:
        node, by_address = parse_node(fields["by"], obfuscated=True)
        by = node if by_address else None
    return Hop(
        client=client,
        address=address,
        proto=_proto(fields["proto"]) if "proto" in fields else None,
        host=_host(fields["host"]) if "host" in fields else None,
        by=by,
    )


def forwarded_hop(values: Iterable[str], trusts: Callable[[str], bool]) -> Hop | None:
    """The client's hop in ``Forwarded`` header lines (in order): walk from the right,
    skipping elements whose ``for`` is trusted; the first untrusted one (an obfuscated
    or ``unknown`` node is never trusted), or the leftmost. A bad element stops the walk
    at the last good one passed; None when there is none."""
    elements = [element for value in values for element in _split_elements(value)]
    chosen: Hop | None = None
    for element in reversed(elements):
        try:
            if element is None:
                raise Malformed("a quoted string that does not end")
            hop = parse_forwarded_element(element)
        except Malformed as error:
            log.debug("Forwarded header ignored from %r on: %s", element, error)
            break
        chosen = hop
        if hop.client is None or not (hop.address and trusts(hop.client[0])):
            break
    return chosen


# --- X-Forwarded-For --------------------------------------------------------------------


def x_forwarded_for_client(
    values: Iterable[str], trusts: Callable[[str], bool], parse: Callable[[str], Node] | None = None
) -> tuple[tuple[str, int] | None, int]:
    """The client in ``X-Forwarded-For`` lines and its position from the right (1 for the
    rightmost): the nearest untrusted hop, or the leftmost. A bad entry stops the walk at the
    last good one passed; (None, 1) when there is none."""
    entries = [entry for value in values for entry in value.split(",")]
    chosen: tuple[str, int] | None = None
    position = 1
    for index, entry in enumerate(reversed(entries), start=1):
        try:
            node = parse(entry) if parse is not None else parse_node(entry, obfuscated=False)[0]
        except Malformed as error:
            log.debug("X-Forwarded-For ignored from %r on: %s", entry.strip(), error)
            break
        chosen, position = node, index
        if not trusts(node[0]):
            break
    return chosen, position


def _at_hop(values: list[str], position: int) -> str:
    """The value for the client's hop among comma-separated ``values`` (see the module's
    docstring): the ``position``-th from the right when there are that many, else the
    rightmost."""
    items = [item for value in values for item in value.split(",")]
    return items[-position] if len(items) >= position else items[-1]


# --- putting it together ----------------------------------------------------------------


class ProxyHeaders:
    """The proxy header settings, parsed once per server; ``apply`` rewrites a scope."""

    __slots__ = ("_names", "_nodes", "_trust", "root_path", "trusted")

    def __init__(self, trusted: TrustedPeers, headers: Iterable[str], root_path: str = "") -> None:
        self.trusted = trusted
        self._trust: dict[str | None, bool] = {}
        self._nodes: dict[str, Node] = {}
        self._names = frozenset(name.encode("ascii") for name in forwarded_header_names(headers))
        self.root_path = root_path

    @classmethod
    def from_config(
        cls, enabled: bool, allow_ips: Iterable[str], headers: Iterable[str], root_path: str
    ) -> ProxyHeaders | None:
        """None when nothing would ever be read (off, or an empty trust list)."""
        trusted = TrustedPeers.parse(allow_ips)
        if not enabled or trusted.empty:
            return None
        proxy = cls(trusted, headers, root_path)
        return proxy if proxy._names else None

    def trusts(self, host: str | None) -> bool:
        """``TrustedPeers.trusts``, remembered."""
        known = self._trust.get(host)
        if known is None:
            if len(self._trust) >= CACHE_SIZE:
                self._trust.clear()
            known = self._trust[host] = self.trusted.trusts(host)
        return known

    def _node(self, entry: str) -> Node:
        """An X-Forwarded-For entry parsed (``parse_node``), remembered when it parses (and
        is short: the cache's size stays bounded whatever clients send)."""
        node = self._nodes.get(entry)
        if node is None:
            node = parse_node(entry, obfuscated=False)[0]
            if len(entry) > 64:
                return node
            if len(self._nodes) >= CACHE_SIZE:
                self._nodes.clear()
            self._nodes[entry] = node
        return node

    def read(
        self,
        headers: Headers,
        *,
        client: tuple[str, int] | None,
        scheme: str,
        server: tuple[str, int] | None,
    ) -> Forwarded | None:
        """What trusted proxies say about a request from ``client`` (None: a unix socket
        peer) on a connection of ``scheme`` to ``server``; None when nothing changes."""
        found: dict[bytes, list[str]] | None = None
        names = self._names
        for name, value in headers:
            if name in names:
                if found is None:
                    found = {}
                found.setdefault(name, []).append(value.decode("latin-1"))
        if found is None or not self.trusts(client[0] if client else None):
            return None
        new_client, new_scheme = client, scheme
        host: str | None = None
        port: int | None = None
        by: tuple[str, int] | None = None
        hop = forwarded_hop(found[b"forwarded"], self.trusts) if b"forwarded" in found else None
        if hop is not None:
            if hop.client is not None:
                new_client = hop.client
            new_scheme = hop.proto or scheme
            host, by = hop.host, hop.by
        else:
            position = 1
            if b"x-forwarded-for" in found:
                node, position = x_forwarded_for_client(
                    found[b"x-forwarded-for"], self.trusts, self._node
                )
                new_client = node or client
            new_scheme = _read(found, b"x-forwarded-proto", position, _proto) or scheme
            host = _read(found, b"x-forwarded-host", position, _host)
            port = _read(found, b"x-forwarded-port", position, _port)
        prefix = _read(found, b"x-forwarded-prefix", 1, _prefix)
        host_header: bytes | None = None
        new_server = server
        if host is not None or port is not None:
            if host is None:  # a port alone: the request's own host name with it
                host = next((v.decode("latin-1") for k, v in headers if k == b"host"), None)
            if host is not None:
                host_header, new_server = _host_and_server(host, port, new_scheme, server)
        elif by is not None:
            new_server = (by[0], by[1] or DEFAULT_PORTS[new_scheme])
        if (
            new_client == client
            and new_scheme == scheme
            and new_server == server
            and host_header is None
            and prefix is None
        ):
            return None
        return Forwarded(new_client, new_scheme, new_server, host_header, prefix)

    def apply(self, scope: Scope) -> None:
        """Rewrite ``scope`` (an HTTP scope fresh from ``build_scope``) with what trusted
        proxies say: client, scheme, server, the ``host`` header, root_path and the path."""
        names = self._names
        for name, _ in scope["headers"]:
            if name in names:
                break
        else:  # the common case, no proxy header: one scan, no call (once per request)
            return
        forwarded = self.read(
            scope["headers"], client=scope["client"], scheme=scope["scheme"], server=scope["server"]
        )
        if forwarded is None:
            return
        scope["client"] = forwarded.client
        scope["scheme"] = forwarded.scheme
        scope["server"] = forwarded.server
        if forwarded.host is not None:
            headers = [(k, v) for k, v in scope["headers"] if k != b"host"]
            headers.append((b"host", forwarded.host))
            scope["headers"] = headers
        if forwarded.prefix is not None:
            root_path, raw_prefix = forwarded.prefix
            configured = self.root_path
            below = scope["path"][len(configured) :] if configured else scope["path"]
            raw_below = scope["raw_path"]
            if configured:
                raw_below = raw_below[len(configured.encode()) :]
            scope["root_path"] = root_path
            scope["path"] = root_path + below
            scope["raw_path"] = raw_prefix + raw_below


def _host_and_server(
    host: str, port: int | None, scheme: str, server: tuple[str, int] | None
) -> tuple[bytes | None, tuple[str, int] | None]:
    """The ``host`` header and ``scope["server"]`` for a forwarded ``host`` (maybe with a
    port) and ``port`` (X-Forwarded-Port, which wins): the port is left out of the header
    when it is the scheme's default. ``(None, server)`` when ``host`` is no host."""
    match = _HOST.fullmatch(host)
    if match is None:
        return None, server
    name, given = match.group("name"), match.group("port")
    if port is None and given is not None:
        port = int(given)
    default = DEFAULT_PORTS[scheme]
    shown = name if port in (None, default) else f"{name}:{port}"
    return shown.encode("latin-1"), (name.strip("[]"), port or default)


def _read(
    found: dict[bytes, list[str]], name: bytes, position: int, parse: Callable[[str], T]
) -> T | None:
    values = found.get(name)
    if values is None:
        return None
    try:
        return parse(_at_hop(values, position))
    except Malformed as error:
        log.debug("%s ignored: %s", name.decode(), error)
        return None
