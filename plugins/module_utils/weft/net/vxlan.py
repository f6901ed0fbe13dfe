# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Core of weft_vxlan: a VXLAN device (a Flannel-style VTEP)."""

from __future__ import annotations

from ..backends import MAX_VNI
from ..errors import WeftError
from .device import COMMON_ARGUMENT_SPEC, converge, desired_common
from .netlink import attr
from ..validate import int_range, ip_address


def desired_identity(params, kernel):
    for option in ("vni", "local"):
        if params[option] is None:
            raise ValueError("%s: is required when state is present" % option)
    local = ip_address(params["local"], "local")
    identity = dict(vni=int_range(params["vni"], "vni", 1, MAX_VNI), local=str(local),
                    dev=params["dev"], port=int_range(params["port"], "port", 1, 65535),
                    learning=params["learning"], gbp=params["gbp"])
    if params["dev"] is not None:
        index = kernel.index(params["dev"])
        if index is None:
            raise ValueError("dev: no underlay device named %s" % params["dev"])
        owned = [a.split("/")[0] for a in kernel.addresses(index)]
        if str(local) not in owned:
            raise ValueError("local: %s is not an address of %s (it has %s)"
                             % (local, params["dev"], ", ".join(owned) or "none"))
    else:
        del identity["dev"]
        owned = {a["local"] for a in kernel.all_addresses()}
        if str(local) not in owned:
            raise ValueError("local: %s is not an address of this host" % local)
    return identity


def identity_of(kernel):
    def read(msg):
        data = attr(msg, "IFLA_LINKINFO", "IFLA_INFO_DATA")
        link = attr(data, "IFLA_VXLAN_LINK")
        return dict(vni=attr(data, "IFLA_VXLAN_ID"),
                    local=attr(data, "IFLA_VXLAN_LOCAL") or attr(data, "IFLA_VXLAN_LOCAL6"),
                    dev=kernel.names().get(link) if link else None,
                    port=attr(data, "IFLA_VXLAN_PORT"),
                    learning=bool(attr(data, "IFLA_VXLAN_LEARNING")),
                    gbp=bool(attr(data, "IFLA_VXLAN_GBP")))   # a flag: there or not
    return read


ARGUMENT_SPEC = dict(
    COMMON_ARGUMENT_SPEC,
    vni=dict(type="int"),
    local=dict(type="str"),
    dev=dict(type="str"),
    port=dict(type="int", default=8472),
    learning=dict(type="bool", default=False),
    gbp=dict(type="bool", default=False),
    mac=dict(type="str"),
    # In place (kept across re-creation): None leaves the kernel's setting alone.
    tx_checksum=dict(type="bool"),
)


def run(params, ctx):
    kernel = ctx.kernel
    identity = {}
    try:
        inplace = desired_common(params)
        if params["state"] == "present":
            identity = desired_identity(params, kernel)
    except ValueError as exc:
        raise WeftError(str(exc)) from None

    def create():
        spec = dict(ifname=params["name"], kind="vxlan", vxlan_id=identity["vni"],
                    vxlan_port=identity["port"], vxlan_learning=int(identity["learning"]))
        spec["vxlan_local6" if ":" in identity["local"] else "vxlan_local"] = identity["local"]
        if identity["gbp"]:
            spec["vxlan_gbp"] = True
        if identity.get("dev"):
            spec["vxlan_link"] = kernel.index(identity["dev"])
        kernel.ipr.link("add", **spec)

    return converge(ctx, params, "vxlan", identity, inplace, identity_of(kernel), create)
