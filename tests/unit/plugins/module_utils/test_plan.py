"""The subnet plan: Flannel's config rules, stable allocation, pins, prune, exhaustion."""

import ipaddress

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.weft.overlay.plugins.module_utils.weft.backends import (
    bridge_address, vtep_address, vtep_mac)
from ansible_collections.weft.overlay.plugins.module_utils.weft.plan.subnets import (
    HostSpec, PlanError, Reservation, parse_hosts, parse_leases, parse_network_config, plan)


DUAL = {"EnableIPv6": True, "IPv6Network": "fd00:96::/48"}


def cfg(**fields):
    fields.setdefault("Network", "100.96.0.0/16")
    return parse_network_config(fields)


def hosts(*specs):
    return [HostSpec(name, ipaddress.ip_address(ip)) for name, ip in specs]


def subnets(p):
    return {name: str(lease.subnet) for name, lease in p.leases.items()}


# ---- network config -------------------------------------------------------

def test_defaults_follow_flannel():
    c = cfg()
    assert (c.subnet_len, str(c.subnet_min), str(c.subnet_max)) == \
        (24, "100.96.1.0/24", "100.96.255.0/24")
    assert (c.backend_type, c.option("vni"), c.option("port"), c.overhead) == ("vxlan", 1, 8472, 50)
    assert cfg(Network="10.0.0.0/24").subnet_len == 26
    assert cfg(Backend={"Type": "udp"}).option("port") == 8285
    assert cfg(Backend={"Type": "host-gw"}).overhead == 0


@pytest.mark.parametrize("fields, message", [
    ({"Network": "100.96.0.0/33"}, "weft_network.Network: '100.96.0.0/33' is not a valid IPv4 CIDR"),
    ({"Network": "100.96.0.1/16"}, "weft_network.Network: '100.96.0.1/16' is not a valid IPv4 CIDR"),
    ({"Network": "fd00::/64"}, "weft_network.Network: 'fd00::/64' is IPv6"),
    ({"Network": "100.96.0.0"}, "weft_network.Network: '100.96.0.0' has no prefix length"),
    ({"Network": "100.96.0.0/29"}, "weft_network.Network: /29 is too small"),
    ({"SubnetLen": 31}, "weft_network.SubnetLen: 31 is larger than 30"),
    ({"SubnetLen": 17}, "weft_network.SubnetLen: 17 leaves fewer than 4 subnets"),
    ({"SubnetLen": "x"}, "weft_network.SubnetLen: 'x' is not a whole number"),
    ({"SubnetMin": "10.0.0.0"}, "weft_network.SubnetMin: 10.0.0.0 is outside Network"),
    ({"SubnetMax": "100.96.3.7"}, "weft_network.SubnetMax: 100.96.3.7 is not on a /24 subnet boundary"),
    ({"SubnetMin": "100.96.9.0", "SubnetMax": "100.96.3.0"}, "weft_network.SubnetMin: 100.96.9.0 is above SubnetMax"),
    ({"Backend": {"Type": "ipip"}}, "weft_network.Backend.Type: 'ipip' is not one of"),
    ({"Backend": {"VNI": 0}}, "weft_network.Backend.VNI: 0 is out of range"),
    ({"Backend": {"VNI": 2 ** 24}}, "weft_network.Backend.VNI: 16777216 is out of range"),
    ({"Backend": {"Port": 70000}}, "weft_network.Backend.Port: 70000 is out of range"),
    ({"Backend": {"DirectRouting": "yes"}}, "weft_network.Backend.DirectRouting: 'yes' is not true or false"),
    ({"Backend": {"GBP": 1}}, "weft_network.Backend.GBP: 1 is not true or false"),
    ({"Backend": {"Learning": "on"}}, "weft_network.Backend.Learning: 'on' is not true or false"),
    ({"Backend": {"MTU": 100}}, "weft_network.Backend.MTU: 100 is out of range"),
    ({"Bogus": 1}, "weft_network: unknown field(s) Bogus"),
    ({"EnableIPv6": True}, "weft_network.IPv6Network: is required with EnableIPv6"),
    ({"EnableIPv6": "yes", "IPv6Network": "fd00::/48"}, "weft_network.EnableIPv6: 'yes' is not true or false"),
    ({"IPv6Network": "fd00::/48"}, "weft_network.IPv6Network: set EnableIPv6: true to use it"),
    ({"EnableIPv4": False}, "weft_network.EnableIPv4: false leaves no address family"),
    ({"EnableIPv4": "no", **DUAL}, "weft_network.EnableIPv4: 'no' is not true or false"),
    ({"EnableNFTables": "yes"}, "weft_network.EnableNFTables: 'yes' is not true or false"),
    ({"EnableIPv4": False, **DUAL, "Backend": {"Type": "udp"}},
     "weft_network.EnableIPv6: backend udp carries IPv4 only"),
    ({"EnableIPv6": True, "IPv6Network": "10.0.0.0/8"}, "weft_network.IPv6Network: '10.0.0.0/8' is IPv4"),
    ({"EnableIPv6": True, "IPv6Network": "fd00::/125"}, "weft_network.IPv6Network: /125 is too small"),
    ({**DUAL, "IPv6SubnetLen": 127}, "weft_network.IPv6SubnetLen: 127 is larger than 126"),
    ({**DUAL, "IPv6SubnetLen": 49}, "weft_network.IPv6SubnetLen: 49 leaves fewer than 4 subnets"),
    ({**DUAL, "IPv6SubnetMin": "fd01::"}, "weft_network.IPv6SubnetMin: fd01:: is outside IPv6Network"),
    ({**DUAL, "IPv6SubnetMax": "fd00:96:0:5::1"}, "weft_network.IPv6SubnetMax: fd00:96:0:5::1 is not on a /64"),
    ({**DUAL, "IPv6SubnetMin": "fd00:96:0:9::", "IPv6SubnetMax": "fd00:96:0:3::"},
     "weft_network.IPv6SubnetMin: fd00:96:0:9:: is above IPv6SubnetMax"),
    ({**DUAL, "Backend": {"Type": "udp"}}, "weft_network.EnableIPv6: backend udp carries IPv4 only (as Flannel's does); use host-gw or vxlan or wireguard"),
    ({"Backend": {"Type": "host-gw", "VNI": 1}},
     "weft_network.Backend: unknown field(s) VNI for backend host-gw; known: MTU, Type"),
    ({"Backend": {"Type": "udp", "DirectRouting": True}},
     "weft_network.Backend: unknown field(s) DirectRouting for backend udp; known: MTU, Port, Type"),
])
def test_bad_network_config_is_named(fields, message):
    fields = dict(fields)
    fields.setdefault("Network", "100.96.0.0/16")
    with pytest.raises(PlanError) as err:
        parse_network_config(fields)
    assert str(err.value).startswith(message)


