# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which interface and addresses of a host carry the overlay, read from the kernel: the
IPv4 address (required) and, for dual-stack networks, the IPv6 one (when there is one);
in an IPv6-only network the IPv6 address is required and the IPv4 one optional."""

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


def find_underlay(kernel, iface=None, public_ip=None, public_ipv6=None, ipv4=True) -> dict:
    """{iface, public_ip, network, mtu, public_ipv6, network6}: by public IP, else by
    interface, else by the interface of the IPv4 default route. With ipv4=False (an
    IPv6-only network) the same by IPv6, and the IPv4 address is reported when there is
    one. Raises ValueError naming what was tried."""
    if not ipv4:
        return find_ipv6_underlay(kernel, iface, public_ipv6)
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
        index = _interface_index(kernel, iface, socket.AF_INET, "weft_public_ip")
        held = [cidr for i, cidr in addresses if i == index]
        if not held:
            raise ValueError("iface: %s has no global IPv4 address" % names.get(index))
        cidr = held[0]
    found = dict(iface=names[index], public_ip=cidr.split("/")[0],
                 network=str(ipaddress.ip_interface(cidr).network),
                 mtu=kernel.link(names[index]).get_attr("IFLA_MTU"))
    found.update(find_ipv6(kernel, index, names, public_ipv6))
    return found


def _interface_index(kernel, iface, family, address_variable):
    """The index of `iface`, else of the default route's interface of `family`."""
    if iface is not None:
        index = kernel.index(iface)
        if index is None:
            raise ValueError("iface: no device named %s" % iface)
        return index
    index = default_route_index(kernel, family)
    if index is None:
        raise ValueError("iface: this host has no IPv%d default route to find the underlay by; "
                         "set weft_iface or %s" % (4 if family == socket.AF_INET else 6,
                                                   address_variable))
    return index


def find_ipv6_underlay(kernel, iface=None, public_ipv6=None) -> dict:
    """find_underlay() of an IPv6-only network: the interface of the public IPv6 address,
    else `iface`, else the IPv6 default route's; its IPv4 address only if it has one."""
    names = kernel.names()
    if public_ipv6 is not None:
        ip = str(ip_address(public_ipv6, "public_ipv6"))
        held = [(i, cidr) for i, cidr in global_addresses(kernel, socket.AF_INET6)
                if cidr.split("/")[0] == ip]
        if not held:
            raise ValueError("public_ipv6: %s is not an address of this host" % ip)
        index = held[0][0]
        if iface is not None and names.get(index) != iface:
            raise ValueError("public_ipv6: %s is on %s, not on iface %s"
                             % (ip, names[index], iface))
    else:
        index = _interface_index(kernel, iface, socket.AF_INET6, "weft_public_ipv6")
    found = find_ipv6(kernel, index, names, public_ipv6, fall_back=False)
    if found["public_ipv6"] is None:
        raise ValueError("iface: %s has no global IPv6 address" % names.get(index))
    held = [cidr for i, cidr in ipv4_addresses(kernel) if i == index]
    found.update(iface=names[index], public_ip=held[0].split("/")[0] if held else None,
                 network=str(ipaddress.ip_interface(held[0]).network) if held else None,
                 mtu=kernel.link(names[index]).get_attr("IFLA_MTU"))
    return found


def find_ipv6(kernel, index, names, public_ipv6=None, fall_back=True) -> dict:
    """{public_ipv6, network6}: the given address (which must be the host's), else the first
    global IPv6 address of the underlay interface, else (fall_back) of the IPv6 default
    route's; None each when the host has none (the planner refuses that where the network
    needs IPv6)."""
    addresses = global_addresses(kernel, socket.AF_INET6)
    if public_ipv6 is not None:
        ip = str(ip_address(public_ipv6, "public_ipv6"))
        held = [cidr for _, cidr in addresses if cidr.split("/")[0] == ip]
        if not held:
            raise ValueError("public_ipv6: %s is not an address of this host" % ip)
    else:
        held = [cidr for i, cidr in addresses if i == index]
        if not held and fall_back:
            route = default_route_index(kernel, socket.AF_INET6)
            held = [cidr for i, cidr in addresses if i == route]
    if not held:
        return dict(public_ipv6=None, network6=None)
    return dict(public_ipv6=held[0].split("/")[0],
                network6=str(ipaddress.ip_interface(held[0]).network))
