"""Trusted proxy headers (tricorn/server/forwarded.py): X-Forwarded-*, RFC 7239 Forwarded,
chains, IPv6, obfuscated identifiers, malformed values, precedence; and their settings."""

from __future__ import annotations

import logging
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tricorn.config import FORWARDED_HEADER_NAMES, Config
from tricorn.config.loader import check_config, load_config
from tricorn.errors import ConfigError
from tricorn.protocols.events import Request
from tricorn.protocols.websocket import WebSocketRequestInfo
from tricorn.server.asgi_types import Scope
from tricorn.server.forwarded import Forwarded, ProxyHeaders, forwarded_hop, parse_node
from tricorn.server.http_stream import build_scope
from tricorn.server.trust import TrustedPeers
from tricorn.server.ws_stream import websocket_scope

ROOT = Path(__file__).resolve().parents[2]

PROXY = ("127.0.0.1", 50000)
SERVER = ("127.0.0.1", 8000)
ALL = list(FORWARDED_HEADER_NAMES)


def proxy(trust: str = "127.0.0.1,10.0.0.0/8,unix", headers: list[str] = ALL) -> ProxyHeaders:
    return ProxyHeaders(TrustedPeers.parse([trust]), headers)


def read(
    *headers: tuple[str, str],
    client: tuple[str, int] | None = PROXY,
    scheme: str = "http",
    proxy_headers: ProxyHeaders | None = None,
) -> Forwarded | None:
    raw = [(name.encode(), value.encode()) for name, value in headers]
    raw.insert(0, (b"host", b"app.test:8000"))
    return (proxy_headers or proxy()).read(raw, client=client, scheme=scheme, server=SERVER)


def client_of(*headers: tuple[str, str], **kwargs: Any) -> tuple[str, int] | None:
    forwarded = read(*headers, **kwargs)
    return forwarded.client if forwarded is not None else PROXY


def scheme_of(*headers: tuple[str, str], **kwargs: Any) -> str:
    forwarded = read(*headers, **kwargs)
    return forwarded.scheme if forwarded is not None else kwargs.get("scheme", "http")


# --- nothing to say ------------------------------------------------------------------


def test_no_forwarding_header_changes_nothing() -> None:
    assert read(("user-agent", "x")) is None


def test_an_untrusted_peer_changes_nothing() -> None:
    headers = [
        ("x-forwarded-for", "1.2.3.4"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "evil.test"),
        ("x-forwarded-prefix", "/p"),
        ("forwarded", "for=1.2.3.4;proto=https;host=evil.test"),
    ]
    assert read(*headers, client=("192.0.2.9", 4000)) is None
    assert read(*headers, client=None, proxy_headers=proxy("127.0.0.1")) is None


def test_a_unix_socket_peer_is_trusted_with_unix() -> None:
    forwarded = read(("x-forwarded-for", "1.2.3.4"), client=None)
    assert forwarded is not None and forwarded.client == ("1.2.3.4", 0)


def test_headers_not_named_in_forwarded_headers_are_not_read() -> None:
    only = proxy(headers=["x-forwarded-for", "x-forwarded-proto"])
    assert read(("x-forwarded-host", "evil.test"), proxy_headers=only) is None
    assert read(("forwarded", "for=1.2.3.4"), proxy_headers=only) is None
    assert read(("x-forwarded-prefix", "/p"), proxy_headers=only) is None
    assert client_of(("x-forwarded-for", "1.2.3.4"), proxy_headers=only) == ("1.2.3.4", 0)


def test_headers_that_say_what_the_connection_already_is_change_nothing() -> None:
    assert read(("x-forwarded-proto", "http")) is None


