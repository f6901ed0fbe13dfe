"""weft-udpd: packet logic (unit, property and fuzz tests) and real forwarding between namespaces."""

import importlib.util
import ipaddress
import json
import os
import signal
import struct
import subprocess
import time

import pytest
from hypothesis import given, settings, strategies as st

from conftest import NETNS_PREFIX, ROOT, sh

DAEMON = os.path.join(ROOT, "roles", "weft", "files", "weft-udpd.py")
spec = importlib.util.spec_from_file_location("weft_udpd", DAEMON)
udpd = importlib.util.module_from_spec(spec)
spec.loader.exec_module(udpd)

CONFIG = {"tun": "flannel0", "listen": "10.9.0.1", "port": 8285, "network": "100.96.0.0/16",
          "subnet": "100.96.1.0/24",
          "peers": [{"subnet": "100.96.2.0/24", "ip": "10.9.0.2"},
                    {"subnet": "100.96.2.128/25", "ip": "10.9.0.3", "port": 9000}]}


def ipv4(src, dst, ttl=64, proto=17, payload=b"x" * 12, frag=0):
    header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 7, frag, ttl,
                                   proto, 0, ipaddress.ip_address(src).packed,
                                   ipaddress.ip_address(dst).packed))
    struct.pack_into("!H", header, 10, udpd.checksum(bytes(header)))
    return bytearray(header + payload)


# ---- pure logic ----------------------------------------------------------------------

@settings(max_examples=500)
@given(st.binary(min_size=20, max_size=20), st.integers(2, 255))
def test_incremental_ttl_update_matches_a_full_checksum(raw, ttl):
    header = bytearray(raw)
    header[0], header[8], header[10], header[11] = 0x45, ttl, 0, 0
    struct.pack_into("!H", header, 10, udpd.checksum(bytes(header)))
    udpd.decrement_ttl(header)
    assert header[8] == ttl - 1
    assert udpd.checksum(bytes(header)) == 0  # a correct header sums to 0xffff


def test_longest_prefix_match_and_ttl():
    router = udpd.Router(CONFIG)
    verdict = router.from_tun(ipv4("100.96.1.2", "100.96.2.200"))
    assert verdict[:2] == ("send", ("10.9.0.3", 9000))
    verdict = router.from_tun(ipv4("100.96.1.2", "100.96.2.5", ttl=9))
    assert verdict[:2] == ("send", ("10.9.0.2", 8285)) and verdict[2][8] == 8
    assert udpd.checksum(bytes(verdict[2][:20])) == 0


@pytest.mark.parametrize("packet, icmp_type", [
    (ipv4("100.96.1.2", "100.96.9.9"), 3),       # no peer holds it: net unreachable
    (ipv4("100.96.1.2", "100.96.2.5", ttl=1), 11),  # TTL exceeded
])
def test_icmp_errors_go_back_into_the_tun_device(packet, icmp_type):
    kind, reply = udpd.Router(CONFIG).from_tun(packet)
    assert kind == "tun"
    assert reply[9] == 1 and reply[12:16] == packet[16:20] and reply[16:20] == packet[12:16]
    assert udpd.checksum(reply[:20]) == 0 and udpd.checksum(reply[20:]) == 0
    assert reply[20] == icmp_type and reply[28:48] == packet[:20]


@pytest.mark.parametrize("packet", [
    ipv4("100.96.1.2", "100.96.9.9", proto=1, payload=bytes([3, 0]) + b"\0" * 10),  # ICMP error
    ipv4("100.96.1.2", "100.96.9.9", frag=100),                                    # later fragment
    ipv4("0.0.0.0", "100.96.9.9"),                                                 # no source
])
def test_no_icmp_error_where_rfc1812_forbids_one(packet):
    assert udpd.Router(CONFIG).from_tun(packet)[0] == "drop"


