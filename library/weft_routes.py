#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: weft_routes
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
version_added: "0.1.0"
author: weft contributors
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
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Before and after show, one line each, only the routes that are added, changed
      or removed.
  platform:
    platforms: linux
notes:
  - Every argument, and the existence of every named device, is checked before the first
    change, so a bad entry changes nothing.
"""

EXAMPLES = r"""
- name: Routes to every peer's subnet through the VXLAN device (Flannel's vxlan backend)
  weft_routes:
    dev: flannel.1
    purge: true
    routes:
      - {dst: 100.96.2.0/24, via: 100.96.2.0, onlink: true}
      - {dst: 100.96.3.0/24, via: 100.96.3.0, onlink: true}

- name: host-gw routes via the peers' underlay addresses, in a table of their own
  weft_routes:
    table: "100"
    purge: true
    routes:
      - {dst: 100.96.2.0/24, via: 10.168.0.3, dev: eth0}

- name: Remove every route weft owns in the main table
  weft_routes:
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

import socket

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.weft_netlink import (RTNH_F_ONLINK, ROUTE_SCOPES, ROUTE_TABLES,
                                               SCOPE_NAMES, Kernel, require_pyroute2,
                                               route_table)
from ansible.module_utils.weft_reconcile import run_list
from ansible.module_utils.weft_validate import int_range, ip_address, ip_network, same_family

TABLE_NAMES = {number: name for name, number in ROUTE_TABLES.items()}


def parse_table(value, option):
    if str(value) in ROUTE_TABLES:
        return ROUTE_TABLES[str(value)]
    try:
        return int_range(int(str(value)), option, 1, 2 ** 32 - 1)
    except ValueError as exc:
        if "out of range" in str(exc):
            raise
        raise ValueError("%s: %r is not a table number or one of %s"
                         % (option, value, ", ".join(ROUTE_TABLES))) from None


def desired_routes(params, kernel):
    """Validate every listed route; returns {(table, dst, metric): route}."""
    default_table = parse_table(params["table"], "table")
    desired = {}
    for i, item in enumerate(params["routes"]):
        where = "routes[%d]" % i
        dst = ip_network(item["dst"], where + ".dst")
        via = ip_address(item["via"], where + ".via") if item.get("via") else None
        same_family(where, dst, via)
        dev = item.get("dev") or params["dev"]
        if dev is None and via is None:
            raise ValueError("%s: needs via or dev (set it here or with the dev option)" % where)
        if dev is not None and kernel.index(dev) is None:
            raise ValueError("%s.dev: no device named %s" % (where, dev))
        if item["onlink"] and (dev is None or via is None):
            raise ValueError("%s.onlink: needs both via and a device" % where)
        metric = item.get("metric")
        metric = (0 if dst.version == 4 else 1024) if metric is None else \
            int_range(metric, where + ".metric", 0, 2 ** 32 - 1)
        table = parse_table(item["table"], where + ".table") if item.get("table") \
            else default_table
        scope = item.get("scope") or ("global" if via else "link")
        route = dict(dst=str(dst), via=str(via) if via else None, onlink=bool(item["onlink"]),
                     metric=metric, table=table, scope=scope)
        if dev is not None:
            route["dev"] = dev  # without a device the kernel's choice is not compared
        key = (table, str(dst), metric)
        if key in desired:
            raise ValueError("%s: %s (table %s, metric %d) is listed twice"
                             % (where, dst, table, metric))
        desired[key] = route
    return desired


def current_routes(params, kernel, tables):
    """The routes this module owns within the purge scope."""
    names = kernel.names()
    dev_index = kernel.index(params["dev"]) if params["dev"] else None
    current = {}
    for msg in kernel.routes():
        if msg["proto"] != params["protocol"] or route_table(msg) not in tables:
            continue
        oif = msg.get_attr("RTA_OIF")
        if dev_index is not None and oif != dev_index:
            continue
        family = msg["family"]
        dst = msg.get_attr("RTA_DST") or ("0.0.0.0" if family == socket.AF_INET else "::")
        metric = msg.get_attr("RTA_PRIORITY") or 0
        route = dict(dst="%s/%d" % (dst, msg["dst_len"]), via=msg.get_attr("RTA_GATEWAY"),
                     dev=names.get(oif), onlink=bool(msg["flags"] & RTNH_F_ONLINK),
                     metric=metric, table=route_table(msg),
                     scope=SCOPE_NAMES.get(msg["scope"], str(msg["scope"])))
        current[(route["table"], route["dst"], metric)] = route
    return current


def render(route):
    words = [route["dst"]]
    if route.get("via"):
        words += ["via", route["via"]]
    if route.get("dev"):
        words += ["dev", route["dev"]]
    if route.get("onlink"):
        words.append("onlink")
    if route["table"] != ROUTE_TABLES["main"]:
        words += ["table", str(TABLE_NAMES.get(route["table"], route["table"]))]
    if route["metric"]:
        words += ["metric", str(route["metric"])]
    if route["scope"] != ("global" if route.get("via") else "link"):
        words += ["scope", route["scope"]]
    return " ".join(words)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            routes=dict(type="list", elements="dict", default=[], options=dict(
                dst=dict(type="str", required=True),
                via=dict(type="str"),
                dev=dict(type="str"),
                onlink=dict(type="bool", default=False),
                metric=dict(type="int"),
                table=dict(type="str"),
                scope=dict(type="str", choices=["global", "site", "link", "host"]),
            )),
            dev=dict(type="str"),
            table=dict(type="str", default="main"),
            protocol=dict(type="int", default=119),
            purge=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    require_pyroute2(module)
    params = module.params
    with Kernel() as kernel:
        try:
            int_range(params["protocol"], "protocol", 5, 255)
            if params["dev"] and kernel.index(params["dev"]) is None:
                raise ValueError("dev: no device named %s" % params["dev"])
            desired = desired_routes(params, kernel)
        except ValueError as exc:
            module.fail_json(msg=str(exc))
        tables = {parse_table(params["table"], "table")} | {key[0] for key in desired}
        current = current_routes(params, kernel, tables)

        def apply(action, key, route):
            net = ip_network(route["dst"], "dst")
            spec = dict(dst=str(net.network_address), dst_len=net.prefixlen, table=route["table"],
                        priority=route["metric"], proto=params["protocol"],
                        family=socket.AF_INET if net.version == 4 else socket.AF_INET6)
            if action == "remove":
                kernel.ipr.route("del", **spec)
                return
            if route.get("via"):
                spec["gateway"] = route["via"]
            if route.get("dev"):
                spec["oif"] = kernel.index(route["dev"])
            spec["scope"] = ROUTE_SCOPES[route["scope"]]
            spec["flags"] = RTNH_F_ONLINK if route["onlink"] else 0
            kernel.ipr.route("replace", **spec)

        run_list(module, current, desired, apply, render)


if __name__ == "__main__":
    main()