# --- X-Forwarded-For -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "client"),
    [
        ("1.2.3.4", ("1.2.3.4", 0)),
        (" 1.2.3.4 ", ("1.2.3.4", 0)),
        ("1.2.3.4:5678", ("1.2.3.4", 5678)),
        ("2001:db8::1", ("2001:db8::1", 0)),
        ("[2001:db8::1]", ("2001:db8::1", 0)),
        ("[2001:db8::1]:4711", ("2001:db8::1", 4711)),
        ("2001:DB8:0:0::1", ("2001:db8::1", 0)),  # normalised as the socket would give it
    ],
)
def test_x_forwarded_for_one_hop(value: str, client: tuple[str, int]) -> None:
    assert client_of(("x-forwarded-for", value)) == client


def test_x_forwarded_for_walks_from_the_right_past_trusted_hops() -> None:
    # The client forged 6.6.6.6; the edge proxy 10.0.0.5 appended the client it saw.
    chain = "6.6.6.6, 203.0.113.7, 10.0.0.5, 10.0.0.9"
    assert client_of(("x-forwarded-for", chain)) == ("203.0.113.7", 0)


def test_x_forwarded_for_all_trusted_gives_the_leftmost() -> None:
    assert client_of(("x-forwarded-for", "10.1.1.1, 10.0.0.5, 127.0.0.1")) == ("10.1.1.1", 0)


def test_x_forwarded_for_lines_are_joined_in_order() -> None:
    lines = [("x-forwarded-for", "6.6.6.6, 203.0.113.7"), ("x-forwarded-for", "10.0.0.5")]
    assert client_of(*lines) == ("203.0.113.7", 0)


def test_x_forwarded_for_garbage_left_of_the_client_does_not_matter() -> None:
    assert client_of(("x-forwarded-for", "not an ip, <script>, 203.0.113.7")) == (
        "203.0.113.7",
        0,
    )


def test_x_forwarded_for_garbage_after_trusted_hops_stops_at_the_last_good_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="tricorn.error"):
        assert client_of(("x-forwarded-for", "bogus, 10.0.0.5")) == ("10.0.0.5", 0)
    assert "X-Forwarded-For ignored from 'bogus'" in caplog.text


@pytest.mark.parametrize(
    "value",
    [
        "bogus",
        "",
        "1.2.3.4:99999",
        "[1.2.3.4]",
        "[::1",
        "1.2.3.4.5",
        "_hidden",
        "1.2.3.4:" + "9" * 5000,
    ],
)
def test_a_malformed_x_forwarded_for_is_ignored_with_a_debug_line(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="tricorn.error"):
        assert read(("x-forwarded-for", value)) is None
    assert "X-Forwarded-For ignored" in caplog.text


# --- X-Forwarded-Proto ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "scheme"),
    [("https", "https"), ("HTTPS", "https"), ("wss", "https"), ("ws", "http"), ("http", "http")],
)
def test_x_forwarded_proto(value: str, scheme: str) -> None:
    assert scheme_of(("x-forwarded-proto", value)) == scheme


def test_x_forwarded_proto_can_say_http_on_a_tls_connection() -> None:
    assert scheme_of(("x-forwarded-proto", "http"), scheme="https") == "http"


@pytest.mark.parametrize("value", ["ftp", "", "https, ", "javascript"])
def test_a_malformed_x_forwarded_proto_is_ignored(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="tricorn.error"):
        assert read(("x-forwarded-proto", value)) is None
    assert "x-forwarded-proto ignored" in caplog.text


def test_x_forwarded_proto_per_hop_follows_the_client_in_x_forwarded_for() -> None:
    # Each proxy appended: the edge saw https from the client, the inner one http.
    headers = [
        ("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.5"),
        ("x-forwarded-proto", "http, https, http"),
    ]
    forwarded = read(*headers)
    assert forwarded is not None
    assert (forwarded.client, forwarded.scheme) == (("203.0.113.7", 0), "https")


def test_one_x_forwarded_proto_for_a_chain_is_the_nearest_proxys() -> None:
    headers = [("x-forwarded-for", "203.0.113.7, 10.0.0.5"), ("x-forwarded-proto", "https")]
    assert scheme_of(*headers) == "https"


