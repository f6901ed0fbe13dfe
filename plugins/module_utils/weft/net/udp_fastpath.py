# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The udp backend's kernel fast path: two tc-BPF programs in front of weft-udpd that
carry Flannel's wire format (a container's IPv4 packet as the payload of a UDP datagram
to the peer's port) with the kernel's latency, and hand everything else to the daemon.

- On the TUN device's egress, a packet to a weft peer's subnet that is not a GSO
  super-packet, is IPv4 without options, has TTL above 1 and whose next hop the kernel
  has resolved (bpf_fib_lookup) gets TTL - 1, Ethernet, IPv4 and UDP headers in front and
  goes straight to the underlay device the route to the peer leaves by. Anything else
  goes on to the TUN device and so to the daemon (TCP bulk, which the daemon's offloads
  carry faster; TTL running out and no route, which the daemon answers with ICMP; a
  neighbour not yet resolved, which the daemon's send resolves; a Flannel peer, which
  the daemon sends complete inner checksums).
- On the underlay device's ingress, a datagram to our address and port from a peer's
  address whose inner packet is IPv4 without options, to our subnet, from that peer's
  subnet, with lengths that agree, a good header checksum and TTL above 1 loses its
  outer headers, gets TTL - 1 and enters the TUN device's ingress, exactly as the daemon
  writes it (so the firewall and rp_filter see the same device). Anything else goes on
  to the stack unchanged: the nftables ingress table, the daemon's checks and counters.

The ingress program does not look at the outer fragment bits or the UDP checksum (the
kernel checks both before the daemon's socket), and it runs before netfilter. Its peers are
in frozen maps and its addresses in the code, so nothing changes what runs but a new
attach: a change of peers loads new programs, puts them in front and takes the old ones
away (the filter's name carries a digest of what was loaded: that is how a run knows
the kernel already runs what it wants). Its two counters (packets each way) live in a
per-CPU array the programs share, carried over from one attach to the next.
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import os
import socket
import struct

from ..errors import WeftError
from . import bpf, tc
from .bpf import CTX, FP, H_CHANGE_HEAD, H_CSUM_DIFF, H_FIB, Asm, Reg, Stack
from .netlink import NetlinkError
from ..validate import int_range, interface_name, ip_address, ip_network

EGRESS, INGRESS = 0xFFFFFFF3, 0xFFFFFFF2          # clsact's two hooks (tc parents)
HOOKS = {EGRESS: "egress", INGRESS: "ingress"}
NAME = "weft-udp-"                                # every filter weft puts here starts so
HEADERS = 14 + 20 + 8                             # Ethernet, IPv4, UDP
FIB_LOOKUP_OUTPUT, REDIRECT_INGRESS, ADJ_ROOM_MAC = 2, 1, 1
MAX_PEERS = 65536
SLOTS = ("sent", "received")                      # the counters, by slot
GONE = (errno.ENOENT, errno.EINVAL, errno.ENODEV)  # what removal finds already away

PEER_SPEC = dict(ip=dict(type="str", required=True), subnet=dict(type="str", required=True),
                 send=dict(type="bool", default=True))
ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),         # the TUN device
    state=dict(type="str", choices=["present", "absent"], default="present"),
    underlay=dict(type="str"),                    # where the peers' datagrams arrive
    address=dict(type="str"),                     # our address on it
    subnet=dict(type="str"),                      # our containers' subnet
    port=dict(type="int", default=8285),
    peers=dict(type="list", elements="dict", options=PEER_SPEC, default=[]),
)
SPEC_RULES = dict(required_if=[("state", "present", ["underlay", "address", "subnet"])])


# ---- the programs ----------------------------------------------------------------------

def raw32(ip):
    """An IPv4 address as a 4-byte load from a packet reads it (little-endian, signed)."""
    return struct.unpack("<i", socket.inet_aton(str(ip)))[0]


def raw16(number):
    """A 16-bit field in network order as a 2-byte load from a packet reads it."""
    return struct.unpack("<H", struct.pack("!H", number))[0]


def fold(a, r, scratch):
    """r = the 32-bit one's complement sum in r folded into 16 bits (end-around carry)."""
    for dummy in range(2):
        a.movr(scratch, r)
        a.alu("rsh", scratch, 16)
        a.alu("and", r, 0xFFFF)
        a.alur("add", r, scratch)


