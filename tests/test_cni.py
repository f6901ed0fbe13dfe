"""The CNI runtime on two sandbox hosts of a vxlan network: weft writes each host's CNI
network from its lease (the conflist and its bridge), and the standard plugins are driven
as containerd and the kubelet drive them (ADD, CHECK, DEL with the network config on
stdin, into fresh network namespaces, lab/cni.py): containers on the two hosts reach each
other and see each other's addresses; Docker and CNI on one host each get their half of its
subnet; DEL leaves nothing; a switch back to Docker, weft-restore and uninstall."""

import json
import os

import pytest

from weft.lease import encode_plan
from cni import Network
from conftest import NETNS_PREFIX
from ansible_collections.weft.overlay.tests.unit.plans import sample_plan
from sandbox import run_in, two_hosts

HOSTS = {"node1": "10.9.0.1", "node2": "10.9.0.2"}
CONFLIST = "/etc/cni/net.d/10-weft.conflist"
IPAM = "/var/lib/cni/networks/weft"     # host-local's reservations
SETTINGS = {"docker": False, "heal_interval": 0, "cni": True}

# One datagram to a port: the receiver prints the sender's address.
RECEIVE = ("import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
           "s.bind(('0.0.0.0', 7777)); s.settimeout(10); print(s.recvfrom(100)[1][0])")
SEND = ("import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
        "[s.sendto(b'weft', (sys.argv[1], 7777)) for _ in range(3)]")


@pytest.fixture
def two_boxes():
    with two_hosts("%s%d-cni" % (NETNS_PREFIX, os.getpid()), HOSTS) as boxes:
        for box in boxes.values():
            box.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        yield boxes


def host_args(name, **settings):
    plan = encode_plan(sample_plan("vxlan", [(n, ip, "100.96.%d.0/24" % i)
                                             for i, (n, ip) in enumerate(HOSTS.items(), 1)]))
    return {"plan": plan, "settings": dict(SETTINGS, **settings),
            "host": {"name": name, "iface": "eth0", "public_ip": HOSTS[name],
                     "underlay": "10.9.0.0/24", "mtu": 1500}}


def addresses(box, dev):
    out = json.loads(box.run("ip", "-j", "addr", "show", "dev", dev).stdout)[0]
    return sorted("%s/%d" % (a["local"], a["prefixlen"]) for a in out["addr_info"]
                  if a.get("scope") == "global")


def veths(box):
    return [link["ifname"] for link in json.loads(box.run("ip", "-j", "-d", "link").stdout)
            if link.get("linkinfo", {}).get("info_kind") == "veth" and link["ifname"] != "eth0"]


