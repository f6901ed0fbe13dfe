"""weft-udpd's decisions, free of I/O: config validation, forwarding, ICMP errors, drops.
Unit, property and fuzz tests; the daemon's real receive path is in test_udpd_daemon.py."""

import ipaddress
import json
import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import ROOT

from weft.daemon import config as daemon_config, packets

# The daemon as weft-udpd.service runs it (tests/test_udpd_daemon.py): standard library only.
DAEMON = ["env", "PYTHONPATH=" + os.path.join(ROOT, "plugins", "module_utils"),
          "/usr/bin/python3", "-m", "weft.daemon.udpd"]

RAW_CONFIG = {"tun": "flannel0", "listen": "10.9.0.1", "port": 8285, "network": "100.96.0.0/16",
              "subnet": "100.96.1.0/24",
              "peers": [{"subnet": "100.96.2.0/24", "ip": "10.9.0.2"},
                        {"subnet": "100.96.3.128/25", "ip": "10.9.0.3", "port": 9000}]}
CONFIG = daemon_config.parse_config(RAW_CONFIG)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def router(clock=None):
    return packets.Router(CONFIG, clock or FakeClock())


def ipv4(src, dst, ttl=64, proto=17, payload=b"x" * 12, frag=0):
    header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 7, frag, ttl,
                                   proto, 0, ipaddress.ip_address(src).packed,
                                   ipaddress.ip_address(dst).packed))
    struct.pack_into("!H", header, 10, packets.checksum(bytes(header)))
    return bytearray(header + payload)


def reference_ones_sum(data):
    """RFC 1071 the slow way, word by word."""
    data = bytes(data) + b"\0" * (len(data) % 2)
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


# ---- checksums -----------------------------------------------------------------------

@settings(max_examples=1000)
@given(st.binary(max_size=1600))
def test_ones_sum_matches_rfc1071(data):
    assert packets.ones_sum(data) == reference_ones_sum(data)


@settings(max_examples=500)
@given(st.binary(min_size=20, max_size=20), st.integers(2, 255))
def test_incremental_ttl_update_matches_a_full_checksum(raw, ttl):
    header = bytearray(raw)
    header[0], header[8], header[10], header[11] = 0x45, ttl, 0, 0
    struct.pack_into("!H", header, 10, packets.checksum(bytes(header)))
    packets.decrement_ttl(header)
    assert header[8] == ttl - 1
    assert packets.checksum(bytes(header)) == 0  # a correct header sums to 0xffff


# ---- config --------------------------------------------------------------------------

def with_(**changes):
    raw = json.loads(json.dumps(RAW_CONFIG))
    for key, value in changes.items():
        if value is KeyError:
            raw.pop(key)
        else:
            raw[key] = value
    return raw


def peers(*items):
    return with_(peers=list(items))