def ttl_minus_one(a, copy, header):
    """TTL - 1 in the IPv4 header at packet offset `header` (its TTL/protocol word also at
    stack offset `copy`), the header checksum kept right: what the daemon does."""
    a.ld(2, 8, FP, copy)
    a.movr(9, 8)
    a.alu("sub", 9, 1)
    a.st(2, FP, copy, 9)
    a.call(bpf.H_CSUM_REPLACE, CTX, header + 10, Reg(8), Reg(9), 2)
    a.j("ne", 0, 0, "shot")
    a.call(bpf.H_STORE, CTX, header + 8, Stack(copy), 2, 0)
    a.j("ne", 0, 0, "shot")


def ends(a):
    """The two ways out: "pass" (untouched, on as before) and "shot" (dropped: a packet
    already half rewritten, which neither the kernel nor the daemon could use)."""
    a.label("pass")
    a.ret(bpf.OK)
    a.label("shot")
    a.ret(bpf.SHOT)
    return a.code()


def encapsulate(routes_fd, counters_fd, own_ip, port, underlay_index):
    """The TUN device's egress program (see the module's doc)."""
    a = Asm()
    hdr, key, fib, out, sum_at = -136, -144, -64, -112, -168    # stack: see each use
    a.movr(6, 1)
    a.ld(4, 2, 6, bpf.SKB_GSO_SEGS)
    a.j("gt", 2, 1, "pass")
    a.call(bpf.H_LOAD, CTX, 0, Stack(hdr), 20)               # the packet's IPv4 header
    a.j("ne", 0, 0, "pass")
    a.ld(1, 2, FP, hdr)
    a.j("ne", 2, 0x45, "pass")
    a.ld(1, 2, FP, hdr + 8)
    a.j("le", 2, 1, "pass")                                      # TTL: the daemon answers
    a.sti(4, FP, key, 32)                                    # LPM key: /32 of the destination
    a.ld(4, 2, FP, hdr + 16)
    a.st(4, FP, key + 4, 2)
    a.map_fd(1, routes_fd)
    a.call(bpf.H_LOOKUP, Reg(1), Stack(key))
    a.j("eq", 0, 0, "pass")                                      # no route: the daemon answers
    a.ld(4, 7, 0, 0)                                         # r7 = the peer's address
    for offset in range(0, 64, 8):                           # struct bpf_fib_lookup
        a.sti(8, FP, fib + offset, 0)
    a.sti(1, FP, fib, socket.AF_INET)
    a.sti(4, FP, fib + 8, underlay_index)
    a.sti(4, FP, fib + 16, raw32(own_ip))
    a.st(4, FP, fib + 32, 7)
    a.call(H_FIB, CTX, Stack(fib), 64, FIB_LOOKUP_OUTPUT)
    a.j("ne", 0, 0, "pass")                                      # e.g. no neighbour yet
    ttl_minus_one(a, hdr + 8, 0)
    a.call(H_CHANGE_HEAD, CTX, HEADERS, 0)
    a.j("ne", 0, 0, "shot")
    for i in range(0, 6, 2):                                 # Ethernet, IPv4, UDP at `out`
        a.ld(2, 2, FP, fib + 58 + i)                         # destination MAC
        a.st(2, FP, out + i, 2)
        a.ld(2, 2, FP, fib + 52 + i)                         # source MAC
        a.st(2, FP, out + 6 + i, 2)
    a.sti(2, FP, out + 12, raw16(0x0800))
    a.sti(2, FP, out + 14, raw16(0x4500))
    a.ld(4, 8, 6, bpf.SKB_LEN)
    a.alu("sub", 8, 14)
    a.be16(8)
    a.st(2, FP, out + 16, 8)                                 # total length
    a.sti(2, FP, out + 18, 0)                                # ID
    a.sti(2, FP, out + 20, raw16(0x4000))                    # don't fragment
    a.sti(2, FP, out + 22, raw16(0x4000 | socket.IPPROTO_UDP))   # TTL 64, UDP
    a.sti(2, FP, out + 24, 0)
    own = socket.inet_aton(str(own_ip))
    a.sti(2, FP, out + 26, struct.unpack("<H", own[:2])[0])
    a.sti(2, FP, out + 28, struct.unpack("<H", own[2:])[0])
    a.movr(2, 7)
    a.alu("and", 2, 0xFFFF)
    a.st(2, FP, out + 30, 2)
    a.movr(2, 7)
    a.alu("rsh", 2, 16)
    a.st(2, FP, out + 32, 2)
    a.sti(2, FP, out + 34, raw16(port))
    a.sti(2, FP, out + 36, raw16(port))
    a.ld(4, 8, 6, bpf.SKB_LEN)
    a.alu("sub", 8, 14 + 20)
    a.be16(8)
    a.st(2, FP, out + 38, 8)                                 # UDP length
    a.sti(2, FP, out + 40, 0)                                # no UDP checksum (IPv4)
    for i in range(0, 20, 2):                                # the IPv4 header, 4-aligned
        a.ld(2, 2, FP, out + 14 + i)
        a.st(2, FP, sum_at + i, 2)
    a.call(H_CSUM_DIFF, 0, 0, Stack(sum_at), 20, 0)
    a.movr(8, 0)
    fold(a, 8, 2)
    a.alu("xor", 8, 0xFFFF)
    a.st(2, FP, out + 24, 8)                                 # its checksum
    a.call(bpf.H_STORE, CTX, 0, Stack(out), HEADERS, 0)
    a.j("ne", 0, 0, "shot")
    a.count(counters_fd, SLOTS.index("sent"), key)
    a.ld(4, 1, FP, fib + 8)                                  # the device the FIB chose
    a.call(bpf.H_REDIRECT, Reg(1), 0)
    a.exit()
    return ends(a)


