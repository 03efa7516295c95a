"""Client addresses behind proxies, and IP allowlists."""

from __future__ import annotations

import pytest

from agent_sdk.errors import InvalidInput
from agent_sdk.security.network import client_ip, ip_allowed, parse_cidrs, parse_ip

PROXIES = ("10.0.0.0/24", "2001:db8:1::/48")


# -- client_ip -----------------------------------------------------------------------------


def test_an_untrusted_peer_cannot_spoof_its_address() -> None:
    assert client_ip("198.51.100.9", "1.2.3.4", PROXIES) == "198.51.100.9"
    assert client_ip("198.51.100.9", "10.0.0.1, 1.2.3.4", PROXIES) == "198.51.100.9"


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert client_ip("10.0.0.1", "1.2.3.4", ()) == "10.0.0.1"


def test_one_trusted_proxy_gives_the_client() -> None:
    assert client_ip("10.0.0.1", "203.0.113.7", PROXIES) == "203.0.113.7"


def test_a_chain_through_two_trusted_proxies_gives_the_client() -> None:
    assert client_ip("10.0.0.2", "203.0.113.7, 10.0.0.1", PROXIES) == "203.0.113.7"


def test_addresses_the_client_prepends_are_not_believed() -> None:
    # The client sent "X-Forwarded-For: 1.1.1.1"; our proxies appended what they saw.
    xff = "1.1.1.1, 203.0.113.7, 10.0.0.1"
    assert client_ip("10.0.0.2", xff, PROXIES) == "203.0.113.7"
    # Even when it claims to be one of our proxies, it is only left of the real client.
    assert client_ip("10.0.0.2", "10.0.0.3, 203.0.113.7", PROXIES) == "203.0.113.7"


def test_several_header_lines_joined_with_commas() -> None:
    assert client_ip("10.0.0.2", "203.0.113.7,10.0.0.1", PROXIES) == "203.0.113.7"


def test_a_malformed_entry_stops_the_walk_at_the_last_good_address() -> None:
    assert client_ip("10.0.0.2", "203.0.113.7, garbage, 10.0.0.1", PROXIES) == "10.0.0.1"
    assert client_ip("10.0.0.2", "203.0.113.7, unknown", PROXIES) == "10.0.0.2"
    assert client_ip("10.0.0.2", "203.0.113.7,, 10.0.0.1", PROXIES) == "10.0.0.1"


def test_only_trusted_addresses_give_the_leftmost() -> None:
    assert client_ip("10.0.0.2", "10.0.0.5, 10.0.0.1", PROXIES) == "10.0.0.5"


def test_a_trusted_peer_without_header_is_the_client() -> None:
    assert client_ip("10.0.0.2", None, PROXIES) == "10.0.0.2"
    assert client_ip("10.0.0.2", "", PROXIES) == "10.0.0.2"


def test_ipv6_proxies_and_clients() -> None:
    assert client_ip("2001:db8:1::2", "2a00:1450::1, 2001:db8:1::1", PROXIES) == "2a00:1450::1"
    assert client_ip("2001:db8:2::2", "2a00:1450::1", PROXIES) == "2001:db8:2::2"
    # The text form is normalised.
    assert client_ip("2001:0db8:0002:0000::2", None, PROXIES) == "2001:db8:2::2"


def test_ipv4_mapped_addresses_count_as_ipv4() -> None:
    # A dual-stack socket reports an IPv4 proxy as ::ffff:10.0.0.1.
    assert client_ip("::ffff:10.0.0.1", "203.0.113.7", PROXIES) == "203.0.113.7"
    assert client_ip("10.0.0.1", "::ffff:203.0.113.7", PROXIES) == "203.0.113.7"
    assert client_ip("::ffff:10.0.0.2", "203.0.113.7, ::ffff:10.0.0.1", PROXIES) == "203.0.113.7"
    assert client_ip("::ffff:198.51.100.9", "1.2.3.4", PROXIES) == "198.51.100.9"


