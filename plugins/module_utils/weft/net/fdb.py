# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Core of weft_fdb: the forwarding database of a VXLAN device."""

from __future__ import annotations

from ..errors import WeftError
from .netlink import NTF_SELF, NUD_PERMANENT, attr
from .reconcile import reconcile
from ..validate import ip_address, mac_address

ZERO_MAC = "00:00:00:00:00:00"


def is_group(mac):
    """The all-zero (flood) MAC and multicast MACs may have several destinations."""
    return mac == ZERO_MAC or int(mac[:2], 16) & 1


def entry_key(mac, dst):
    return (mac, dst) if is_group(mac) else (mac, None)


def desired_entries(params):
    desired = {}
    for i, item in enumerate(params["entries"]):
        where = "entries[%d]" % i
        mac = mac_address(item["mac"], where + ".mac")
        dst = str(ip_address(item["dst"], where + ".dst"))
        key = entry_key(mac, dst)
        if key in desired:
            raise ValueError("%s: %s is listed twice (a unicast MAC has one destination)"
                             % (where, mac) if key[1] is None else
                             "%s: %s dst %s is listed twice" % (where, mac, dst))
        desired[key] = dict(mac=mac, dst=dst, dev=params["dev"])
    return desired


def current_entries(kernel, index, dev):
    current = {}
    for msg in kernel.fdb(index):
        dst = msg.get_attr("NDA_DST")
        if dst is None:  # the kernel's multicast and local entries are not ours
            continue
        if not msg["state"] & NUD_PERMANENT:  # nor what it learned (Backend.Learning)
            continue
        mac = msg.get_attr("NDA_LLADDR")
        current[entry_key(mac, dst)] = dict(mac=mac, dst=dst, dev=dev)
    return current


def render(entry):
    return "%s dst %s dev %s self permanent" % (entry["mac"], entry["dst"], entry["dev"])


ARGUMENT_SPEC = dict(
    dev=dict(type="str", required=True),
    entries=dict(type="list", elements="dict", default=[], options=dict(
        mac=dict(type="str", required=True),
        dst=dict(type="str", required=True),
    )),
    purge=dict(type="bool", default=False),
)


def run(params, ctx):
    kernel = ctx.kernel
    link = kernel.link(params["dev"])
    try:
        # Check mode: a device an earlier task would create has no entries yet.
        if link is None and not ctx.check_mode:
            raise ValueError("dev: no device named %s" % params["dev"])
        kind = attr(link, "IFLA_LINKINFO", "IFLA_INFO_KIND") if link is not None else "vxlan"
        if kind != "vxlan":
            raise ValueError("dev: %s is a %s device, not vxlan" % (params["dev"], kind))
        desired = desired_entries(params)
    except ValueError as exc:
        raise WeftError(str(exc)) from None
    index = link["index"] if link is not None else None
    current = current_entries(kernel, index, params["dev"]) if link is not None else {}

    def apply(action, key, entry):
        if action == "remove":
            kernel.ipr.fdb("del", ifindex=index, lladdr=entry["mac"], dst=entry["dst"])
            return
        # The kernel appends a destination only for group MACs; a unicast MAC's
        # one destination is replaced. pyroute2 0.9 sets neither flag by itself.
        kernel.ipr.fdb("append" if is_group(entry["mac"]) else "replace", ifindex=index,
                       lladdr=entry["mac"], dst=entry["dst"], state=NUD_PERMANENT,
                       flags=NTF_SELF)

    return reconcile(ctx, current, desired, params["purge"], apply, render)
