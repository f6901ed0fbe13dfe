"""weft_host converges a whole host from the plan, in a sandbox host (tests/sandbox.py):
every backend, switches between them, check mode, a failing step, the record and the code
weft-restore rebuilds the host with, and uninstall."""

import json
import os
import re

import pytest

from conftest import sh
from ansible_collections.weft.overlay.tests.unit.plans import numbered_plan
from sandbox import Sandbox, kernel_view

IDENTITY = {"name": "node1", "iface": "u0", "public_ip": "10.9.0.1", "underlay": "10.9.0.0/24",
            "mtu": 1500}
RESTORE = "/usr/local/lib/weft/weft-restore"


def plan(backend="vxlan", hosts=3, **extra):
    return numbered_plan(backend, hosts, encoded=True, **extra)


def args(backend="vxlan", settings=None, **extra):
    return {"plan": plan(backend, **extra), "host": IDENTITY, "settings": settings or {}}


@pytest.fixture
def box(netns):
    sandbox = Sandbox(netns)
    yield sandbox
    sandbox.remove()


def converged(box, backend="vxlan", **kwargs):
    result = box.module("weft.overlay.host", args(backend, **kwargs))
    assert not result["failed"] and result["changed"], result
    return result


def test_vxlan_host_converges_records_itself_and_is_idempotent(box):
    result = box.module("weft.overlay.host", args(), diff=True)
    assert result["changed"] and not result["failed"], result
    view = kernel_view(box.netns)
    assert view["routes"] == ["100.96.2.0/24 via 100.96.2.0 dev flannel.1 onlink",
                              "100.96.3.0/24 via 100.96.3.0 dev flannel.1 onlink"]
    assert view["fdb"][0].startswith("0e:77:64:60:02:00 dst 10.9.0.2 self permanent")
    assert view["neigh"] == ["100.96.2.0 lladdr 0e:77:64:60:02:00 PERMANENT",
                             "100.96.3.0 lladdr 0e:77:64:60:03:00 PERMANENT"]
    assert view["nft"] and len(view["chains"]) == 10
    assert box.read("/run/flannel/subnet.env") == ("FLANNEL_NETWORK=100.96.0.0/16\n"
                                                   "FLANNEL_SUBNET=100.96.1.1/24\nFLANNEL_MTU=1450\n"
                                                   "FLANNEL_IPMASQ=true\n")
    assert json.loads(box.read("/etc/docker/daemon.json")) == {"bip": "100.96.1.1/24", "mtu": 1450,
                                                               "ip-masq": False}
    record = json.loads(box.read("/etc/weft/host.json"))
    assert record["identity"] == dict(IDENTITY, public_ipv6=None, underlay6=None, iface_ip=None,
                                      iface_ipv6=None)
    assert sorted(record["plan"]["hosts"]) == ["node1", "node2", "node3"]
    assert record["settings"]["heal_interval"] == 60
    # The code that ran is installed for weft-restore, byte for byte.
    source = "plugins/module_utils/weft/net/routes.py"
    assert box.read("/usr/local/lib/weft/module_utils/weft/net/routes.py") == \
        open(os.path.join(os.path.dirname(os.path.dirname(__file__)), source)).read()
    assert box.readlink("/etc/systemd/system/multi-user.target.wants/weft-heal.service") \
        == "/etc/systemd/system/weft-heal.service"
    assert "--watch 60" in box.read("/etc/systemd/system/weft-heal.service")
    assert box.systemctl() == ["daemon-reload", "start weft-heal", "try-restart docker.service"]
    assert "+100.96.2.0/24 via 100.96.2.0 dev flannel.1 onlink" in result["stdout_text"]

    again = box.module("weft.overlay.host", args(), verbose=True)
    # The plan goes to every host; it is not sent back from every host.
    assert args()["plan"] not in again["stdout_text"]
    assert '"plan": "(%d characters)"' % len(args()["plan"]) in again["stdout_text"]
    assert not again["changed"] and again["files_changed"] == [] and again["services"] == [], again
    assert box.systemctl() == []


