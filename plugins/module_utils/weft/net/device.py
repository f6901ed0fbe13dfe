# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the device cores (vxlan, tun) share: a device's kind-specific identity is fixed at
creation (change it and the device is re-created), while its MTU, MAC, address, TX
checksum offload and up/down state change in place. This runs that life cycle once for
both.
"""

from __future__ import annotations

from ..errors import WeftError
from . import ethtool
from .netlink import IFF_UP, attr
from ..validate import int_range, interface_name, ip_interface, mac_address

COMMON_ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    mtu=dict(type="int"),
    address=dict(type="str"),
    up=dict(type="bool", default=True),
)


def desired_common(params, mac_option=True):
    """Validated in-place attributes; None means 'leave as the kernel has it'."""
    interface_name(params["name"], "name")
    desired = dict(up=params["up"])
    if params.get("tx_checksum") is not None:
        desired["tx_checksum"] = params["tx_checksum"]
    if params.get("mtu") is not None:
        desired["mtu"] = int_range(params["mtu"], "mtu", 68, 65535)
    if mac_option and params.get("mac"):
        desired["mac"] = mac_address(params["mac"], "mac", unicast=True)
    address = params.get("address")
    if address:
        # One address, or (wireguard carrying both families) a list: sorted, as read back.
        found = sorted(str(ip_interface(a, "address"))
                       for a in ([address] if isinstance(address, str) else address))
        desired["address"] = found[0] if len(found) == 1 else found
    return desired


def read_common(kernel, msg):
    """Kind and in-place attributes of an existing device."""
    addresses = kernel.addresses(msg["index"])
    return dict(
        kind=attr(msg, "IFLA_LINKINFO", "IFLA_INFO_KIND"),
        mtu=msg.get_attr("IFLA_MTU"),
        mac=msg.get_attr("IFLA_ADDRESS"),
        up=bool(msg["flags"] & IFF_UP),
        address=addresses[0] if len(addresses) == 1 else sorted(addresses) or None,
    )


def differing(current, desired):
    """Only the keys whose values differ, as (before, after) dicts for diff mode."""
    keys = [k for k in desired if current.get(k) != desired[k]]
    return {k: current.get(k) for k in keys}, {k: desired[k] for k in keys}


def apply_in_place(kernel, index, after):
    """Set the in-place attributes in `after`."""
    ipr = kernel.ipr
    if "tx_checksum" in after:
        ethtool.set_tx_checksum(kernel.names()[index], after["tx_checksum"])
    if "mtu" in after:
        ipr.link("set", index=index, mtu=after["mtu"])
    if "mac" in after:
        ipr.link("set", index=index, address=after["mac"])
    if "address" in after:
        # The device is dedicated to the overlay: it holds exactly the addresses given.
        for cidr in kernel.addresses(index):
            addr, prefix = cidr.split("/")
            ipr.addr("del", index=index, address=addr, prefixlen=int(prefix))
        wanted = after["address"]
        for cidr in [wanted] if isinstance(wanted, str) else wanted:
            addr, prefix = cidr.split("/")
            ipr.addr("add", index=index, address=addr, prefixlen=int(prefix))
    if "up" in after:
        ipr.link("set", index=index, state="up" if after["up"] else "down")


def converge(ctx, params, kind, desired_identity, desired_inplace, identity_of, create):
    """Run the device life cycle; the module's result.

    desired_identity: attributes fixed at creation; desired_inplace: those changed in
    place (both validated before this is called). identity_of(msg) reads the identity
    the kernel has; create() makes the device (called only outside check mode).
    """
    kernel, name = ctx.kernel, params["name"]
    msg = kernel.link(name)
    current = read_common(kernel, msg) if msg is not None else None
    if current is not None and current["kind"] != kind:
        raise WeftError("name: %s exists as a %s device, not %s; refusing to touch it"
                        % (name, current["kind"], kind))
    if current is not None and "tx_checksum" in desired_inplace:
        current["tx_checksum"] = ethtool.tx_checksum(name)  # an ioctl: only when asked
    result = dict(changed=False, recreated=False)

    if params["state"] == "absent":
        if current is not None:
            result.update(changed=True, diff=dict(before=dict(state="present"),
                                                  after=dict(state="absent")))
            if not ctx.check_mode:
                kernel.ipr.link("del", index=msg["index"])
        return result

    if current is None:
        before, after = dict(state="absent"), dict(state="present", **desired_identity)
        after.update(desired_inplace)
        result.update(changed=True)
    else:
        before_id, after_id = differing(identity_of(msg), desired_identity)
        if after_id:
            result.update(recreated=True)
            # A re-created device starts from scratch: every in-place attribute applies.
            current = dict(kind=kind)
        before_ip, after_ip = differing(current, desired_inplace)
        before, after = dict(before_id, **before_ip), dict(after_id, **after_ip)
        result.update(changed=bool(after))
    if result["changed"] and ctx.diff:
        result["diff"] = dict(before=before, after=after)
    if result["changed"] and not ctx.check_mode:
        if msg is not None and result["recreated"]:
            kernel.ipr.link("del", index=msg["index"])
        if msg is None or result["recreated"]:
            create()
            current = dict(kind=kind)
            msg = kernel.link(name)
        apply_in_place(kernel, msg["index"],
                       {k: v for k, v in desired_inplace.items() if current.get(k) != v})
    final = kernel.link(name) if not ctx.check_mode else None
    if final is not None:
        result["device"] = dict(read_common(kernel, final), name=name, **identity_of(final))
        if "tx_checksum" in desired_inplace:
            result["device"]["tx_checksum"] = ethtool.tx_checksum(name)
    return result
