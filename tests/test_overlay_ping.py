"""Two hosts joined only by a veth carry container traffic over VXLAN that the modules built.

hostA (10.9.0.1) and hostB (10.9.0.2) are namespaces on one veth. Each has a "container"
namespace behind it (100.96.1.2 and 100.96.2.2, gateway .1 on the host side). Device,
neighbours, FDB entries and routes on both hosts come from weft's modules alone.
"""

import os

import pytest

from conftest import NETNS_PREFIX, run_ansible_module, sh

HOSTS = {
    "A": dict(public="10.9.0.1", subnet=1, mac="0e:77:64:60:01:00"),
    "B": dict(public="10.9.0.2", subnet=2, mac="0e:77:64:60:02:00"),
}


@pytest.fixture
def two_hosts():
    tag = "%s%d-ping" % (NETNS_PREFIX, os.getpid())
    names = {h: "%s-%s" % (tag, h) for h in HOSTS}
    containers = {h: "%s-c%s" % (tag, h) for h in HOSTS}
    try:
        for ns in list(names.values()) + list(containers.values()):
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "set", "lo", "up", netns=ns)
        sh("ip", "link", "add", "eth0", "netns", names["A"], "type", "veth",
           "peer", "name", "eth0", "netns", names["B"])
        for h, spec in HOSTS.items():
            ns, c = names[h], containers[h]
            sh("sysctl", "-qw", "net.ipv4.ip_forward=1", netns=ns)
            sh("ip", "addr", "add", spec["public"] + "/24", "dev", "eth0", netns=ns)
            sh("ip", "link", "set", "eth0", "up", netns=ns)
            sh("ip", "link", "add", "veth-c", "type", "veth", "peer", "name", "eth0",
               "netns", c, netns=ns)
            sh("ip", "addr", "add", "100.96.%d.1/24" % spec["subnet"], "dev", "veth-c", netns=ns)
            sh("ip", "link", "set", "veth-c", "up", netns=ns)
            sh("ip", "addr", "add", "100.96.%d.2/24" % spec["subnet"], "dev", "eth0", netns=c)
            sh("ip", "link", "set", "eth0", "up", netns=c)
            sh("ip", "route", "add", "default", "via", "100.96.%d.1" % spec["subnet"], netns=c)
        yield names, containers
    finally:
        for ns in list(names.values()) + list(containers.values()):
            sh("ip", "netns", "del", ns, check=False)


def converge_host(ns, me, peer, python):
    """What weft's vxlan role does on one host, module by module (Flannel's order)."""
    results = [
        run_ansible_module("weft_vxlan", dict(
            name="flannel.1", vni=1, local=me["public"], dev="eth0", mac=me["mac"], mtu=1450,
            address="100.96.%d.0/32" % me["subnet"]), python=python, netns=ns),
        run_ansible_module("weft_neighbours", dict(
            dev="flannel.1", purge=True,
            neighbours=[{"ip": "100.96.%d.0" % peer["subnet"], "mac": peer["mac"]}]),
            python=python, netns=ns),
        run_ansible_module("weft_fdb", dict(
            dev="flannel.1", purge=True, entries=[{"mac": peer["mac"], "dst": peer["public"]}]),
            python=python, netns=ns),
        run_ansible_module("weft_routes", dict(
            dev="flannel.1", purge=True,
            routes=[{"dst": "100.96.%d.0/24" % peer["subnet"], "via": "100.96.%d.0" % peer["subnet"],
                     "onlink": True}]), python=python, netns=ns),
    ]
    for result in results:
        assert not result["failed"], result
    return [r["changed"] for r in results]


def test_containers_ping_across_vxlan_built_by_the_modules(two_hosts, host_python):
    names, containers = two_hosts
    for me, peer in (("A", "B"), ("B", "A")):
        assert converge_host(names[me], HOSTS[me], HOSTS[peer], host_python) == [True] * 4
    out = sh("ping", "-c", "3", "-i", "0.2", "-W", "2", "100.96.2.2", netns=containers["A"])
    assert "3 received" in out
    out = sh("ping", "-c", "3", "-i", "0.2", "-W", "2", "100.96.1.2", netns=containers["B"])
    assert "3 received" in out
    # The packets really went through VXLAN: the VTEP counted them.
    stats = sh("ip", "-s", "link", "show", "flannel.1", netns=names["A"])
    tx_packets = int(stats.split("TX:")[1].split("\n")[1].split()[1])
    assert tx_packets >= 6
    # A second run finds nothing to do.
    for me, peer in (("A", "B"), ("B", "A")):
        assert converge_host(names[me], HOSTS[me], HOSTS[peer], host_python) == [False] * 4
