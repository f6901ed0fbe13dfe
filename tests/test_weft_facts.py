"""weft_facts finds the interface and address peers reach a host by, and which
distribution packages weft needs are missing (also when the underlay is not found)."""

import pytest

from conftest import sh


def underlay(result):
    return result["ansible_facts"]["weft_underlay"]


def test_found_by_interface_address_or_default_route(netns, run_in):
    result = run_in("weft_facts", {"iface": "u0"})
    found = underlay(result)
    assert (found["iface"], found["public_ip"], found["network"], found["mtu"]) == \
        ("u0", "10.9.0.1", "10.9.0.0/24", 1500)
    assert not result["changed"]
    assert underlay(run_in("weft_facts", {"public_ip": "10.9.0.1"}))["iface"] == "u0"
    sh("ip", "route", "add", "default", "via", "10.9.0.2", "dev", "u0", netns=netns)
    found = underlay(run_in("weft_facts", {"packages": []}))  # (an empty -a is not JSON)
    assert found.get("public_ip") == "10.9.0.1", found


@pytest.mark.parametrize("args, message", [
    ({}, "iface: this host has no IPv4 default route"),
    ({"iface": "nosuch0"}, "iface: no device named nosuch0"),
    ({"public_ip": "10.9.0.99"}, "public_ip: 10.9.0.99 is not an address of this host"),
    ({"public_ip": "10.9.0.1", "iface": "u1"}, "public_ip: 10.9.0.1 is on u0, not on iface u1"),
])
def test_wrong_settings_are_named(netns, run_in, args, message):
    result = run_in("weft_facts", dict(args, packages=["python3-pyroute2"]))
    assert not result["failed"]  # the role's assert names the host and the variable
    assert underlay(result)["error"].startswith(message), result
    assert result["ansible_facts"]["weft_missing_packages"] == []


def test_missing_packages_are_reported(netns, run_in):
    result = run_in("weft_facts", {"iface": "u0",
                                   "packages": ["python3-pyroute2", "weft-no-such-package"]})
    assert result["ansible_facts"]["weft_missing_packages"] == ["weft-no-such-package"]


def test_the_ipv6_underlay_is_found_beside_the_ipv4_one(netns, run_in):
    assert underlay(run_in("weft_facts", {"iface": "u0"}))["public_ipv6"] is None  # none yet
    sh("ip", "addr", "add", "fd09::1/64", "dev", "u0", "nodad", netns=netns)
    sh("ip", "addr", "add", "fd0a::7/64", "dev", "u1", "nodad", netns=netns)
    found = underlay(run_in("weft_facts", {"iface": "u0"}))
    assert (found["public_ipv6"], found["network6"]) == ("fd09::1", "fd09::/64"), found
    # Another address of the host, by name; one it does not have is refused by name.
    assert underlay(run_in("weft_facts", {"iface": "u0", "public_ipv6": "fd0a::7"}))["public_ipv6"] \
        == "fd0a::7"
    refused = underlay(run_in("weft_facts", {"iface": "u0", "public_ipv6": "fd0b::1"}))
    assert refused["error"] == "public_ipv6: fd0b::1 is not an address of this host", refused
    # No global IPv6 on the underlay interface: the IPv6 default route's interface's.
    sh("ip", "addr", "del", "fd09::1/64", "dev", "u0", netns=netns)
    sh("ip", "-6", "route", "add", "default", "via", "fd0a::1", "dev", "u1", netns=netns)
    assert underlay(run_in("weft_facts", {"iface": "u0"}))["public_ipv6"] == "fd0a::7"


def test_an_ipv6_only_underlay_is_found_by_ipv6_and_needs_no_ipv4(netns, run_in):
    only6 = {"ipv4": False, "packages": []}
    refused = underlay(run_in("weft_facts", only6))
    assert refused["error"].startswith("iface: this host has no IPv6 default route to find the "
                                       "underlay by; set weft_iface or weft_public_ipv6"), refused
    assert underlay(run_in("weft_facts", dict(only6, iface="u0")))["error"] == \
        "iface: u0 has no global IPv6 address"
    sh("ip", "addr", "add", "fd09::1/64", "dev", "u0", "nodad", netns=netns)
    sh("ip", "addr", "add", "fd0a::7/64", "dev", "u1", "nodad", netns=netns)
    sh("ip", "-6", "route", "add", "default", "via", "fd0a::1", "dev", "u1", netns=netns)
    found = underlay(run_in("weft_facts", only6))  # by the IPv6 default route: u1
    assert (found["iface"], found["public_ipv6"], found["network6"]) == ("u1", "fd0a::7", "fd0a::/64")
    by_address = underlay(run_in("weft_facts", dict(only6, public_ipv6="fd09::1")))
    assert (by_address["iface"], by_address["public_ip"], by_address["network"]) == \
        ("u0", "10.9.0.1", "10.9.0.0/24")  # its IPv4 address too, when it has one
    sh("ip", "addr", "flush", "dev", "u0", "scope", "global", "to", "10.0.0.0/8", netns=netns)
    bare = underlay(run_in("weft_facts", dict(only6, iface="u0")))
    assert (bare["public_ipv6"], bare["public_ip"], bare["network"]) == ("fd09::1", None, None), bare
    assert underlay(run_in("weft_facts", dict(only6, iface="u1", public_ipv6="fd09::1")))["error"] \
        == "public_ipv6: fd09::1 is on u0, not on iface u1"
