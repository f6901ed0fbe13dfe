# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Core of weft_routes: a list of routes, owned by route protocol, in one call."""

from __future__ import annotations

import socket

from ..errors import WeftError
from .netlink import (RTNH_F_ONLINK, ROUTE_TABLES, RTPROT_WEFT,
                      route_table, scope_name, scope_number)
from .reconcile import reconcile
from ..validate import int_range, ip_address, ip_network, same_family

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


def desired_routes(params, kernel, check_mode=False, indexes=None):
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
        if dev is not None and indexes.get(dev) is None and not check_mode:
            # (check mode: a device an earlier task would create)
            raise ValueError("%s.dev: no device named %s" % (where, dev))
        if item["onlink"] and (dev is None or via is None):
            raise ValueError("%s.onlink: needs both via and a device" % where)
        metric = item.get("metric")
        metric = (0 if dst.version == 4 else 1024) if metric is None else \
            int_range(metric, where + ".metric", 0, 2 ** 32 - 1)
        table = parse_table(item["table"], where + ".table") if item.get("table") \
            else default_table
        # IPv6 routes have no scope: the kernel keeps every one as global.
        scope = item.get("scope") or ("global" if via or dst.version == 6 else "link")
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
    if params["dev"] and dev_index is None:
        return current  # (check mode) a device not created yet holds no routes
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
                     scope=scope_name(msg["scope"]))
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


ARGUMENT_SPEC = dict(
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
    protocol=dict(type="int", default=RTPROT_WEFT),
    purge=dict(type="bool", default=False),
)


def run(params, ctx):
    kernel = ctx.kernel
    # One dump of the links for thousands of routes, not a lookup per route.
    indexes = {name: index for index, name in kernel.names().items()}
    try:
        int_range(params["protocol"], "protocol", 5, 255)
        if params["dev"] and indexes.get(params["dev"]) is None and not ctx.check_mode:
            raise ValueError("dev: no device named %s" % params["dev"])
        desired = desired_routes(params, kernel, ctx.check_mode, indexes)
    except ValueError as exc:
        raise WeftError(str(exc)) from None
    tables = {parse_table(params["table"], "table")} | {key[0] for key in desired}
    current = current_routes(params, kernel, tables)

    def apply(action, key, route):
        net = ip_network(route["dst"], "dst")
        # The scope is part of what the kernel matches on delete too: a link-scope
        # route (udp's, through the TUN device) is not found under scope global.
        spec = dict(dst=str(net.network_address), dst_len=net.prefixlen, table=route["table"],
                    priority=route["metric"], proto=params["protocol"],
                    scope=scope_number(route["scope"]),
                    family=socket.AF_INET if net.version == 4 else socket.AF_INET6)
        if action == "remove":
            kernel.ipr.route("del", **spec)
            return
        if route.get("via"):
            spec["gateway"] = route["via"]
        if route.get("dev"):
            spec["oif"] = indexes[route["dev"]]
        spec["flags"] = RTNH_F_ONLINK if route["onlink"] else 0
        kernel.ipr.route("replace", **spec)

    return reconcile(ctx, current, desired, params["purge"], apply, render)