BAD_CONFIGS = [
    ([], "config: must be a JSON object"),
    (with_(tun=KeyError), "tun: is required"),
    (with_(tun="a/b"), "tun: 'a/b' is not an interface name"),
    (with_(tun="x" * 16), "tun: "),
    (with_(listen="10.9.0.300"), "listen: '10.9.0.300' is not an IPv4 address"),
    (with_(listen="224.0.0.1"), "listen: 224.0.0.1 is not a unicast host address"),
    (with_(port=70000), "port: 70000 is not a UDP port"),
    (with_(port=True), "port: True is not a UDP port"),
    (with_(port="8285"), "port: '8285' is not a UDP port"),
    (with_(network="100.96.0.0"), "network: '100.96.0.0' is not an IPv4 network in CIDR form"),
    (with_(network="100.96.0.1/16"), "network: '100.96.0.1/16' is not an IPv4 network"),
    (with_(subnet="100.97.1.0/24"), "subnet: 100.97.1.0/24 is not a subnet of network"),
    (with_(subnet="100.96.0.0/16"), "subnet: 100.96.0.0/16 is not a subnet of network"),
    (with_(peers=None), "peers: must be a list, not NoneType"),
    (with_(peers={"a": 1}), "peers: must be a list, not dict"),
    (with_(colour="blue"), "colour: unknown key"),
    (peers("100.96.2.0/24"), "peers[0]: must be an object"),
    (peers({"subnet": "100.96.2.0/24"}), "peers[0].ip: is required"),
    (peers({"subnet": "100.96.2.0/24", "ip": "10.9.0.2", "port": 70000}),
     "peers[0].port: 70000 is not a UDP port"),
    (peers({"subnet": "100.96.2.0/24", "ip": "10.9.0.2", "weight": 1}), "peers[0].weight: unknown key"),
    (peers({"subnet": "0.0.0.0/0", "ip": "10.9.0.2"}), "peers[0].subnet: 0.0.0.0/0 is not a subnet of network"),
    (peers({"subnet": "100.97.2.0/24", "ip": "10.9.0.2"}), "peers[0].subnet: 100.97.2.0/24 is not a subnet"),
    (peers({"subnet": "100.96.1.0/24", "ip": "10.9.0.2"}), "peers[0].subnet: 100.96.1.0/24 overlaps this host's own"),
    (peers({"subnet": "100.96.0.0/17", "ip": "10.9.0.2"}), "overlaps this host's own subnet"),
    (peers({"subnet": "100.96.2.0/24", "ip": "0.0.0.0"}), "peers[0].ip: 0.0.0.0 is not a unicast"),
    (peers({"subnet": "100.96.2.0/24", "ip": "10.9.0.2"}, {"subnet": "100.96.2.0/24", "ip": "10.9.0.3"}),
     "peers[1].subnet: 100.96.2.0/24 overlaps peers[0].subnet 100.96.2.0/24"),
    (peers({"subnet": "100.96.8.0/21", "ip": "10.9.0.2"}, {"subnet": "100.96.9.0/24", "ip": "10.9.0.3"}),
     "peers[1].subnet: 100.96.9.0/24 overlaps peers[0].subnet 100.96.8.0/21"),
    (peers({"subnet": "100.96.2.0/24", "ip": "10.9.0.2"}, {"subnet": "100.96.3.0/24", "ip": "10.9.0.2"}),
     "peers[1].ip: 10.9.0.2 is also the address of peers[0]"),
    (with_(status_file="relative/path"), "status_file: 'relative/path' is not an absolute path"),
]


@pytest.mark.parametrize("raw, message", BAD_CONFIGS, ids=[m for _, m in BAD_CONFIGS])
def test_a_bad_config_is_refused_naming_the_key(raw, message):
    with pytest.raises(daemon_config.ConfigError) as caught:
        daemon_config.parse_config(raw)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_good_config_fills_defaults():
    config = daemon_config.parse_config({"tun": "flannel0", "network": "100.96.0.0/16",
                                         "subnet": "100.96.1.0/24"})
    assert (config.listen, config.port, config.peers, config.status_file) == \
        ("0.0.0.0", 8285, [], "/run/weft-udpd/status.json")
    assert [(str(p.subnet), p.ip, p.port, p.weft) for p in CONFIG.peers] == \
        [("100.96.2.0/24", "10.9.0.2", 8285, False), ("100.96.3.128/25", "10.9.0.3", 9000, False)]


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
                    | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=6)
KEYS = st.sampled_from(sorted(daemon_config.CONFIG_KEYS) + ["ip", "subnet", "bogus"])


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(KEYS, JSON | st.sampled_from(["flannel0", "100.96.0.0/16", "100.96.1.0/24",
                                                     "10.9.0.2", 8285, "/run/x"]), max_size=7),
       st.lists(st.dictionaries(st.sampled_from(["subnet", "ip", "port", "x"]),
                                JSON | st.sampled_from(["100.96.2.0/24", "10.9.0.2", 1, 65536])),
                max_size=4))
def test_random_configs_are_refused_or_accepted_never_crash(raw, peer_list):
    raw.setdefault("peers", peer_list)
    try:
        config = daemon_config.parse_config(raw)
    except daemon_config.ConfigError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    packets.Router(config, FakeClock())  # what parses also builds a router


# ---- forwarding ------------------------------------------------------------------------

def test_longest_prefix_match_and_ttl():
    verdict = router().from_tun(ipv4("100.96.1.2", "100.96.3.200"))
    assert verdict[0] == "send" and (verdict[1].ip, verdict[1].port) == ("10.9.0.3", 9000)
    verdict = router().from_tun(ipv4("100.96.1.2", "100.96.2.5", ttl=9))
    assert (verdict[1].ip, verdict[1].port) == ("10.9.0.2", 8285) and verdict[2][8] == 8
    assert packets.checksum(bytes(verdict[2][:20])) == 0