def test_check_mode_on_a_fresh_host_changes_nothing_and_reports_everything(box):
    result = box.module("weft.overlay.host", args("udp"), check=True, diff=True)
    assert result["changed"] and not result["failed"], result
    assert [s["core"] for s in result["steps"] if s["changed"]] == \
        ["tun", "udp_fastpath", "routes", "iptables", "iptables", "ingress", "docker"]
    assert "start weft-udpd" in result["services"] and "user weft-udpd" in result["files_changed"]
    assert "flannel0" not in sh("ip", "link", netns=box.netns)
    assert not box.exists("/etc/weft") and not box.exists("/usr/local/lib/weft")
    assert box.systemctl() == []


def test_switching_backends_leaves_nothing_of_the_old_one(box):
    converged(box, "vxlan")
    box.systemctl()
    udp = converged(box, "udp")
    links = sh("ip", "-d", "link", netns=box.netns)
    assert "flannel.1" not in links and "tun type tun pi off" in links
    uid = [line.split(":")[2] for line in box.read("/etc/passwd").splitlines()
           if line.startswith("weft-udpd:")][0]
    assert "user %s " % uid in links.split("flannel0")[1].split("\n")[2]  # owned by the daemon
    assert json.loads(box.read("/etc/weft/udpd.json"))["peers"] == [
        {"ip": "10.9.0.2", "port": 8285, "subnet": "100.96.2.0/24", "weft": True},
        {"ip": "10.9.0.3", "port": 8285, "subnet": "100.96.3.0/24", "weft": True}]
    assert "User=weft-udpd" in box.read("/etc/systemd/system/weft-udpd.service")
    assert box.systemctl() == ["daemon-reload", "start weft-udpd", "try-restart docker.service"]
    assert "user weft-udpd" in udp["files_changed"] and "mode 0666 /dev/net/tun" in udp["files_changed"]
    assert kernel_view(box.netns)["routes"] == ["100.96.0.0/16 dev flannel0 scope link linkdown"]  # no daemon here
    # The kernel fast path in front of the daemon; weft-restore puts a removed program back.
    assert "weft-udp-encap-" in sh("tc", "filter", "show", "dev", "flannel0", "egress", netns=box.netns)
    decap = sh("tc", "filter", "show", "dev", "u0", "ingress", netns=box.netns)
    assert "weft-udp-decap-" in decap
    sh("tc", "filter", "del", "dev", "u0", "ingress", netns=box.netns)
    assert "weft-udp-decap-" not in sh("tc", "filter", "show", "dev", "u0", "ingress", netns=box.netns)
    assert "weft-restore: repaired udp" in box.run("/usr/bin/python3", RESTORE).stdout
    assert re.sub(r" id \d+", "", sh("tc", "filter", "show", "dev", "u0", "ingress",
                                     netns=box.netns)) == re.sub(r" id \d+", "", decap)
    assert not box.module("weft.overlay.host", args("udp"))["changed"]

    hostgw = converged(box, "host-gw")
    assert "flannel0" not in sh("ip", "link", netns=box.netns)
    assert "clsact" not in sh("tc", "qdisc", "show", "dev", "u0", netns=box.netns)
    assert not box.exists("/etc/weft/udpd.json") and not box.exists("/etc/systemd/system/weft-udpd.service")
    assert "weft-udpd" not in box.read("/etc/passwd")
    assert box.systemctl()[0] == "stop weft-udpd"
    view = kernel_view(box.netns)
    assert view["routes"] == ["100.96.2.0/24 via 10.9.0.2 dev u0", "100.96.3.0/24 via 10.9.0.3 dev u0"]
    assert not view["nft"]  # host-gw has no encapsulation port to guard
    assert "host-gw" == hostgw["backend"]


