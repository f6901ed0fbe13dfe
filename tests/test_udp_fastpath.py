"""weft_udp_fastpath on the real kernel: two hosts (namespaces over a veth) with a TUN
device and a container each, and no weft-udpd running, so that whatever reaches the other
container went through the kernel programs, and whatever they leave to the daemon is
seen going into the TUN device (where nobody reads it)."""

import json
import os
import random
import socket
import struct
import subprocess
import sys
import time

import pytest

from weft.daemon.packets import checksum
from conftest import NETNS_PREFIX, run_ansible_module, sh

LAB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lab")
PORT = 8285
ADDRESS = {1: "10.9.0.1", 2: "10.9.0.2"}
SUBNET = {1: "100.96.1.0/24", 2: "100.96.2.0/24"}
STRANGER = "10.9.0.9"           # an address on A's link that is no peer
COUNTERS = """
import json, sys
sys.path.insert(0, sys.argv[1])
import weftcode  # noqa: F401
from weft.net import netlink, udp_fastpath
print(json.dumps(udp_fastpath.counters(netlink.Kernel())))
"""
SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
s.sendto(bytes.fromhex(sys.argv[2]), (sys.argv[3], int(sys.argv[4])))
"""


@pytest.fixture
def lab():
    tag = "%s%d-fp%d" % (NETNS_PREFIX, os.getpid(), random.randrange(1 << 20))
    names = {key: "%s-%s" % (tag, key) for key in ("h1", "h2", "c1", "c2")}
    try:
        for ns in names.values():
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "set", "lo", "up", netns=ns)
        sh("ip", "link", "add", "eth0", "netns", names["h1"], "type", "veth", "peer", "name",
           "eth0", "netns", names["h2"])
        for n in (1, 2):
            host, container = names["h%d" % n], names["c%d" % n]
            sh("ip", "netns", "exec", host, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            sh("ip", "addr", "add", ADDRESS[n] + "/24", "dev", "eth0", netns=host)
            sh("ip", "link", "set", "eth0", "up", netns=host)
            sh("ip", "tuntap", "add", "flannel0", "mode", "tun", netns=host)
            sh("ip", "addr", "add", "100.96.%d.0/32" % n, "dev", "flannel0", netns=host)
            sh("ip", "link", "set", "flannel0", "mtu", "1472", "up", netns=host)
            sh("ip", "route", "add", "100.96.0.0/16", "dev", "flannel0", netns=host)
            sh("ip", "link", "add", "veth0", "netns", host, "type", "veth", "peer", "name",
               "eth0", "netns", container)
            sh("ip", "addr", "add", "100.96.%d.1/24" % n, "dev", "veth0", netns=host)
            sh("ip", "link", "set", "veth0", "up", netns=host)
            sh("ip", "addr", "add", "100.96.%d.2/24" % n, "dev", "eth0", netns=container)
            sh("ip", "link", "set", "eth0", "up", netns=container)
            sh("ip", "route", "add", "default", "via", "100.96.%d.1" % n, netns=container)
        sh("ip", "addr", "add", STRANGER + "/24", "dev", "eth0", netns=names["h1"])
        # The underlay's neighbours resolved both ways, as the daemon's sends leave them.
        sh("ip", "netns", "exec", names["h1"], "ping", "-c1", "-W2", ADDRESS[2])
        sh("ip", "netns", "exec", names["h2"], "ping", "-c1", "-W2", ADDRESS[1])
        yield names
    finally:
        for ns in names.values():
            sh("ip", "netns", "del", ns, check=False)


def args(n, **extra):
    other = 3 - n
    return dict(dict(name="flannel0", underlay="eth0", address=ADDRESS[n], subnet=SUBNET[n],
                     peers=[{"ip": ADDRESS[other], "subnet": SUBNET[other]}]), **extra)


def attach(lab, n, python=None, **extra):
    return run_ansible_module("weft.overlay.udp_fastpath", args(n, **extra), netns=lab["h%d" % n],
                              python=python)


def pings(lab, n, to, count=3, ttl=64):
    proc = subprocess.run(["ip", "netns", "exec", lab["c%d" % n], "ping", "-c", str(count),
                           "-i", "0.2", "-W", "1", "-t", str(ttl), to], capture_output=True)
    return proc.returncode == 0


def counters(ns):
    return json.loads(sh("ip", "netns", "exec", ns, sys.executable, "-c", COUNTERS, LAB))


def tun_tx(ns):
    """Packets that went into the TUN device (for the daemon; none reads it here)."""
    stats = json.loads(sh("ip", "-s", "-j", "link", "show", "flannel0", netns=ns))[0]["stats64"]["tx"]
    return stats["packets"] + stats["dropped"]


def filters(ns, dev, hook):
    return sh("tc", "filter", "show", "dev", dev, hook, netns=ns)


def datagram(inner_source, inner_destination="100.96.2.2", ttl=64):
    """What a udp peer sends: an ICMP echo request in a UDP payload, header checksum right."""
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0x4000, ttl, 1, 0,
                         socket.inet_aton(inner_source), socket.inet_aton(inner_destination))
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + \
        bytes.fromhex("0800f7ff00000000")


def send(lab, source, payload, port=PORT):
    sh("ip", "netns", "exec", lab["h1"], "python3", "-c", SEND, source, payload.hex(),
       ADDRESS[2], str(port))
    time.sleep(0.2)


def test_containers_reach_each_other_through_the_kernel_alone(lab, host_python):
    assert not pings(lab, 1, "100.96.2.2", count=1)     # no daemon: nothing carries it
    for n in (1, 2):
        first = attach(lab, n, python=host_python)
        assert first["changed"] and not first.get("warnings"), first
        assert not attach(lab, n, python=host_python)["changed"]
    assert "weft-udp-encap-" in filters(lab["h1"], "flannel0", "egress")
    assert "weft-udp-decap-" in filters(lab["h2"], "eth0", "ingress")
    assert pings(lab, 1, "100.96.2.2", count=5)
    assert counters(lab["h1"]) == {"sent": 5, "received": 5}
    assert counters(lab["h2"]) == {"sent": 5, "received": 5}


def test_what_the_daemon_must_answer_goes_to_the_tun_device(lab):
    for n in (1, 2):
        attach(lab, n)
    before = tun_tx(lab["h1"])
    # TTL 1 once forwarded by host 1: the daemon answers it (ICMP time exceeded).
    assert not pings(lab, 1, "100.96.2.2", count=1, ttl=2)
    # No peer for that subnet: the daemon answers (ICMP unreachable).
    assert not pings(lab, 1, "100.96.7.2", count=1)
    assert tun_tx(lab["h1"]) == before + 2
    # The next hop not resolved: the daemon's send would resolve it.
    sh("ip", "neigh", "flush", "dev", "eth0", netns=lab["h1"])
    assert not pings(lab, 1, "100.96.2.2", count=1)
    assert tun_tx(lab["h1"]) == before + 3
    assert counters(lab["h1"])["sent"] == 0
    sh("ip", "netns", "exec", lab["h1"], "ping", "-c1", "-W2", ADDRESS[2])   # as the daemon's send
    assert pings(lab, 1, "100.96.2.2", count=1)
    # A peer whose packets the daemon sends (a Flannel host): left to it.
    attach(lab, 1, peers=[{"ip": ADDRESS[2], "subnet": SUBNET[2], "send": False}])
    assert not pings(lab, 1, "100.96.2.2", count=1)
    assert counters(lab["h1"])["sent"] == 1, "the counters survive a new attach"


def test_only_what_the_daemon_would_admit_is_taken_in(lab):
    attach(lab, 2)
    good = datagram("100.96.1.2")
    send(lab, ADDRESS[1], good)
    assert counters(lab["h2"])["received"] == 1
    for source, payload, port in (
            (ADDRESS[1], datagram("100.96.7.9"), PORT),        # inner source not the peer's
            (STRANGER, good, PORT),                           # not a peer
            (ADDRESS[1], datagram("100.96.1.2", "100.96.3.2"), PORT),   # not to our subnet
            (ADDRESS[1], datagram("100.96.1.2", ttl=1), PORT),          # TTL running out
            (ADDRESS[1], good[:-1], PORT),                    # lengths that disagree
            (ADDRESS[1], good[:10] + b"\0\0" + good[12:], PORT),        # bad header checksum
            (ADDRESS[1], good, PORT + 1)):                    # another port
        send(lab, source, payload, port)
        assert counters(lab["h2"])["received"] == 1, (source, payload.hex(), port)
    send(lab, ADDRESS[1], good)
    assert counters(lab["h2"])["received"] == 2


def test_check_mode_diff_and_absent_leave_others_alone(lab):
    result = run_ansible_module("weft.overlay.udp_fastpath", args(1), netns=lab["h1"], check=True,
                                diff=True)
    assert result["changed"] and "+flannel0 egress weft-udp-encap-" in result["stdout_text"], result
    assert "weft-udp" not in filters(lab["h1"], "flannel0", "egress")
    assert attach(lab, 1)["changed"]
    # Another's filter on the underlay (classic BPF: accept everything).
    sh("tc", "filter", "add", "dev", "eth0", "ingress", "pref", "7", "bpf", "bytecode",
       "1,6 0 0 4294967295,", netns=lab["h1"])
    changed = attach(lab, 1, peers=[{"ip": ADDRESS[2], "subnet": "100.96.2.0/23"}])
    assert changed["changed"]
    assert filters(lab["h1"], "eth0", "ingress").count("weft-udp-decap-") == 1
    absent = run_ansible_module("weft.overlay.udp_fastpath", {"name": "flannel0", "state": "absent"},
                                netns=lab["h1"], diff=True)
    assert absent["changed"] and "-eth0 ingress weft-udp-decap-" in absent["stdout_text"], absent
    assert "weft-udp" not in filters(lab["h1"], "eth0", "ingress") + \
        filters(lab["h1"], "flannel0", "egress")
    assert "pref 7 bpf" in filters(lab["h1"], "eth0", "ingress")
    assert "clsact" not in sh("tc", "qdisc", "show", "dev", "flannel0", netns=lab["h1"])
    assert not run_ansible_module("weft.overlay.udp_fastpath", {"name": "flannel0", "state": "absent"},
                                  netns=lab["h1"])["changed"]


@pytest.mark.parametrize("bad, message", [
    ({"peers": [{"ip": "nonsense", "subnet": "100.96.2.0/24"}]}, "peers[0].ip"),
    ({"peers": [{"ip": "fd09::2", "subnet": "100.96.2.0/24"}]}, "peers[0]: the udp backend"),
    ({"subnet": "100.96.1.7/24"}, "subnet:"),
    ({"underlay": "eth9"}, "underlay: no device named eth9"),
    ({"name": "flannel9"}, "name: no device named flannel9"),
    ({"port": 0}, "port"),
])
def test_bad_input_attaches_nothing(lab, bad, message):
    result = attach(lab, 1, **bad)
    assert result["failed"] and message in result["msg"], result
    assert "weft-udp" not in filters(lab["h1"], "eth0", "ingress")