def test_cni_runtimes_share_the_network_with_docker_and_leave_nothing(two_boxes):
    a, b = two_boxes["node1"], two_boxes["node2"]
    # node1 serves CNI alone (its whole subnet); node2 Docker and CNI, each its own half.
    for box, name, extra in ((a, "node1", {}), (b, "node2", {"docker": True})):
        result = box.module("weft.overlay.host", host_args(name, **extra), diff=True)
        assert result["changed"] and not result["failed"], result
        again = box.module("weft.overlay.host", host_args(name, **extra))
        assert not again["changed"], again
    conf = json.loads(a.read(CONFLIST))
    assert (conf["cniVersion"], conf["name"], [p["type"] for p in conf["plugins"]]) == \
        ("1.0.0", "weft", ["bridge", "portmap"])
    bridge = conf["plugins"][0]
    assert {k: bridge[k] for k in ("bridge", "isGateway", "isDefaultGateway", "hairpinMode",
                                   "ipMasq", "mtu")} == \
        {"bridge": "cni0", "isGateway": True, "isDefaultGateway": True, "hairpinMode": True,
         "ipMasq": False, "mtu": 1450}
    assert bridge["ipam"] == {"type": "host-local",
                              "routes": [{"dst": "100.96.0.0/16", "gw": "100.96.1.1"}],
                              "ranges": [[{"subnet": "100.96.1.0/24", "gateway": "100.96.1.1"}]]}
    assert addresses(a, "cni0") == ["100.96.1.1/24"]
    assert json.loads(b.read(CONFLIST))["plugins"][0]["ipam"]["ranges"] == \
        [[{"subnet": "100.96.2.128/25", "gateway": "100.96.2.129"}]]
    assert addresses(b, "cni0") == ["100.96.2.129/25"]
    assert json.loads(b.read("/etc/docker/daemon.json"))["bip"] == "100.96.2.1/25"

    # Containers as containerd and the kubelet make them: a fresh namespace, the plugins.
    networks = {}
    for box, ctr in ((a, "ctr-a"), (b, "ctr-b")):
        box.run("ip", "netns", "add", ctr)
        networks[ctr] = Network(box.read(CONFLIST), run_in(box))
        networks[ctr].add(ctr, "/run/netns/" + ctr)
    ip_a = networks["ctr-a"].results["ctr-a"]["ips"][0]["address"].split("/")[0]
    ip_b = networks["ctr-b"].results["ctr-b"]["ips"][0]["address"].split("/")[0]
    assert ip_a.startswith("100.96.1.") and int(ip_b.split(".")[3]) > 129, (ip_a, ip_b)
    route = b.run("ip", "netns", "exec", "ctr-b", "ip", "route").stdout
    assert "default via 100.96.2.129" in route and "100.96.0.0/16 via 100.96.2.129" in route
    # Across the hosts, both ways, the receiver seeing the sender's own address.
    for (src_box, src, dst_box, dst, target) in ((a, "ctr-a", b, "ctr-b", ip_b),
                                                 (b, "ctr-b", a, "ctr-a", ip_a)):
        receiver = dst_box.popen("ip", "netns", "exec", dst, "/usr/bin/python3", "-c", RECEIVE)
        try:
            sh_in(src_box, "ip", "netns", "exec", src, "ping", "-c", "2", "-W", "2", target)
            sh_in(src_box, "ip", "netns", "exec", src, "/usr/bin/python3", "-c", SEND, target)
            seen = receiver.communicate(timeout=15)[0].strip()
        finally:
            receiver.kill()
        assert seen == (ip_a if src == "ctr-a" else ip_b), seen
    for ctr, box in (("ctr-a", a), ("ctr-b", b)):
        networks[ctr].check(ctr, "/run/netns/" + ctr)    # CHECK passes
    assert not a.module("weft.overlay.host", host_args("node1"))["changed"]   # a container changes nothing

    # The bridge is weft's: gone behind its back, the repair pass brings it back.
    a.run("ip", "link", "del", "cni0")
    a.run("/usr/bin/python3", "/usr/local/lib/weft/weft-restore")
    assert addresses(a, "cni0") == ["100.96.1.1/24"]

    # DEL leaves no veth, no address and no reservation behind.
    for ctr, box in (("ctr-a", a), ("ctr-b", b)):
        networks[ctr].delete(ctr, "/run/netns/" + ctr)
        assert veths(box) == [], veths(box)
        assert "inet " not in box.run("ip", "netns", "exec", ctr, "ip", "-4", "addr").stdout
        reserved = box.listdir(IPAM)
        assert not [f for f in reserved if f[0].isdigit()], reserved

    # node2 back to Docker alone: the CNI network goes, Docker gets the whole subnet again.
    result = b.module("weft.overlay.host", host_args("node2", docker=True, cni=False))
    assert result["changed"] and not result["failed"], result
    assert not b.exists(CONFLIST) and "cni0" not in b.run("ip", "link").stdout
    assert not b.exists(IPAM)   # no container held an address: host-local's bookkeeping goes
    assert json.loads(b.read("/etc/docker/daemon.json"))["bip"] == "100.96.2.1/24"
    # Uninstall (settings as the record has them, whatever the play says): nothing of the
    # CNI network is left but host-local's bookkeeping of an address a container still holds,
    # which that container's DEL needs; once it is released, the next uninstall takes it.
    a.run("ip", "netns", "add", "ctr-c")
    networks["ctr-c"] = Network(a.read(CONFLIST), run_in(a))
    networks["ctr-c"].add("ctr-c", "/run/netns/ctr-c")
    gone = a.module("weft.overlay.host", {"state": "absent", "settings": {"docker": False}})
    assert gone["changed"] and not gone["failed"], gone
    assert not a.exists(CONFLIST) and "cni0" not in a.run("ip", "link").stdout
    assert [f for f in a.listdir(IPAM) if f[0].isdigit()], "the held address's record went"
    networks["ctr-c"].delete("ctr-c", "/run/netns/ctr-c")
    gone = a.module("weft.overlay.host", {"state": "absent", "settings": SETTINGS})
    assert gone["changed"] and not a.exists(IPAM), gone
    assert not a.module("weft.overlay.host", {"state": "absent", "settings": SETTINGS})["changed"]


def sh_in(box, *cmd):
    proc = box.run(*cmd, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_a_cni_network_name_another_configuration_has_is_refused(two_boxes):
    a = two_boxes["node1"]
    a.run("mkdir", "-p", "/etc/cni/net.d")
    a.run("sh", "-c", "echo '{\"cniVersion\": \"1.0.0\", \"name\": \"weft\", \"plugins\": []}' "
          "> /etc/cni/net.d/87-podman.conflist")
    facts = a.module("weft.overlay.facts", {"iface": "eth0", "cni_name": "weft"})
    error = facts["ansible_facts"].get("weft_runtime_error", "")
    assert error.startswith("weft_cni_name: the CNI network 'weft' is already defined by "
                            "/etc/cni/net.d/87-podman.conflist"), facts
    assert "weft_runtime_error" not in a.module("weft.overlay.facts", {"iface": "eth0", "cni_name": "other"})[
        "ansible_facts"]
    bad = a.module("weft.overlay.host", host_args("node1", cni_name="no spaces"))
    assert bad["failed"] and "settings.cni_name: 'no spaces' is not a CNI network name" in bad["msg"]
    assert not a.exists(CONFLIST)
