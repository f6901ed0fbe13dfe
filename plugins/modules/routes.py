#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: routes
short_description: Manage a list of kernel routes over netlink, purging the ones weft owns
description:
  - Makes the kernel's routing tables hold exactly the listed routes, in one call for any
    number of routes, through pyroute2.
  - Ownership. Every route this module writes carries the route protocol O(protocol)
    (default 119, shown by C(ip route) as C(proto 119)). With O(purge=true) it removes the
    routes of that protocol, in O(table) and in the tables the list names (on O(dev) only,
    when O(dev) is set), that the list does not name. Routes of any other protocol (kernel,
    static, DHCP, routing daemons) are never removed.
  - A route is identified as the kernel does, by table, destination and metric. A listed route
    that exists with other attributes, or with another protocol, is replaced in place.
version_added: "1.0.0"
author: weft contributors (@weft-overlay)
requirements:
  - pyroute2 0.7 or later on the managed host (Debian package C(python3-pyroute2))
options:
  routes:
    description: The routes that must exist.
    type: list
    elements: dict
    default: []
    suboptions:
      dst:
        description: Destination network in CIDR form (host bits clear), or V(default).
        type: str
        required: true
      via:
        description: Gateway address, of the same family as O(routes[].dst). Omit for a route
          straight onto O(routes[].dev).
        type: str
      dev:
        description: Output device. Defaults to O(dev); without either the kernel picks it
          from O(routes[].via) and the device is not compared.
        type: str
      onlink:
        description: Treat the gateway as directly reachable on O(routes[].dev) even without
          a matching address (what VXLAN overlays need). Requires a device.
        type: bool
        default: false
      metric:
        description: Route priority. Defaults to 0 for IPv4 and 1024 for IPv6, like C(ip route).
        type: int
      table:
        description: Routing table, by number or as V(main), V(local) or V(default).
          Defaults to O(table).
        type: str
      scope:
        description: Route scope. Defaults to V(link) for a route without gateway, else
          V(global).
        type: str
        choices: [global, site, link, host]
  dev:
    description: Default device for the routes, and with O(purge) the only device purged.
    type: str
  table:
    description: Default table for the routes, and a table that O(purge) covers.
    type: str
    default: main
  protocol:
    description: Route protocol number that marks the routes this module owns.
    type: int
    default: 119
  purge:
    description: Remove owned routes that the list does not name.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Before and after show, one line each, only the routes that are added, changed
      or removed.
  platform:
    support: full
    platforms: linux
  action_group:
    support: full
    membership: [weft.overlay.weft]
notes:
  - Every argument, and the existence of every named device, is checked before the first
    change, so a bad entry changes nothing.
"""

EXAMPLES = r"""
- name: Routes to every peer's subnet through the VXLAN device (Flannel's vxlan backend)
  weft.overlay.routes:
    dev: flannel.1
    purge: true
    routes:
      - {dst: 100.96.2.0/24, via: 100.96.2.0, onlink: true}
      - {dst: 100.96.3.0/24, via: 100.96.3.0, onlink: true}

- name: host-gw routes via the peers' underlay addresses, in a table of their own
  weft.overlay.routes:
    table: "100"
    purge: true
    routes:
      - {dst: 100.96.2.0/24, via: 10.168.0.3, dev: eth0}

- name: Remove every route weft owns in the main table
  weft.overlay.routes:
    routes: []
    purge: true
"""

RETURN = r"""
added:
  description: Routes that were (or in check mode would be) added.
  returned: always
  type: list
  elements: str
  sample: ["100.96.2.0/24 via 100.96.2.0 dev flannel.1 onlink proto 119"]
updated:
  description: Routes whose attributes were replaced.
  returned: always
  type: list
  elements: str
removed:
  description: Owned routes that O(purge) removed.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.weft.overlay.plugins.module_utils.weft.module import run_module
from ansible_collections.weft.overlay.plugins.module_utils.weft.net import routes as core


def main():
    run_module(core)


if __name__ == "__main__":
    main()
