# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The TUN device's offloads, so that the kernel moves a TCP stream through the daemon in
64 KiB pieces instead of one packet at a time, while the wire keeps Flannel's format.

With IFF_VNET_HDR, every packet read from or written to the device starts with a
virtio_net_hdr. TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4) lets the kernel hand over a TCP
super-packet of up to 64 KiB with its checksum left to finish (TSO); segment_tcp() cuts it
into the MSS-sized IPv4 packets it stands for, each one datagram on the wire, sent together
with one UDP GSO sendmsg. The other way, Coalescer joins consecutive segments of one TCP
flow that arrived together (UDP GRO) back into one super-packet, written with the
checksum left to the kernel, which hands it on as if its own GRO had made it.

Inner checksums: a peer marked "weft" finishes them itself (its Coalescer writes every TCP
and UDP packet with the checksum left to the kernel, which computes it from scratch), so
segments to it go with the checksum as the kernel left it, the way VXLAN offload leaves it
to the NIC; the outer UDP checksum covers them on the wire. A Flannel peer writes what it
receives as it is, so everything sent to it has every checksum complete.
"""

from __future__ import annotations

import functools
import struct

from .packets import fold, ones_sum

TUNSETOFFLOAD = 0x400454D0
TUN_F_CSUM, TUN_F_TSO4 = 0x01, 0x02
IFF_VNET_HDR = 0x4000
VNET_HDR = struct.Struct("<BBHHHH")   # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset
VNET_LEN = VNET_HDR.size              # 10: the device's default header size
NEEDS_CSUM = 0x01
GSO_NONE, GSO_TCPV4 = 0, 1
PLAIN = bytes(VNET_LEN)               # no offload: a complete packet
TCP, UDP = 6, 17
FIN, PSH, CWR = 0x01, 0x08, 0x80
MAX_PACKET = 65535
CSUM_OFFSET = {TCP: 16, UDP: 6}


def pseudo_header_sum(packet, proto, length):
    """The one's complement sum of the IPv4 pseudo header (not complemented)."""
    return fold(ones_sum(packet[12:20]) + proto + length)


def finish_checksum(packet, start, offset):
    """Complete a checksum the kernel left partial: the field holds the pseudo-header sum,
    the sum runs from `start` to the end."""
    value = ~ones_sum(packet[start:]) & 0xFFFF
    if packet[9] == UDP and value == 0:
        value = 0xFFFF  # UDP's 0 means "no checksum"
    struct.pack_into("!H", packet, start + offset, value)