# --- X-Forwarded-Host and -Port --------------------------------------------------------


def test_x_forwarded_host_rewrites_the_host_header_and_the_server() -> None:
    forwarded = read(("x-forwarded-host", "www.example.com"), ("x-forwarded-proto", "https"))
    assert forwarded is not None
    assert forwarded.host == b"www.example.com"
    assert forwarded.server == ("www.example.com", 443)


def test_x_forwarded_host_with_a_port() -> None:
    forwarded = read(("x-forwarded-host", "www.example.com:8443"))
    assert forwarded is not None
    assert (forwarded.host, forwarded.server) == (
        b"www.example.com:8443",
        ("www.example.com", 8443),
    )


def test_x_forwarded_host_ipv6() -> None:
    forwarded = read(("x-forwarded-host", "[2001:db8::5]:8080"))
    assert forwarded is not None
    assert (forwarded.host, forwarded.server) == (b"[2001:db8::5]:8080", ("2001:db8::5", 8080))


def test_x_forwarded_port_goes_with_the_host() -> None:
    forwarded = read(
        ("x-forwarded-host", "www.example.com"),
        ("x-forwarded-port", "8443"),
        ("x-forwarded-proto", "https"),
    )
    assert forwarded is not None
    assert (forwarded.host, forwarded.server) == (
        b"www.example.com:8443",
        ("www.example.com", 8443),
    )


def test_x_forwarded_port_alone_keeps_the_request_host_name() -> None:
    forwarded = read(("x-forwarded-port", "443"), ("x-forwarded-proto", "https"))
    assert forwarded is not None
    # The request's Host was app.test:8000; the default port of https is not written.
    assert (forwarded.host, forwarded.server) == (b"app.test", ("app.test", 443))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("x-forwarded-host", "evil.test/path"),
        ("x-forwarded-host", "user@evil.test"),
        ("x-forwarded-host", "a b"),
        ("x-forwarded-host", "evil.test:99999"),
        ("x-forwarded-host", ""),
        ("x-forwarded-port", "0"),
        ("x-forwarded-port", "http"),
        ("x-forwarded-port", "70000"),
        ("x-forwarded-port", "9" * 5000),  # int() of it would raise: Python's digit limit
    ],
)
def test_a_malformed_host_or_port_is_ignored(
    name: str, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="tricorn.error"):
        assert read((name, value)) is None
    assert f"{name} ignored" in caplog.text


# --- X-Forwarded-Prefix -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "root_path", "raw"),
    [
        ("/api", "/api", b"/api"),
        ("/api/", "/api", b"/api"),
        ("/a%20b", "/a b", b"/a%20b"),
        ("/", "", b""),
    ],
)
def test_x_forwarded_prefix(value: str, root_path: str, raw: bytes) -> None:
    forwarded = read(("x-forwarded-prefix", value))
    assert forwarded is not None and forwarded.prefix == (root_path, raw)


@pytest.mark.parametrize("value", ["api", "//evil.test", "/a?b", "/a#b", "/a b", "/a\\b", ""])
def test_a_malformed_x_forwarded_prefix_is_ignored(value: str) -> None:
    assert read(("x-forwarded-prefix", value)) is None


# --- Forwarded (RFC 7239) --------------------------------------------------------------


def test_forwarded_for_proto_host() -> None:
    forwarded = read(("forwarded", "for=192.0.2.60;proto=https;host=www.example.com"))
    assert forwarded is not None
    assert forwarded.client == ("192.0.2.60", 0)
    assert forwarded.scheme == "https"
    assert (forwarded.host, forwarded.server) == (b"www.example.com", ("www.example.com", 443))


def test_forwarded_quoted_ipv6_with_port() -> None:
    assert client_of(("forwarded", 'for="[2001:db8:cafe::17]:4711"')) == ("2001:db8:cafe::17", 4711)