def test_a_new_vni_removes_the_old_device_and_heal_off_removes_its_unit(box):
    converged(box, "vxlan")
    converged(box, "vxlan", VNI=7, settings={"heal_interval": 0})
    links = sh("ip", "link", netns=box.netns)
    assert "flannel.7" in links and "flannel.1" not in links
    assert not box.exists("/etc/systemd/system/weft-heal.service")
    assert "stop weft-heal" in box.systemctl()


def test_a_failing_step_is_named_and_writes_no_file(box):
    result = box.module("weft.overlay.host", dict(args(), host=dict(IDENTITY, iface="nosuch0")))
    assert result["failed"] and result["msg"].startswith("vxlan: dev: no underlay device named nosuch0"), result
    assert not box.exists("/etc/weft/host.json") and not box.exists("/run/flannel/subnet.env")


@pytest.mark.parametrize("change, message", [
    ({"plan": "not a plan"}, "plan: not a plan made by weft.overlay.plan"),
    ({"host": dict(IDENTITY, name="node9")}, "host: node9 has no lease in the plan"),
    ({"settings": {"tun_device": "a/b"}}, "settings.tun_device: 'a/b' is not a valid interface name"),
    ({"settings": {"route_protocol": 300}}, "settings.route_protocol: 300 is out of range"),
    ({"settings": {"heal_interval": "often"}}, "heal_interval"),
])
def test_bad_input_changes_nothing(box, change, message):
    result = box.module("weft.overlay.host", dict(args(), **change))
    assert result["failed"] and message in result["msg"], result["msg"]
    assert "flannel" not in sh("ip", "link", netns=box.netns) and not box.exists("/etc/weft")


def test_weft_restore_rebuilds_the_host_from_the_record(box):
    converged(box, "vxlan")
    box.systemctl()
    expected = kernel_view(box.netns)
    # A reboot: the kernel state and /run are gone; /etc and /usr/local stay.
    sh("ip", "link", "del", "flannel.1", netns=box.netns)
    sh("nft", "flush", "ruleset", netns=box.netns)  # weft's table and the iptables chains
    box.unlink("/run/flannel/subnet.env")
    assert kernel_view(box.netns) != expected
    # The distribution's python and ansible-core, with the code the converge installed.
    out = box.run("/usr/bin/python3", RESTORE)
    assert "weft-restore: repaired vxlan" in out.stdout
    assert kernel_view(box.netns) == expected
    assert box.read("/run/flannel/subnet.env").startswith("FLANNEL_NETWORK=100.96.0.0/16")
    assert box.systemctl() == []  # at boot, systemd starts the units itself


def test_uninstall_removes_everything_weft_put_there(box):
    sh("ip", "route", "add", "198.51.100.0/24", "via", "10.9.0.2", "proto", "static", netns=box.netns)
    converged(box, "udp")
    box.systemctl()
    result = box.module("weft.overlay.host", {"state": "absent"})
    assert result["changed"] and not result["failed"], result
    links = sh("ip", "link", netns=box.netns)
    assert "flannel" not in links
    assert "clsact" not in sh("tc", "qdisc", "show", "dev", "u0", netns=box.netns)
    view = kernel_view(box.netns)
    assert view == {"routes": [], "nft": False, "chains": []}
    assert "198.51.100.0/24 via 10.9.0.2" in sh("ip", "route", netns=box.netns)  # not weft's
    for path in ("/etc/weft", "/usr/local/lib/weft", "/run/flannel/subnet.env",
                 "/etc/systemd/system/weft-udpd.service", "/etc/systemd/system/weft-heal.service",
                 "/etc/systemd/system/weft-restore.service", "/etc/sysctl.d/60-weft.conf",
                 "/etc/docker/daemon.json"):
        assert not box.exists(path), path
    assert "weft-udpd" not in (box.read("/etc/passwd") or "")
    calls = box.systemctl()
    assert calls[:2] == ["stop weft-heal", "stop weft-udpd"] and "daemon-reload" in calls
    again = box.module("weft.overlay.host", {"state": "absent"})
    assert not again["changed"], again


