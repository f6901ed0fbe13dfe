# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""eBPF without a compiler: a small assembler for tc programs and bpf(2) through ctypes
(maps, program loading, reading back what the kernel holds). Hosts have no clang, and
weft's programs are a few dozen instructions, so weft writes them here, in Python.
Standard library only; x86_64's bpf(2) number (the only architecture tested)."""

from __future__ import annotations

import ctypes
import os
import platform
import struct

SYS_BPF = {"x86_64": 321, "aarch64": 280}
MAP_CREATE, MAP_LOOKUP, MAP_UPDATE, PROG_LOAD = 0, 1, 2, 5        # bpf(2) commands
PROG_GET_FD_BY_ID, MAP_GET_FD_BY_ID, OBJ_GET_INFO_BY_FD, MAP_FREEZE = 13, 14, 15, 22
HASH, PERCPU_ARRAY, LPM = 1, 6, 11                                # map types
SCHED_CLS = 3                                                     # program type
# Helpers (include/uapi/linux/bpf.h), by number.
H_LOOKUP, H_STORE, H_CSUM_REPLACE, H_REDIRECT, H_LOAD, H_CSUM_DIFF = 1, 9, 10, 23, 26, 28
H_CHANGE_HEAD, H_ADJUST, H_FIB = 43, 50, 69
OK, SHOT = 0, 2                                                   # TC_ACT_OK, TC_ACT_SHOT
SKB_LEN, SKB_GSO_SEGS = 0, 164                                    # struct __sk_buff offsets


class Reg:
    """A register as a helper's argument."""

    def __init__(self, number):
        self.number = number


class Stack:
    """A pointer into the program's stack (r10 + offset) as a helper's argument."""

    def __init__(self, offset):
        self.offset = offset


CTX, FP = Reg(6), 10        # weft's programs keep the skb in r6; r10 is the frame pointer


class Asm:
    """eBPF instructions, with labels for jump targets."""

    LOAD, STORE = {1: 0x71, 2: 0x69, 4: 0x61, 8: 0x79}, {1: 0x73, 2: 0x6b, 4: 0x63, 8: 0x7b}
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
        """dst = its low 16 bits byte-swapped (host <-> network order on little-endian)."""
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
                self.movr(number, FP)
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

    def count(self, counters_fd, slot, key_at):
        """counters[slot] += 1 (a per-CPU array: no atomics needed); r0-r5 are lost."""
        done = "counted-%d" % len(self.items)
        self.sti(4, FP, key_at, slot)
        self.map_fd(1, counters_fd)
        self.call(H_LOOKUP, Reg(1), Stack(key_at))
        self.j("eq", 0, 0, done)
        self.ld(8, 1, 0, 0)
        self.alu("add", 1, 1)
        self.st(8, 0, 0, 1)
        self.label(done)

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


_libc = ctypes.CDLL(None, use_errno=True)


def bpf(cmd, attr):
    """bpf(2); OSError with the kernel's errno."""
    number = SYS_BPF.get(platform.machine())
    if number is None:
        raise OSError(38, "weft knows bpf(2)'s number only on %s" % ", ".join(SYS_BPF))
    buf = ctypes.create_string_buffer(attr, len(attr))
    result = _libc.syscall(number, cmd, buf, len(attr))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def map_create(kind, key, value, entries, flags=0):
    return bpf(MAP_CREATE, struct.pack("<IIIII", kind, key, value, entries, flags) + bytes(60))


def map_update(fd, key, value):
    k, v = ctypes.create_string_buffer(key, len(key)), ctypes.create_string_buffer(value, len(value))
    bpf(MAP_UPDATE, struct.pack("<IIQQQ", fd, 0, ctypes.addressof(k), ctypes.addressof(v), 0))


def map_lookup(fd, key, size):
    """The value under `key` (`size` bytes: for a per-CPU map, 8-aligned value x CPUs)."""
    k, v = ctypes.create_string_buffer(key, len(key)), ctypes.create_string_buffer(size)
    bpf(MAP_LOOKUP, struct.pack("<IIQQQ", fd, 0, ctypes.addressof(k), ctypes.addressof(v), 0))
    return v.raw


def map_freeze(fd):
    """No more changes to the map from user space: only a new attach changes what runs."""
    bpf(MAP_FREEZE, struct.pack("<I", fd) + bytes(60))


def prog_load(code, name):
    """A program's fd; OSError carrying the verifier's last lines when it refuses."""
    insns, license_ = ctypes.create_string_buffer(code), ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(1 << 20)
    attr = struct.pack("<IIQQIIQI", SCHED_CLS, len(code) // 8, ctypes.addressof(insns),
                       ctypes.addressof(license_), 1, len(log), ctypes.addressof(log), 0)
    # prog_flags, then prog_name (what bpftool and tc show: [A-Za-z0-9_.], 15 at most)
    attr += struct.pack("<I16s", 0, name.replace("-", "_")[:15].encode())
    try:
        return bpf(PROG_LOAD, attr + bytes(64))
    except OSError as exc:
        tail = log.value.decode(errors="replace").strip().splitlines()[-3:]
        raise OSError(exc.errno, "loading %s: %s%s" % (name, exc.strerror,
                                                       (" (" + "; ".join(tail) + ")") if tail else ""))


def prog_map_ids(prog_id):
    """The ids of the maps a loaded program uses (bpf_prog_info.map_ids)."""
    fd = bpf(PROG_GET_FD_BY_ID, struct.pack("<I", prog_id) + bytes(60))
    try:
        ids = (ctypes.c_uint32 * 8)()
        info = ctypes.create_string_buffer(struct.pack("<52xIQ", 8, ctypes.addressof(ids)), 232)
        bpf(OBJ_GET_INFO_BY_FD, struct.pack("<IIQ", fd, len(info), ctypes.addressof(info)))
        count = struct.unpack_from("<I", info.raw, 52)[0]
        return list(ids)[:min(count, 8)]
    finally:
        os.close(fd)


def map_by_id(map_id):
    """(fd, type, key size, value size) of a map by its id; the caller closes the fd."""
    fd = bpf(MAP_GET_FD_BY_ID, struct.pack("<I", map_id) + bytes(60))
    info = ctypes.create_string_buffer(80)
    bpf(OBJ_GET_INFO_BY_FD, struct.pack("<IIQ", fd, len(info), ctypes.addressof(info)))
    kind, dummy, key, value = struct.unpack_from("<IIII", info.raw, 0)
    return fd, kind, key, value


def possible_cpus():
    """How many values a per-CPU map holds per key (the kernel's possible CPUs)."""
    try:
        with open("/sys/devices/system/cpu/possible") as handle:
            text = handle.read().strip()
    except OSError:
        return os.cpu_count() or 1
    total = 0
    for part in text.split(","):
        low, dummy, high = part.partition("-")
        total += int(high or low) - int(low) + 1
    return total
