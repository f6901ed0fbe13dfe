# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Core of weft_tun: a persistent TUN device (Flannel's udp backend)."""

from __future__ import annotations

import grp
import pwd

from ..errors import WeftError
from .device import COMMON_ARGUMENT_SPEC, converge, desired_common
from .netlink import attr
from ..validate import int_range

NO_OWNER = 2 ** 32 - 1  # the kernel reports an unset owner or group as (uid_t)-1
IFLA_TUN_TYPE_TUN = 1
NOT_YET = -2  # a user or group that check mode expects an earlier step to create


def numeric_id(value, option, check_mode):
    """A user or group ID from a number or a name (looked up on this host)."""
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int_range(int(text), option, 0, NO_OWNER - 1)
    lookup = pwd.getpwnam if option == "owner" else grp.getgrnam
    try:
        return (lookup(text).pw_uid if option == "owner" else lookup(text).gr_gid)
    except KeyError:
        if check_mode:
            return NOT_YET
        raise ValueError("%s: no %s named %s on this host"
                         % (option, "user" if option == "owner" else "group", text)) from None


def desired_identity(params, check_mode=False):
    identity = dict(multi_queue=params["multi_queue"], owner=None, group=None)
    for option in ("owner", "group"):
        if params[option] is not None:
            identity[option] = numeric_id(params[option], option, check_mode)
    return identity


def identity_of(msg):
    data = attr(msg, "IFLA_LINKINFO", "IFLA_INFO_DATA")
    if attr(data, "IFLA_TUN_TYPE") not in (None, IFLA_TUN_TYPE_TUN) or attr(data, "IFLA_TUN_PI"):
        # A TAP device, or one with packet information: never equal to what is desired,
        # so it is re-created as a plain TUN device.
        return dict(multi_queue=None, owner=None, group=None)

    def ident(name):
        value = attr(data, name)
        return None if value in (None, NO_OWNER, -1) else value
    return dict(multi_queue=bool(attr(data, "IFLA_TUN_MULTI_QUEUE")),
                owner=ident("IFLA_TUN_OWNER"), group=ident("IFLA_TUN_GROUP"))


ARGUMENT_SPEC = dict(
    COMMON_ARGUMENT_SPEC,
    owner=dict(type="str"),
    group=dict(type="str"),
    multi_queue=dict(type="bool", default=False),
)


def run(params, ctx):
    try:
        inplace = desired_common(params, mac_option=False)
        identity = desired_identity(params, ctx.check_mode)
    except ValueError as exc:
        raise WeftError(str(exc)) from None
    kernel = ctx.kernel

    def create():
        flags = {"no_pi": True}
        if identity["multi_queue"]:
            flags["multi_queue"] = True
        spec = dict(ifname=params["name"], kind="tuntap", mode="tun", ifr=flags)
        for option in ("owner", "group"):
            if identity[option] is not None:
                spec["uid" if option == "owner" else "gid"] = identity[option]
        kernel.ipr.link("add", **spec)

    return converge(ctx, params, "tun", identity, inplace, identity_of, create)