def test_addresses_with_ports() -> None:
    assert client_ip("10.0.0.1", "203.0.113.7:51234", PROXIES) == "203.0.113.7"
    assert client_ip("10.0.0.1", "[2a00:1450::1]:443", PROXIES) == "2a00:1450::1"
    assert client_ip("10.0.0.1", "[2a00:1450::1]", PROXIES) == "2a00:1450::1"


def test_no_peer_or_a_named_peer() -> None:
    assert client_ip(None, "1.2.3.4", PROXIES) is None
    # Starlette's TestClient reports "testclient": returned as is, and no allowlist matches it.
    assert client_ip("testclient", "1.2.3.4", PROXIES) == "testclient"
    assert not ip_allowed("testclient", ["0.0.0.0/0", "::/0"])


def test_bad_trusted_proxies_are_named() -> None:
    with pytest.raises(InvalidInput, match="10.0.0.0/33"):
        client_ip("10.0.0.1", "1.2.3.4", ["10.0.0.0/33"])


# -- ip_allowed ----------------------------------------------------------------------------


def test_an_empty_allowlist_allows_everyone() -> None:
    assert ip_allowed("203.0.113.7", [])
    assert ip_allowed(None, [])
    assert ip_allowed("203.0.113.7", ["", " "])


def test_an_unknown_address_is_refused_by_a_list() -> None:
    assert not ip_allowed(None, ["0.0.0.0/0"])
    assert not ip_allowed("", ["0.0.0.0/0"])


@pytest.mark.parametrize(
    ("ip", "allowed"),
    [
        ("192.168.1.7", True),
        ("192.168.2.7", False),
        ("203.0.113.5", True),  # a bare address is a /32
        ("203.0.113.6", False),
        ("2001:db8:abcd::1", True),
        ("2001:db9::1", False),
        ("::1", False),
        ("::ffff:192.168.1.7", True),  # IPv4-mapped, compared as IPv4
        ("::ffff:192.168.2.7", False),
    ],
)
def test_ip_allowed(ip: str, allowed: bool) -> None:
    assert ip_allowed(ip, ["192.168.1.0/24", "203.0.113.5", "2001:db8::/32"]) is allowed


def test_ipv4_mapped_cidrs_match_ipv4_addresses() -> None:
    assert ip_allowed("10.1.2.3", ["::ffff:10.0.0.0/104"])
    assert ip_allowed("::ffff:10.1.2.3", ["::ffff:10.0.0.0/104"])
    assert not ip_allowed("11.1.2.3", ["::ffff:10.0.0.0/104"])


def test_ipv4_addresses_do_not_match_ipv6_catch_alls() -> None:
    assert not ip_allowed("10.0.0.1", ["::/0"])
    assert not ip_allowed("::1", ["0.0.0.0/0"])


# -- parse_cidrs ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "not-an-ip", "10.0.0.5/24", "2001:db8::/129"])
def test_a_bad_entry_is_named(bad: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_cidrs(["10.0.0.0/8", bad])
    assert repr(bad) in info.value.message


def test_parsed_lists_are_cached() -> None:
    first = parse_cidrs(["10.0.0.0/8", "2001:db8::/32"])
    assert parse_cidrs(("10.0.0.0/8", "2001:db8::/32")) is first
    assert [str(n) for n in first] == ["10.0.0.0/8", "2001:db8::/32"]


def test_parse_ip_forms() -> None:
    assert str(parse_ip(" 203.0.113.7 ")) == "203.0.113.7"
    assert str(parse_ip("::ffff:203.0.113.7")) == "203.0.113.7"
    assert parse_ip("example.com") is None
    assert str(parse_ip("[::1]:8080")) == "::1"
    for bad in ["[::1", "[::1]x", "[::1]:http", "1.2.3.4:", "1.2.3.4:x", "", "unknown"]:
        assert parse_ip(bad) is None, bad
    assert parse_ip(None) is None