def test_forwarded_names_are_case_insensitive_and_spaces_allowed() -> None:
    forwarded = read(("forwarded", 'For="192.0.2.43" ; PROTO=HTTPS'))
    assert forwarded is not None
    assert (forwarded.client, forwarded.scheme) == (("192.0.2.43", 0), "https")


@pytest.mark.parametrize(
    ("node", "client"),
    [
        ("_hidden", ("_hidden", 0)),
        ("unknown", ("unknown", 0)),
        ('"_gazonk:_port"', ("_gazonk", 0)),
        ('"192.0.2.43:_p1"', ("192.0.2.43", 0)),
    ],
)
def test_forwarded_obfuscated_identifiers_are_passed_on(node: str, client: tuple[str, int]) -> None:
    assert client_of(("forwarded", f"for={node}")) == client


def test_forwarded_walks_from_the_right_and_stops_at_an_obfuscated_node() -> None:
    value = "for=203.0.113.7;proto=http, for=_hidden;proto=https, for=10.0.0.5;proto=http"
    forwarded = read(("forwarded", value))
    assert forwarded is not None
    assert (forwarded.client, forwarded.scheme) == (("_hidden", 0), "https")


def test_forwarded_chain_over_several_lines() -> None:
    forwarded = read(
        ("forwarded", "for=6.6.6.6;proto=http"),
        ("forwarded", 'for=203.0.113.7;proto=https;host="www.example.com"'),
        ("forwarded", "for=10.0.0.5;proto=http"),
    )
    assert forwarded is not None
    assert (forwarded.client, forwarded.scheme, forwarded.host) == (
        ("203.0.113.7", 0),
        "https",
        b"www.example.com",
    )


def test_forwarded_all_trusted_gives_the_leftmost() -> None:
    assert client_of(("forwarded", "for=10.1.1.1, for=127.0.0.1")) == ("10.1.1.1", 0)


def test_forwarded_quoted_commas_and_escapes_stay_in_their_element() -> None:
    hop = forwarded_hop(['for=6.6.6.6;ext="a,b;c\\"d", for=203.0.113.7'], TrustedPeers().trusts)
    assert hop is not None and hop.client == ("203.0.113.7", 0)
    hop = forwarded_hop(['for=203.0.113.7;ext="a,b;c\\"d"'], TrustedPeers().trusts)
    assert hop is not None and hop.client == ("203.0.113.7", 0)


def test_forwarded_by_names_the_server_when_no_host_is_given() -> None:
    forwarded = read(("forwarded", 'for=192.0.2.60;by="[2001:db8::9]:8443";proto=https'))
    assert forwarded is not None and forwarded.server == ("2001:db8::9", 8443)
    forwarded = read(("forwarded", "for=192.0.2.60;by=_proxy1"))
    assert forwarded is not None and forwarded.server == SERVER


@pytest.mark.parametrize(
    "value",
    [
        "for",
        "for=",
        "for=bogus",
        "for=1.2.3.4;for=5.6.7.8",
        'for="1.2.3.4',
        "proto=ftp",
        "host=a/b",
        "for=1.2.3.4;proto=https;;=x",
        ";",
    ],
)
def test_a_malformed_forwarded_is_ignored_with_a_debug_line(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="tricorn.error"):
        assert read(("forwarded", value)) is None
    assert "Forwarded header ignored" in caplog.text


def test_a_malformed_forwarded_element_left_of_the_client_does_not_matter() -> None:
    assert client_of(("forwarded", "for=bogus, for=203.0.113.7")) == ("203.0.113.7", 0)


def test_a_malformed_forwarded_element_after_trusted_hops_stops_at_the_last_good_one() -> None:
    assert client_of(("forwarded", "for=bogus, for=10.0.0.5")) == ("10.0.0.5", 0)


# --- precedence ---------------------------------------------------------------------