def dual_stack_args(backend="vxlan"):
    from weft.lease import encode_plan
    from ansible_collections.weft.overlay.tests.unit.plans import sample_plan
    hosts = [dict(name="node%d" % i, public_ip="10.9.0.%d" % i, subnet="100.96.%d.0/24" % i,
                  public_ipv6="fd09::%d" % i, subnet6="fd00:96:0:%d::/64" % i) for i in (1, 2, 3)]
    plan6 = encode_plan(sample_plan(backend, hosts, ipv6_network="fd00:96::/48"))
    return {"plan": plan6, "host": dict(IDENTITY, public_ipv6="fd09::1", underlay6="fd09::/64"),
            "settings": {}}


def test_a_dual_stack_host_gets_both_families_and_loses_the_ipv6_one_when_it_goes(box):
    sh("ip", "addr", "add", "fd09::1/64", "dev", "u0", "nodad", netns=box.netns)
    sh("ip", "link", "set", "lo", "up", netns=box.netns)
    result = box.module("weft.overlay.host", dual_stack_args())
    assert result["changed"] and not result["failed"], result
    links = sh("ip", "-d", "link", "show", "flannel-v6.1", netns=box.netns)
    assert "vxlan id 1 local fd09::1 dev u0" in links and "mtu 1430" in links
    routes6 = sh("ip", "-6", "route", "show", "proto", "119", netns=box.netns)
    assert "fd00:96:0:2::/64 via fd00:96:0:2:: dev flannel-v6.1" in routes6
    assert "0e:78:00:00:00:03 dst fd09::3 self permanent" in \
        sh("bridge", "fdb", "show", "dev", "flannel-v6.1", netns=box.netns)
    assert "fd00:96:0:2:: lladdr 0e:78:00:00:00:02 PERMANENT" in \
        sh("ip", "-6", "neigh", "show", "dev", "flannel-v6.1", netns=box.netns)
    rules6 = sh("ip6tables-save", netns=box.netns)
    assert "-A WEFT-FWD -s fd00:96::/48" in rules6 and "-A POSTROUTING -j WEFT-POSTRTG" in rules6
    assert "fd09::2" in kernel_view(box.netns)["nft"]
    assert sh("sysctl", "-n", "net.ipv6.conf.all.forwarding", netns=box.netns).strip() == "1"
    daemon = json.loads(box.read("/etc/docker/daemon.json"))
    assert (daemon["ipv6"], daemon["fixed-cidr-v6"], daemon["mtu"]) == (True, "fd00:96:0:1::/64", 1430)
    assert "FLANNEL_IPV6_SUBNET=fd00:96:0:1::1/64\n" in box.read("/run/flannel/subnet.env")
    again = box.module("weft.overlay.host", dual_stack_args())
    assert not again["changed"], again
    # IPv6 off: the IPv6 VTEP, routes, chains and Docker's IPv6 keys go; IPv4 stays.
    v4 = box.module("weft.overlay.host", args())
    assert v4["changed"] and not v4["failed"], v4
    assert "flannel-v6.1" not in sh("ip", "link", netns=box.netns)
    assert sh("ip", "-6", "route", "show", "proto", "119", netns=box.netns) == ""
    assert "WEFT" not in sh("ip6tables-save", netns=box.netns)
    assert "ipv6" not in json.loads(box.read("/etc/docker/daemon.json"))
    assert "flannel.1" in sh("ip", "link", netns=box.netns)


def ipv6_only_args(backend="vxlan"):
    from weft.lease import encode_plan
    from ansible_collections.weft.overlay.tests.unit.plans import sample_plan
    hosts = [dict(name="node%d" % i, public_ipv6="fd09::%d" % i) for i in (1, 2, 3)]
    plan6 = encode_plan(sample_plan(backend, hosts, network=None, ipv6_network="fd00:96::/48"))
    return {"plan": plan6, "settings": {},
            "host": dict(IDENTITY, public_ip=None, underlay=None, public_ipv6="fd09::1",
                         underlay6="fd09::/64")}


