"""The trust list shared by proxy headers and the PROXY protocol."""

from __future__ import annotations

import pytest

from tricorn.server.trust import TrustedPeers


def test_addresses_networks_and_mapped_ipv4() -> None:
    peers = TrustedPeers.parse(["127.0.0.1, 10.0.0.0/8", "[::1]", "fd00::/8"])
    assert peers.trusts("127.0.0.1")
    assert peers.trusts("10.200.3.4")
    assert peers.trusts("::1")
    assert peers.trusts("fd12::5")
    assert peers.trusts("::ffff:10.1.1.1")  # a dual-stack socket's name for an IPv4 peer
    assert not peers.trusts("127.0.0.2")
    assert not peers.trusts("192.168.1.1")
    assert not peers.trusts(None)  # unix peers only with "unix"
    assert not peers.trusts("not-an-address")


def test_unix_and_everyone() -> None:
    assert TrustedPeers.parse(["unix"]).trusts(None)
    assert not TrustedPeers.parse(["unix"]).trusts("127.0.0.1")
    everyone = TrustedPeers.parse(["*"])
    assert everyone.trusts("203.0.113.9") and everyone.trusts(None)
    assert TrustedPeers.parse([]).empty and TrustedPeers.parse([" , "]).empty


def test_a_bad_entry_names_itself() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33'"):
        TrustedPeers.parse(["127.0.0.1,10.0.0.0/33"])