def test_forwarded_wins_over_x_forwarded_when_both_are_read() -> None:
    forwarded = read(
        ("x-forwarded-for", "198.51.100.1"),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-host", "x.example.com"),
        ("forwarded", "for=192.0.2.60;proto=https;host=f.example.com"),
    )
    assert forwarded is not None
    assert (forwarded.client, forwarded.scheme, forwarded.host) == (
        ("192.0.2.60", 0),
        "https",
        b"f.example.com",
    )


def test_x_forwarded_is_used_when_forwarded_is_malformed() -> None:
    forwarded = read(("x-forwarded-for", "198.51.100.1"), ("forwarded", "for=bogus"))
    assert forwarded is not None and forwarded.client == ("198.51.100.1", 0)


def test_x_forwarded_prefix_applies_with_forwarded_too() -> None:
    forwarded = read(("forwarded", "for=192.0.2.60"), ("x-forwarded-prefix", "/api"))
    assert forwarded is not None and forwarded.prefix == ("/api", b"/api")


def test_x_forwarded_wins_when_forwarded_is_not_read() -> None:
    x_only = proxy(headers=["x-forwarded-for"])
    value = client_of(
        ("x-forwarded-for", "198.51.100.1"), ("forwarded", "for=192.0.2.60"), proxy_headers=x_only
    )
    assert value == ("198.51.100.1", 0)


def test_random_garbage_never_raises() -> None:
    """Whatever bytes a trusted peer sends in these headers, ``read`` answers (None or a
    result): a parse error is never an exception out of it (which would be a 500)."""
    rng = random.Random(7239)
    alphabet = 'abcxyz019_-.:;,="[]\\/ %@?#\t' + "\u00e9"
    pieces = ["for=", "proto=", "host=", "by=", '"', "[", "]:", "::", "_", "unknown", "1.2.3.4"]
    for _ in range(3000):
        parts = [
            rng.choice(pieces) if rng.random() < 0.4 else rng.choice(alphabet)
            for _ in range(rng.randrange(0, 30))
        ]
        value = "".join(parts)
        name = rng.choice(ALL)
        result = read((name, value.encode("utf-8").decode("latin-1")))
        assert result is None or isinstance(result, Forwarded)


# --- the scope -----------------------------------------------------------------------


def scope_for(
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    *,
    root_path: str = "",
    client: tuple[str, int] | None = PROXY,
) -> Scope:
    request = Request(1, b"GET", target, [(b"host", b"app.test:8000"), *headers], "1.1")
    scope = build_scope(
        request,
        scheme="http",
        client=client,
        server=SERVER,
        root_path=root_path,
        state={},
        extensions={},
    )
    ProxyHeaders(TrustedPeers.parse(["127.0.0.1"]), ALL, root_path).apply(scope)
    return scope


def test_apply_rewrites_client_scheme_server_and_host_header() -> None:
    scope = scope_for(
        b"/a?x=1",
        [
            (b"x-forwarded-for", b"203.0.113.7"),
            (b"x-forwarded-proto", b"https"),
            (b"x-forwarded-host", b"www.example.com"),
        ],
    )
    assert scope["client"] == ("203.0.113.7", 0)
    assert scope["scheme"] == "https"
    assert scope["server"] == ("www.example.com", 443)
    assert [v for k, v in scope["headers"] if k == b"host"] == [b"www.example.com"]
    assert (scope["path"], scope["query_string"]) == ("/a", b"x=1")


def test_apply_prefix_puts_it_before_the_path() -> None:
    scope = scope_for(b"/items/a%2Fb", [(b"x-forwarded-prefix", b"/api")])
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/items/a/b"
    assert scope["raw_path"] == b"/api/items/a%2Fb"
    assert scope["path"].startswith(scope["root_path"])


def test_apply_prefix_replaces_the_configured_root_path() -> None:
    scope = scope_for(b"/items", [(b"x-forwarded-prefix", b"/api")], root_path="/app")
    assert (scope["root_path"], scope["path"], scope["raw_path"]) == (
        "/api",
        "/api/items",
        b"/api/items",
    )
    kept = scope_for(b"/items", [(b"x-forwarded-for", b"1.2.3.4")], root_path="/app")
    assert (kept["root_path"], kept["path"]) == ("/app", "/app/items")


