"""Two hosts joined only by a veth carry container traffic over VXLAN that the modules built.

hostA (10.9.0.1) and hostB (10.9.0.2) are namespaces on one veth. Each has a "container"
namespace behind it (100.96.1.2 and 100.96.2.2, gateway .1 on the host side). Device,
neighbours, FDB entries and routes on both hosts are what the vxlan backend derives from
the planner's plan, each step run through its own module (weft_vxlan, weft_neighbours, ...).
"""

import os
import subprocess

import pytest

from weft.host import model
from weft.host.host import SETTINGS_SPEC
from conftest import NETNS_PREFIX, run_ansible_module, sh
from ansible_collections.weft.overlay.tests.unit.plans import sample_plan

HOSTS = {
    "A": dict(public="10.9.0.1", public6="fd09::1", subnet=1),
    "B": dict(public="10.9.0.2", public6="fd09::2", subnet=2),
}
PLAN = sample_plan("vxlan", [(h, spec["public"], "100.96.%d.0/24" % spec["subnet"])
                             for h, spec in HOSTS.items()])
DUAL_STACK = sample_plan("vxlan", [
    dict(name=h, public_ip=spec["public"], subnet="100.96.%d.0/24" % spec["subnet"],
         public_ipv6=spec["public6"], subnet6="fd00:96:0:%d::/64" % spec["subnet"])
    for h, spec in HOSTS.items()], ipv6_network="fd00:96::/48")
KERNEL_STEPS = ("vxlan", "neighbours", "fdb", "routes")


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


def converge_host(ns, me, python, plan=PLAN):
    """What weft_host does on one host for the overlay's kernel state: the vxlan backend's
    steps, derived from the plan, each through the real module of its core."""
    identity = dict(name=me, iface="eth0", public_ip=HOSTS[me]["public"],
                    underlay="10.9.0.0/24", mtu=1500, public_ipv6=HOSTS[me]["public6"],
                    underlay6="fd09::/64")
    settings = {key: spec["default"] for key, spec in SETTINGS_SPEC.items()}
    derived = [s for s in model.derive(plan, identity, settings).steps if s["core"] in KERNEL_STEPS]
    results = [run_ansible_module("weft.overlay." + s["core"], s["params"], python=python, netns=ns)
               for s in derived]
    for result in results:
        assert not result["failed"], result
    return [r["changed"] for r in results]


def test_containers_ping_across_vxlan_built_by_the_modules(two_hosts, host_python):
    names, containers = two_hosts
    for me in HOSTS:
        assert converge_host(names[me], me, host_python) == [True] * 4
    out = sh("ping", "-c", "3", "-i", "0.2", "-W", "2", "100.96.2.2", netns=containers["A"])
    assert "3 received" in out
    out = sh("ping", "-c", "3", "-i", "0.2", "-W", "2", "100.96.1.2", netns=containers["B"])
    assert "3 received" in out
    # The packets really went through VXLAN: the VTEP counted them.
    stats = sh("ip", "-s", "link", "show", "flannel.1", netns=names["A"])
    tx_packets = int(stats.split("TX:")[1].split("\n")[1].split()[1])
    assert tx_packets >= 6
    # A second run finds nothing to do.
    for me in HOSTS:
        assert converge_host(names[me], me, host_python) == [False] * 4


def test_dual_stack_containers_reach_each_other_over_both_families_at_full_size(
        two_hosts, host_python):
    """Flannel's two VTEPs (flannel.1 over IPv4, flannel-v6.1 over IPv6) derived from a
    dual-stack plan; one container MTU (1500 - 70) carries a full-size packet over each
    family with DF set."""
    names, containers = two_hosts
    for h, spec in HOSTS.items():
        ns, c = names[h], containers[h]
        sh("ip", "addr", "add", spec["public6"] + "/64", "dev", "eth0", "nodad", netns=ns)
        sh("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1", netns=ns)
        sh("ip", "addr", "add", "fd00:96:0:%d::1/64" % spec["subnet"], "dev", "veth-c", "nodad", netns=ns)
        sh("ip", "addr", "add", "fd00:96:0:%d::2/64" % spec["subnet"], "dev", "eth0", "nodad", netns=c)
        sh("ip", "-6", "route", "add", "default", "via", "fd00:96:0:%d::1" % spec["subnet"], netns=c)
        for dev, where in (("veth-c", ns), ("eth0", c)):   # as Docker sets its bridge's MTU
            sh("ip", "link", "set", dev, "mtu", "1430", netns=where)
    for me in HOSTS:
        assert converge_host(names[me], me, host_python, DUAL_STACK) == [True] * 7
    links = sh("ip", "-d", "link", "show", "flannel-v6.1", netns=names["A"])
    assert "vxlan id 1 local fd09::1 dev eth0" in links and "mtu 1430" in links
    assert "fd00:96:0:2:: via fd00:96:0:2:: dev flannel-v6.1" in \
        sh("ip", "-6", "route", "show", "proto", "119", netns=names["A"]).replace("/64", "")
    for target in ("100.96.2.2", "fd00:96:0:2::2"):
        size = 1430 - (28 if ":" not in target else 48)   # IP and ICMP headers
        out = sh("ping", "-c", "3", "-i", "0.2", "-W", "2", "-M", "do", "-s", str(size), target,
                 netns=containers["A"])
        assert "3 received" in out, out
        too_big = subprocess.run(["ip", "netns", "exec", containers["A"], "ping", "-c", "1",
                                  "-W", "1", "-M", "do", "-s", str(size + 1), target],
                                 capture_output=True, text=True)
        assert too_big.returncode != 0  # the container MTU is what the path takes
    v6_tx = sh("ip", "-s", "link", "show", "flannel-v6.1", netns=names["A"])
    assert int(v6_tx.split("TX:")[1].split("\n")[1].split()[1]) >= 3
    for me in HOSTS:
        assert converge_host(names[me], me, host_python, DUAL_STACK) == [False] * 7