@pytest.mark.parametrize("packet, icmp_type, reason", [
    (ipv4("100.96.1.2", "100.96.9.9"), 3, "no_route"),               # no peer holds it
    (ipv4("100.96.1.2", "100.96.2.5", ttl=1), 11, "ttl_exceeded"),  # TTL at its end
])
def test_icmp_errors_go_back_into_the_tun_device(packet, icmp_type, reason):
    kind, reply, why = router().from_tun(packet)
    assert (kind, why) == ("icmp", reason)
    assert reply[9] == 1 and reply[12:16] == packet[16:20] and reply[16:20] == packet[12:16]
    assert packets.checksum(reply[:20]) == 0 and packets.checksum(reply[20:]) == 0
    assert reply[20] == icmp_type and reply[28:48] == packet[:20]


@pytest.mark.parametrize("packet", [
    ipv4("100.96.1.2", "100.96.9.9", proto=1, payload=bytes([3, 0]) + b"\0" * 10),  # ICMP error
    ipv4("100.96.1.2", "100.96.9.9", proto=1, payload=b""),                       # truncated ICMP
    ipv4("100.96.1.2", "100.96.9.9", frag=100),                                   # later fragment
    ipv4("0.0.0.0", "100.96.9.9"),                                                # no source
    ipv4("127.0.0.1", "100.96.9.9"),                                              # loopback source
    ipv4("224.0.0.5", "100.96.9.9"),                                              # multicast source
    ipv4("100.96.1.2", "239.1.2.3"),                                              # multicast
    ipv4("100.96.1.2", "255.255.255.255"),                                        # broadcast
    ipv4("100.96.1.2", "100.96.255.255"),                                         # network's broadcast
    ipv4("100.96.1.2", "240.0.0.1"),                                              # reserved
], ids=["icmp-error", "truncated-icmp", "fragment", "zero-src", "loopback-src", "multicast-src",
        "multicast-dst", "broadcast", "directed-broadcast", "class-e"])
def test_no_icmp_error_where_rfc1812_forbids_one(packet):
    verdict = router().from_tun(packet)
    assert verdict == ("drop", "no_route")


def test_icmp_errors_are_rate_limited_like_the_kernel():
    clock = FakeClock()
    r = router(clock)
    sources = ["100.96.1.%d" % i for i in range(2, 200)]
    # One destination: a burst of 6, then one per second.
    answers = [r.from_tun(ipv4("100.96.1.2", "100.96.9.9"))[0] for _ in range(10)]
    assert answers == ["icmp"] * 6 + ["drop"] * 4
    assert r.from_tun(ipv4("100.96.1.2", "100.96.9.9")) == ("drop", "no_route_icmp_limited")
    clock.now += 1.0
    assert r.from_tun(ipv4("100.96.1.2", "100.96.9.9"))[0] == "icmp"
    # Overall: a burst of 50 (6 already spent above, one refilled... all within a second).
    clock.now += 10
    r = router(clock)
    answered = sum(r.from_tun(ipv4(src, "100.96.9.9"))[0] == "icmp" for src in sources)
    assert answered == 50
    clock.now += 0.1  # 1000/s refills 100 tokens, capped at the burst of 50
    answered = sum(r.from_tun(ipv4(src, "100.96.9.9"))[0] == "icmp" for src in sources[100:])
    assert answered == 50


def test_the_destination_table_of_the_limiter_is_bounded():
    clock = FakeClock()
    limiter = packets.IcmpLimiter(clock)
    for i in range(3 * limiter.MAX_DESTINATIONS):
        clock.now += 0.01
        limiter.allow(i.to_bytes(4, "big"))
    assert len(limiter.per_destination) == limiter.MAX_DESTINATIONS