@pytest.mark.parametrize("packet, sender, reason", [
    (ipv4("100.96.2.5", "100.96.1.2"), "10.9.0.99", "unknown_sender"),
    (ipv4("100.96.7.5", "100.96.1.2"), "10.9.0.2", "spoofed_source"),
    (ipv4("100.96.2.5", "100.96.3.2"), "10.9.0.2", "not_for_us"),
    (ipv4("100.96.2.5", "100.96.1.2", ttl=1), "10.9.0.2", "ttl"),
    (ipv4("100.96.2.5", "100.96.1.2")[:30], "10.9.0.2", "malformed"),
    (bytearray(b"\x60" + b"\0" * 39), "10.9.0.2", "not_ipv4"),
])
def test_udp_side_drops_with_a_reason(packet, sender, reason):
    assert udpd.Router(CONFIG).from_udp(packet, sender) == ("drop", reason)


def test_udp_side_accepts_a_peer_packet():
    kind, packet = udpd.Router(CONFIG).from_udp(ipv4("100.96.2.5", "100.96.1.2"), "10.9.0.2")
    assert kind == "tun" and packet[8] == 63


@settings(max_examples=2000)
@given(st.binary(max_size=200), st.sampled_from(["10.9.0.2", "10.9.0.3", "10.1.1.1"]))
def test_random_input_never_raises(data, sender):
    router = udpd.Router(CONFIG)
    assert router.from_tun(bytearray(data))[0] in ("send", "tun", "drop")
    assert router.from_udp(bytearray(data), sender)[0] in ("tun", "drop")


@settings(max_examples=1000)
@given(st.integers(0, 255), st.integers(0, 255), st.integers(0, 0xFFFF), st.binary(max_size=60))
def test_mutated_headers_never_raise(first, ttl, total, payload):
    packet = ipv4("100.96.1.2", "100.96.2.5", payload=payload)
    packet[0], packet[8] = first, ttl
    struct.pack_into("!H", packet, 2, total)
    router = udpd.Router(CONFIG)
    router.from_tun(bytearray(packet))
    router.from_udp(bytearray(packet), "10.9.0.2")


# ---- real forwarding between two namespaces ----------------------------------------------

