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

import struct

from .packets import ones_sum

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


def fold(total):
    total = (total & 0xFFFF) + (total >> 16)
    return (total & 0xFFFF) + (total >> 16)


def pseudo_header_sum(packet, ihl, proto, length):
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
    `complete`, every segment gets its TCP checksum (else the field is left as it is)."""
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
    pieces = []
    for i in range(count):
        piece = payload[i * mss:(i + 1) * mss]
        header = template[:]
        length = hlen + len(piece)
        ident = (ip_id + i) & 0xFFFF
        header[2], header[3], header[4], header[5] = length >> 8, length & 0xFF, ident >> 8, ident & 0xFF
        check = ~fold(base + length + ident) & 0xFFFF
        header[10], header[11] = check >> 8, check & 0xFF
        struct.pack_into("!I", header, ihl + 4, (seq + i * mss) & 0xFFFFFFFF)
        if i < count - 1:
            header[ihl + 13] = flags & ~(FIN | PSH)
        if i > 0:
            header[ihl + 13] &= ~CWR
        if complete:
            check = ~fold(pseudo + thl + len(piece) + ones_sum(header[ihl:hlen])
                          + ones_sum(piece)) & 0xFFFF
            header[ihl + 16], header[ihl + 17] = check >> 8, check & 0xFF
        pieces.append(header)
        pieces.append(piece)
    return pieces, hlen + mss, count


class Coalescer:
    """Consecutive full-size segments of one TCP flow, joined as the kernel's GRO joins
    them (same addresses, ports, ACK, window and options; sequence numbers in a row; only
    ACK, and PSH on the last), written as one packet with the checksum left to the kernel.
    write(buffers) performs one writev and returns whether it succeeded."""

    def __init__(self, write):
        """write(buffers, count): one writev standing for `count` packets."""
        self.write = write
        self.segments = []     # payload views of the run
        self.first = None      # the run's first packet (header source)
        self.hlen = self.mss = self.next_seq = self.size = 0
        self.match = None      # the header bytes every segment of the run shares
        self.psh = False

    def add(self, packet):
        """Take one admitted packet (TTL not yet decremented): it joins the run, or the run
        is written and it starts the next one, or it is written alone."""
        ihl = (packet[0] & 0x0F) * 4
        if packet[9] == TCP and ihl == 20 and len(packet) >= 40:
            thl = (packet[32] >> 4) * 4
            hlen = 20 + thl
            flags = packet[33]
            payload = len(packet) - hlen
            if thl >= 20 and payload > 0 and flags & ~PSH == 0x10 and packet[6] & 0x40:
                seq = int.from_bytes(packet[24:28], "big")
                # tos; addresses and ports; ack and data offset; window; urgent and options
                match = bytes(packet[1:2]) + bytes(packet[12:24]) + bytes(packet[28:33]) \
                    + bytes(packet[34:36]) + bytes(packet[38:hlen])
                if self.segments and match == self.match and seq == self.next_seq \
                        and self.size == self.mss and self.hlen == hlen \
                        and self.hlen + sum_len(self.segments) + payload <= MAX_PACKET \
                        and payload <= self.mss:
                    self.segments.append(packet[hlen:])
                else:  # the start of a new super-packet
                    self.flush()
                    self.first, self.hlen, self.match, self.mss = packet, hlen, match, payload
                    self.segments = [packet[hlen:]]
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
        total = sum_len(segments)
        length = hlen + total
        header[2], header[3] = length >> 8, length & 0xFF
        header[8] -= 1                                  # TTL
        header[10] = header[11] = 0
        check = ~ones_sum(header[:20]) & 0xFFFF
        header[10], header[11] = check >> 8, check & 0xFF
        if self.psh:
            header[33] |= PSH
        partial = pseudo_header_sum(header, 20, TCP, hlen - 20 + total)
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
            partial = pseudo_header_sum(packet, ihl, proto, len(packet) - ihl)
            packet[ihl + offset], packet[ihl + offset + 1] = partial >> 8, partial & 0xFF
            vnet = VNET_HDR.pack(NEEDS_CSUM, GSO_NONE, 0, 0, ihl, offset)
        else:
            vnet = PLAIN
        self.write([vnet, packet], 1)


def sum_len(views):
    total = 0
    for view in views:
        total += len(view)
    return total
