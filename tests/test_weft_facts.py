"""weft_facts finds the interface and address peers reach a host by, and which
distribution packages weft needs are missing (also when the underlay is not found)."""

import pytest

from conftest import sh


def underlay(result):
    return result["ansible_facts"]["weft_underlay"]


def test_found_by_interface_address_or_default_route(netns, run_in):
    result = run_in("weft.overlay.facts", {"iface": "u0"})
    found = underlay(result)
    assert (found["iface"], found["public_ip"], found["network"], found["mtu"]) == \
        ("u0", "10.9.0.1", "10.9.0.0/24", 1500)
    assert not result["changed"]
    assert underlay(run_in("weft.overlay.facts", {"public_ip": "10.9.0.1"}))["iface"] == "u0"
    sh("ip", "route", "add", "default", "via", "10.9.0.2", "dev", "u0", netns=netns)
    found = underlay(run_in("weft.overlay.facts", {"packages": []}))  # (an empty -a is not JSON)
    assert found.get("public_ip") == "10.9.0.1", found


@pytest.mark.parametrize("args, message", [
    ({}, "iface: this host has no IPv4 default route"),
    ({"iface": "nosuch0"}, "no interface matches the underlay rules; tried iface nosuch0: no "
     "device named nosuch0; interfaces with their global IPv4 addresses: lo [none], "
     "u1 [none], u0 [10.9.0.1/24]"),
    ({"public_ip": "10.9.0.99"}, "public_ip: 10.9.0.99 is not an address of this host"),
    ({"public_ip": "10.9.0.1", "iface": "u1"}, "no interface matches the underlay rules; tried "
     "iface u1: u1 has no global IPv4 address"),
    ({"iface_regex": ["^u", "("]}, "iface_regex: '(' is not a regular expression"),
    ({"iface_can_reach": "u0"}, "iface_can_reach: 'u0' is not an IP address"),
    ({"iface": ["u0", ""]}, "iface: an empty name in ['u0', '']"),
    ({"iface": ["eth9"], "iface_regex": ["^wlan", "^u1$"], "iface_can_reach": "192.0.2.1"},
     "no interface matches the underlay rules; tried iface eth9: no device named eth9; "
     "iface_regex ^wlan: no interface's name or global IPv4 address matches; iface_regex ^u1$: "
     "no interface's name or global IPv4 address matches; iface_can_reach 192.0.2.1: no route "
     "to it (Network is unreachable); interfaces with their global IPv4 addresses: lo [none], "
     "u1 [none], u0 [10.9.0.1/24]"),
    ({"iface_regex": ["^10\\.9\\."], "overlay": ["10.9.0.0/16"]},
     "no interface matches the underlay rules; tried iface_regex ^10\\.9\\.: no interface's"),
])
def test_wrong_settings_are_named(netns, run_in, args, message):
    result = run_in("weft.overlay.facts", dict(args, packages=["python3-pyroute2"]))
    assert not result["failed"]  # the role's assert names the host and the variable
    assert underlay(result)["error"].startswith(message), result
    assert result["ansible_facts"]["weft_missing_packages"] == []


def test_missing_packages_are_reported(netns, run_in):
    result = run_in("weft.overlay.facts", {"iface": "u0",
                                           "packages": ["python3-pyroute2", "weft-no-such-package"]})
    assert result["ansible_facts"]["weft_missing_packages"] == ["weft-no-such-package"]


def test_the_ipv6_underlay_is_found_beside_the_ipv4_one(netns, run_in):
    assert underlay(run_in("weft.overlay.facts", {"iface": "u0"}))["public_ipv6"] is None  # none yet
    sh("ip", "addr", "add", "fd09::1/64", "dev", "u0", "nodad", netns=netns)
    sh("ip", "addr", "add", "fd0a::7/64", "dev", "u1", "nodad", netns=netns)
    found = underlay(run_in("weft.overlay.facts", {"iface": "u0"}))
    assert (found["public_ipv6"], found["network6"]) == ("fd09::1", "fd09::/64"), found
    # Another address of the host, by name.
    assert underlay(run_in("weft.overlay.facts", {"iface": "u0", "public_ipv6": "fd0a::7"}))["public_ipv6"] \
        == "fd0a::7"
    # One it does not have is a NAT's, sent from the interface's own IPv6 address.
    nat = underlay(run_in("weft.overlay.facts", {"public_ip": "10.9.0.1", "public_ipv6": "fd0b::1"}))
    assert (nat["public_ipv6"], nat["iface_ipv6"]) == ("fd0b::1", "fd09::1"), nat
    # No global IPv6 on the underlay interface: the IPv6 default route's interface's.
    sh("ip", "addr", "del", "fd09::1/64", "dev", "u0", netns=netns)
    sh("ip", "-6", "route", "add", "default", "via", "fd0a::1", "dev", "u1", netns=netns)
    assert underlay(run_in("weft.overlay.facts", {"iface": "u0"}))["public_ipv6"] == "fd0a::7"


