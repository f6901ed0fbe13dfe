"""Flannel's udp wire format carried by the kernel: two tc-BPF programs, for udpd_trace.py.

What a udp data path without a daemon would add to a round trip, measured beside
weft-udpd: on each host, one program on the overlay TUN device's egress puts every packet
routed into it in a UDP datagram to the peer's port 8285 (Ethernet, IPv4 and UDP headers
in front, the packet untouched: exactly what Flannel's proxy and weft-udpd send) and
hands it to the underlay device; one on the underlay device's ingress takes those
datagrams from the peer out of their headers and lets the inner packet go on into the
stack, which forwards it to the container.

A probe, not weft's data path: one peer (the benchmark has two hosts), its MAC read
beforehand, no checks but the outer headers' (protocol, port, the peer's address), no
TCP segmentation offload. The programs are assembled here (no compiler on these hosts),
loaded with bpf(2) through ctypes and attached with pyroute2 (clsact, direct action).
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import subprocess
import time

from pyroute2 import NetNS

SYS_BPF, BPF_PROG_LOAD, BPF_PROG_TYPE_SCHED_CLS = 321, 5, 3    # x86_64
EGRESS, INGRESS = "ffff:fff3", "ffff:fff2"                     # clsact's two hooks
TC_ACT_OK, TC_ACT_SHOT = 0, 2
PORT = 8285
# Helpers (include/uapi/linux/bpf.h): their numbers.
SKB_STORE_BYTES, SKB_CHANGE_HEAD, REDIRECT, SKB_LOAD_BYTES, SKB_ADJUST_ROOM = 9, 43, 23, 26, 50
ADJ_ROOM_MAC = 1
HEADERS = 14 + 20 + 8      # Ethernet, IPv4, UDP in front of the packet
STACK = -44                # where the program builds them (4-byte aligned, 44 bytes)


# ---- a few eBPF instructions (enough for these two programs) -------------------------

def insn(code, dst=0, src=0, off=0, imm=0):
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def mov(dst, imm):
    return insn(0xb7, dst, imm=imm)


def mov_reg(dst, src):
    return insn(0xbf, dst, src)


def alu(op, dst, imm):
    """dst op= imm, 64 bits: add, sub, and, rsh, xor."""
    return insn({"add": 0x07, "sub": 0x17, "and": 0x57, "rsh": 0x77, "xor": 0xa7}[op], dst, imm=imm)


def add_reg(dst, src):
    return insn(0x0f, dst, src)


def to_be16(dst):
    return insn(0xdc, dst, imm=16)


def call(helper):
    return insn(0x85, imm=helper)


def exit_with(code):
    return mov(0, code) + insn(0x95)


def jne(dst, imm, skip):
    """If dst != imm, jump over the next `skip` instructions."""
    return insn(0x55, dst, off=skip, imm=imm)


def load(size, dst, src, off):
    return insn({1: 0x71, 2: 0x69, 4: 0x61}[size], dst, src, off)


def store16(dst, off, src):
    return insn(0x6b, dst, src, off)


def store32_imm(dst, off, imm):
    return insn(0x62, dst, off=off, imm=imm)


def count(code):
    return len(code) // 8


# ---- the two programs ----------------------------------------------------------------

def ones_sum(data):
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def encapsulate(own_mac, peer_mac, own_ip, peer_ip, underlay_ifindex):
    """TUN egress: room for the headers in front, the headers (lengths and the IPv4
    checksum from skb->len), out of the underlay device."""
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 0, 0, 0x4000, 64, socket.IPPROTO_UDP, 0,
                     socket.inet_aton(own_ip), socket.inet_aton(peer_ip))
    fixed = peer_mac + own_mac + b"\x08\x00" + ip + struct.pack("!HHHH", PORT, PORT, 0, 0) + b"\0\0"
    build = b"".join(store32_imm(10, STACK + i, struct.unpack("<i", fixed[i:i + 4])[0])
                     for i in range(0, len(fixed), 4))
    build += load(4, 7, 6, 0)                              # r7 = skb->len (headers included)
    build += mov_reg(8, 7) + alu("sub", 8, 14)             # r8 = IPv4 total length
    build += mov_reg(9, 8) + alu("add", 9, ones_sum(ip))   # r9 = the header's sum, folded:
    for _ in range(2):
        build += mov_reg(2, 9) + alu("rsh", 2, 16) + alu("and", 9, 0xFFFF) + add_reg(9, 2)
    build += alu("xor", 9, 0xFFFF)
    build += to_be16(8) + store16(10, STACK + 14 + 2, 8)
    build += to_be16(9) + store16(10, STACK + 14 + 10, 9)
    build += mov_reg(8, 7) + alu("sub", 8, 14 + 20) + to_be16(8) + store16(10, STACK + 34 + 4, 8)
    build += mov_reg(1, 6) + mov(2, 0) + mov_reg(3, 10) + alu("add", 3, STACK) + mov(4, HEADERS) \
        + mov(5, 0) + call(SKB_STORE_BYTES)
    build += mov(1, underlay_ifindex) + mov(2, 0) + call(REDIRECT) + insn(0x95)
    return (mov_reg(6, 1) + mov(2, HEADERS) + mov(3, 0) + call(SKB_CHANGE_HEAD)
            + jne(0, 0, count(build)) + build + exit_with(TC_ACT_SHOT))


def decapsulate(peer_ip):
    """Underlay ingress: a UDP datagram to PORT from the peer loses its outer IPv4 and UDP
    headers and goes on as the packet inside; anything else goes on untouched."""
    base = STACK - 6           # so that the 4-byte source address (offset 26) is aligned
    # (size, offset, value as a little-endian load reads the network-order bytes)
    checks = [(2, 12, 0x0008),                                   # EtherType IPv4
              (1, 14, 0x45),                                     # IPv4, no options
              (1, 23, socket.IPPROTO_UDP),
              (2, 36, struct.unpack("<H", struct.pack("!H", PORT))[0]),
              (4, 26, struct.unpack("<i", socket.inet_aton(peer_ip))[0])]
    strip = mov_reg(1, 6) + mov(2, -28) + mov(3, ADJ_ROOM_MAC) + mov(4, 0) + call(SKB_ADJUST_ROOM) \
        + exit_with(TC_ACT_OK)
    body = b""
    for i, (size, offset, value) in enumerate(checks):
        after = 2 * (len(checks) - 1 - i)      # the instructions of the tests after this one
        # a failed test jumps past the rest and `strip`, to "go on untouched"
        body += load(size, 7, 10, base + offset) + jne(7, value, after + count(strip))
    head = mov_reg(6, 1) + mov(2, 0) + mov_reg(3, 10) + alu("add", 3, base) + mov(4, HEADERS) \
        + call(SKB_LOAD_BYTES)
    return head + jne(0, 0, count(body) + count(strip)) + body + strip + exit_with(TC_ACT_OK)


# ---- loading and attaching -----------------------------------------------------------

def load_program(code, name):
    """A program's fd; the verifier's log in the error when it refuses."""
    libc = ctypes.CDLL(None, use_errno=True)
    insns, license_ = ctypes.create_string_buffer(code), ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(1 << 16)
    attr = struct.pack("<IIQQIIQI", BPF_PROG_TYPE_SCHED_CLS, count(code), ctypes.addressof(insns),
                       ctypes.addressof(license_), 1, len(log), ctypes.addressof(log), 0)
    attr = ctypes.create_string_buffer(attr + b"\0" * 80, len(attr) + 80)
    fd = libc.syscall(SYS_BPF, BPF_PROG_LOAD, attr, len(attr))
    if fd < 0:
        raise RuntimeError("bpf(BPF_PROG_LOAD) of %s: %s\n%s"
                           % (name, os.strerror(ctypes.get_errno()), log.value.decode()))
    return fd


def attach(netns, tun, underlay, own_ip, peer_ip, peer_mac):
    """Both programs on one host (a network namespace)."""
    own_mac = mac_of(netns, underlay)
    with NetNS(netns) as ipr:
        tun_index, underlay_index = ipr.link_lookup(ifname=tun)[0], ipr.link_lookup(ifname=underlay)[0]
        for index, parent, code, name in (
                (tun_index, EGRESS, encapsulate(own_mac, peer_mac, own_ip, peer_ip, underlay_index),
                 "weft-tc-encap"),
                (underlay_index, INGRESS, decapsulate(peer_ip), "weft-tc-decap")):
            fd = load_program(code, name)
            try:
                ipr.tc("add", "clsact", index)
                ipr.tc("add-filter", "bpf", index, ":1", fd=fd, name=name, parent=parent,
                       classid=1, direct_action=True)
            finally:
                os.close(fd)        # the filter holds the program


def detach(netns, *devices):
    with NetNS(netns) as ipr:
        for device in devices:
            for index in ipr.link_lookup(ifname=device):
                try:
                    ipr.tc("del", "clsact", index)
                except Exception:   # none there: nothing to take away
                    pass


def mac_of(netns, device):
    with NetNS(netns) as ipr:
        index = ipr.link_lookup(ifname=device)[0]
        return bytes.fromhex(ipr.get_links(index)[0].get_attr("IFLA_ADDRESS").replace(":", ""))


CAPTURE = """
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((sys.argv[1], 0))
s.settimeout(5)
while True:
    frame = s.recv(2048)
    if frame[12:14] == b"\\x08\\x00" and frame[23] == 17 and frame[36:38] == (%d).to_bytes(2, "big"):
        print(frame.hex())
        break
""" % PORT


def wire_check(receiver_netns, underlay, send, inner_source, inner_destination):
    """One datagram as the receiver's underlay device sees it (before the programs) while
    `send()` runs: UDP to PORT whose payload is the IPv4 packet inner_source ->
    inner_destination, untouched: Flannel's wire format. Raises when it is not."""
    capture = subprocess.Popen(["ip", "netns", "exec", receiver_netns, "python3", "-c", CAPTURE,
                                underlay], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        send()
        out = capture.communicate(timeout=10)[0]
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