@pytest.fixture
def udp_pair(tmp_path):
    """Hosts A (10.9.0.1, 100.96.1.0/24) and B (10.9.0.2, 100.96.2.0/24) on one veth, each
    with flannel0 and a daemon. Yields (namespaces, configs, processes)."""
    tag = "%s%d-udp" % (NETNS_PREFIX, os.getpid())
    names = {"A": tag + "-A", "B": tag + "-B"}
    procs, configs = {}, {}
    try:
        for ns in names.values():
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "set", "lo", "up", netns=ns)
        sh("ip", "link", "add", "eth0", "netns", names["A"], "type", "veth",
           "peer", "name", "eth0", "netns", names["B"])
        for i, (h, ns) in enumerate(sorted(names.items()), start=1):
            other = 3 - i
            sh("ip", "addr", "add", "10.9.0.%d/24" % i, "dev", "eth0", netns=ns)
            sh("ip", "link", "set", "eth0", "up", netns=ns)
            sh("ip", "tuntap", "add", "mode", "tun", "name", "flannel0", netns=ns)
            sh("ip", "addr", "add", "100.96.%d.0/32" % i, "dev", "flannel0", netns=ns)
            sh("ip", "link", "set", "flannel0", "up", "mtu", "1472", netns=ns)
            sh("ip", "route", "add", "100.96.0.0/16", "dev", "flannel0", "src",
               "100.96.%d.0" % i, netns=ns)
            configs[h] = tmp_path / ("%s.json" % h)
            configs[h].write_text(json.dumps({
                "tun": "flannel0", "listen": "10.9.0.%d" % i, "port": 8285,
                "network": "100.96.0.0/16", "subnet": "100.96.%d.0/24" % i,
                "peers": [{"subnet": "100.96.%d.0/24" % other, "ip": "10.9.0.%d" % other}],
                "status_file": str(tmp_path / ("%s.status" % h))}))
            procs[h] = subprocess.Popen(["ip", "netns", "exec", ns, "/usr/bin/python3", DAEMON,
                                         "run", str(configs[h])],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for h in names:
            wait_for(lambda: (tmp_path / ("%s.status" % h)).exists())
        yield names, configs, procs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
        for ns in names.values():
            sh("ip", "netns", "del", ns, check=False)


def wait_for(condition, timeout=10):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def counters(names, configs, h):
    out = sh("/usr/bin/python3", DAEMON, "status", str(configs[h]), netns=names[h])
    return json.loads(out)


def test_daemons_forward_ping_and_drop_spoofed_datagrams(udp_pair):
    names, configs, procs = udp_pair
    out = sh("ping", "-c", "3", "-i", "0.2", "-W", "2", "100.96.2.0", netns=names["A"])
    assert "3 received" in out
    a, b = counters(names, configs, "A"), counters(names, configs, "B")
    assert a["udp_tx"] >= 3 and a["tun_tx"] >= 3 and b["udp_rx"] >= 3 and b["tun_tx"] >= 3

    # A datagram from an address that is no peer, and one whose inner source is spoofed.
    sh("ip", "addr", "add", "10.9.0.9/24", "dev", "eth0", netns=names["A"])
    script = ("import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
              "s.bind((sys.argv[1],0));s.sendto(bytes.fromhex(sys.argv[2]),('10.9.0.2',8285))")
    good_src = ipv4("100.96.1.7", "100.96.2.0").hex()
    spoofed = ipv4("100.96.9.7", "100.96.2.0").hex()
    sh("/usr/bin/python3", "-c", script, "10.9.0.9", good_src, netns=names["A"])
    sh("/usr/bin/python3", "-c", script, "10.9.0.1", spoofed, netns=names["A"])
    wait_for(lambda: counters(names, configs, "B")["drops"].get("spoofed_source") == 1)
    drops = counters(names, configs, "B")["drops"]
    assert (drops["unknown_sender"], drops["spoofed_source"]) == (1, 1)
    assert set(drops) <= {"unknown_sender", "spoofed_source", "not_ipv4"}  # IPv6 noise only


def test_icmp_errors_reload_and_clean_exit(udp_pair):
    names, configs, procs = udp_pair
    out = subprocess.run(["ip", "netns", "exec", names["A"], "ping", "-c", "1", "-W", "2",
                          "100.96.7.1"], capture_output=True, text=True).stdout
    assert "Destination Net Unreachable" in out
    out = subprocess.run(["ip", "netns", "exec", names["A"], "ping", "-c", "1", "-W", "2", "-t", "1",
                          "100.96.2.0"], capture_output=True, text=True).stdout
    assert "Time to live exceeded" in out

    # SIGHUP: B forgets A; A's pings now die at B, counted, and B keeps running.
    config = json.loads(configs["B"].read_text())
    configs["B"].write_text(json.dumps(dict(config, peers=[])))
    procs["B"].send_signal(signal.SIGHUP)
    wait_for(lambda: counters(names, configs, "B")["peers"] == 0)
    out = subprocess.run(["ip", "netns", "exec", names["A"], "ping", "-c", "1", "-W", "1",
                          "100.96.2.0"], capture_output=True, text=True).stdout
    assert "0 received" in out
    assert counters(names, configs, "B")["drops"].get("unknown_sender", 0) >= 1
    # ... and back, without a restart.
    configs["B"].write_text(json.dumps(config))
    procs["B"].send_signal(signal.SIGHUP)
    wait_for(lambda: counters(names, configs, "B")["peers"] == 1)
    assert "1 received" in sh("ping", "-c", "1", "-W", "2", "100.96.2.0", netns=names["A"])

    procs["B"].send_signal(signal.SIGTERM)
    assert procs["B"].wait(5) == 0
    assert "stopped" in procs["B"].stdout.read()
