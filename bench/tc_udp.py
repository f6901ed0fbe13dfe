"""Flannel's udp wire format carried by the kernel: two tc-BPF programs, for udpd_trace.py.

A prototype of a udp data path in the kernel, in front of the daemon, measured beside
weft-udpd. On each host one program on the TUN device's egress puts a packet in a UDP
datagram to its peer's port 8285 (Ethernet, IPv4 and UDP headers in front, the packet
untouched but for TTL - 1: exactly what Flannel's proxy and weft-udpd send) and hands it
to the underlay device the route to the peer leaves by; one on the underlay device's
ingress takes a datagram from a peer out of its headers and puts the packet into the TUN
device's ingress, as weft-udpd writes it. Each takes only what weft-udpd would pass, and
returns anything else to the kernel untouched (TC_ACT_OK): on egress to the TUN device and
so to the daemon (no route, TTL running out, GSO super-packets, IPv4 options, a neighbour
not yet resolved); on ingress to the stack, the nftables ingress table and the daemon
(not from a peer, an inner source outside that peer's subnet, an inner destination
outside ours, lengths that disagree, a bad inner header checksum, TTL running out).

Peers are in two maps, so a change of peers needs no reload: routes (an LPM trie: a
peer's subnet -> its address) and peers (a hash: a peer's address -> its subnet and
mask). The MACs come from the kernel's FIB and neighbour table (bpf_fib_lookup). The
programs are assembled here (no compiler on these hosts), loaded with bpf(2) through
ctypes and attached with pyroute2 (clsact, direct action). Not weft's data path yet: no
counters, nothing keeps it across reboots, and weft-udpd does not know of it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
import subprocess
import time

from pyroute2 import NetNS
from pyroute2.netlink.exceptions import NetlinkError

libc = ctypes.CDLL(None, use_errno=True)
SYS_BPF = 321                                            # x86_64
MAP_CREATE, MAP_UPDATE, PROG_LOAD = 0, 2, 5              # bpf(2) commands
HASH, LPM = 1, 11                                        # map types
SCHED_CLS = 3                                            # program type
# Helpers (include/uapi/linux/bpf.h): their numbers.
H_LOOKUP, H_STORE, H_CSUM_REPLACE, H_REDIRECT, H_LOAD, H_CSUM_DIFF = 1, 9, 10, 23, 26, 28
H_CHANGE_HEAD, H_ADJUST, H_FIB = 43, 50, 69
OK, SHOT = 0, 2                                          # TC_ACT_OK, TC_ACT_SHOT
SKB_LEN, SKB_GSO_SEGS = 0, 164                           # struct __sk_buff offsets
FIB_LOOKUP_OUTPUT, REDIRECT_INGRESS, ADJ_ROOM_MAC = 2, 1, 1
HEADERS = 14 + 20 + 8                                    # Ethernet, IPv4, UDP
EGRESS, INGRESS = "ffff:fff3", "ffff:fff2"               # clsact's two hooks
PORT = 8285


class Reg:
    """A register as a helper's argument."""

    def __init__(self, number):
        self.number = number


class Stack:
    """A pointer into the program's stack (r10 + offset) as a helper's argument."""

    def __init__(self, offset):
        self.offset = offset


CTX, FP = Reg(6), 10        # the programs keep the skb in r6; r10 is the frame pointer


