"""weft_underlay finds the interface and address peers reach a host by, and reports which
distribution packages weft needs are missing (also when it fails)."""

import pytest

from conftest import sh


def test_found_by_interface_address_or_default_route(netns, run_in):
    by_iface = run_in("weft_underlay", {"iface": "u0"})
    assert (by_iface["iface"], by_iface["public_ip"], by_iface["network"], by_iface["mtu"]) == \
        ("u0", "10.9.0.1", "10.9.0.0/24", 1500)
    assert not by_iface["changed"]
    assert run_in("weft_underlay", {"public_ip": "10.9.0.1"})["iface"] == "u0"
    sh("ip", "route", "add", "default", "via", "10.9.0.2", "dev", "u0", netns=netns)
    found = run_in("weft_underlay", {"packages": []})  # (an empty -a is not JSON to ansible)
    assert found.get("public_ip") == "10.9.0.1", found


@pytest.mark.parametrize("args, message", [
    ({}, "iface: this host has no IPv4 default route"),
    ({"iface": "nosuch0"}, "iface: no device named nosuch0"),
    ({"public_ip": "10.9.0.99"}, "public_ip: 10.9.0.99 is not an address of this host"),
    ({"public_ip": "10.9.0.1", "iface": "u1"}, "public_ip: 10.9.0.1 is on u0, not on iface u1"),
])
def test_wrong_settings_are_named(netns, run_in, args, message):
    result = run_in("weft_underlay", dict(args, packages=["python3-pyroute2"]))
    assert result["failed"] and result["msg"].startswith(message), result["msg"]
    assert result["missing_packages"] == []


def test_missing_packages_are_reported(netns, run_in):
    result = run_in("weft_underlay", {"iface": "u0",
                                      "packages": ["python3-pyroute2", "weft-no-such-package"]})
    assert result["missing_packages"] == ["weft-no-such-package"]