def decapsulate(peers_fd, counters_fd, own_ip, own_subnet, port, tun_index):
    """The underlay device's ingress program (see the module's doc)."""
    network = ipaddress.ip_network(own_subnet)
    a = Asm()
    frame, key = -74, -80      # frame: Ethernet 0, IPv4 14, UDP 34, inner IPv4 42 (62 bytes),
    a.movr(6, 1)               # placed so that the 4-byte fields are 4-aligned
    a.call(bpf.H_LOAD, CTX, 0, Stack(frame), 62)
    a.j("ne", 0, 0, "pass")
    for size, offset, value in ((2, 12, raw16(0x0800)), (1, 14, 0x45),
                                (1, 23, socket.IPPROTO_UDP), (2, 36, raw16(port)),
                                (4, 30, raw32(own_ip)), (1, 42, 0x45)):
        a.ld(size, 2, FP, frame + offset)
        a.j("ne", 2, value, "pass")
    a.ld(1, 2, FP, frame + 50)
    a.j("le", 2, 1, "pass")                                      # inner TTL
    a.ld(2, 7, FP, frame + 16)                               # outer length = UDP + 20
    a.be16(7)
    a.alu("sub", 7, 20)
    a.ld(2, 8, FP, frame + 38)
    a.be16(8)
    a.jr("ne", 7, 8, "pass")
    a.ld(2, 7, FP, frame + 44)                               # UDP length = inner + 8
    a.be16(7)
    a.alu("add", 7, 8)
    a.jr("ne", 7, 8, "pass")
    a.ld(4, 7, FP, frame + 58)                               # inner destination: ours
    a.alu("and", 7, raw32(network.netmask))
    a.j("ne", 7, raw32(network.network_address), "pass")
    a.ld(4, 2, FP, frame + 26)                               # the sender: a peer
    a.st(4, FP, key, 2)
    a.map_fd(1, peers_fd)
    a.call(bpf.H_LOOKUP, Reg(1), Stack(key))
    a.j("eq", 0, 0, "pass")
    a.ld(4, 7, FP, frame + 54)                               # inner source: in its subnet
    a.ld(4, 8, 0, 4)
    a.alur("and", 7, 8)
    a.ld(4, 8, 0, 0)
    a.jr("ne", 7, 8, "pass")
    a.call(H_CSUM_DIFF, 0, 0, Stack(frame + 42), 20, 0)      # inner header checksum
    a.movr(7, 0)
    fold(a, 7, 2)
    a.j("ne", 7, 0xFFFF, "pass")
    a.call(bpf.H_ADJUST, CTX, -28, ADJ_ROOM_MAC, 0)
    a.j("ne", 0, 0, "pass")
    ttl_minus_one(a, frame + 50, 14)
    a.count(counters_fd, SLOTS.index("received"), key)
    a.call(bpf.H_REDIRECT, tun_index, REDIRECT_INGRESS)
    a.exit()
    return ends(a)


# ---- what is wanted --------------------------------------------------------------------

