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

from ansible.module_utils.weft.facts.interface import (
    Addresses, Rules, family_version, pick)
from ansible.module_utils.weft.net.netlink import ROUTE_TABLES, route_table
from ansible.module_utils.weft.validate import ip_address


def default_route_index(kernel, family=socket.AF_INET):
    for msg in kernel.routes(family):
        if msg["dst_len"] == 0 and route_table(msg) == ROUTE_TABLES["main"] \
                and msg.get_attr("RTA_OIF"):
            return msg.get_attr("RTA_OIF")
    return None


def find_underlay(kernel, rules=Rules(), public_ip=None, public_ipv6=None, ipv4=True,
                  overlay=()) -> dict:
    """{iface, public_ip, network, mtu, public_ipv6, network6, rule}. Raises ValueError
    naming the option and what was tried."""
    family = socket.AF_INET if ipv4 else socket.AF_INET6
    public = {socket.AF_INET: public_ip, socket.AF_INET6: public_ipv6}
    option = {socket.AF_INET: "public_ip", socket.AF_INET6: "public_ipv6"}
    for number, address in public.items():
        if address is not None:
            public[number] = str(ip_address(address, option[number]))
    addresses = Addresses(kernel, overlay)
    names = kernel.names()
    if rules.given():
        index, chosen, rule = pick(kernel, addresses, rules, family)
        chosen = public[family] or chosen
    elif public[family] is not None:
        index, rule = holder(addresses, public[family], option[family]), option[family]
        chosen = public[family]
    else:
        index, chosen, rule = default_route_index(kernel, family), None, "default route"
        if index is None:
            raise ValueError("iface: this host has no IPv%d default route to find the underlay "
                             "by; set weft_iface (or weft_iface_regex, weft_iface_can_reach) "
                             "or weft_%s" % (family_version(family), option[family]))
    found = dict(iface=names[index], mtu=kernel.link(names[index]).get_attr("IFLA_MTU"),
                 rule=rule)
    if chosen is not None and holder(addresses, chosen, option[family]) != index:
        raise ValueError("%s: %s is on %s, not on %s (picked by %s)" % (
            option[family], chosen, names[holder(addresses, chosen, option[family])],
            names[index], rule))
    cidr = addresses.on(index, family, chosen)
    if cidr is None:
        raise ValueError("iface: %s has no global IPv%d address" % (names[index],
                                                                     family_version(family)))
    found.update(side(family, cidr))
    other = socket.AF_INET6 if ipv4 else socket.AF_INET
    if public[other] is not None:  # the other family's address may be on any interface
        cidr = addresses.on(holder(addresses, public[other], option[other]), other, public[other])
    else:
        cidr = addresses.on(index, other)
        if cidr is None and ipv4:
            # A dual-stack network's IPv6 side may be elsewhere: the IPv6 default route's.
            cidr = addresses.on(default_route_index(kernel, other), other)
    found.update(side(other, cidr))
    return found


def side(family, cidr):
    """The lease's fields of one family: its address and the underlay network it is in."""
    address, network = ("public_ip", "network") if family == socket.AF_INET \
        else ("public_ipv6", "network6")
    if cidr is None:
        return {address: None, network: None}
    return {address: cidr.split("/")[0], network: str(ipaddress.ip_interface(cidr).network)}


def holder(addresses, address, option):
    """The index of the interface holding `address`; ValueError naming `option` if none."""
    index = addresses.holder(address)
    if index is None:
        raise ValueError("%s: %s is not an address of this host" % (option, address))
    return index


__all__ = ["Rules", "find_underlay"]  # Rules: what gather.py builds from the options