@pytest.mark.parametrize("packet, sender, reason", [
    (ipv4("100.96.2.5", "100.96.1.2"), "10.9.0.99", "unknown_sender"),
    (ipv4("100.96.7.5", "100.96.1.2"), "10.9.0.2", "spoofed_source"),
    (ipv4("100.96.2.5", "100.96.3.2"), "10.9.0.2", "not_for_us"),
    (ipv4("100.96.2.5", "100.96.1.2", ttl=1), "10.9.0.2", "ttl_exceeded"),
    (ipv4("100.96.2.5", "100.96.1.2")[:30], "10.9.0.2", "malformed"),
    (bytearray(b"\x60" + b"\0" * 39), "10.9.0.2", "not_ipv4"),
    (bytearray(), "10.9.0.2", "empty"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_udp_side_drops_with_a_reason(packet, sender, reason):
    assert router().from_udp(packet, sender) == ("drop", reason)


def test_a_bad_header_checksum_is_dropped():
    packet = ipv4("100.96.2.5", "100.96.1.2")
    packet[10] ^= 0x40
    assert router().from_udp(packet, "10.9.0.2") == ("drop", "bad_checksum")


def test_udp_side_accepts_a_peer_packet_from_a_memoryview():
    packet = ipv4("100.96.2.5", "100.96.1.2")
    kind, out = router().from_udp(memoryview(bytes(b"junk" + packet))[4:], "10.9.0.2")
    assert kind == "tun" and out[8] == 63 and packets.checksum(bytes(out[:20])) == 0


@settings(max_examples=2000)
@given(st.binary(max_size=200), st.sampled_from(["10.9.0.2", "10.9.0.3", "10.1.1.1"]))
def test_random_input_never_raises(data, sender):
    r = router()
    assert r.from_tun(bytearray(data))[0] in ("send", "icmp", "drop")
    assert r.from_udp(memoryview(data), sender)[0] in ("tun", "drop")


UDP_DROPS = {"empty", "not_ipv4", "malformed", "bad_checksum", "spoofed_source", "not_for_us",
             "ttl_exceeded", "unknown_sender"}


@settings(max_examples=1000)
@given(st.integers(0, 255), st.integers(0, 255), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF),
       st.integers(0, 255), st.binary(max_size=60), st.booleans())
def test_mutated_headers_get_the_verdict_the_rules_give(first, ttl, total, frag, proto, payload,
                                                        fix_checksum):
    packet = ipv4("100.96.2.5", "100.96.1.2", payload=payload)
    packet[0], packet[8], packet[9] = first, ttl, proto
    struct.pack_into("!HH", packet, 2, total, 0)
    struct.pack_into("!H", packet, 6, frag)
    struct.pack_into("!H", packet, 10, 0)
    struct.pack_into("!H", packet, 10, packets.checksum(bytes(packet[:20])) if fix_checksum else 0x1234)
    well_formed = first == 0x45 and 20 <= total <= len(packet)
    header_ok = well_formed and packets.checksum(bytes(packet[:20])) == 0
    # From a peer: delivered only when the header is whole, checksummed and alive, TTL down by one.
    verdict = router().from_udp(bytes(packet), "10.9.0.2")
    if verdict[0] == "tun":
        out = verdict[1]
        assert header_ok and ttl > 1 and out[8] == ttl - 1
        assert packets.checksum(bytes(out[:20])) == 0 and bytes(out[12:20]) == bytes(packet[12:20])
    else:
        assert verdict[0] == "drop" and verdict[1] in UDP_DROPS
        assert not (header_ok and ttl > 1), verdict  # a good packet from its peer is never dropped
    # From a container (addresses swapped: to a peer's subnet): sent with TTL down by one,
    # answered with a well-formed ICMP error, or dropped with a reason.
    outbound = bytearray(packet)
    outbound[12:16], outbound[16:20] = packet[16:20], packet[12:16]
    verdict = router().from_tun(outbound)
    if verdict[0] == "send":
        assert verdict[1].ip == "10.9.0.2" and ttl > 1 and verdict[2][8] == ttl - 1
    elif verdict[0] == "icmp":
        reply = verdict[1]
        assert reply[9] == 1 and packets.checksum(reply[:20]) == 0 and packets.checksum(reply[20:]) == 0
        assert reply[16:20] == outbound[12:16] and verdict[2] in ("ttl_exceeded", "no_route")
    else:
        assert verdict[0] == "drop" and isinstance(verdict[1], str) and verdict[1]
