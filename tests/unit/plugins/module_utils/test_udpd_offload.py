"""weft-udpd's offloads without a kernel: a TCP super-packet cut into the segments it stands
for (each a valid IPv4/TCP packet, one datagram on the wire), and segments joined back into
one super-packet written with the checksum left to the kernel."""

import ipaddress
import struct

from hypothesis import given, settings, strategies as st

from ansible_collections.weft.overlay.plugins.module_utils.weft.daemon import offload
from ansible_collections.weft.overlay.plugins.module_utils.weft.daemon.packets import (
    checksum, ones_sum)

SRC, DST = "100.96.1.2", "100.96.2.2"
OPTIONS = b"\x01\x01\x08\x0a" + b"\x00\x01\x02\x03" + b"\x00\x00\x00\x07"  # NOP NOP timestamps


def tcp_packet(payload, seq=1000, flags=0x18, ident=77, ttl=64, options=OPTIONS, checksum_ok=True,
               src=SRC, dst=DST, sport=40000, dport=5201):
    thl = 20 + len(options)
    tcp = bytearray(struct.pack("!HHIIBBHHH", sport, dport, seq, 555, (thl // 4) << 4, flags,
                                501, 0, 0) + options)
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + thl + len(payload), ident, 0x4000,
                               ttl, 6, 0, ipaddress.ip_address(src).packed,
                               ipaddress.ip_address(dst).packed))
    struct.pack_into("!H", ip, 10, checksum(ip))
    if checksum_ok:
        pseudo = ip[12:20] + struct.pack("!BBH", 0, 6, thl + len(payload))
        struct.pack_into("!H", tcp, 16, checksum(bytes(pseudo) + bytes(tcp) + payload))
    return bytearray(ip + tcp + payload)


def tcp_checksum_ok(packet):
    ihl = (packet[0] & 15) * 4
    pseudo = bytes(packet[12:20]) + struct.pack("!BBH", 0, 6, len(packet) - ihl)
    return ones_sum(pseudo + bytes(packet[ihl:])) == 0xFFFF


def segments_of(pieces):
    return [bytes(pieces[i]) + bytes(pieces[i + 1]) for i in range(0, len(pieces), 2)]


def test_a_super_packet_becomes_valid_segments_with_flannels_wire_format():
    payload = bytes(range(256)) * 40                     # 10240 bytes
    big = tcp_packet(payload, flags=0x18 | 0x01 | 0x80, checksum_ok=False)
    pieces, size, count = offload.segment_tcp(big, 1400, complete=True)
    segments = segments_of(pieces)
    assert count == len(segments) == 8 and size == 52 + 1400
    assert [len(s) for s in segments] == [1452] * 7 + [52 + 10240 - 7 * 1400]
    assert b"".join(s[52:] for s in segments) == payload
    for i, s in enumerate(segments):
        assert checksum(s[:20]) == 0                                    # IP header
        assert tcp_checksum_ok(s)                                       # TCP, complete
        assert struct.unpack("!H", s[2:4])[0] == len(s)
        assert struct.unpack("!H", s[4:6])[0] == 77 + i                 # IP IDs in a row
        assert struct.unpack("!I", s[24:28])[0] == 1000 + 1400 * i      # sequence numbers
        flags = s[33]
        assert bool(flags & 0x01) == bool(flags & 0x08) == (i == 7)     # FIN, PSH: last only
        assert bool(flags & 0x80) == (i == 0)                           # CWR: first only
        assert s[40:52] == OPTIONS


def test_without_complete_the_tcp_checksum_is_left_to_the_receiver():
    big = tcp_packet(b"x" * 5000, checksum_ok=False)
    pieces, _, count = offload.segment_tcp(big, 1400, complete=False)
    for s in segments_of(pieces):
        assert checksum(s[:20]) == 0 and s[36:38] == b"\0\0"             # as the kernel left it


class Writes:
    def __init__(self):
        self.writes = []

    def __call__(self, buffers, count):
        self.writes.append((bytes(buffers[0]), b"".join(bytes(b) for b in buffers[1:]), count))


def coalesced(segments):
    writes = Writes()
    joiner = offload.Coalescer(writes)
    for s in segments:
        joiner.add(memoryview(s))
    joiner.flush()
    return writes.writes


def test_segments_of_one_flow_are_written_as_one_super_packet():
    payload = bytes(range(256)) * 30
    pieces, _, count = offload.segment_tcp(tcp_packet(payload, ttl=64), 1400, complete=True)
    writes = coalesced(segments_of(pieces))
    assert len(writes) == 1
    vnet, packet, written = writes[0]
    flags, gso_type, hdr_len, gso_size, csum_start, csum_offset = offload.VNET_HDR.unpack(vnet)
    assert (flags, gso_type, hdr_len, gso_size, csum_start, csum_offset) == \
        (offload.NEEDS_CSUM, offload.GSO_TCPV4, 52, 1400, 20, 16) and written == count == 6
    assert packet[52:] == payload and struct.unpack("!I", packet[24:28])[0] == 1000
    assert packet[8] == 63 and checksum(packet[:20]) == 0 and struct.unpack("!H", packet[2:4])[0] == len(packet)
    assert packet[33] & 0x08                                            # PSH of the last one
    # The TCP checksum field holds the pseudo-header sum: finishing it gives a valid packet.
    done = bytearray(packet)
    offload.finish_checksum(done, 20, 16)
    assert tcp_checksum_ok(done)