def test_enable_nftables_is_flannels_field_and_reaches_the_hosts():
    on = parse_network_config({"Network": "100.96.0.0/16", "EnableNFTables": True})
    assert on.nftables and on.summary()["nftables"] is True
    assert on.as_flannel()["EnableNFTables"] is True
    off = parse_network_config({"Network": "100.96.0.0/16", "EnableNFTables": False})
    assert "nftables" not in off.summary() and "EnableNFTables" not in off.as_flannel()


def test_network_is_required():
    with pytest.raises(PlanError, match=r"weft_network.Network: is required"):
        parse_network_config({})


# ---- derived values ---------------------------------------------------------

def test_derived_values():
    assert bridge_address("100.96.1.0/24") == "100.96.1.1/24"
    assert vtep_address("100.96.1.0/24") == "100.96.1.0"
    mac = vtep_mac("100.96.1.0/24")
    assert mac == "0e:77:64:60:01:00"
    first = int(mac.split(":")[0], 16)
    assert first & 0x02 and not first & 0x01  # locally administered unicast


def test_vtep_macs_are_unique_per_subnet():
    c = cfg(Network="10.0.0.0/8", SubnetLen=24)
    macs = {vtep_mac(s) for s in list(c.subnets())[:5000]}
    assert len(macs) == 5000


# ---- hosts --------------------------------------------------------------------