class Asm:
    """eBPF instructions, with labels for jump targets (what the two programs need)."""

    LOAD, STORE = {1: 0x71, 2: 0x69, 4: 0x61}, {1: 0x73, 2: 0x6b, 4: 0x63}
    STORE_IMM = {1: 0x72, 2: 0x6a, 4: 0x62, 8: 0x7a}

    def __init__(self):
        self.items = []     # ("insn", code, dst, src, off, imm), ("label", name), ("map", dst, fd)

    def insn(self, code, dst=0, src=0, off=0, imm=0):
        self.items.append(("insn", code, dst, src, off, imm))

    def label(self, name):
        self.items.append(("label", name))

    def jump(self, code, dst, target, imm=0, src=0):
        self.items.append(("jump", code, dst, src, target, imm))

    def map_fd(self, dst, fd):
        """dst = the map `fd` (a 16-byte instruction the loader resolves)."""
        self.items.append(("map", dst, fd))

    # dst op= imm, dst op= src (64 bits)
    ALU = {"mov": 0xb7, "add": 0x07, "sub": 0x17, "and": 0x57, "rsh": 0x77, "xor": 0xa7}
    ALU_REG = {"mov": 0xbf, "add": 0x0f, "and": 0x5f}

    def alu(self, op, dst, imm):
        self.insn(self.ALU[op], dst, imm=imm)

    def alur(self, op, dst, src):
        self.insn(self.ALU_REG[op], dst, src)

    def mov(self, dst, imm):
        self.alu("mov", dst, imm)

    def movr(self, dst, src):
        self.alur("mov", dst, src)

    def be16(self, dst):
        """dst = its low 16 bits byte-swapped (host <-> network order on x86_64)."""
        self.insn(0xdc, dst, imm=16)

    def ld(self, size, dst, src, off):
        self.insn(self.LOAD[size], dst, src, off)

    def st(self, size, dst, off, src):
        self.insn(self.STORE[size], dst, src, off)

    def sti(self, size, dst, off, imm):
        self.insn(self.STORE_IMM[size], dst, off=off, imm=imm)

    def call(self, helper, *args):
        """r0 = helper(args): each an int (immediate), Reg(n) or Stack(offset from r10)."""
        for number, arg in enumerate(args, start=1):
            if isinstance(arg, Reg):
                self.movr(number, arg.number)
            elif isinstance(arg, Stack):
                self.movr(number, 10)
                self.alu("add", number, arg.offset)
            else:
                self.mov(number, arg)
        self.insn(0x85, imm=helper)

    def exit(self):
        self.insn(0x95)

    def ret(self, code):
        self.mov(0, code)
        self.exit()

    # if dst op imm (or src): goto target. "ne" compares 32 bits, for values loaded from
    # packets (a 64-bit compare would sign-extend the immediate)
    JUMP = {"ne": 0x56, "eq": 0x15, "gt": 0x25, "le": 0xb5}
    JUMP_REG = {"ne": 0x5e}

    def j(self, op, dst, imm, target):
        self.jump(self.JUMP[op], dst, target, imm)

    def jr(self, op, dst, src, target):
        self.jump(self.JUMP_REG[op], dst, target, src=src)

    def code(self) -> bytes:
        where, pc = {}, 0
        for item in self.items:
            if item[0] == "label":
                where[item[1]] = pc
            else:
                pc += 2 if item[0] == "map" else 1
        out, pc = b"", 0
        for item in self.items:
            if item[0] == "label":
                continue
            if item[0] == "map":    # BPF_LD | BPF_IMM | BPF_DW, src BPF_PSEUDO_MAP_FD
                out += struct.pack("<BBhi", 0x18, (1 << 4) | item[1], 0, item[2]) + bytes(8)
                pc += 2
                continue
            kind, code, dst, src, off, imm = item
            if kind == "jump":
                off = where[off] - pc - 1
            out += struct.pack("<BBhi", code, (src << 4) | dst, off, imm)
            pc += 1
        return out


def bpf(cmd, attr):
    buf = ctypes.create_string_buffer(attr, len(attr))
    result = libc.syscall(SYS_BPF, cmd, buf, len(attr))
    if result < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return result


def map_create(kind, key, value, entries, flags=0):
    return bpf(MAP_CREATE, struct.pack("<IIIII", kind, key, value, entries, flags) + b"\0" * 60)


def map_update(fd, key, value):
    k, v = ctypes.create_string_buffer(key, len(key)), ctypes.create_string_buffer(value, len(value))
    bpf(MAP_UPDATE, struct.pack("<IIQQQ", fd, 0, ctypes.addressof(k), ctypes.addressof(v), 0))


def prog_load(code, name):
    """A program's fd; the verifier's log in the error when it refuses."""
    insns, license_ = ctypes.create_string_buffer(code), ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(1 << 20)
    attr = struct.pack("<IIQQIIQI", SCHED_CLS, len(code) // 8, ctypes.addressof(insns),
                       ctypes.addressof(license_), 1, len(log), ctypes.addressof(log), 0)
    try:
        return bpf(PROG_LOAD, attr + b"\0" * 80)
    except OSError as exc:
        raise RuntimeError("bpf(BPF_PROG_LOAD) of %s: %s\n%s"
                           % (name, exc, log.value.decode()[-3000:])) from None


def raw32(ip):
    """An IPv4 address as a 4-byte load from a packet reads it (little-endian, signed)."""
    return struct.unpack("<i", socket.inet_aton(ip))[0]


def raw16(number):
    """A 16-bit field in network order as a 2-byte load from a packet reads it."""
    return struct.unpack("<H", struct.pack("!H", number))[0]


def fold(a, r, scratch):
    """r = the 32-bit one's complement sum in r folded into 16 bits (end-around carry)."""
    for _ in range(2):
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
    a.call(H_CSUM_REPLACE, CTX, header + 10, Reg(8), Reg(9), 2)
    a.j("ne", 0, 0, "shot")
    a.call(H_STORE, CTX, header + 8, Stack(copy), 2, 0)
    a.j("ne", 0, 0, "shot")


def ends(a):
    """The program's two ways out: "pass" (untouched, on as before) and "shot" (drop: a
    packet already half rewritten)."""
    a.label("pass")
    a.ret(OK)
    a.label("shot")
    a.ret(SHOT)
    return a.code()