def test_an_ipv6_only_host_gets_the_ipv6_side_alone_and_docker_keeps_its_ipv4(box):
    sh("ip", "addr", "add", "fd09::1/64", "dev", "u0", "nodad", netns=box.netns)
    sh("ip", "link", "set", "lo", "up", netns=box.netns)
    box.run("sh", "-c", "mkdir -p /etc/docker && echo '{\"bip\": \"172.18.0.1/16\", "
            "\"log-level\": \"warn\"}' > /etc/docker/daemon.json")
    result = box.module("weft.overlay.host", ipv6_only_args())
    assert result["changed"] and not result["failed"], result
    links = sh("ip", "-d", "link", "show", netns=box.netns)
    assert "flannel-v6.1" in links and "flannel.1" not in links
    assert "fd00:96:0:3::/64 via fd00:96:0:3:: dev flannel-v6.1" in \
        sh("ip", "-6", "route", "show", "proto", "119", netns=box.netns)
    assert sh("ip", "-4", "route", "show", "proto", "119", netns=box.netns) == ""
    assert "WEFT" not in sh("iptables-save", netns=box.netns)
    assert "-A WEFT-FWD -s fd00:96::/48" in sh("ip6tables-save", netns=box.netns)
    nft = kernel_view(box.netns)["nft"]
    assert "fd09::2" in nft and "10.9.0.2" not in nft
    daemon = json.loads(box.read("/etc/docker/daemon.json"))
    assert daemon == {"bip": "172.18.0.1/16", "log-level": "warn", "mtu": 1430, "ipv6": True,
                      "fixed-cidr-v6": "fd00:96:0:1::/64"}, daemon  # Docker's IPv4 side its own
    assert box.read("/run/flannel/subnet.env").startswith("FLANNEL_IPV6_NETWORK=fd00:96::/48\n")
    again = box.module("weft.overlay.host", ipv6_only_args())
    assert not again["changed"], again
    # Uninstall: nothing of the IPv6 side is left; daemon.json as it was.
    gone = box.module("weft.overlay.host", {"state": "absent"})
    assert gone["changed"] and not gone["failed"], gone
    assert "flannel-v6.1" not in sh("ip", "link", netns=box.netns)
    assert sh("ip", "-6", "route", "show", "proto", "119", netns=box.netns) == ""
    assert "WEFT" not in sh("ip6tables-save", netns=box.netns)
    assert json.loads(box.read("/etc/docker/daemon.json")) == {"bip": "172.18.0.1/16",
                                                               "log-level": "warn"}


def test_a_network_gone_ipv6_only_gives_docker0_its_own_address_back(box):
    sh("ip", "addr", "add", "fd09::1/64", "dev", "u0", "nodad", netns=box.netns)
    v4 = box.module("weft.overlay.host", args())
    assert json.loads(box.read("/etc/docker/daemon.json"))["bip"] == "100.96.1.1/24", v4
    only6 = box.module("weft.overlay.host", ipv6_only_args())
    assert only6["changed"] and not only6["failed"], only6
    # dockerd would keep weft's subnet without a bip: the one before weft (none: Docker's own).
    assert json.loads(box.read("/etc/docker/daemon.json")) == {
        "bip": "172.17.0.1/16", "mtu": 1430, "ipv6": True, "fixed-cidr-v6": "fd00:96:0:1::/64"}
    assert "flannel.1" not in sh("ip", "link", netns=box.netns)
    assert not box.module("weft.overlay.host", ipv6_only_args())["changed"]
    assert box.module("weft.overlay.host", {"state": "absent"})["changed"]
    assert not box.exists("/etc/docker/daemon.json")  # weft made it: it goes