def test_an_ipv6_only_underlay_is_found_by_ipv6_and_needs_no_ipv4(netns, run_in):
    only6 = {"ipv4": False, "packages": []}
    refused = underlay(run_in("weft.overlay.facts", only6))
    assert refused["error"] == "iface: this host has no IPv6 default route to find the underlay " \
        "by; set weft_iface (or weft_iface_regex, weft_iface_can_reach) or weft_public_ipv6", refused
    assert underlay(run_in("weft.overlay.facts", dict(only6, iface="u0")))["error"].startswith(
        "no interface matches the underlay rules; tried iface u0: u0 has no global IPv6 address")
    sh("ip", "addr", "add", "fd09::1/64", "dev", "u0", "nodad", netns=netns)
    sh("ip", "addr", "add", "fd0a::7/64", "dev", "u1", "nodad", netns=netns)
    sh("ip", "-6", "route", "add", "default", "via", "fd0a::1", "dev", "u1", netns=netns)
    found = underlay(run_in("weft.overlay.facts", only6))  # by the IPv6 default route: u1
    assert (found["iface"], found["public_ipv6"], found["network6"]) == ("u1", "fd0a::7", "fd0a::/64")
    by_address = underlay(run_in("weft.overlay.facts", dict(only6, public_ipv6="fd09::1")))
    assert (by_address["iface"], by_address["public_ip"], by_address["network"]) == \
        ("u0", "10.9.0.1", "10.9.0.0/24")  # its IPv4 address too, when it has one
    sh("ip", "addr", "flush", "dev", "u0", "scope", "global", "to", "10.0.0.0/8", netns=netns)
    bare = underlay(run_in("weft.overlay.facts", dict(only6, iface="u0")))
    assert (bare["public_ipv6"], bare["public_ip"], bare["network"]) == ("fd09::1", None, None), bare
    assert underlay(run_in("weft.overlay.facts", dict(only6, iface="u1", public_ipv6="fd09::1")))["error"] \
        == "public_ipv6: fd09::1 is on u0, not on u1 (picked by iface u1)"
    # The rules match IPv6 addresses in an IPv6-only network.
    found = underlay(run_in("weft.overlay.facts", dict(only6, iface_regex=["^fd0a:"])))
    assert (found["iface"], found["public_ipv6"], found["rule"]) == ("u1", "fd0a::7",
                                                                     "iface_regex ^fd0a:"), found


def test_a_nat_address_is_advertised_while_the_interface_address_is_used(netns, run_in):
    """1:1 NAT: with the interface named by a rule, a public address on no interface of the
    host is what peers send to; the host binds and sends from its interface's address."""
    nat = underlay(run_in("weft.overlay.facts", {"iface": "u0", "public_ip": "203.0.113.9"}))
    assert (nat["iface"], nat["public_ip"], nat["iface_ip"], nat["network"]) == \
        ("u0", "203.0.113.9", "10.9.0.1", "10.9.0.0/24"), nat
    plain = underlay(run_in("weft.overlay.facts", {"iface": "u0"}))
    assert (plain["public_ip"], plain["iface_ip"]) == ("10.9.0.1", "10.9.0.1"), plain
    # Without a rule the interface is not known: the address must be the host's.
    refused = underlay(run_in("weft.overlay.facts", {"public_ip": "203.0.113.9"}))["error"]
    assert refused == "public_ip: 203.0.113.9 is not an address of this host; behind a 1:1 " \
        "NAT (a cloud's elastic address), name the interface that carries the overlay with " \
        "weft_iface (or weft_iface_regex, weft_iface_can_reach)", refused
    # An address of another interface is a mistake, not a NAT.
    sh("ip", "addr", "add", "10.19.0.1/24", "dev", "u1", netns=netns)
    assert underlay(run_in("weft.overlay.facts", {"iface": "u0", "public_ip": "10.19.0.1"}))["error"] \
        == "public_ip: 10.19.0.1 is on u1, not on u0 (picked by iface u0)"
    # The IPv6 side behind a NAT too: from the interface's IPv6 address, which it needs.
    six = {"iface": "u0", "public_ipv6": "2001:db8::9"}
    assert underlay(run_in("weft.overlay.facts", six))["error"] == "public_ipv6: 2001:db8::9 is not " \
        "an address of this host, and u0 has no global IPv6 address to send from behind a NAT"
    sh("ip", "addr", "add", "fd09::1/64", "dev", "u0", "nodad", netns=netns)
    nat6 = underlay(run_in("weft.overlay.facts", six))
    assert (nat6["public_ipv6"], nat6["iface_ipv6"], nat6["network6"]) == \
        ("2001:db8::9", "fd09::1", "fd09::/64"), nat6


