# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A thin layer over pyroute2 that hides the differences between 0.7 (distributions) and
0.9 (PyPI). Everything here talks to the kernel; the decisions (what differs, what to
change) live in reconcile and the cores, so they can be tested without a kernel.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys

from ..errors import WeftError


def lean_pyroute2():
    """Make `import pyroute2.x.y` skip pyroute2's package __init__, which imports all of
    pyroute2 (NDB, IPDB, conntrack, nl80211, asyncio, unittest.mock...) for its top-level
    names: 0.25 s of CPU on every host for every weft module call, about a quarter of what
    a weft_check call costs a host. weft imports the modules it uses by their own paths;
    anyone asking the package itself for a name gets the whole package, executed then."""
    if "pyroute2" in sys.modules:
        return
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        return  # not installed: the import below fails as it would have
    package = importlib.util.module_from_spec(spec)

    def whole_package(name):
        if importlib.util.find_spec("pyroute2." + name) is not None:
            # `from pyroute2 import config`: the import system imports the submodule
            # when the package says it has no such attribute yet.
            raise AttributeError(name)
        del package.__getattr__
        spec.loader.exec_module(package)
        return getattr(package, name)

    package.__getattr__ = whole_package
    sys.modules["pyroute2"] = package


lean_pyroute2()
try:
    from pyroute2.iproute.linux import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError
    from pyroute2.netlink.rtnl import rt_scope
    # The cores take these flags from here.
    # pylint: disable=unused-import
    from pyroute2.netlink.rtnl.ifinfmsg import IFF_UP
    from pyroute2.netlink.rtnl.ndmsg import NTF_SELF, NUD_PERMANENT
    from pyroute2.netlink.rtnl.rtmsg import RTNH_F_ONLINK
    # pylint: enable=unused-import
except ImportError:
    IPRoute = None
    NetlinkError = OSError  # never raised: nothing talks to the kernel without pyroute2
    rt_scope = {"universe": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255,
                0: "universe", 200: "site", 253: "link", 254: "host", 255: "nowhere"}
    IFF_UP, NTF_SELF, NUD_PERMANENT, RTNH_F_ONLINK = 0x1, 0x2, 0x80, 0x4

MISSING_PYROUTE2 = ("pyroute2 is not installed for this host's Python; weft programs the "
                    "kernel with it. On Debian/Ubuntu: apt-get install python3-pyroute2.")
# Route protocol number that marks the routes weft owns (rtnetlink protocols 0-4 are the
# kernel's and 9-192 are taken by routing daemons in /etc/iproute2/rt_protos: 119 is free).
RTPROT_WEFT = 119
AF_BRIDGE = socket.AF_BRIDGE
# iproute2's names for the standard tables (/etc/iproute2/rt_tables).
ROUTE_TABLES = {"default": 253, "main": 254, "local": 255}
SCOPE_LINK = rt_scope["link"]


def scope_number(name) -> int:
    """A route scope by name (global is iproute2's name for universe) or number."""
    text = str(name)
    if text == "global":
        return 0
    return rt_scope[text] if text in rt_scope else int(text)


def scope_name(number) -> str:
    return "global" if number == 0 else rt_scope.get(number, str(number))


def attr(msg, *path):
    """Nested netlink attribute lookup: attr(link, 'IFLA_LINKINFO', 'IFLA_INFO_KIND')."""
    for name in path:
        if msg is None:
            return None
        msg = msg.get_attr(name)
    return msg


class Kernel:
    """One rtnetlink socket for a run (shared by every core a converge runs)."""

    def __init__(self):
        if IPRoute is None:
            raise WeftError(MISSING_PYROUTE2)
        self.ipr = IPRoute()

    def close(self):
        self.ipr.close()

    # ---- links ----
    def link(self, name):
        """The link message of device `name`, or None."""
        found = self.ipr.link_lookup(ifname=name)
        if not found:
            return None
        return tuple(self.ipr.get_links(found[0]))[0]

    def index(self, name):
        found = self.ipr.link_lookup(ifname=name)
        return found[0] if found else None

    def names(self):
        """Map of link index -> name (read afresh: a converge creates and deletes links)."""
        return {m["index"]: m.get_attr("IFLA_IFNAME") for m in self.ipr.get_links()}

    def addresses(self, index):
        """CIDRs on a link in kernel order, without the IPv6 link-local ones the kernel
        adds by itself."""
        return ["%s/%d" % (m.get_attr("IFA_LOCAL") or m.get_attr("IFA_ADDRESS"), m["prefixlen"])
                for m in self.ipr.get_addr(index=index) if m["scope"] != SCOPE_LINK]

    def all_addresses(self):
        """Every address on every device, in kernel order: [{'local': ip, 'index': n,
        'prefixlen': len, 'family': f, 'scope': s, 'flags': IFA_F_*}]."""
        return [dict(local=m.get_attr("IFA_LOCAL") or m.get_attr("IFA_ADDRESS"), index=m["index"],
                     prefixlen=m["prefixlen"], family=m["family"], scope=m["scope"],
                     # IFA_FLAGS holds all 32 bits; the header only the low 8.
                     flags=m.get_attr("IFA_FLAGS") or m["flags"])
                for m in self.ipr.get_addr()]

    def route_to(self, address):
        """(device index, preferred source) of the route the kernel takes to `address`, as
        `ip route get` says; OSError when there is none."""
        try:
            found = tuple(self.ipr.route("get", dst=address))
        except NetlinkError as exc:
            raise OSError(exc.code, os.strerror(exc.code)) from None
        if not found:
            return None, None
        return found[0].get_attr("RTA_OIF"), found[0].get_attr("RTA_PREFSRC")

    # ---- dumps ----
    def routes(self, family=None):
        families = [family] if family else [socket.AF_INET, socket.AF_INET6]
        return tuple(msg for f in families for msg in self.ipr.get_routes(family=f))

    def neighbours(self, index):
        return tuple(m for m in self.ipr.get_neighbours(ifindex=index)
                     if m["ifindex"] == index and m["family"] in (socket.AF_INET, socket.AF_INET6))

    def fdb(self, index):
        return tuple(m for m in self.ipr.get_neighbours(family=AF_BRIDGE, ifindex=index)
                     if m["ifindex"] == index)


def route_table(msg):
    return msg.get_attr("RTA_TABLE") or msg["table"]
