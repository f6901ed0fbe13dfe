# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin layer over pyroute2 that hides the differences between 0.7 (distributions) and 0.9 (PyPI).

Everything here talks to the kernel; the decisions (what differs, what to change) live in
weft_reconcile, so they can be tested without a kernel.
"""

from __future__ import annotations

import socket
import traceback

try:
    from pyroute2 import IPRoute
except ImportError:
    IPRoute = None
    PYROUTE2_IMPORT_ERROR = traceback.format_exc()
else:
    PYROUTE2_IMPORT_ERROR = None

# Route protocol number that marks the routes weft owns (rtnetlink protocols 0-4 are the
# kernel's and 9-192 are taken by routing daemons in /etc/iproute2/rt_protos: 119 is free).
RTPROT_WEFT = 119
RTNH_F_ONLINK = 0x4      # pyroute2 0.9 ignores route(onlink=True): pass the flag itself
NUD_PERMANENT = 0x80
NTF_SELF = 0x02
AF_BRIDGE = socket.AF_BRIDGE
ROUTE_TABLES = {"default": 253, "main": 254, "local": 255}
ROUTE_SCOPES = {"global": 0, "universe": 0, "site": 200, "link": 253, "host": 254}
SCOPE_NAMES = {0: "global", 200: "site", 253: "link", 254: "host"}
SCOPE_LINK = 253


def require_pyroute2(module, **result):
    """Fail with an actionable message (and `result`) when the host has no pyroute2."""
    if IPRoute is None:
        from ansible.module_utils.basic import missing_required_lib
        module.fail_json(
            msg=missing_required_lib("pyroute2", reason="to program the kernel over netlink")
            + " On Debian/Ubuntu: apt-get install python3-pyroute2.",
            exception=PYROUTE2_IMPORT_ERROR, **result)


def attr(msg, *path):
    """Nested netlink attribute lookup: attr(link, 'IFLA_LINKINFO', 'IFLA_INFO_KIND')."""
    for name in path:
        if msg is None:
            return None
        msg = msg.get_attr(name)
    return msg


class Kernel:
    """One rtnetlink socket for the life of a module run."""

    def __init__(self):
        self.ipr = IPRoute()
        self._names = None

    def close(self):
        self.ipr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

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
        """Map of link index -> name, read once per run."""
        if self._names is None:
            self._names = {m["index"]: m.get_attr("IFLA_IFNAME") for m in self.ipr.get_links()}
        return self._names

    def addresses(self, index):
        """CIDRs on a link in kernel order, without the IPv6 link-local ones the kernel
        adds by itself."""
        return ["%s/%d" % (m.get_attr("IFA_LOCAL") or m.get_attr("IFA_ADDRESS"), m["prefixlen"])
                for m in self.ipr.get_addr(index=index) if m["scope"] != SCOPE_LINK]

    def all_addresses(self):
        """Every address on every device: [{'local': ip, 'index': n}]."""
        return [dict(local=m.get_attr("IFA_LOCAL") or m.get_attr("IFA_ADDRESS"), index=m["index"])
                for m in self.ipr.get_addr()]

    # ---- dumps ----
    def routes(self):
        return tuple(self.ipr.get_routes(family=socket.AF_INET)) + \
            tuple(self.ipr.get_routes(family=socket.AF_INET6))

    def neighbours(self, index):
        return tuple(m for m in self.ipr.get_neighbours(ifindex=index)
                     if m["ifindex"] == index and m["family"] in (socket.AF_INET, socket.AF_INET6))

    def fdb(self, index):
        return tuple(m for m in self.ipr.get_neighbours(family=AF_BRIDGE, ifindex=index)
                     if m["ifindex"] == index)


def route_table(msg):
    return msg.get_attr("RTA_TABLE") or msg["table"]