@pytest.mark.parametrize("public", [{"public_ip": "203.0.113.9"}, {"public_ipv6": "2001:db8::9"}])
def test_host_gw_refuses_a_nat_address_as_flannel_does(netns, run_in, public):
    sh("ip", "addr", "add", "fd09::1/64", "dev", "u0", "nodad", netns=netns)
    found = underlay(run_in("weft.overlay.facts", dict(public, iface="u0", backend="host-gw")))
    (key, address), = public.items()
    own = "10.9.0.1" if key == "public_ip" else "fd09::1"
    assert found["error"] == "%s: %s is not on this host (its interface u0 has %s), so it is a " \
        "NAT's address, and the host-gw backend routes to each peer through its public " \
        "address as a next hop on the shared link, where a NAT's address is not (Flannel " \
        "refuses it too); use vxlan, udp or wireguard behind a NAT" % (key, address, own), found
    for backend in ("vxlan", "udp"):  # (wireguard's facts make a key: tests/test_wireguard.py)
        assert "error" not in underlay(run_in("weft.overlay.facts", dict(public, iface="u0",
                                                                         backend=backend)))


def two_nics_and_a_vlan(netns):
    """Beside u0 (10.9.0.1/24): ens5 (10.20.0.5/24) and "ens5.100" on it (10.30.0.5/24),
    with a network reached through a gateway on ens5. This kernel has no 802.1Q
    (CONFIG_VLAN_8021Q), so a macvlan stacked on the NIC and named as a VLAN stands in: the
    rules see names, addresses and routes, which are the same."""
    sh("ip", "link", "add", "ens5", "type", "veth", "peer", "name", "x5", netns=netns)
    sh("ip", "link", "add", "link", "ens5", "name", "ens5.100", "type", "macvlan", "mode",
       "bridge", netns=netns)
    for device, cidr in (("ens5", "10.20.0.5/24"), ("ens5.100", "10.30.0.5/24")):
        sh("ip", "addr", "add", cidr, "dev", device, netns=netns)
    for device in ("ens5", "x5", "ens5.100"):
        sh("ip", "link", "set", device, "up", netns=netns)
    sh("ip", "route", "add", "192.168.50.0/24", "via", "10.20.0.1", "dev", "ens5", netns=netns)


def picked(run_in, **rules):
    found = underlay(run_in("weft.overlay.facts", dict(rules, packages=[])))
    assert "error" not in found, found
    return found["iface"], found["public_ip"], found["rule"]


def test_interface_rules_are_tried_in_flannels_order_first_match_wins(netns, run_in):
    two_nics_and_a_vlan(netns)
    # --iface: names or addresses, in order; one that finds nothing is passed over.
    assert picked(run_in, iface=["nosuch0", "ens5"]) == ("ens5", "10.20.0.5", "iface ens5")
    assert picked(run_in, iface=["10.30.0.5", "ens5"]) == ("ens5.100", "10.30.0.5",
                                                           "iface 10.30.0.5")
    assert picked(run_in, iface=["x5", "ens5.100"])[0] == "ens5.100"  # x5 has no address
    # --iface-regex: over every interface's addresses first, then names, in order.
    assert picked(run_in, iface_regex=["^ens5\\.100$"])[:2] == ("ens5.100", "10.30.0.5")
    assert picked(run_in, iface_regex=["^10\\.20\\."])[:2] == ("ens5", "10.20.0.5")
    assert picked(run_in, iface_regex=["^(u0|10\\.30\\.)"])[0] == "ens5.100"  # address first
    assert picked(run_in, iface_regex=["^wlan", "^ens"]) == ("ens5", "10.20.0.5",
                                                             "iface_regex ^ens")
    assert picked(run_in, iface_regex=["^x5$|^ens5$"])[0] == "ens5"  # a name match needs an address
    # --iface-can-reach: the route's device, with the route's source address.
    assert picked(run_in, iface_can_reach="10.30.0.77") == ("ens5.100", "10.30.0.5",
                                                            "iface_can_reach 10.30.0.77")
    assert picked(run_in, iface_can_reach="192.168.50.9")[:2] == ("ens5", "10.20.0.5")
    # Order across kinds: --iface, then --iface-regex, then --iface-can-reach.
    assert picked(run_in, iface=["ens5"], iface_regex=["^u0$"], iface_can_reach="10.30.0.77")[0] \
        == "ens5"
    assert picked(run_in, iface=["eth9"], iface_regex=["^u0$"], iface_can_reach="10.30.0.77")[0] \
        == "u0"
    assert picked(run_in, iface=["eth9"], iface_regex=["^wlan"], iface_can_reach="10.30.0.77")[0] \
        == "ens5.100"
    # A public address must be on the interface the rules pick.
    wrong = underlay(run_in("weft.overlay.facts", {"iface_regex": ["^ens5$"], "public_ip": "10.9.0.1"}))
    assert wrong["error"] == "public_ip: 10.9.0.1 is on u0, not on ens5 (picked by iface_regex " \
        "^ens5$)", wrong
    assert picked(run_in, iface_regex=["^ens5$"], public_ip="10.20.0.5")[:2] == ("ens5", "10.20.0.5")


