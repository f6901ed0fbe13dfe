# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which interface and IPv4 address of a host carry the overlay, read from the kernel."""

from __future__ import annotations

import ipaddress
import socket

from ansible.module_utils.weft.net.netlink import ROUTE_TABLES, route_table
from ansible.module_utils.weft.validate import ip_address

SCOPE_GLOBAL = 0


def ipv4_addresses(kernel):
    """[(index, 'a.b.c.d/len')] of every global IPv4 address."""
    return [(a["index"], "%s/%d" % (a["local"], a["prefixlen"])) for a in kernel.all_addresses()
            if a["family"] == socket.AF_INET and a["scope"] == SCOPE_GLOBAL]


def default_route_index(kernel):
    for msg in kernel.routes(socket.AF_INET):
        if msg["dst_len"] == 0 and route_table(msg) == ROUTE_TABLES["main"] \
                and msg.get_attr("RTA_OIF"):
            return msg.get_attr("RTA_OIF")
    return None


def find_underlay(kernel, iface=None, public_ip=None) -> dict:
    """{iface, public_ip, network, mtu}: by public IP, else by interface, else by the
    interface of the IPv4 default route. Raises ValueError naming what was tried."""
    names = kernel.names()
    addresses = ipv4_addresses(kernel)
    if public_ip is not None:
        ip = str(ip_address(public_ip, "public_ip"))
        held = [(index, cidr) for index, cidr in addresses if cidr.split("/")[0] == ip]
        if not held:
            raise ValueError("public_ip: %s is not an address of this host" % ip)
        index, cidr = held[0]
        if iface is not None and names.get(index) != iface:
            raise ValueError("public_ip: %s is on %s, not on iface %s" % (ip, names[index], iface))
    else:
        if iface is not None:
            index = kernel.index(iface)
            if index is None:
                raise ValueError("iface: no device named %s" % iface)
        else:
            index = default_route_index(kernel)
            if index is None:
                raise ValueError("iface: this host has no IPv4 default route to find the "
                                 "underlay by; set weft_iface or weft_public_ip")
        held = [cidr for i, cidr in addresses if i == index]
        if not held:
            raise ValueError("iface: %s has no global IPv4 address" % names.get(index))
        cidr = held[0]
    link = kernel.link(names[index])
    return dict(iface=names[index], public_ip=cidr.split("/")[0],
                network=str(ipaddress.ip_interface(cidr).network), mtu=link.get_attr("IFLA_MTU"))
