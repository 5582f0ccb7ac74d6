"""How a client's address is counted by the per-address limits
(wslab.chat.rules.addresses.address_key): an IPv4 address as itself, an IPv6 address by
its /64, an IPv4-mapped IPv6 address as the IPv4 address it carries."""

import pytest

from wslab.chat.rules.addresses import address_key


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("127.0.0.1", "127.0.0.1"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::", "2001:db8:1:2::/64"),
        ("::1", "::/64"),
        ("2001:DB8:1:2::9", "2001:db8:1:2::/64"),  # written another way, the same key
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("::ffff:cb00:7107", "203.0.113.7"),  # the same mapped address, in hex
    ],
)
def test_an_address_is_counted_under_its_key(address, key):
    assert address_key(address) == key


def test_one_host_with_many_ipv6_addresses_is_one_key():
    """A host usually owns a whole /64: a new address costs it nothing."""
    keys = {address_key(f"2001:db8:0:7:{n:x}::1") for n in range(1000)}
    assert keys == {"2001:db8:0:7::/64"}
    assert address_key("2001:db8:0:8::1") != address_key("2001:db8:0:7::1")


def test_an_ipv4_client_seen_through_a_dual_stack_socket_is_the_same_client():
    assert address_key("::ffff:198.51.100.4") == address_key("198.51.100.4")


@pytest.mark.parametrize(
    ("address", "key"),
    [("", ""), ("?", "?"), ("não é um endereço", "não é um endereço"), ("x" * 100, "x" * 64)],
)
def test_what_is_not_an_address_is_its_first_64_characters(address, key):
    assert address_key(address) == key
