"""The filters between the inventory and the planner."""

import re

from ansible_collections.weft.overlay.plugins.filter.planning import plan_hosts, plan_table

NODES = {
    "a": {"subnet": "100.96.1.0/24", "public_ip": "10.0.0.1", "vtep_address": "100.96.1.0",
          "backend_data": {"vni": 1, "vtep_mac": "0e:77:64:60:01:00"}},
    "b": {"subnet": "100.96.2.0/24", "public_ip": "10.0.0.2", "vtep_address": "100.96.2.0",
          "backend_data": {"vni": 1, "vtep_mac": "0e:77:64:60:02:00"}},
    "c": {"subnet": "100.96.3.0/24", "public_ip": "10.1.0.3", "vtep_address": "100.96.3.0",
          "backend_data": {"vni": 1, "vtep_mac": "0e:77:64:60:03:00"}},
}


def test_plan_hosts_prefer_detected_underlay_over_variables():
    hostvars = {"a": {"weft_underlay": {"public_ip": "10.0.0.1", "network": "10.0.0.0/24"},
                      "weft_public_ip": "192.0.2.99", "weft_backend_facts": {"key": "pub-a"}},
                "b": {"weft_public_ip": "10.0.0.2", "weft_subnet": "100.96.9.0/24"},
                "c": {}, "d": {"weft_underlay": {"public_ip": "10.0.0.4"}, "weft_backend_facts": {}}}
    assert plan_hosts(["a", "b", "c", "d"], hostvars) == [
        {"name": "a", "public_ip": "10.0.0.1", "underlay": "10.0.0.0/24",
         "reported": {"key": "pub-a"}},
        {"name": "b", "public_ip": "10.0.0.2", "subnet": "100.96.9.0/24"},
        {"name": "c"}, {"name": "d", "public_ip": "10.0.0.4", "underlay": None}]


def test_plan_table():
    planned = {"nodes": {"a": dict(NODES["a"])},
               "leases": {"gone": {"subnet": "100.96.5.0/24", "public_ip": "10.0.0.5"}},
               "retained": ["gone"], "unplanned": ["new"],
               "capacity": {"used": 2, "subnets": 255, "free": 253,
                            "range": "100.96.1.0/24 to 100.96.255.0/24"}}
    lines = plan_table(planned)
    rows = [re.split(r"\s{2,}", line) for line in lines[:3]]
    assert rows == [["HOST", "SUBNET", "PUBLIC IP", "LEASE DATA"],
                    ["a", "100.96.1.0/24", "10.0.0.1", "vni=1 vtep_mac=0e:77:64:60:01:00"],
                    ["gone (removed, lease kept)", "100.96.5.0/24", "10.0.0.5", "-"]]
    assert len({line.index("100.96") for line in lines[1:3]}) == 1  # columns line up
    assert lines[3:] == [
        "2 of 255 subnets used (100.96.1.0/24 to 100.96.255.0/24), 253 free",
        "new: no lease and no known public IP (run site.yml or set weft_public_ip, or "
        "weft_public_ipv6 in an IPv6-only network)"]


def table_rows(nodes):
    planned = {"nodes": nodes, "leases": {}, "capacity": {"used": 1, "subnets": 9, "free": 8,
                                                          "range": "x"}}
    return [re.split(r"\s{2,}", line) for line in plan_table(planned)[:-1]]


def test_plan_table_shows_each_family_the_network_has():
    v6 = {"subnet6": "fd00:96:0:1::/64", "public_ipv6": "fd09::1",
          "backend_v6_data": {"vni": 1, "vtep_mac": "0e:78:00:00:00:01"}}
    assert table_rows({"a": dict(NODES["a"], **v6)}) == [
        ["HOST", "SUBNET", "PUBLIC IP", "IPV6 SUBNET", "PUBLIC IPV6", "LEASE DATA"],
        ["a", "100.96.1.0/24", "10.0.0.1", "fd00:96:0:1::/64", "fd09::1",
         "vni=1 vtep_mac=0e:77:64:60:01:00"]]
    # IPv6-only: no IPv4 columns, the IPv6 VTEP's data.
    assert table_rows({"a": dict(v6, subnet=None, public_ip=None, backend_data={})}) == [
        ["HOST", "IPV6 SUBNET", "PUBLIC IPV6", "LEASE DATA"],
        ["a", "fd00:96:0:1::/64", "fd09::1", "vni=1 vtep_mac=0e:78:00:00:00:01"]]


def test_plan_hosts_of_an_ipv6_only_underlay():
    hostvars = {"a": {"weft_underlay": {"public_ip": None, "network": None,
                                        "public_ipv6": "fd09::1", "network6": "fd09::/64"},
                      "weft_backend_facts": {"key": "pub-a"}}}
    assert plan_hosts(["a"], hostvars) == [
        {"name": "a", "public_ipv6": "fd09::1", "underlay6": "fd09::/64",
         "reported": {"key": "pub-a"}}]
