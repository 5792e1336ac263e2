"""federation/serving.py's pure parts: how clients are counted, and the limits' checks."""

from __future__ import annotations

import pytest

from federation.serving import ServerLimits, client_key


@pytest.mark.parametrize(("address", "key"), [
    (("127.0.0.2", 40000), "127.0.0.2"),
    # One IPv6 host usually holds a whole /64: count the /64, or a client could take a cap
    # per address of it.
    (("2001:db8:1:2:aaaa::1", 40000, 0, 0), "2001:db8:1:2::/64"),
    (("2001:db8:1:2:ffff:ffff:ffff:ffff", 1, 0, 0), "2001:db8:1:2::/64"),
    (("fe80::1%eth0", 1, 0, 2), "fe80::/64"),
    # An IPv4 client on a dual-stack socket is still counted by its IPv4 address.
    (("::ffff:192.0.2.7", 1, 0, 0), "192.0.2.7"),
])
def test_clients_are_counted_by_address_or_ipv6_prefix(address, key):
    assert client_key(address) == key


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"idle_timeout_s": 0}, "idle_timeout_s must be positive"),
    ({"max_per_address": 0}, "max_per_address must be at least 1"),
    ({"reserve_fds": -1}, "reserve_fds must not be negative"),
])
def test_limits_refuse_nonsense(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ServerLimits(**kwargs)
