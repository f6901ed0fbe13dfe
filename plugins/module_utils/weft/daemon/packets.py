# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""weft-udpd's forwarding decisions, free of I/O so that they can be tested and fuzzed:
checksums, TTL, ICMP errors (RFC 1812, rate-limited like the kernel's) and the Router."""

from __future__ import annotations

import struct
import time

ICMP_ERROR_TYPES = {3, 4, 5, 11, 12}
DEFAULT_TTL = 64


def ones_sum(data) -> int:
    """The 16-bit one's complement sum of `data` (RFC 1071), via one big-integer modulo."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    number = int.from_bytes(data, "big")  # 2**16 = 1 (mod 0xFFFF): the words' sum
    total = number % 0xFFFF
    return 0xFFFF if total == 0 and number else total


def checksum(data) -> int:
    return ~ones_sum(data) & 0xFFFF


def fold(total) -> int:
    """A sum of 16-bit words folded into 16 bits (end-around carry)."""
    total = (total & 0xFFFF) + (total >> 16)
    return (total & 0xFFFF) + (total >> 16)


def decrement_ttl(packet: bytearray) -> None:
    """TTL - 1 with RFC 1624's incremental update of the header checksum (eqn. 3)."""
    old_word = (packet[8] << 8) | packet[9]
    packet[8] -= 1
    new_word = (packet[8] << 8) | packet[9]
    hc = (packet[10] << 8) | packet[11]
    hc = ~fold((~hc & 0xFFFF) + (~old_word & 0xFFFF) + new_word) & 0xFFFF
    packet[10], packet[11] = hc >> 8, hc & 0xFF


def ipv4_problem(packet):
    """None for a whole IPv4 packet (sane header length, total length = what we got),
    else the drop reason."""
    if not packet:
        return "empty"
    if packet[0] >> 4 != 4:
        return "not_ipv4"
    ihl = (packet[0] & 0x0F) * 4
    if len(packet) < 20 or ihl < 20 or len(packet) < ihl \
            or ((packet[2] << 8) | packet[3]) != len(packet):
        return "malformed"
    return None


def _no_error_source(first_octet, src):
    """Sources an ICMP error must not answer (RFC 1812 4.3.2.7): 0/8, 127/8, 224/4 and up."""
    return first_octet == 0 or first_octet == 127 or first_octet >= 224 or src == b"\xff" * 4


class TokenBucket:
    def __init__(self, rate, burst, now):
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, float(burst), now

    def take(self, now) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class IcmpLimiter:
    """The kernel's ICMP rate limits: icmp_msgs_per_sec=1000 with icmp_msgs_burst=50 for
    all errors, and icmp_ratelimit=1000 ms with a burst of 6 per destination. The table of
    destinations is bounded, so a flood of spoofed sources cannot grow it."""

    MAX_DESTINATIONS = 4096

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.overall = TokenBucket(1000, 50, clock())
        self.per_destination = {}

    def allow(self, destination: bytes) -> bool:
        now = self.clock()
        if not self.overall.take(now):
            return False
        bucket = self.per_destination.pop(destination, None)
        if bucket is None:
            if len(self.per_destination) >= self.MAX_DESTINATIONS:
                del self.per_destination[next(iter(self.per_destination))]
            bucket = TokenBucket(1, 6, now)
        self.per_destination[destination] = bucket  # most recently used last
        return bucket.take(now)


class Router:
    """The forwarding decisions for one config: where a packet from the TUN device goes, and
    whether a datagram from the network may come in."""

    def __init__(self, config, clock=time.monotonic):
        self.own = (int(config.subnet.network_address), int(config.subnet.netmask))
        self.broadcast = config.network.broadcast_address.packed
        self.tables = []     # [(mask, {network: Peer})], longest prefix first
        self.by_sender = {}  # peer address -> (network int, mask int, Peer)
        by_length = {}
        for peer in config.peers:
            net = peer.subnet
            by_length.setdefault(net.prefixlen, {})[int(net.network_address)] = peer
            self.by_sender[peer.ip] = (int(net.network_address), int(net.netmask), peer)
        for length in sorted(by_length, reverse=True):
            mask = (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF
            self.tables.append((mask, by_length[length]))
        self.icmp = IcmpLimiter(clock)

    def lookup(self, dst: int):
        for mask, table in self.tables:
            hit = table.get(dst & mask)
            if hit is not None:
                return hit
        return None

    def icmp_error(self, packet, icmp_type: int, code: int):
        """The ICMP error that answers `packet`, None when RFC 1812 4.3.2.7 forbids one,
        'limited' when the rate limit holds it back.

        Its source is the address the packet was for: written into the TUN device, an
        error from one of this host's own addresses would be dropped by the kernel as a
        martian.
        """
        ihl = (packet[0] & 0x0F) * 4
        if ((packet[6] & 0x1F) << 8 | packet[7]) != 0:
            return None  # not the first fragment
        if packet[9] == 1 and (len(packet) <= ihl or packet[ihl] in ICMP_ERROR_TYPES):
            return None  # never in answer to an ICMP error (or a truncated ICMP message)
        dst = bytes(packet[16:20])
        if dst[0] >= 224 or dst == self.broadcast:
            return None  # multicast, experimental or broadcast destination
        if _no_error_source(packet[12], bytes(packet[12:16])):
            return None  # no host to answer
        if not self.icmp.allow(bytes(packet[12:16])):
            return "limited"
        quoted = bytes(packet[:ihl + 8])
        icmp = bytearray(struct.pack("!BBHI", icmp_type, code, 0, 0) + quoted)
        struct.pack_into("!H", icmp, 2, checksum(icmp))
        header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0, 0,
                                       DEFAULT_TTL, 1, 0, dst, bytes(packet[12:16])))
        struct.pack_into("!H", header, 10, checksum(header))
        return bytes(header + icmp)

    def _answer(self, packet, icmp_type, reason):
        reply = self.icmp_error(packet, icmp_type, 0)
        if reply is None:
            return ("drop", reason)
        if reply == "limited":
            return ("drop", reason + "_icmp_limited")
        return ("icmp", reply, reason)

    def from_tun(self, packet: bytearray):
        """-> ('send', Peer, packet) | ('icmp', reply, reason) | ('drop', reason)."""
        problem = ipv4_problem(packet)
        if problem:
            return ("drop", problem)
        peer = self.lookup(int.from_bytes(packet[16:20], "big"))
        if peer is None:
            return self._answer(packet, 3, "no_route")       # net unreachable
        if packet[8] <= 1:
            return self._answer(packet, 11, "ttl_exceeded")  # time exceeded in transit
        decrement_ttl(packet)
        return ("send", peer, packet)

    def admit(self, packet, peer):
        """None when a datagram from this peer may come in, else the drop reason: a whole
        IPv4 packet with a correct header checksum, from the peer's subnet, for ours, with
        TTL left. (`peer` is by_sender's entry for the sender; packet is not copied.)"""
        # ipv4_problem() inlined: this runs once per received datagram.
        if not packet:
            return "empty"
        if packet[0] >> 4 != 4:
            return "not_ipv4"
        ihl = (packet[0] & 0x0F) * 4
        if len(packet) < 20 or ihl < 20 or len(packet) < ihl \
                or ((packet[2] << 8) | packet[3]) != len(packet):
            return "malformed"
        if ones_sum(packet[:ihl]) != 0xFFFF:
            return "bad_checksum"
        if int.from_bytes(packet[12:16], "big") & peer[1] != peer[0]:
            return "spoofed_source"
        if int.from_bytes(packet[16:20], "big") & self.own[1] != self.own[0]:
            return "not_for_us"
        if packet[8] <= 1:
            return "ttl_exceeded"
        return None

    def from_udp(self, packet, sender: str):
        """-> ('tun', packet with TTL - 1) | ('drop', reason)."""
        peer = self.by_sender.get(sender)
        if peer is None:
            return ("drop", "unknown_sender")
        problem = self.admit(packet, peer)
        if problem:
            return ("drop", problem)
        packet = bytearray(packet)
        decrement_ttl(packet)
        return ("tun", packet)
