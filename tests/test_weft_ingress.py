"""weft_ingress against real traffic: host B owns the table, host A is its peer, and a
stranger shares A's link. A UDP listener on B's port shows what gets through."""

import json
import os
import random
import struct
import subprocess
import time

import pytest

from conftest import NETNS_PREFIX, run_ansible_module, sh

PORT = 8472
PEER = {"ip": "10.9.0.1", "subnet": "100.96.1.0/24"}
PEER6 = {"ip": "fd09::1", "subnet": "fd00:96:0:1::/64"}
LISTENER = r"""
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)   # IPv4 too (IPV6_V6ONLY off)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", int(sys.argv[1])))
s.settimeout(float(sys.argv[2]))
n = 0
try:
    while True:
        s.recv(65535)
        n += 1
except socket.timeout:
    pass
print(n)
"""
SENDER = r"""
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
for line in sys.stdin:
    s.sendto(bytes.fromhex(line.strip()), (sys.argv[2], int(sys.argv[3])))
"""


def vxlan_frame(inner_src, inner_dst=None, ethertype=None):
    """VXLAN header (VNI 1), Ethernet, and an IPv4 or IPv6 header with the given addresses."""
    import ipaddress
    src = ipaddress.ip_address(inner_src)
    if src.version == 4:
        dst = ipaddress.ip_address(inner_dst or "100.96.2.5")
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, 17, 0, src.packed, dst.packed)
    else:
        dst = ipaddress.ip_address(inner_dst or "fd00:96:0:2::5")
        ip = struct.pack("!IHBB16s16s", 6 << 28, 8, 17, 64, src.packed, dst.packed)
    ethertype = ethertype or (0x0800 if src.version == 4 else 0x86DD)
    return (struct.pack("!II", 0x08000000, 1 << 8) + b"\x0e\x77\x64\x60\x02\x00"
            + b"\x0e\x77\x64\x60\x01\x00" + struct.pack("!H", ethertype) + ip + b"\0" * 8)


@pytest.fixture
def hosts():
    tag = "%s%d-in%d" % (NETNS_PREFIX, os.getpid(), random.randrange(1 << 20))
    a, b = tag + "-A", tag + "-B"
    try:
        for ns in (a, b):
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "set", "lo", "up", netns=ns)
        sh("ip", "link", "add", "eth0", "netns", a, "type", "veth", "peer", "name", "eth0", "netns", b)
        sh("ip", "addr", "add", "10.9.0.1/24", "dev", "eth0", netns=a)
        sh("ip", "addr", "add", "10.9.0.9/24", "dev", "eth0", netns=a)   # the stranger
        sh("ip", "addr", "add", "10.9.0.2/24", "dev", "eth0", netns=b)
        for ns, addresses in ((a, ("fd09::1/64", "fd09::9/64")), (b, ("fd09::2/64",))):
            for address in addresses:
                sh("ip", "addr", "add", address, "dev", "eth0", "nodad", netns=ns)
        for ns in (a, b):
            sh("ip", "link", "set", "eth0", "up", netns=ns)
        yield a, b
    finally:
        for ns in (a, b):
            sh("ip", "netns", "del", ns, check=False)


def run(ns, args, **kwargs):
    return run_ansible_module("weft.overlay.ingress", args, netns=ns, python="/usr/bin/python3", **kwargs)


