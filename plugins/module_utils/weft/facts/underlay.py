# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which interface and addresses of a host carry the overlay, read from the kernel.

The interface is found by Flannel's rules (`interface.py`) when any is given, else by the
public address, else by the default route of the network's primary family (IPv4, or IPv6
in an IPv6-only network). On it, the primary family's address is required and the other
family's is reported when there is one (dual-stack networks need it, the planner says so).
"""

from __future__ import annotations

import ipaddress
import socket

from .interface import (
    Addresses, Rules, family_version, pick)
from ..net.netlink import ROUTE_TABLES, route_table
from ..validate import ip_address


OPTION = {socket.AF_INET: "public_ip", socket.AF_INET6: "public_ipv6"}
# Per family: (the address peers send to, the interface's own address, its network).
FIELDS = {socket.AF_INET: ("public_ip", "iface_ip", "network"),
          socket.AF_INET6: ("public_ipv6", "iface_ipv6", "network6")}


def default_route_index(kernel, family=socket.AF_INET):
    for msg in kernel.routes(family):
        if msg["dst_len"] == 0 and route_table(msg) == ROUTE_TABLES["main"] \
                and msg.get_attr("RTA_OIF"):
            return msg.get_attr("RTA_OIF")
    return None


def find_underlay(kernel, rules=Rules(), public_ip=None, public_ipv6=None, ipv4=True,
                  overlay=()) -> dict:
    """{iface, mtu, rule, public_ip, iface_ip, network, public_ipv6, iface_ipv6, network6}.
    Raises ValueError naming the option and what was tried.

    public_ip is what peers send to (the lease's), iface_ip the interface's own address
    that the host binds to and sends from; they differ behind a 1:1 NAT, which needs the
    interface named by a rule: a public address that is on no interface of the host."""
    family = socket.AF_INET if ipv4 else socket.AF_INET6
    other = socket.AF_INET6 if ipv4 else socket.AF_INET
    public = {socket.AF_INET: public_ip, socket.AF_INET6: public_ipv6}
    for number, address in public.items():
        if address is not None:
            public[number] = str(ip_address(address, OPTION[number]))
    addresses = Addresses(kernel, overlay)
    names = kernel.names()
    held = {number: addresses.holder(address) if address is not None else None
            for number, address in public.items()}
    if rules.given():
        index, chosen, rule = pick(kernel, addresses, rules, family)
    elif public[family] is not None:
        if held[family] is None:
            raise ValueError("%s: %s is not an address of this host; behind a 1:1 NAT (a "
                             "cloud's elastic address), name the interface that carries the "
                             "overlay with weft_iface (or weft_iface_regex, weft_iface_can_reach)"
                             % (OPTION[family], public[family]))
        index, chosen, rule = held[family], None, OPTION[family]
    else:
        index, chosen, rule = default_route_index(kernel, family), None, "default route"
        if index is None:
            raise ValueError("iface: this host has no IPv%d default route to find the underlay "
                             "by; set weft_iface (or weft_iface_regex, weft_iface_can_reach) "
                             "or weft_%s" % (family_version(family), OPTION[family]))
    found = dict(iface=names[index], mtu=kernel.link(names[index]).get_attr("IFLA_MTU"),
                 rule=rule)
    if held[family] is not None:
        if held[family] != index:
            raise ValueError("%s: %s is on %s, not on %s (picked by %s)" % (
                OPTION[family], public[family], names[held[family]], names[index], rule))
        chosen = public[family]
    cidr = addresses.on(index, family, chosen)
    if cidr is None:
        raise ValueError("iface: %s has no global IPv%d address" % (names[index],
                                                                    family_version(family)))
    found.update(side(family, cidr, public[family]))
    if held[other] is not None:  # the other family's address may be on any interface
        cidr = addresses.on(held[other], other, public[other])
    else:
        cidr = addresses.on(index, other)
        if cidr is None and ipv4:
            # A dual-stack network's IPv6 side may be elsewhere: the IPv6 default route's.
            cidr = addresses.on(default_route_index(kernel, other), other)
        if cidr is None and public[other] is not None:
            raise ValueError("%s: %s is not an address of this host, and %s has no global "
                             "IPv%d address to send from behind a NAT" % (
                                 OPTION[other], public[other], names[index],
                                 family_version(other)))
    found.update(side(other, cidr, public[other]))
    return found


def side(family, cidr, public=None):
    """One family's fields: the address peers send to (`public`, a NAT's, else the
    interface's own), the interface's own address and the underlay network it is in."""
    keys = FIELDS[family]
    if cidr is None:
        return dict.fromkeys(keys)
    own = cidr.split("/")[0]
    return dict(zip(keys, (public or own, own, str(ipaddress.ip_interface(cidr).network))))


__all__ = ["Rules", "find_underlay"]  # Rules: what facts.py builds from the options