def test_of_several_addresses_the_first_static_one_is_taken(netns, run_in):
    sh("ip", "link", "add", "p0", "type", "veth", "peer", "name", "q0", netns=netns)
    # In the order of a host that got a DHCP lease first, then static addresses, one of
    # them a secondary of the lease's subnet, then a keepalived-style /32 and a deprecated one.
    for cidr, lifetime in (("10.50.0.9/24", ["valid_lft", "600", "preferred_lft", "600"]),
                           ("10.50.0.2/24", []), ("10.60.0.1/24", []),
                           ("10.70.0.7/32", []),
                           ("10.80.0.1/24", ["valid_lft", "600", "preferred_lft", "0"])):
        sh("ip", "addr", "add", cidr, "dev", "p0", *lifetime, netns=netns)
    sh("ip", "link", "set", "p0", "up", netns=netns)
    # Static before dynamic, then the kernel's order: primaries (oldest first) before
    # secondaries.
    assert picked(run_in, iface=["p0"])[1] == "10.60.0.1"
    found = underlay(run_in("weft.overlay.facts", {"iface_regex": ["^p0$"], "overlay": ["10.60.0.0/16"]}))
    assert (found["public_ip"], found["network"]) == ("10.70.0.7", "10.70.0.7/32"), found
    sh("ip", "addr", "del", "10.60.0.1/24", "dev", "p0", netns=netns)
    sh("ip", "addr", "del", "10.70.0.7/32", "dev", "p0", netns=netns)
    assert picked(run_in, iface=["p0"])[1] == "10.50.0.2"  # a static secondary, before DHCP's
    sh("ip", "addr", "del", "10.50.0.2/24", "dev", "p0", netns=netns)
    assert picked(run_in, iface=["p0"])[1] == "10.50.0.9"  # the deprecated one never
    # The same order for every rule: a regex over addresses sees them most preferred first.
    sh("ip", "addr", "add", "10.50.0.3/24", "dev", "p0", netns=netns)
    assert picked(run_in, iface_regex=["^10\\.50\\."])[1] == "10.50.0.3"


def test_addresses_inside_the_overlay_are_never_the_underlay(netns, run_in):
    # A converged host's own devices hold overlay addresses (flannel.1, docker0, cni0).
    sh("ip", "link", "add", "w0", "type", "veth", "peer", "name", "w1", netns=netns)
    sh("ip", "addr", "add", "10.244.3.0/32", "dev", "w0", netns=netns)
    assert picked(run_in, iface_regex=["^10\\.244\\."])[0] == "w0"  # not told: taken
    told = underlay(run_in("weft.overlay.facts", {"iface_regex": ["^10\\.244\\.", "^w0$"],
                                                  "overlay": ["10.244.0.0/16"]}))
    assert told["error"].startswith("no interface matches the underlay rules"), told
    assert "w0 [none]" in told["error"], told
    # Named by the host's own rule, it is what it says (the planner refuses an underlay
    # inside the overlay, naming the variable); a malformed overlay is the planner's to name.
    assert picked(run_in, iface=["w0"], overlay=["10.244.0.0/16"])[:2] == ("w0", "10.244.3.0")
    assert picked(run_in, iface_regex=["^w0$"], overlay=["10.244.0.0/33"])[0] == "w0"