@pytest.mark.parametrize("raw, message", [
    ([{"name": "a", "public_ip": "10.0.0.1"}, {"name": "b", "public_ip": "10.0.0.1"}],
     "weft_public_ip of b: 10.0.0.1 is also the public IP of a"),
    ([{"name": "a", "public_ip": "not-an-ip"}], "weft_public_ip of a: 'not-an-ip' is not an IPv4"),
    ([{"name": "a", "public_ip": "100.96.3.3"}], "weft_public_ip of a: 100.96.3.3 lies inside"),
    ([{"name": "a", "public_ip": "10.0.0.1", "underlay": "100.96.0.0/12"}],
     "weft_network.Network: 100.96.0.0/16 overlaps the underlay network 100.96.0.0/12 of a"),
    ([{"name": "a", "subnet": "100.96.1.0/24"}, {"name": "b", "subnet": "100.96.1.0/24"}],
     "weft_subnet of b: 100.96.1.0/24 is also pinned by a"),
    ([{"name": "a", "subnet": "100.96.0.0/24"}], "weft_subnet of a: 100.96.0.0/24 is outside the subnet range"),
    ([{"name": "a", "subnet": "100.96.4.0/25"}], "weft_subnet of a: 100.96.4.0/25 is outside the subnet range"),
    ([{"name": "a", "subnet": "100.97.4.0/24"}], "weft_subnet of a: 100.97.4.0/24 is outside"),
    ([{"name": "a", "subnet": "banana"}], "weft_subnet of a: 'banana' is not a valid IPv4 CIDR"),
    ([{"public_ip": "10.0.0.1"}], "weft_hosts[0]: needs a name"),
])
def test_bad_hosts_are_named(raw, message):
    with pytest.raises(PlanError) as err:
        parse_hosts(raw, cfg())
    assert str(err.value).startswith(message)


# ---- allocation ----------------------------------------------------------------

def test_three_hosts_then_add_one_and_remove_one():
    c = cfg()
    first = plan(c, hosts(("n1", "10.0.0.1"), ("n2", "10.0.0.2"), ("n3", "10.0.0.3")), {})
    assert subnets(first) == {"n1": "100.96.1.0/24", "n2": "100.96.2.0/24", "n3": "100.96.3.0/24"}
    second = plan(c, hosts(("n1", "10.0.0.1"), ("n3", "10.0.0.3"), ("n4", "10.0.0.4")), first.leases)
    assert subnets(second) == {"n1": "100.96.1.0/24", "n2": "100.96.2.0/24",
                               "n3": "100.96.3.0/24", "n4": "100.96.4.0/24"}
    assert second.retained == ["n2"] and second.members == ["n1", "n3", "n4"]
    assert second.peers_of("n1") == ["n3", "n4"]
    pruned = plan(c, hosts(("n1", "10.0.0.1"), ("n3", "10.0.0.3"), ("n4", "10.0.0.4")),
                  second.leases, prune=True)
    assert "n2" not in pruned.leases and pruned.released == ["n2"]
    # The freed subnet is the lowest free one: the next new host gets it.
    again = plan(c, hosts(("n1", "10.0.0.1"), ("n3", "10.0.0.3"), ("n4", "10.0.0.4"),
                          ("n5", "10.0.0.5")), pruned.leases)
    assert subnets(again)["n5"] == "100.96.2.0/24"


def test_public_ip_change_keeps_subnet_and_updates_lease():
    c = cfg()
    first = plan(c, hosts(("n1", "10.0.0.1"), ("n2", "10.0.0.2")), {})
    moved = plan(c, hosts(("n1", "10.0.0.1"), ("n2", "10.0.0.99")), first.leases)
    assert subnets(moved) == subnets(first)
    assert str(moved.leases["n2"].public_ip) == "10.0.0.99"


def test_unknown_public_ip_keeps_the_lease_ip_or_leaves_host_unplanned():
    c = cfg()
    first = plan(c, hosts(("n1", "10.0.0.1")), {})
    second = plan(c, [HostSpec("n1"), HostSpec("n2")], first.leases)
    assert str(second.leases["n1"].public_ip) == "10.0.0.1"
    assert second.unplanned == ["n2"] and "n2" not in second.leases


def test_pin_wins_and_a_repinned_host_frees_its_subnet():
    c = cfg()
    first = plan(c, hosts(("n1", "10.0.0.1"), ("n2", "10.0.0.2")), {})
    pinned = [HostSpec("n1", ipaddress.ip_address("10.0.0.1"), ipaddress.ip_network("100.96.9.0/24")),
              HostSpec("n2", ipaddress.ip_address("10.0.0.2"))]
    second = plan(c, pinned, first.leases)
    assert subnets(second) == {"n1": "100.96.9.0/24", "n2": "100.96.2.0/24"}