def test_what_does_not_join_is_written_alone_or_starts_a_new_run():
    a = tcp_packet(b"a" * 1000, seq=1, flags=0x10)
    b = tcp_packet(b"b" * 1000, seq=5000, flags=0x10)                     # not next in sequence
    other = tcp_packet(b"c" * 1000, seq=1001, flags=0x10, sport=40001)   # another flow
    syn = tcp_packet(b"", flags=0x02)                                    # not only ACK, no data
    udp = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 36, 1, 0, 64, 17, 0,
                                ipaddress.ip_address(SRC).packed, ipaddress.ip_address(DST).packed))
    struct.pack_into("!H", udp, 10, checksum(udp))
    udp += struct.pack("!HHHH", 1, 2, 16, 0x1234) + b"12345678"
    icmp = bytearray(udp)
    icmp[9] = 1
    icmp[10:12] = b"\0\0"
    struct.pack_into("!H", icmp, 10, checksum(icmp[:20]))
    writes = coalesced([a, b, other, syn, udp, icmp])
    assert [w[2] for w in writes] == [1, 1, 1, 1, 1, 1]
    kinds = [offload.VNET_HDR.unpack(w[0])[:2] for w in writes]
    assert kinds[:5] == [(offload.NEEDS_CSUM, offload.GSO_NONE)] * 5
    assert kinds[5] == (0, 0)                                            # ICMP: complete as it is
    for _, packet, _ in writes:
        assert checksum(packet[:20]) == 0 and packet[8] == 63            # TTL - 1, header valid
    done = bytearray(writes[4][1])
    offload.finish_checksum(done, 20, 6)
    pseudo = bytes(done[12:20]) + struct.pack("!BBH", 0, 17, 16)
    assert ones_sum(pseudo + bytes(done[20:])) == 0xFFFF                 # UDP checksum right


@settings(max_examples=300)
@given(st.binary(min_size=1, max_size=9000), st.integers(100, 1448), st.integers(0, 2 ** 32 - 1))
def test_cut_and_joined_again_is_the_same_stream(payload, mss, seq):
    big = tcp_packet(payload, seq=seq, flags=0x18, ttl=64)
    pieces, size, count = offload.segment_tcp(big, mss, complete=True)
    segments = segments_of(pieces)
    assert all(tcp_checksum_ok(s) and checksum(s[:20]) == 0 for s in segments)
    writes = coalesced(segments)
    assert sum(w[2] for w in writes) == count
    assert b"".join(w[1][52:] for w in writes) == payload


def test_follow_takes_the_next_segments_of_a_gro_batch_and_stops_at_anything_else():
    """The receive fast path: after a run's first segment, follow() takes the segments of a
    GRO batch that continue it, and stops, leaving the full checks to the caller, at a
    segment of another flow, one out of sequence and one with a bad IP header checksum."""
    pieces, size, count = offload.segment_tcp(tcp_packet(bytes(1400 * 8), flags=0x10), 1400,
                                              complete=False)
    segments = segments_of(pieces)
    other = bytes(tcp_packet(b"o" * 1400, seq=1000 + 1400 * 3, flags=0x10, sport=40001))
    bad = bytearray(segments[4])
    bad[10] ^= 0xFF                                                      # IP header checksum
    gap = bytes(tcp_packet(b"g" * 1400, seq=1000 + 1400 * 7 + 1, flags=0x10))
    batch = b"".join([segments[0], segments[1], segments[2], other, segments[3], bytes(bad),
                      segments[4], gap])
    assert all(len(s) == size for s in (other, bad, gap))
    view, writes = memoryview(batch), Writes()
    joiner = offload.Coalescer(writes)
    joiner.add(view[:size])
    stops = []
    start = size
    while start < len(batch):
        start = joiner.follow(view, start, len(batch), size)
        if start < len(batch):
            stops.append(start // size)
            if start // size != 5:                  # the caller drops the bad checksum
                joiner.add(view[start:start + size])
            start += size
    joiner.flush()
    assert stops == [3, 4, 5, 7]
    assert [w[2] for w in writes.writes] == [3, 1, 2, 1]   # runs: 0-2, other, 3-4, gap
    assert writes.writes[0][1][52:] == bytes(1400 * 3)
    assert writes.writes[2][1][52:] == bytes(1400 * 2)