def desired(params):
    """The checked parameters, or ValueError naming the one that is wrong."""
    interface_name(params["name"], "name")
    interface_name(params["underlay"], "underlay")
    address = ip_address(params["address"], "address")
    subnet = ip_network(params["subnet"], "subnet")
    port = int_range(params["port"], "port", 1, 65535)
    if address.version != 4 or subnet.version != 4:
        raise ValueError("address, subnet: the udp backend carries IPv4 (got %s, %s)"
                         % (address, subnet))
    if len(params["peers"]) > MAX_PEERS:
        raise ValueError("peers: %d is more than %d" % (len(params["peers"]), MAX_PEERS))
    peers = []
    for i, peer in enumerate(params["peers"]):
        where = "peers[%d]" % i
        ip, net = ip_address(peer["ip"], where + ".ip"), ip_network(peer["subnet"], where + ".subnet")
        if ip.version != 4 or net.version != 4:
            raise ValueError("%s: the udp backend's peers are IPv4 (got %s, %s)" % (where, ip, net))
        peers.append((str(ip), str(net), peer["send"]))
    return dict(name=params["name"], underlay=params["underlay"], address=str(address),
                subnet=str(subnet), port=port, peers=sorted(set(peers)))


def programs(want, routes_fd, peers_fd, counters_fd, tun_index, underlay_index):
    return {EGRESS: encapsulate(routes_fd, counters_fd, want["address"], want["port"],
                                underlay_index),
            INGRESS: decapsulate(peers_fd, counters_fd, want["address"], want["subnet"],
                                 want["port"], tun_index)}


def digest(want, tun_index, underlay_index):
    """What the filters' names carry: the code (with stand-in map fds) and the maps'
    contents, so that any change of either makes a run attach anew."""
    code = programs(want, 1, 2, 3, tun_index, underlay_index)
    text = repr((code[EGRESS], code[INGRESS], want["peers"])).encode()
    return hashlib.sha256(text).hexdigest()[:16]


def filter_names(key):
    return {EGRESS: NAME + "encap-" + key, INGRESS: NAME + "decap-" + key}


# ---- the kernel ------------------------------------------------------------------------

def ours(kernel):
    """{(ifindex, hook): [(name, prio, prog id)]} of every filter weft put on any device."""
    found = {}
    indexes = sorted({q["index"] for q in kernel.ipr.get_qdiscs()
                      if q.get_attr("TCA_KIND") == "clsact"})
    for index in indexes:
        for hook in HOOKS:
            entries = [(f["name"], f["prio"], f["id"]) for f in tc.bpf_filters(index, hook)
                       if f["name"].startswith(NAME)]
            if entries:
                found[(index, hook)] = entries
    return found


def counters_map(prog_ids):
    """An fd of the counters map the running programs share, or None."""
    for prog_id in prog_ids:
        try:
            for map_id in bpf.prog_map_ids(prog_id):
                fd, kind, dummy, dummy = bpf.map_by_id(map_id)
                if kind == bpf.PERCPU_ARRAY:
                    return fd
                os.close(fd)
        except OSError:
            continue
    return None


def counters(kernel):
    """{"sent": n, "received": n}: packets the fast path carried (all CPUs), or None
    when it is not attached."""
    found = ours(kernel)
    fd = counters_map([prog for entries in found.values() for dummy, dummy, prog in entries])
    if fd is None:
        return None
    try:
        cpus = bpf.possible_cpus()
        totals = {}
        for slot, name in enumerate(SLOTS):
            raw = bpf.map_lookup(fd, struct.pack("<I", slot), 8 * cpus)
            totals[name] = sum(struct.unpack("<%dQ" % cpus, raw))
        return totals
    finally:
        os.close(fd)


def detach(kernel, found, keep=()):
    """Take weft's filters away (all but the names in `keep`), then each clsact weft's
    filters leave empty; another's filters stay where they are."""
    for (index, hook), entries in found.items():
        kept = set()
        for name, prio, dummy in sorted(entries, key=lambda entry: entry[1]):
            if name in keep and name not in kept:   # the first of its name: the newest
                kept.add(name)
                continue
            try:
                kernel.ipr.tc("del-filter", "bpf", index, parent=hook, prio=prio)
            except NetlinkError as exc:
                if exc.code not in GONE:
                    raise
    for index in sorted({index for index, dummy in found}):
        try:
            empty = all(not tuple(kernel.ipr.get_filters(index=index, parent=hook))
                        for hook in HOOKS)   # any kind of filter, not only bpf
            if empty:
                kernel.ipr.tc("del", "clsact", index)
        except NetlinkError as exc:
            if exc.code not in GONE:
                raise