def delivered(hosts, datagrams, port=PORT):
    """How many of [(source address, payload)] sent from A reach a listener on B (at
    10.9.0.2, or fd09::2 for IPv6 sources)."""
    a, b = hosts
    listener = subprocess.Popen(["ip", "netns", "exec", b, "/usr/bin/python3", "-c", LISTENER,
                                 str(port), "1.0"], stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    for src in sorted({s for s, _ in datagrams}):
        payloads = "".join(p.hex() + "\n" for s, p in datagrams if s == src)
        subprocess.run(["ip", "netns", "exec", a, "/usr/bin/python3", "-c", SENDER, src,
                        "fd09::2" if ":" in src else "10.9.0.2", str(port)], input=payloads,
                       text=True, check=True)
    return int(listener.communicate(timeout=30)[0])


def counters(ns):
    out = json.loads(sh("nft", "-j", "list", "counters", "table", "inet", "weft", netns=ns))
    return {item["counter"]["name"]: item["counter"]["packets"]
            for item in out["nftables"] if "counter" in item}


def test_only_peers_reach_the_port_and_drops_are_counted(hosts):
    a, b = hosts
    args = {"port": PORT, "inner": "vxlan", "peers": [PEER]}
    assert delivered(hosts, [("10.9.0.9", b"junk")]) == 1  # no protection yet: it arrives
    result = run(b, args)
    assert result["changed"] and result["peers"] == 1, result
    assert not run(b, args)["changed"]

    assert delivered(hosts, [("10.9.0.1", vxlan_frame("100.96.1.7"))] * 3) == 3
    assert delivered(hosts, [("10.9.0.9", vxlan_frame("100.96.1.7")), ("10.9.0.9", b""),
                             ("10.9.0.1", vxlan_frame("100.96.9.7")),
                             ("10.9.0.1", vxlan_frame("100.96.1.7", ethertype=0x0806))]) == 0
    assert counters(b) == {"not_a_peer": 2, "inner_source": 1, "inner_not_ipv4": 1,
                           "inner_not_ipv6": 0}
    # Another port is none of weft's business.
    assert delivered(hosts, [("10.9.0.9", b"other")], port=9999) == 1
    # No IPv6 peers: nothing from an IPv6 address gets in.
    assert delivered(hosts, [("fd09::1", vxlan_frame("fd00:96:0:1::7"))]) == 0
    assert counters(b)["not_a_peer"] == 3


def test_ipv6_peers_are_checked_like_ipv4_ones(hosts):
    """Dual-stack: the IPv6 underlay's peers, and the IPv6 frames inside their VXLAN."""
    a, b = hosts
    result = run(b, {"port": PORT, "inner": "vxlan", "peers": [PEER, PEER6]})
    assert result["changed"] and result["peers"] == 2, result
    good6, good4 = ("fd09::1", vxlan_frame("fd00:96:0:1::7")), ("10.9.0.1", vxlan_frame("100.96.1.7"))
    assert delivered(hosts, [good6, good6, good4]) == 3
    assert delivered(hosts, [("fd09::9", vxlan_frame("fd00:96:0:1::7")),      # a stranger
                             ("fd09::1", vxlan_frame("fd00:96:0:9::7")),      # another subnet
                             ("fd09::1", vxlan_frame("fd00:96:0:1::7", ethertype=0x0800)),
                             ("10.9.0.1", vxlan_frame("fd00:96:0:1::7"))]) == 0  # v6 inside v4
    assert counters(b) == {"not_a_peer": 1, "inner_source": 1, "inner_not_ipv4": 1,
                           "inner_not_ipv6": 1}
    again = run(b, {"port": PORT, "inner": "vxlan", "peers": [PEER, PEER6]})
    assert not again["failed"] and not again["changed"], again
    # A peer of one family is not one of the other.
    shrunk = run(b, {"port": PORT, "inner": "vxlan", "peers": [PEER]})
    assert shrunk["changed"] and not shrunk["failed"], shrunk
    assert delivered(hosts, [good6, good4]) == 1


def test_peer_changes_keep_the_counters_and_hand_edits_are_repaired(hosts):
    a, b = hosts
    args = {"port": PORT, "inner": "vxlan", "peers": [PEER]}
    run(b, args)
    delivered(hosts, [("10.9.0.9", b"x")])
    stranger = {"ip": "10.9.0.9", "subnet": "100.96.9.0/24"}
    grown = run(b, dict(args, peers=[PEER, stranger]), diff=True)
    assert grown["changed"] and "+peers4 10.9.0.9" in grown["stdout_text"]
    assert counters(b)["not_a_peer"] == 1  # the peer set changed, the table stayed
    assert delivered(hosts, [("10.9.0.9", vxlan_frame("100.96.9.7"))]) == 1
    assert run(b, args)["changed"]
    assert delivered(hosts, [("10.9.0.9", vxlan_frame("100.96.9.7"))]) == 0

    handle = [r["rule"]["handle"] for r in json.loads(sh("nft", "-j", "list", "chain", "inet", "weft",
                                                         "encapsulated", netns=b))["nftables"]
              if "rule" in r and r["rule"]["comment"].endswith("not_a_peer")][0]
    sh("nft", "delete", "rule", "inet", "weft", "encapsulated", "handle", str(handle), netns=b)
    assert run(b, args)["changed"] and not run(b, args)["changed"]
    assert delivered(hosts, [("10.9.0.9", b"x")]) == 0


def test_udp_backend_port_without_inner_check_check_mode_and_absent(hosts):
    a, b = hosts
    args = {"port": 8285, "peers": [{"ip": "10.9.0.1"}]}
    assert run(b, args, check=True)["changed"]
    assert "weft" not in sh("nft", "list", "tables", netns=b)
    run(b, args)
    assert delivered(hosts, [("10.9.0.1", b"anything"), ("10.9.0.9", b"x")], port=8285) == 1
    gone = run(b, {"state": "absent"})
    assert gone["changed"] and gone["dropped"]["not_a_peer"] == 1
    assert "weft" not in sh("nft", "list", "tables", netns=b)
    assert not run(b, {"state": "absent"})["changed"]


@pytest.mark.parametrize("args, message", [
    ({"port": 0}, "port: 0 is not a UDP port"),
    ({"port": PORT, "peers": [{"ip": "10.9.0.300"}]}, "peers[0].ip: '10.9.0.300' is not an IP address"),
    ({"port": PORT, "peers": [{"ip": "fd09::1", "subnet": "100.96.1.0/24"}]},
     "peers[0].subnet: 100.96.1.0/24 is not of the family of ip fd09::1"),
    ({"port": PORT, "peers": [{"ip": "10.9.0.1"}, {"ip": "10.9.0.1"}]}, "peers[1].ip: 10.9.0.1 is listed twice"),
    ({"port": PORT, "inner": "vxlan", "peers": [{"ip": "10.9.0.1"}]}, "peers[0].subnet: is required"),
    ({"port": PORT, "peers": [{"ip": "10.9.0.1", "subnet": "100.96.1.1/24"}]}, "peers[0].subnet: '100.96.1.1/24'"),
])
def test_bad_input_changes_nothing(hosts, args, message):
    result = run(hosts[1], args)
    assert result["failed"] and result["msg"].startswith(message), result["msg"]
    assert "weft" not in sh("nft", "list", "tables", netns=hosts[1])