def encapsulate(routes_fd, own_ip, port, underlay_index):
    """The TUN device's egress. The fast way only for: no GSO, IPv4 without options, TTL
    above 1, a route in the map, a resolved neighbour; anything else TC_ACT_OK, on to the
    TUN device and the daemon."""
    a = Asm()
    hdr, key, fib, out, sum_at = -136, -144, -64, -112, -168    # stack: see each use
    a.movr(6, 1)
    a.ld(4, 2, 6, SKB_GSO_SEGS)
    a.j("gt", 2, 1, "pass")
    a.call(H_LOAD, CTX, 0, Stack(hdr), 20)                   # the packet's IPv4 header
    a.j("ne", 0, 0, "pass")
    a.ld(1, 2, FP, hdr)
    a.j("ne", 2, 0x45, "pass")
    a.ld(1, 2, FP, hdr + 8)
    a.j("le", 2, 1, "pass")                                      # TTL: the daemon answers
    a.sti(4, FP, key, 32)                                    # LPM key: /32 of the destination
    a.ld(4, 2, FP, hdr + 16)
    a.st(4, FP, key + 4, 2)
    a.map_fd(1, routes_fd)
    a.movr(2, FP)
    a.alu("add", 2, key)
    a.call(H_LOOKUP)
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
    a.ld(4, 9, FP, fib + 8)                                  # r9 = the device to the peer
    a.call(H_CHANGE_HEAD, CTX, HEADERS, 0)
    a.j("ne", 0, 0, "shot")
    # Ethernet, IPv4 and UDP headers at `out`
    for i in range(0, 6, 2):
        a.ld(2, 2, FP, fib + 58 + i)                         # destination MAC
        a.st(2, FP, out + i, 2)
        a.ld(2, 2, FP, fib + 52 + i)                         # source MAC
        a.st(2, FP, out + 6 + i, 2)
    a.sti(2, FP, out + 12, raw16(0x0800))
    a.sti(2, FP, out + 14, raw16(0x4500))
    a.ld(4, 8, 6, SKB_LEN)
    a.alu("sub", 8, 14)
    a.be16(8)
    a.st(2, FP, out + 16, 8)                                 # total length
    a.sti(2, FP, out + 18, 0)                                # ID
    a.sti(2, FP, out + 20, raw16(0x4000))                    # don't fragment
    a.sti(2, FP, out + 22, raw16(0x4000 | socket.IPPROTO_UDP))   # TTL 64, UDP
    a.sti(2, FP, out + 24, 0)
    own = socket.inet_aton(own_ip)
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
    a.ld(4, 8, 6, SKB_LEN)
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
    a.call(H_STORE, CTX, 0, Stack(out), HEADERS, 0)
    a.j("ne", 0, 0, "shot")
    a.call(H_REDIRECT, Reg(9), 0)
    a.exit()
    return ends(a)


def decapsulate(peers_fd, own_ip, own_subnet, port, tun_index):
    """The underlay's ingress. The fast way (outer headers off, TTL - 1, into the TUN
    device's ingress, as the daemon writes it) only for what the daemon would admit from a
    peer; anything else TC_ACT_OK, on to the nftables ingress table and the daemon."""
    network, length = own_subnet.split("/")
    mask = struct.pack("!I", (0xFFFFFFFF << (32 - int(length))) & 0xFFFFFFFF)
    a = Asm()
    frame, key = -74, -80      # frame: Ethernet 0, IPv4 14, UDP 34, inner IPv4 42 (62 bytes),
    a.movr(6, 1)               # placed so that the 4-byte fields are 4-aligned
    a.call(H_LOAD, CTX, 0, Stack(frame), 62)
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
    a.alu("and", 7, struct.unpack("<i", mask)[0])
    a.j("ne", 7, raw32(network), "pass")
    a.ld(4, 2, FP, frame + 26)                               # the sender: a peer
    a.st(4, FP, key, 2)
    a.map_fd(1, peers_fd)
    a.movr(2, FP)
    a.alu("add", 2, key)
    a.call(H_LOOKUP)
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
    a.call(H_ADJUST, CTX, -28, ADJ_ROOM_MAC, 0)
    a.j("ne", 0, 0, "pass")
    ttl_minus_one(a, frame + 50, 14)
    a.call(H_REDIRECT, tun_index, REDIRECT_INGRESS)
    a.exit()
    return ends(a)