def segment_tcp(packet, mss, complete):
    """The segments a TCP super-packet stands for: (pieces, segment size, count), pieces
    alternating header and payload, ready for one UDP GSO sendmsg (every segment but the
    last is `segment size` long). `packet` has its TTL already decremented; with
    `complete`, every segment gets its TCP checksum (else the field is left as it is).
    Runs once per segment sent, so the loop does as little as it can."""
    ihl = (packet[0] & 0x0F) * 4
    thl = (packet[ihl + 12] >> 4) * 4
    hlen = ihl + thl
    view = memoryview(packet)
    payload = view[hlen:]
    size = len(payload)
    count = max(1, (size + mss - 1) // mss)
    template = bytearray(view[:hlen])
    flags = template[ihl + 13]
    seq = int.from_bytes(template[ihl + 4:ihl + 8], "big")
    ip_id = (template[4] << 8) | template[5]
    # The IP header's sum without total length and ID, which each segment adds.
    template[2:6] = b"\0\0\0\0"
    template[10:12] = b"\0\0"
    base = ones_sum(template[:ihl])
    if complete:
        template[ihl + 16:ihl + 18] = b"\0\0"
        pseudo = ones_sum(template[12:20]) + TCP
    # Segments in the middle carry neither FIN and PSH (the last one's) nor CWR (the first's).
    template[ihl + 13] = flags & ~(FIN | PSH | CWR)
    # Total length, ID, (flags to protocol, kept), IP checksum, (addresses, ports), sequence.
    fields = struct.Struct("!HH4sH%dsI" % (ihl - 8))
    kept, ends = bytes(template[6:10]), bytes(template[12:ihl + 4])
    pieces = []
    append, pack_into = pieces.append, fields.pack_into
    for i in range(count):
        offset = i * mss
        piece = payload[offset:offset + mss]
        length = hlen + len(piece)
        ident = (ip_id + i) & 0xFFFF
        check = base + length + ident
        check = (check & 0xFFFF) + (check >> 16)
        header = template[:]
        pack_into(header, 2, length, ident, kept, ~((check & 0xFFFF) + (check >> 16)) & 0xFFFF,
                  ends, (seq + offset) & 0xFFFFFFFF)
        append(header)
        append(piece)
    pieces[0][ihl + 13] |= flags & CWR
    pieces[-2][ihl + 13] |= flags & (FIN | PSH)
    if complete:
        for i in range(0, len(pieces), 2):
            header, piece = pieces[i], pieces[i + 1]
            check = ~fold(pseudo + thl + len(piece) + ones_sum(header[ihl:hlen])
                          + ones_sum(piece)) & 0xFFFF
            header[ihl + 16], header[ihl + 17] = check >> 8, check & 0xFF
    return pieces, hlen + mss, count


@functools.lru_cache(maxsize=None)
def run_head(hlen):
    """A struct reading a TCP/IPv4 header (no IP options) of `hlen` bytes as the fields that
    differ between the segments of one run (IP total length, TCP sequence and flags) and
    those that must not (everything else but the IP ID and both checksums): (version, IHL
    and TOS; length; DF, fragment, TTL and protocol; addresses and ports; sequence; ACK
    and data offset; flags; window; urgent pointer and options)."""
    return struct.Struct("!2sH2x4s2x12sI5sB2s2x%ds" % (hlen - 38))


ACK = 0x10


class Coalescer:
    """Consecutive full-size segments of one TCP flow, joined as the kernel's GRO joins
    them (same addresses, ports, TTL, ACK, window and options; sequence numbers in a row;
    only ACK, and PSH on the last), written as one packet with the checksum left to the
    kernel."""

    def __init__(self, write):
        """write(buffers, count): one writev standing for `count` packets."""
        self.write = write
        self.segments = []     # payload views of the run
        self.total = 0         # the run's length as one packet (first header + payloads)
        self.first = None      # the run's first packet (header source)
        self.hlen = self.mss = self.next_seq = self.size = 0
        self.key = None        # the header fields every segment of the run shares
        self.psh = False

    def follow(self, view, start, stop, segment):
        """Take the segments of view[start:stop] (each `segment` long, the last maybe
        shorter) into the run for as long as each is the run's next one: the same header as
        the run's first packet but for length, ID, checksums, sequence and PSH, so it passes
        every check the first one passed; only its IP header checksum and length are left
        to check. Returns where it stopped: the segment there needs admitting as any other.
        (The fast path for the segments of one GRO batch after the first: once per
        segment, so everything it needs is a local.)"""
        segments = self.segments
        if not segments:
            return start
        hlen, mss, key = self.hlen, self.mss, self.key
        size, next_seq, total = self.size, self.next_seq, self.total
        unpack, append, from_bytes = run_head(hlen).unpack_from, segments.append, int.from_bytes
        while start < stop and size == mss:
            end = start + segment
            if end > stop:
                end = stop
            length = end - start
            if length <= hlen or length > hlen + mss or total + length - hlen > MAX_PACKET:
                break
            tos, got, ttl, ends, seq, ack, flags, window, rest = unpack(view, start)
            if got != length or seq != next_seq or flags & ~PSH != ACK \
                    or (tos, ttl, ends, ack, window, rest) != key \
                    or from_bytes(view[start:start + 20], "big") % 0xFFFF:
                break
            append(view[start + hlen:end])
            size = length - hlen
            total += size
            next_seq = (seq + size) & 0xFFFFFFFF
            start = end
            if flags & PSH:
                self.size, self.next_seq, self.total, self.psh = size, next_seq, total, True
                self.flush()
                return start
        self.size, self.next_seq, self.total = size, next_seq, total
        return start

    def add(self, packet):
        """Take one admitted packet (TTL not yet decremented): it joins the run, or the run
        is written and it starts the next one, or it is written alone."""
        if packet[0] == 0x45 and packet[9] == TCP and len(packet) >= 40:
            hlen = 20 + (packet[32] >> 4) * 4
            payload = len(packet) - hlen
            flags = packet[33]
            if hlen >= 40 and payload > 0 and flags & ~PSH == ACK and packet[6] & 0x40:
                tos, dummy, ttl, ends, seq, ack, dummy, window, rest = run_head(hlen).unpack_from(packet)
                key = (tos, ttl, ends, ack, window, rest)
                if self.segments and key == self.key and seq == self.next_seq \
                        and self.size == self.mss and self.hlen == hlen \
                        and payload <= self.mss and self.total + payload <= MAX_PACKET:
                    self.segments.append(packet[hlen:])
                else:  # the start of a new super-packet
                    self.flush()
                    self.first, self.hlen, self.mss, self.total = packet, hlen, payload, hlen
                    self.key, self.segments = key, [packet[hlen:]]
                self.total += payload
                self.size, self.next_seq = payload, (seq + payload) & 0xFFFFFFFF
                self.psh = bool(flags & PSH)
                if self.psh:
                    self.flush()
                return
        self.flush()
        self.single(packet)

    def flush(self):
        if not self.segments:
            return
        segments, first, hlen = self.segments, self.first, self.hlen
        self.segments = []
        header = bytearray(first[:hlen])
        length = self.total
        header[2], header[3] = length >> 8, length & 0xFF
        header[8] -= 1                                  # TTL
        header[10] = header[11] = 0
        check = ~ones_sum(header[:20]) & 0xFFFF
        header[10], header[11] = check >> 8, check & 0xFF
        if self.psh:
            header[33] |= PSH
        partial = pseudo_header_sum(header, TCP, length - 20)
        header[36], header[37] = partial >> 8, partial & 0xFF
        vnet = VNET_HDR.pack(NEEDS_CSUM, GSO_TCPV4 if len(segments) > 1 else GSO_NONE,
                             hlen, self.mss, 20, 16)
        self.write([vnet, header] + segments, len(segments))

    def single(self, packet):
        """A packet that joins no run: TTL - 1; TCP and UDP with the checksum left to the
        kernel (whatever the sender left in it)."""
        packet = bytearray(packet)
        ihl = (packet[0] & 0x0F) * 4
        packet[8] -= 1
        packet[10] = packet[11] = 0
        check = ~ones_sum(packet[:ihl]) & 0xFFFF
        packet[10], packet[11] = check >> 8, check & 0xFF
        proto = packet[9]
        offset = CSUM_OFFSET.get(proto)
        fragment = (packet[6] & 0x3F) or packet[7]    # MF set or an offset: not whole
        if offset is not None and not fragment and len(packet) >= ihl + offset + 2 \
                and not (proto == UDP and packet[ihl + 6:ihl + 8] == b"\0\0"):
            partial = pseudo_header_sum(packet, proto, len(packet) - ihl)
            packet[ihl + offset], packet[ihl + offset + 1] = partial >> 8, partial & 0xFF
            vnet = VNET_HDR.pack(NEEDS_CSUM, GSO_NONE, 0, 0, ihl, offset)
        else:
            vnet = PLAIN
        self.write([vnet, packet], 1)