def test_pin_onto_a_live_lease_is_refused():
    c = cfg()
    first = plan(c, hosts(("n1", "10.0.0.1"), ("n2", "10.0.0.2")), {})
    clash = [HostSpec("n1", ipaddress.ip_address("10.0.0.1"), ipaddress.ip_network("100.96.2.0/24")),
             HostSpec("n2", ipaddress.ip_address("10.0.0.2"))]
    with pytest.raises(PlanError, match="weft_subnet of n1: 100.96.2.0/24 is leased to n2"):
        plan(c, clash, first.leases)


def test_pin_onto_a_retained_lease_is_refused_until_prune():
    c = cfg()
    first = plan(c, hosts(("old", "10.0.0.1")), {})
    pin = [HostSpec("new", ipaddress.ip_address("10.0.0.2"), ipaddress.ip_network("100.96.1.0/24"))]
    with pytest.raises(PlanError, match="retained lease of old"):
        plan(c, pin, first.leases)
    assert subnets(plan(c, pin, first.leases, prune=True)) == {"new": "100.96.1.0/24"}


def test_out_of_subnets_message():
    c = cfg(Network="100.96.0.0/16")
    many = [HostSpec("h%03d" % i, ipaddress.ip_address("10.1.%d.%d" % (i // 200, i % 200 + 1)))
            for i in range(300)]
    with pytest.raises(PlanError) as err:
        plan(c, many, {})
    assert str(err.value) == \
        "out of subnets: 300 hosts, 255 subnets from 100.96.1.0/24 to 100.96.255.0/24"


def test_lease_outside_a_shrunk_range_is_reallocated():
    c = cfg()
    first = plan(c, hosts(("n1", "10.0.0.1"), ("n2", "10.0.0.2")), {})
    narrowed = cfg(SubnetMin="100.96.2.0", SubnetMax="100.96.10.0")
    second = plan(narrowed, hosts(("n1", "10.0.0.1"), ("n2", "10.0.0.2")), first.leases)
    assert subnets(second) == {"n1": "100.96.3.0/24", "n2": "100.96.2.0/24"}


def test_lease_file_with_one_subnet_twice_is_refused():
    raw = {"a": {"subnet": "100.96.1.0/24"}, "b": {"subnet": "100.96.1.0/24"}}
    with pytest.raises(PlanError, match="a and b both hold 100.96.1.0/24"):
        parse_leases(raw)


# ---- properties -------------------------------------------------------------------

NAMES = ["h%d" % i for i in range(12)]
step = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(NAMES)),
    st.tuples(st.just("remove"), st.sampled_from(NAMES)),
    st.tuples(st.just("pin"), st.sampled_from(NAMES), st.integers(1, 14)),
    st.tuples(st.just("unpin"), st.sampled_from(NAMES)),
    st.tuples(st.just("prune"),),
)


def next_inventory(op, inventory, pins, pin):
    """One step of a random history: (inventory {name: number}, pins, prune) after `op`;
    `pin(k)` is the k-th subnet of the range."""
    new_inventory, new_pins, prune = dict(inventory), dict(pins), False
    if op[0] == "add":
        new_inventory[op[1]] = NAMES.index(op[1]) + 1
    elif op[0] == "remove":
        new_inventory.pop(op[1], None)
        new_pins.pop(op[1], None)
    elif op[0] == "pin" and op[1] in new_inventory:
        new_pins[op[1]] = pin(op[2])
    elif op[0] == "unpin":
        new_pins.pop(op[1], None)
    elif op[0] == "prune":
        prune = True
    return new_inventory, new_pins, prune


@settings(max_examples=300, deadline=None)
@given(st.lists(step, max_size=30))
def test_random_histories_never_overlap_or_move_survivors(steps):
    c = cfg(Network="100.96.0.0/24", SubnetLen=28)  # 15 subnets: exhaustion is reachable
    inventory, pins, leases = {}, {}, {}
    for op in steps:
        new_inventory, new_pins, prune = next_inventory(
            op, inventory, pins, lambda k: ipaddress.ip_network("100.96.0.%d/28" % (k * 16)))
        specs = [HostSpec(n, ipaddress.ip_address("10.0.0.%d" % i), new_pins.get(n))
                 for n, i in new_inventory.items()]
        try:
            specs = parse_hosts([{"name": s.name, "public_ip": str(s.public_ip),
                                  "subnet": str(s.pin) if s.pin else None} for s in specs], c)
            result = plan(c, specs, leases, prune=prune)
        except PlanError:
            continue  # refused: nothing changes, as with the real lease file
        held = [lease.subnet for lease in result.leases.values()]
        assert len(held) == len(set(held)), "two leases share a subnet"
        assert all(c.in_range(s) for s in held)
        for name in new_inventory:
            assert name in result.leases
            if name in leases and pins.get(name) == new_pins.get(name):
                assert result.leases[name].subnet == leases[name].subnet, "a survivor moved"
            if name in new_pins:
                assert result.leases[name].subnet == new_pins[name]
        for name, lease in leases.items():
            if name not in new_inventory and not prune:
                assert result.leases[name].subnet == lease.subnet, "a retained lease moved"
        inventory, pins, leases = new_inventory, new_pins, result.leases


# ---- reservations: subnets held outside the inventory (Flannel leases in etcd) ----------

def reservation(subnet, public_ip):
    net = ipaddress.ip_network(subnet)
    return {net: Reservation(net, ipaddress.ip_address(public_ip) if public_ip else None,
                             "a Flannel lease")}


def test_reserved_subnets_are_skipped_and_counted():
    reserved = {**reservation("100.96.1.0/24", "10.0.0.50"),
                **reservation("100.96.2.0/23", None)}  # another length: overlaps .2 and .3
    p = plan(cfg(), hosts(("a", "10.0.0.1"), ("b", "10.0.0.2")), {}, reserved=reserved)
    assert subnets(p) == {"a": "100.96.4.0/24", "b": "100.96.5.0/24"}
    assert p.adopted == [] and p.reserved == [ipaddress.ip_network("100.96.1.0/24")]


def test_a_host_takes_over_the_reservation_with_its_public_ip_unless_it_has_a_lease():
    reserved = reservation("100.96.9.0/24", "10.0.0.1")
    p = plan(cfg(), hosts(("a", "10.0.0.1"), ("b", "10.0.0.2")), {}, reserved=reserved)
    assert subnets(p) == {"a": "100.96.9.0/24", "b": "100.96.1.0/24"} and p.adopted == ["a"]
    kept = plan(cfg(), hosts(("a", "10.0.0.1")), {"a": p.leases["b"]}, reserved=reserved)
    assert subnets(kept) == {"a": "100.96.1.0/24"} and kept.adopted == []


def test_pinning_onto_a_reservation_of_another_ip_is_refused():
    with pytest.raises(PlanError, match=r"^weft_subnet of a: 100.96.9.0/24 is held by a Flannel "
                                        r"lease \(public IP 10.0.0.50\)"):
        plan(cfg(), [HostSpec("a", ipaddress.ip_address("10.0.0.1"),
                              ipaddress.ip_network("100.96.9.0/24"))], {},
             reserved=reservation("100.96.9.0/24", "10.0.0.50"))


def test_out_of_subnets_counts_the_reservations():
    config = cfg(Network="100.96.0.0/22")  # three subnets: .1, .2, .3
    with pytest.raises(PlanError, match="and 2 subnet\\(s\\) held outside the inventory"):
        plan(config, hosts(("a", "10.0.0.1"), ("b", "10.0.0.2")), {},
             reserved={**reservation("100.96.1.0/24", None), **reservation("100.96.2.0/24", None)})


# ---- dual-stack (Flannel's EnableIPv6 fields) ------------------------------------------

def dual_hosts(*names, **extra):
    return [dict(name=n, public_ip="10.0.0.%d" % i, public_ipv6="fd09::%d" % i, **extra)
            for i, n in enumerate(names, 1)]


def test_ipv6_defaults_follow_flannel():
    c = cfg(**DUAL)
    assert (c.ipv6.subnet_len, str(c.ipv6.subnet_min), str(c.ipv6.subnet_max)) == \
        (64, "fd00:96:0:1::/64", "fd00:96:0:ffff::/64")
    assert cfg(EnableIPv6=True, IPv6Network="fd00:96::/63").ipv6.subnet_len == 65
    assert cfg().ipv6 is None and cfg(EnableIPv6=False).ipv6 is None
    flannel = cfg(**DUAL).as_flannel()
    assert (flannel["EnableIPv6"], flannel["IPv6SubnetLen"], flannel["IPv6SubnetMin"]) == \
        (True, 64, "fd00:96:0:1::")
    assert parse_network_config(flannel) == cfg(**DUAL)
    assert "EnableIPv6" not in cfg().as_flannel()  # an IPv4 network's config as before


def test_vxlan_gbp_and_learning_reach_etcd_only_when_set():
    on = cfg(Backend={"Type": "vxlan", "GBP": True, "Learning": True}).as_flannel()["Backend"]
    assert on == {"Type": "vxlan", "VNI": 1, "Port": 8472, "GBP": True, "Learning": True,
                  "DirectRouting": False}
    assert parse_network_config(dict(Network="100.96.0.0/16", Backend=on)).as_flannel()[
        "Backend"] == on
    # Off, the config stays what networks stored before the options existed.
    assert cfg().as_flannel()["Backend"] == {"Type": "vxlan", "VNI": 1, "Port": 8472,
                                             "DirectRouting": False}


@pytest.mark.parametrize("raw, message", [
    (dual_hosts("a") + [dict(name="b", public_ip="10.0.0.2", public_ipv6="fd09::1")],
     "weft_public_ipv6 of b: fd09::1 is also the public IP of a"),
    ([dict(name="a", public_ip="10.0.0.1", public_ipv6="10.0.0.1")], "weft_public_ipv6 of a: '10.0.0.1' is IPv4"),
    ([dict(name="a", public_ip="10.0.0.1", public_ipv6="fd00:96::5")],
     "weft_public_ipv6 of a: fd00:96::5 lies inside the overlay IPv6Network fd00:96::/48"),
    (dual_hosts("a", subnet6="fd00:97::/64"), "weft_subnet6 of a: fd00:97::/64 is outside the subnet range"),
    (dual_hosts("a", "b", subnet6="fd00:96:0:7::/64"), "weft_subnet6 of b: fd00:96:0:7::/64 is also pinned by a"),
    ([dict(name="a", public_ip="10.0.0.1", underlay6="fd00:96:0:1::/64")],
     "weft_network.IPv6Network: fd00:96::/48 overlaps the underlay network fd00:96:0:1::/64 of a"),
])
def test_bad_dual_stack_hosts_are_named(raw, message):
    with pytest.raises(PlanError) as err:
        parse_hosts(raw, cfg(**DUAL))
    assert str(err.value).startswith(message)


def test_an_ipv6_pin_needs_an_ipv6_network():
    with pytest.raises(PlanError, match="weft_subnet6 of a: the network has no IPv6"):
        parse_hosts(dual_hosts("a", subnet6="fd00:96:0:7::/64"), cfg())


def test_dual_stack_leases_are_stable_and_every_host_needs_a_public_ipv6():
    c = cfg(**DUAL)
    first = plan(c, parse_hosts(dual_hosts("n1", "n2", "n3"), c), {})
    v6 = {name: str(lease.subnet6) for name, lease in first.leases.items()}
    assert v6 == {"n1": "fd00:96:0:1::/64", "n2": "fd00:96:0:2::/64", "n3": "fd00:96:0:3::/64"}
    assert first.leases["n2"].backend_v6_data == {"vni": 1, "vtep_mac": "0e:78:00:00:00:02"}
    assert str(first.leases["n2"].public_ipv6) == "fd09::2"
    # n2 leaves (its lease kept), n4 comes: the survivors keep both subnets, n4 gets free ones.
    second = plan(c, parse_hosts(dual_hosts("n1", "n3") + [dict(name="n4", public_ip="10.0.0.4",
                                                                public_ipv6="fd09::4")], c),
                  first.leases)
    assert {n: str(l.subnet6) for n, l in second.leases.items()} == dict(v6, n4="fd00:96:0:4::/64")
    # A host not in this play keeps the public IPv6 its lease has.
    quiet = plan(c, [HostSpec("n1"), HostSpec("n3")], second.leases)
    assert str(quiet.leases["n1"].public_ipv6) == "fd09::1"
    with pytest.raises(PlanError, match="^weft_public_ipv6 of n9: the network has IPv6"):
        plan(c, parse_hosts([dict(name="n9", public_ip="10.0.0.9")], c), {})
    # Turning IPv6 off drops the IPv6 half of every lease, on again gives the same subnets.
    off = plan(cfg(), parse_hosts(dual_hosts("n1", "n3"), cfg()), first.leases)
    assert off.leases["n1"].subnet6 is None and "subnet6" not in off.leases["n1"].as_dict()
    again = plan(c, parse_hosts(dual_hosts("n1", "n2", "n3"), c), {})
    assert {n: str(l.subnet6) for n, l in again.leases.items()} == v6


def test_a_dual_stack_lease_file_reads_back_whole():
    c = cfg(**DUAL)
    leases = plan(c, parse_hosts(dual_hosts("n1", "n2"), c), {}).leases
    raw = {name: lease.as_dict() for name, lease in leases.items()}
    assert raw["n1"]["subnet6"] == "fd00:96:0:1::/64" and raw["n1"]["public_ipv6"] == "fd09::1"
    assert parse_leases(raw) == leases


@settings(max_examples=150, deadline=None)
@given(st.lists(step, max_size=25))
def test_random_dual_stack_histories_never_overlap_or_move_survivors(steps):
    c = cfg(Network="100.96.0.0/24", SubnetLen=28, EnableIPv6=True, IPv6Network="fd00:96::/60")
    inventory, pins, leases = {}, {}, {}
    for op in steps:
        new_inventory, new_pins, prune = next_inventory(op, inventory, pins,
                                                        lambda k: "fd00:96:0:%x::/64" % k)
        try:
            specs = parse_hosts([dict(name=n, public_ip="10.0.0.%d" % i, public_ipv6="fd09::%d" % i,
                                      subnet6=new_pins.get(n)) for n, i in new_inventory.items()], c)
            result = plan(c, specs, leases, prune=prune)
        except PlanError:
            continue
        held = [lease.subnet6 for lease in result.leases.values()]
        assert len(held) == len(set(held)) and all(c.ipv6.in_range(s) for s in held)
        for name in new_inventory:
            if name in leases and pins.get(name) == new_pins.get(name):
                assert result.leases[name].subnet6 == leases[name].subnet6, "a survivor moved"
            if name in new_pins:
                assert str(result.leases[name].subnet6) == new_pins[name]
        inventory, pins, leases = new_inventory, new_pins, result.leases


# ---- IPv6-only (EnableIPv4: false) -----------------------------------------------------

ONLY6 = {"EnableIPv4": False, **DUAL}


def v6_hosts(*names, **extra):
    return [dict(name=n, public_ipv6="fd09::%d" % i, **extra) for i, n in enumerate(names, 1)]


def test_an_ipv6_only_network_reads_like_flanneld():
    c = parse_network_config(dict(ONLY6, Network="100.96.0.0/16", SubnetLen=99))  # not read
    assert c.ipv4 is None and c.network is None and c.primary == c.ipv6
    assert c.as_flannel() == {"EnableIPv4": False, "EnableIPv6": True,
                              "IPv6Network": "fd00:96::/48", "IPv6SubnetLen": 64,
                              "IPv6SubnetMin": "fd00:96:0:1::", "IPv6SubnetMax": "fd00:96:0:ffff::",
                              "Backend": {"Type": "vxlan", "VNI": 1, "Port": 8472,
                                          "DirectRouting": False}}
    assert parse_network_config(c.as_flannel()) == c
    assert (c.summary()["network"], c.summary()["ipv6_network"]) == (None, "fd00:96::/48")
    with pytest.raises(PlanError, match="^weft_subnet of a: the network has no IPv4"):
        parse_hosts([dict(name="a", public_ipv6="fd09::1", subnet="100.96.1.0/24")], c)


def test_ipv6_only_leases_have_no_ipv4_side_and_follow_the_ipv4_rules():
    c = parse_network_config(ONLY6)
    first = plan(c, parse_hosts(v6_hosts("n1", "n2", "n3"), c), {})
    assert {n: (l.subnet, str(l.subnet6), str(l.public_ipv6)) for n, l in first.leases.items()} == {
        "n1": (None, "fd00:96:0:1::/64", "fd09::1"), "n2": (None, "fd00:96:0:2::/64", "fd09::2"),
        "n3": (None, "fd00:96:0:3::/64", "fd09::3")}
    lease = first.leases["n2"]
    assert (lease.public_ip, lease.backend_data, lease.backend_v6_data) == \
        (None, {}, {"vni": 1, "vtep_mac": "0e:78:00:00:00:02"})
    assert parse_leases({n: l.as_dict() for n, l in first.leases.items()}) == first.leases
    # The IPv4 address a host also has is not part of an IPv6-only lease.
    with_v4 = parse_hosts([dict(name="n1", public_ip="10.0.0.1", public_ipv6="fd09::1")], c)
    assert with_v4[0].public_ip is None
    # A host without a public IPv6 and no lease is left unplanned (as IPv4 hosts without an IP).
    quiet = plan(c, parse_hosts(v6_hosts("n1", "n3") + [dict(name="n4")], c), first.leases)
    assert quiet.unplanned == ["n4"] and quiet.retained == ["n2"]
    assert str(quiet.leases["n3"].subnet6) == "fd00:96:0:3::/64"
    # Pins, taken pins and exhaustion are named with the IPv6 variables.
    pinned = plan(c, parse_hosts(v6_hosts("n1", subnet6="fd00:96:0:9::/64"), c), {})
    assert str(pinned.leases["n1"].subnet6) == "fd00:96:0:9::/64"
    with pytest.raises(PlanError, match="^weft_subnet6 of n1: fd00:96:0:2::/64 is held by the "
                                        "retained lease of n2"):
        plan(c, parse_hosts(v6_hosts("n1", subnet6="fd00:96:0:2::/64"), c), first.leases)
    small = parse_network_config(dict(ONLY6, IPv6Network="fd00:96::/62"))
    with pytest.raises(PlanError, match="^out of IPv6 subnets: 4 hosts, 3 subnets"):
        plan(small, parse_hosts(v6_hosts("a", "b", "c", "d"), small), {})


def test_ipv6_only_takes_over_a_flannel_reservation_by_its_public_ipv6():
    c = parse_network_config(ONLY6)
    held = ipaddress.ip_network("fd00:96:0:1::/64")
    reserved = {held: Reservation(None, None, "a Flannel lease in etcd (x)", held,
                                  ipaddress.ip_address("fd09::2"))}
    result = plan(c, parse_hosts(v6_hosts("n1", "n2"), c), {}, reserved=reserved)
    assert (str(result.leases["n2"].subnet6), str(result.leases["n1"].subnet6)) == \
        ("fd00:96:0:1::/64", "fd00:96:0:2::/64")
    assert result.adopted == ["n2"]


def test_a_network_turned_ipv6_only_keeps_every_hosts_ipv6_subnet():
    dual, only = cfg(**DUAL), parse_network_config(ONLY6)
    before = plan(dual, parse_hosts(dual_hosts("n1", "n2", "n3"), dual), {}).leases
    after = plan(only, parse_hosts(dual_hosts("n1", "n2", "n3"), only), before).leases
    assert {n: l.subnet6 for n, l in after.items()} == {n: l.subnet6 for n, l in before.items()}
    assert all(l.subnet is None and l.public_ip is None for l in after.values())


@settings(max_examples=150, deadline=None)
@given(st.lists(step, max_size=25))
def test_random_ipv6_only_histories_never_overlap_or_move_survivors(steps):
    c = parse_network_config(dict(ONLY6, IPv6Network="fd00:96::/60"))  # 15 subnets
    inventory, pins, leases = {}, {}, {}
    for op in steps:
        new_inventory, new_pins, prune = next_inventory(op, inventory, pins,
                                                        lambda k: "fd00:96:0:%x::/64" % k)
        try:
            specs = parse_hosts([dict(name=n, public_ipv6="fd09::%d" % i, subnet6=new_pins.get(n))
                                 for n, i in new_inventory.items()], c)
            result = plan(c, specs, leases, prune=prune)
        except PlanError:
            continue
        held = [lease.subnet6 for lease in result.leases.values()]
        assert len(held) == len(set(held)) and all(c.in_range(s) for s in held)
        assert all(lease.subnet is None for lease in result.leases.values())
        for name in new_inventory:
            assert name in result.leases
            if name in leases and pins.get(name) == new_pins.get(name):
                assert result.leases[name].subnet6 == leases[name].subnet6, "a survivor moved"
            if name in new_pins:
                assert str(result.leases[name].subnet6) == new_pins[name]
        for name, lease in leases.items():
            if name not in new_inventory and not prune:
                assert result.leases[name].subnet6 == lease.subnet6, "a retained lease moved"
        inventory, pins, leases = new_inventory, new_pins, result.leases