def test_apply_untrusted_leaves_the_scope_as_built() -> None:
    headers = [(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-proto", b"https")]
    scope = scope_for(b"/", headers, client=("192.0.2.9", 1))
    assert (scope["client"], scope["scheme"], scope["server"]) == (("192.0.2.9", 1), "http", SERVER)


def test_a_websocket_scope_gets_wss_from_x_forwarded_proto_https() -> None:
    scope = scope_for(b"/ws", [(b"x-forwarded-proto", b"https")])
    info = WebSocketRequestInfo("1.1", b"key", subprotocols=(), extensions=())
    assert websocket_scope(scope, info)["scheme"] == "wss"
    scope = scope_for(b"/ws", [(b"x-forwarded-proto", b"wss")])
    assert websocket_scope(scope, info)["scheme"] == "wss"


# --- parsing helpers -------------------------------------------------------------------


def test_parse_node_knows_what_can_be_trusted() -> None:
    assert parse_node("1.2.3.4", obfuscated=True) == (("1.2.3.4", 0), True)
    assert parse_node("_x", obfuscated=True) == (("_x", 0), False)
    with pytest.raises(ValueError):
        parse_node("_x", obfuscated=False)


# --- settings -----------------------------------------------------------------------


def test_from_config_is_none_when_nothing_would_be_read() -> None:
    assert ProxyHeaders.from_config(False, ["127.0.0.1"], ALL, "") is None
    assert ProxyHeaders.from_config(True, [], ALL, "") is None
    assert ProxyHeaders.from_config(True, ["127.0.0.1"], [], "") is None
    assert ProxyHeaders.from_config(True, ["127.0.0.1"], ALL, "") is not None


def test_the_defaults_trust_this_host_only() -> None:
    config = Config()
    assert config.proxy_headers is True
    trusted = TrustedPeers.parse(config.forwarded_allow_ips)
    assert trusted.trusts("127.0.0.1") and trusted.trusts("::1") and trusted.trusts(None)
    assert not trusted.trusts("10.0.0.1")
    assert config.forwarded_headers == ["x-forwarded-for", "x-forwarded-proto"]


def test_the_cli_takes_a_comma_separated_trust_list() -> None:
    config = load_config(["--forwarded-allow-ips", "127.0.0.1,10.0.0.0/8"])
    assert config.forwarded_allow_ips == ["127.0.0.1,10.0.0.0/8"]
    assert TrustedPeers.parse(config.forwarded_allow_ips).trusts("10.9.8.7")


def test_forwarded_allow_ips_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/8,unix")
    assert load_config([]).forwarded_allow_ips == ["10.0.0.0/8,unix"]
    # Flags still win over the environment.
    assert load_config(["--forwarded-allow-ips", "*"]).forwarded_allow_ips == ["*"]
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/33")
    with pytest.raises(ConfigError, match="environment variable FORWARDED_ALLOW_IPS"):
        load_config([])


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"forwarded_allow_ips": ["127.0.0.1,bogus"]}, "'bogus' is none"),
        ({"forwarded_allow_ips": ["10.0.0.0/33"]}, "forwarded_allow_ips"),
        ({"forwarded_headers": ["x-forwarded-for,x-real-ip"]}, "'x-real-ip' is not one of"),
    ],
)
def test_a_bad_proxy_setting_is_a_config_error(settings: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        check_config(Config(**settings))


def test_a_bad_trust_entry_stops_the_command_with_one_line_and_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tricorn", "--forwarded-allow-ips", "127.0.0.1,10.0.0.0/33"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ERROR:    config: forwarded_allow_ips = ")
    assert "'10.0.0.0/33' is none" in lines[0]
