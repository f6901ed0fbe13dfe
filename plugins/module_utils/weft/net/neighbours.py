# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Core of weft_neighbours: the permanent neighbour entries of a device."""

from __future__ import annotations

import socket

from ..errors import WeftError
from .netlink import NUD_PERMANENT
from .reconcile import reconcile
from ..validate import ip_address, mac_address


def desired_neighbours(params):
    desired = {}
    for i, item in enumerate(params["neighbours"]):
        where = "neighbours[%d]" % i
        ip = str(ip_address(item["ip"], where + ".ip"))
        if ip in desired:
            raise ValueError("%s.ip: %s is listed twice" % (where, ip))
        desired[ip] = dict(ip=ip, mac=mac_address(item["mac"], where + ".mac"),
                           dev=params["dev"])
    return desired


def current_neighbours(kernel, index, dev):
    return {m.get_attr("NDA_DST"): dict(ip=m.get_attr("NDA_DST"), mac=m.get_attr("NDA_LLADDR"),
                                        dev=dev)
            for m in kernel.neighbours(index) if m["state"] & NUD_PERMANENT}


def render(entry):
    return "%s lladdr %s dev %s permanent" % (entry["ip"], entry["mac"], entry["dev"])


ARGUMENT_SPEC = dict(
    dev=dict(type="str", required=True),
    neighbours=dict(type="list", elements="dict", default=[], options=dict(
        ip=dict(type="str", required=True),
        mac=dict(type="str", required=True),
    )),
    purge=dict(type="bool", default=False),
)


def run(params, ctx):
    kernel = ctx.kernel
    index = kernel.index(params["dev"])
    try:
        # Check mode: a device an earlier task would create has no entries yet.
        if index is None and not ctx.check_mode:
            raise ValueError("dev: no device named %s" % params["dev"])
        desired = desired_neighbours(params)
    except ValueError as exc:
        raise WeftError(str(exc)) from None
    current = current_neighbours(kernel, index, params["dev"]) if index is not None else {}

    def apply(action, ip, entry):
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        if action == "remove":
            kernel.ipr.neigh("del", dst=ip, ifindex=index, family=family)
        else:
            kernel.ipr.neigh("replace", dst=ip, lladdr=entry["mac"], ifindex=index,
                             state=NUD_PERMANENT, family=family)

    return reconcile(ctx, current, desired, params["purge"], apply, render)
