# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Flannel's interface rules: which interface, and which of its addresses, carries the
underlay, for a whole group of hosts at once.

As flanneld's --iface (names or addresses, in order), then --iface-regex (over addresses
first, then names, in order), then --iface-can-reach (the interface the kernel routes that
address by, as `ip route get` says): the first rule that finds an interface with an
address of the network's family wins. When none does, the error lists every rule with
what it found and the host's interfaces.

Of several addresses on one interface, the first usable one in Flannel's order: static
(permanent) before dynamic (DHCP, SLAAC), non-temporary before temporary, else the
kernel's order, which lists an interface's oldest primary address first and its
secondaries after. Deprecated addresses, link and host scope are never used, and a regex
never matches an address inside the overlay's own networks (a converged host's own
devices hold those: flannel.1, docker0, cni0).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import NamedTuple

from ..validate import ip_address

SCOPE_GLOBAL = 0
IFA_F_TEMPORARY = 0x01
IFA_F_DEPRECATED = 0x20
IFA_F_PERMANENT = 0x80


def family_version(number) -> int:
    return 4 if number == socket.AF_INET else 6


class Rules(NamedTuple):
    """The rules as given: `ifaces` (names or addresses), `regexes` (compiled) and
    `can_reach` (an address), each possibly empty."""

    ifaces: tuple = ()
    regexes: tuple = ()
    can_reach: str | None = None

    @classmethod
    def parse(cls, ifaces=None, regexes=None, can_reach=None) -> "Rules":
        """Rules from the module's options; ValueError naming the option when one is bad."""
        compiled = []
        for pattern in regexes or ():
            try:
                compiled.append(re.compile(pattern))
            except re.error as exc:
                raise ValueError("iface_regex: %r is not a regular expression: %s"
                                 % (pattern, exc)) from None
        for item in ifaces or ():
            if not item or not item.strip():
                raise ValueError("iface: an empty name in %r" % (list(ifaces),))
        if can_reach:
            can_reach = str(ip_address(can_reach, "iface_can_reach"))
        return cls(tuple(ifaces or ()), tuple(compiled), can_reach or None)

    def given(self) -> bool:
        return bool(self.ifaces or self.regexes or self.can_reach)


class Addresses:
    """The host's usable addresses per interface, each interface's in Flannel's order of
    preference (read once)."""

    def __init__(self, kernel, overlay=()):
        self.overlay = []
        for cidr in overlay:
            try:
                self.overlay.append(ipaddress.ip_network(cidr, strict=False))
            except ValueError:
                pass  # the planner refuses it, naming the variable
        usable = []
        for position, found in enumerate(kernel.all_addresses()):
            if found["scope"] != SCOPE_GLOBAL or found["flags"] & IFA_F_DEPRECATED:
                continue
            rank = (not found["flags"] & IFA_F_PERMANENT, bool(found["flags"] & IFA_F_TEMPORARY),
                    position)
            usable.append((rank, found))
        self.by_index = {}
        for dummy, found in sorted(usable, key=lambda item: item[0]):
            self.by_index.setdefault(found["index"], []).append(found)

    def of(self, index, family, outside_overlay=False) -> list:
        """'address/len' of one interface and family, most preferred first."""
        return ["%s/%d" % (a["local"], a["prefixlen"]) for a in self.by_index.get(index, ())
                if a["family"] == family and not (outside_overlay and self.in_overlay(a))]

    def in_overlay(self, found) -> bool:
        address = ipaddress.ip_address(found["local"])
        return any(address in network for network in self.overlay)

    def on(self, index, family, address=None):
        """The CIDR of `address` on the interface (None if it has not), or without
        `address` its first of `family` (None if it has none)."""
        for cidr in self.of(index, family):
            if address is None or cidr.split("/")[0] == address:
                return cidr
        return None

    def holder(self, address):
        """The index of the interface holding `address`, or None."""
        for index, held in self.by_index.items():
            if any(a["local"] == address for a in held):
                return index
        return None

    def listing(self, names, family) -> str:
        return ", ".join("%s [%s]" % (names[index],
                                      " ".join(self.of(index, family, True)) or "none")
                         for index in sorted(names))


def pick(kernel, addresses, rules, family):
    """(index, address or None, the rule that found it) by the first rule that finds an
    interface with an address of `family`; ValueError listing what each rule found."""
    names = kernel.names()
    version = family_version(family)
    tried = []
    for item in rules.ifaces:
        found, why = by_name_or_address(addresses, names, item, family)
        if found:
            return found + ("iface %s" % item,)
        tried.append("iface %s: %s" % (item, why))
    for regex in rules.regexes:
        found = by_regex(addresses, names, regex, family)
        if found:
            return found + ("iface_regex %s" % regex.pattern,)
        tried.append("iface_regex %s: no interface's name or global IPv%d address matches"
                     % (regex.pattern, version))
    if rules.can_reach:
        found, why = by_route(kernel, addresses, names, rules.can_reach, family)
        if found:
            return found + ("iface_can_reach %s" % rules.can_reach,)
        tried.append("iface_can_reach %s: %s" % (rules.can_reach, why))
    raise ValueError("no interface matches the underlay rules; tried %s; interfaces with their "
                     "global IPv%d addresses: %s"
                     % ("; ".join(tried), version, addresses.listing(names, family)))


def by_name_or_address(addresses, names, item, family):
    """((index, address), None) for an --iface item, or (None, why not)."""
    try:
        address = str(ipaddress.ip_address(item))
    except ValueError:
        index = next((i for i, name in names.items() if name == item), None)
        if index is None:
            return None, "no device named %s" % item
        if not addresses.of(index, family):
            return None, "%s has no global IPv%d address" % (item, family_version(family))
        return (index, None), None
    index = addresses.holder(address)
    if index is None:
        return None, "%s is not a usable address of this host" % address
    if not addresses.of(index, family):
        return None, "%s (holding it) has no global IPv%d address" % (
            names[index], family_version(family))
    same_family = ipaddress.ip_address(address).version == family_version(family)
    return (index, address if same_family else None), None


def by_regex(addresses, names, regex, family):
    """(index, address) of the first interface, in index order, with an address matching
    `regex`, else (index, its first address) of the first whose name matches and that has
    an address of `family`, else None; addresses inside the overlay left out. Unanchored, as Go's MatchString."""
    for index in sorted(names):
        for cidr in addresses.of(index, family, outside_overlay=True):
            if regex.search(cidr.split("/")[0]):
                return index, cidr.split("/")[0]
    for index in sorted(names):
        outside = addresses.of(index, family, outside_overlay=True)
        if regex.search(names[index]) and outside:
            return index, outside[0].split("/")[0]
    return None


def by_route(kernel, addresses, names, destination, family):
    """((index, source), None) of the route the kernel would take to `destination`, or
    (None, why not)."""
    try:
        index, source = kernel.route_to(destination)
    except OSError as exc:
        return None, "no route to it (%s)" % (exc.strerror or exc)
    if index is None or index not in names:
        return None, "its route leaves by no device"
    if not addresses.of(index, family):
        return None, "%s (its route's device) has no global IPv%d address" % (
            names[index], family_version(family))
    if source is not None and addresses.on(index, family, source) is None:
        source = None  # a source of the other family, or held by another interface
    return (index, source), None
