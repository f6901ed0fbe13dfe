# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ICMP echo over the overlay, to every peer at once (standard library, raw sockets: root).

One raw socket per address family, bound to this host's overlay address so that the
replies come back through the overlay too; every echo carries Don't Fragment (IPv4:
IP_PMTUDISC_PROBE, which also ignores a path MTU the kernel learnt before; IPv6:
IPV6_DONTFRAG), so a packet that does not fit the path is lost instead of fragmented:
exactly what a container's full-size packet meets.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import time
from typing import NamedTuple

# Per family: the IP header the kernel adds, echo request and reply types, the socket.
HEADER = {4: 20, 6: 40}
ICMP_HEADER = 8
ECHO = {4: (8, 0), 6: (128, 129)}
FAMILY = {4: (socket.AF_INET, socket.IPPROTO_ICMP), 6: (socket.AF_INET6, socket.IPPROTO_ICMPV6)}
IP_MTU_DISCOVER, IP_PMTUDISC_PROBE = 10, 3          # linux/in.h
IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE, IPV6_DONTFRAG = 23, 3, 62    # linux/in6.h
SMALLEST = {4: HEADER[4] + ICMP_HEADER + 8, 6: HEADER[6] + ICMP_HEADER + 8}
WAVE_GAP = 0.02     # seconds between the echoes of one target (all targets at once)


class Target(NamedTuple):
    key: object         # what the caller calls it (hashable: the peer, family and size)
    family: int
    source: str | None  # this host's overlay address (None: the kernel's choice)
    address: str        # the peer's


class Outcome(NamedTuple):
    sent: int
    rtts: tuple         # seconds, one per reply
    error: str | None   # why echoes could not even be sent (no route, too big for a device)


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def echo_request(family, ident, seq, size) -> bytes:
    """An echo request that makes an IP packet of `size` bytes."""
    payload = bytes(range(256)) * 64
    payload = payload[:max(size - HEADER[family] - ICMP_HEADER, 0)]
    kind = ECHO[family][0]
    header = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
    if family == 6:
        return header + payload     # the kernel fills in ICMPv6 checksums on raw sockets
    return struct.pack("!BBHHH", kind, 0, checksum(header + payload), ident, seq) + payload


def parse_reply(family, data):
    """(ident, seq) of an echo reply, None for anything else."""
    if family == 4:
        data = data[(data[0] & 0x0F) * 4:] if data else data
    if len(data) < ICMP_HEADER or data[0] != ECHO[family][1]:
        return None
    return struct.unpack("!HH", data[4:8])


def open_socket(family, source):
    af, proto = FAMILY[family]
    sock = socket.socket(af, socket.SOCK_RAW, proto)
    try:
        if family == 4:
            sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE)
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_DONTFRAG, 1)
        if source:
            sock.bind((source, 0))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def echo(targets, size, count=3, timeout=1.0) -> dict:
    """{key: Outcome} after `count` echoes of `size`-byte IP packets (or {key: size}) to
    every target, all in flight together."""
    sizes = size if isinstance(size, dict) else {t.key: size for t in targets}
    ident = (os.getpid() ^ int.from_bytes(os.urandom(2), "big")) & 0xFFFF
    sockets, unusable, errors, pending, rtts, sent = {}, {}, {}, {}, {}, {}
    try:
        for target in targets:
            rtts[target.key], sent[target.key] = [], 0
            place = (target.family, target.source)
            if place not in sockets:
                try:
                    sockets[place] = open_socket(*place)
                except OSError as exc:
                    sockets[place] = None
                    unusable[place] = "cannot send from %s: %s" % (target.source or "here",
                                                                   exc.strerror)
        seq = 0
        last_send = time.monotonic()
        for wave in range(count):
            for target in targets:
                sock = sockets[(target.family, target.source)]
                if sock is None:
                    continue
                seq = (seq + 1) & 0xFFFF
                try:
                    sock.sendto(echo_request(target.family, ident, seq, sizes[target.key]),
                                (target.address, 0))
                except OSError as exc:
                    errors[target.key] = describe_send_error(exc, sizes[target.key])
                    continue
                pending[(target.family, seq)] = (target.key, target.address, time.monotonic())
                sent[target.key] += 1
            last_send = time.monotonic()
            collect(sockets, ident, pending, rtts, last_send + (WAVE_GAP if wave + 1 < count else timeout))
    finally:
        for sock in sockets.values():
            if sock is not None:
                sock.close()
    return {t.key: Outcome(sent[t.key], tuple(rtts[t.key]),
                           errors.get(t.key) or unusable.get((t.family, t.source)))
            for t in targets}


def largest_passing(targets, passed, failed, count=2, timeout=0.5) -> dict:
    """{key: the largest size that passed}, by bisection between `passed` (a size each
    target carried) and `failed` ({key: the size it did not}), every target at once."""
    bounds = {t.key: [passed, failed[t.key]] for t in targets}
    while True:
        open_ = [t for t in targets if bounds[t.key][1] - bounds[t.key][0] > 1]
        if not open_:
            return {key: low for key, (low, dummy) in bounds.items()}
        middle = {t.key: sum(bounds[t.key]) // 2 for t in open_}
        for key, outcome in echo(open_, middle, count, timeout).items():
            bounds[key][0 if outcome.rtts else 1] = middle[key]


def collect(sockets, ident, pending, rtts, until):
    """Take echo replies until `until` (monotonic) or until none is pending."""
    by_fd = {sock.fileno(): (family, sock) for (family, dummy), sock in sockets.items() if sock}
    while pending:
        left = until - time.monotonic()
        if left <= 0:
            return
        ready, dummy, dummy = select.select(list(by_fd), [], [], left)
        for fd in ready:
            family, sock = by_fd[fd]
            while True:
                try:
                    data, sender = sock.recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    break
                got = parse_reply(family, data)
                if got is None or got[0] != ident or (family, got[1]) not in pending:
                    continue
                key, address, when = pending[(family, got[1])]
                if socket.inet_pton(FAMILY[family][0], sender[0]) != \
                        socket.inet_pton(FAMILY[family][0], address):
                    continue    # a reply from elsewhere, to a request of ours: not the path
                del pending[(family, got[1])]
                rtts[key].append(time.monotonic() - when)


def describe_send_error(exc, size):
    if exc.errno == errno.EMSGSIZE:
        return "a %d-byte packet does not fit this host's own device MTU" % size
    return "cannot send: %s" % (exc.strerror or exc)
