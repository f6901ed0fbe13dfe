# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tc-BPF filters on one hook of one device, read with a raw rtnetlink dump: pyroute2
(0.7 and 0.9 alike) does not decode a filter's program id (TCA_BPF_ID), which is how
weft finds the maps of the programs it attached. Standard library only."""

from __future__ import annotations

import errno
import os
import socket
import struct

RTM_NEWTFILTER, RTM_GETTFILTER, NLMSG_ERROR, NLMSG_DONE = 44, 46, 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
TCA_KIND, TCA_OPTIONS = 1, 2
TCA_BPF_NAME, TCA_BPF_ID = 7, 11
NLA_TYPE_MASK = 0x3FFF


def attributes(data):
    """{type: payload} of a run of netlink attributes."""
    found, offset = {}, 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        found[kind & NLA_TYPE_MASK] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return found


def bpf_filters(index, parent):
    """[{"name", "prio", "id"}] of the bpf filters on device `index`, hook `parent`, in
    this network namespace; [] when the device has no such hook (no clsact)."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.bind((0, 0))
        request = struct.pack("=BxxxiIII", socket.AF_UNSPEC, index, 0, parent, 0)
        sock.send(struct.pack("=IHHII", 16 + len(request), RTM_GETTFILTER,
                              NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + request)
        found = []
        while True:
            data = sock.recv(1 << 16)
            offset = 0
            while offset + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                body = data[offset + 16:offset + length]
                offset += (length + 3) & ~3
                if kind == NLMSG_DONE:
                    return found
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", body)[0]
                    if code == 0:
                        return found
                    if code in (errno.EINVAL, errno.ENOENT, errno.ENODEV):   # no such hook
                        return []
                    raise OSError(code, os.strerror(code))
                if kind != RTM_NEWTFILTER:
                    continue
                info = struct.unpack_from("=I", body, 16)[0]
                attrs = attributes(body[20:])
                if attrs.get(TCA_KIND, b"").rstrip(b"\0") != b"bpf" or TCA_OPTIONS not in attrs:
                    continue
                options = attributes(attrs[TCA_OPTIONS])
                name = options.get(TCA_BPF_NAME, b"").rstrip(b"\0").decode(errors="replace")
                prog = options.get(TCA_BPF_ID)
                found.append(dict(name=name, prio=info >> 16,
                                  id=struct.unpack("=I", prog)[0] if prog else None))
