# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which interface and addresses of a host carry the overlay, read from the kernel: the
IPv4 address (required) and, for dual-stack networks, the IPv6 one (when there is one)."""

from __future__ import annotations

import ipaddress
import socket

from ansible.module_utils.weft.net.netlink import ROUTE_TABLES, route_table
from ansible.module_utils.weft.validate import ip_address

SCOPE_GLOBAL = 0


def global_addresses(kernel, family=socket.AF_INET):
    """[(index, 'address/len')] of every global address of the family, in kernel order."""
    return [(a["index"], "%s/%d" % (a["local"], a["prefixlen"])) for a in kernel.all_addresses()
            if a["family"] == family and a["scope"] == SCOPE_GLOBAL]


def ipv4_addresses(kernel):
    return global_addresses(kernel, socket.AF_INET)


def default_route_index(kernel, family=socket.AF_INET):
    for msg in kernel.routes(family):
        if msg["dst_len"] == 0 and route_table(msg) == ROUTE_TABLES["main"] \
                and msg.get_attr("RTA_OIF"):
            return msg.get_attr("RTA_OIF")
    return None


def find_underlay(kernel, iface=None, public_ip=None, public_ipv6=None) -> dict:
    """{iface, public_ip, network, mtu, public_ipv6, network6}: by public IP, else by
    interface, else by the interface of the IPv4 default route. Raises ValueError naming
    what was tried."""
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
    found = dict(iface=names[index], public_ip=cidr.split("/")[0],
                 network=str(ipaddress.ip_interface(cidr).network), mtu=link.get_attr("IFLA_MTU"))
    found.update(find_ipv6(kernel, index, names, public_ipv6))
    return found


def find_ipv6(kernel, index, names, public_ipv6=None) -> dict:
    """{public_ipv6, network6}: the given address (which must be the host's), else the first
    global IPv6 address of the underlay interface, else of the IPv6 default route's; None
    each when the host has none (the planner refuses that where the network needs IPv6)."""
    addresses = global_addresses(kernel, socket.AF_INET6)
    if public_ipv6 is not None:
        ip = str(ip_address(public_ipv6, "public_ipv6"))
        held = [cidr for _, cidr in addresses if cidr.split("/")[0] == ip]
        if not held:
            raise ValueError("public_ipv6: %s is not an address of this host" % ip)
    else:
        held = [cidr for i, cidr in addresses if i == index]
        if not held:
            route = default_route_index(kernel, socket.AF_INET6)
            held = [cidr for i, cidr in addresses if i == route]
    if not held:
        return dict(public_ipv6=None, network6=None)
    return dict(public_ipv6=held[0].split("/")[0],
                network6=str(ipaddress.ip_interface(held[0]).network))