def attach(kernel, want, tun_index, underlay_index, names, old_prog_ids):
    """Load the programs with their maps and put them in front of whatever runs."""
    fds = []
    try:
        routes = bpf.map_create(bpf.LPM, 8, 8, max(len(want["peers"]), 1), 1)   # NO_PREALLOC
        by_address = bpf.map_create(bpf.HASH, 4, 8, max(len(want["peers"]), 1))
        fds += [routes, by_address]
        counters_fd = counters_map(old_prog_ids)
        if counters_fd is None:
            counters_fd = bpf.map_create(bpf.PERCPU_ARRAY, 4, 8, len(SLOTS))
        fds.append(counters_fd)
        for ip, subnet, send in want["peers"]:
            net = ipaddress.ip_network(subnet)
            if send:
                bpf.map_update(routes, struct.pack("<I", net.prefixlen) + net.network_address.packed,
                               socket.inet_aton(ip) + bytes(4))
            bpf.map_update(by_address, socket.inet_aton(ip),
                           net.network_address.packed + net.netmask.packed)
        bpf.map_freeze(routes)
        bpf.map_freeze(by_address)
        code = programs(want, routes, by_address, counters_fd, tun_index, underlay_index)
        for hook, index in ((EGRESS, tun_index), (INGRESS, underlay_index)):
            fds.append(bpf.prog_load(code[hook], names[hook][:len(NAME) + 5]))
            try:
                kernel.ipr.tc("add", "clsact", index)
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise
            # No priority given: the kernel puts the new filter before the old one.
            kernel.ipr.tc("add-filter", "bpf", index, fd=fds[-1], name=names[hook],
                          parent=hook, direct_action=True)
    finally:
        for fd in fds:      # the filters hold the programs, the programs their maps
            os.close(fd)


def describe(kernel, attached):
    """What a diff shows: each filter by device, hook and name."""
    names = kernel.names()
    return "".join("%s %s %s\n" % (names.get(index, index), HOOKS[hook], name)
                   for (index, hook), name in sorted(attached))


def run(params, ctx):
    kernel = ctx.kernel
    found = ours(kernel)
    before = [(where, name) for where, entries in found.items() for name, dummy, dummy in entries]
    if params["state"] == "absent":
        if found and not ctx.check_mode:
            detach(kernel, found)
        return result(ctx, kernel, before, [])
    try:
        want = desired(params)
    except ValueError as exc:
        raise WeftError(str(exc)) from None
    tun_index, underlay_index = kernel.index(want["name"]), kernel.index(want["underlay"])
    if underlay_index is None:
        raise WeftError("underlay: no device named %s on this host" % want["underlay"])
    if tun_index is None:
        if ctx.check_mode:      # an earlier step makes it
            return dict(changed=True)
        raise WeftError("name: no device named %s on this host" % want["name"])
    names = filter_names(digest(want, tun_index, underlay_index))
    after = [((tun_index, EGRESS), names[EGRESS]), ((underlay_index, INGRESS), names[INGRESS])]
    if sorted(before) == sorted(after) or ctx.check_mode:
        return result(ctx, kernel, before, after)
    if set(after) <= set(before):   # and more besides: take that away
        detach(kernel, found, keep=set(names.values()))
        return result(ctx, kernel, before, after)
    try:
        attach(kernel, want, tun_index, underlay_index, names,
               [prog for entries in found.values() for dummy, dummy, prog in entries])
    except (OSError, NetlinkError) as exc:
        # A kernel without what the programs need (BPF, cls_bpf, these helpers), or a
        # host that forbids bpf(2): the daemon carries everything, as without the fast path.
        detach(kernel, ours(kernel))
        outcome = result(ctx, kernel, before, [])
        outcome["warnings"] = ["the kernel fast path is off, weft-udpd carries every packet: "
                               "%s" % exc]
        return outcome
    detach(kernel, ours(kernel), keep=set(names.values()))
    return result(ctx, kernel, before, after)


def result(ctx, kernel, before, after):
    changed = sorted(before) != sorted(after)
    outcome = dict(changed=changed)
    if changed and ctx.diff:
        outcome["diff"] = dict(before=describe(kernel, before), after=describe(kernel, after))
    return outcome