def attach(netns, tun, underlay, own_ip, own_subnet, peers, port=PORT):
    """Both programs on one host (a network namespace); `peers`: [(address, subnet)]."""
    routes, by_address = map_create(LPM, 8, 8, 1024, 1), map_create(HASH, 4, 8, 1024)
    fds = [routes, by_address]
    try:
        for address, subnet in peers:
            network, length = subnet.split("/")
            mask = struct.pack("!I", (0xFFFFFFFF << (32 - int(length))) & 0xFFFFFFFF)
            map_update(routes, struct.pack("<I", int(length)) + socket.inet_aton(network),
                       socket.inet_aton(address) + b"\0" * 4)
            map_update(by_address, socket.inet_aton(address), socket.inet_aton(network) + mask)
        with NetNS(netns) as ipr:
            tun_index = ipr.link_lookup(ifname=tun)[0]
            underlay_index = ipr.link_lookup(ifname=underlay)[0]
            for index, parent, code, name in (
                    (tun_index, EGRESS, encapsulate(routes, own_ip, port, underlay_index),
                     "weft-tc-encap"),
                    (underlay_index, INGRESS,
                     decapsulate(by_address, own_ip, own_subnet, port, tun_index), "weft-tc-decap")):
                fds.append(prog_load(code, name))
                ipr.tc("add", "clsact", index)
                ipr.tc("add-filter", "bpf", index, ":1", fd=fds[-1], name=name, parent=parent,
                       classid=1, direct_action=True)
    finally:
        for fd in fds:      # the filters hold the programs, the programs their maps
            os.close(fd)


def detach(netns, *devices):
    with NetNS(netns) as ipr:
        for device in devices:
            for index in ipr.link_lookup(ifname=device):
                try:
                    ipr.tc("del", "clsact", index)
                except NetlinkError as exc:
                    if exc.code != errno.ENOENT:    # ENOENT: none there, nothing to take away
                        raise


CAPTURE = """
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((sys.argv[1], 0))
s.settimeout(15)
while True:
    frame = s.recv(2048)
    if frame[12:14] == b"\\x08\\x00" and frame[23] == 17 and frame[36:38] == (%d).to_bytes(2, "big"):
        print(frame.hex())
        break
""" % PORT


def wire_check(receiver_netns, underlay, send, inner_source, inner_destination):
    """One datagram as the receiver's underlay device sees it (before the programs) while
    `send()` runs: UDP to PORT whose payload is the IPv4 packet inner_source ->
    inner_destination, untouched but for its TTL: Flannel's wire format. Raises when it is
    not."""
    capture = subprocess.Popen(["ip", "netns", "exec", receiver_netns, "python3", "-c", CAPTURE,
                                underlay], stdout=subprocess.PIPE, text=True)
    out = ""
    try:
        for _ in range(20):     # until the capture, which takes a moment to start, has one
            send()
            try:
                out = capture.communicate(timeout=0.5)[0]
                break
            except subprocess.TimeoutExpired:
                pass
    finally:
        if capture.poll() is None:
            capture.kill()
            capture.wait()
    if not out.strip():
        raise RuntimeError("no UDP datagram to port %d reached %s" % (PORT, underlay))
    frame = bytes.fromhex(out.strip())
    inner = frame[HEADERS:]
    found = (inner[0], socket.inet_ntoa(inner[12:16]), socket.inet_ntoa(inner[16:20]),
             struct.unpack("!H", frame[38:40])[0] - 8 == len(inner))
    if found != (0x45, inner_source, inner_destination, True):
        raise RuntimeError("not Flannel's wire format: version/IHL, inner source, inner "
                           "destination, UDP length matches = %s" % (found,))


ECHO = """
import socket, struct, sys
source, inner_source, inner_destination = sys.argv[1:4]
header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0x4000, 64, 1, 0,
                     socket.inet_aton(inner_source), socket.inet_aton(inner_destination))
total = sum(struct.unpack("!10H", header))
while total >> 16:
    total = (total & 0xFFFF) + (total >> 16)
header = header[:10] + struct.pack("!H", ~total & 0xFFFF) + header[12:]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((source, 0))
sock.sendto(header + bytes.fromhex("0800f7ff00000000"), (sys.argv[4], %d))
""" % PORT


def echoes_received(netns):
    """ICMP echo requests the namespace's stack has taken in (/proc/net/snmp InEchos)."""
    out = subprocess.run(["ip", "netns", "exec", netns, "cat", "/proc/net/snmp"],
                         capture_output=True, text=True, check=True).stdout
    names, values = [line.split() for line in out.splitlines() if line.startswith("Icmp:")][:2]
    return int(values[names.index("InEchos")])


def delivers(sender_netns, source, receiver, inner_source, inner_destination, container_netns):
    """Whether one datagram from `source` (an address of the sender's) to `receiver`'s
    port, carrying an echo request inner_source -> inner_destination, reaches the
    container (no daemon runs: only the programs can take it there)."""
    before = echoes_received(container_netns)
    subprocess.run(["ip", "netns", "exec", sender_netns, "python3", "-c", ECHO, source,
                    inner_source, inner_destination, receiver], check=True)
    time.sleep(0.3)
    return echoes_received(container_netns) > before
