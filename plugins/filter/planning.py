# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters between the inventory and the planner: the planner's hosts, the plan as a table
(weft.overlay.plan_hosts, weft.overlay.plan_table; their documentation beside this file)."""

from __future__ import annotations


def plan_hosts(names, hostvars):
    """The planner's `hosts` argument from the inventory: name, public IP, pin, underlay,
    and what the host reported for its lease.

    A host that ran weft_facts in this play (facts weft_underlay, weft_backend_facts)
    reports what it found; any other host is described by its weft_public_ip/weft_subnet
    variables, and the planner keeps what its lease recorded.
    """
    hosts = []
    for name in names:
        hv = hostvars[name]
        found = hv.get("weft_underlay") or {}
        entry = {"name": name}
        if found.get("public_ip") or found.get("public_ipv6"):
            if found.get("public_ip"):
                entry.update(public_ip=found["public_ip"], underlay=found.get("network"))
            if found.get("public_ipv6"):
                entry.update(public_ipv6=found["public_ipv6"], underlay6=found.get("network6"))
        else:
            for variable, key in (("weft_public_ip", "public_ip"), ("weft_public_ipv6", "public_ipv6")):
                if hv.get(variable):
                    entry[key] = str(hv[variable])
        for variable, key in (("weft_subnet", "subnet"), ("weft_subnet6", "subnet6")):
            if hv.get(variable):
                entry[key] = str(hv[variable])
        if (found.get("public_ip") or found.get("public_ipv6")) and hv.get("weft_backend_facts"):
            entry["reported"] = dict(hv["weft_backend_facts"])
        hosts.append(entry)
    return hosts


def lease_data(lease):
    """A lease's backend data as one cell: key=value pairs, sorted (IPv6-only: its IPv6 data)."""
    data = lease.get("backend_data") or lease.get("backend_v6_data") or {}
    return " ".join("%s=%s" % (key, data[key]) for key in sorted(data)) or "-"


# (heading, lease key) of the table's address columns; a family no lease has is left out.
ADDRESS_COLUMNS = [("SUBNET", "subnet"), ("PUBLIC IP", "public_ip"),
                   ("IPV6 SUBNET", "subnet6"), ("PUBLIC IPV6", "public_ipv6")]


def plan_table(planned):
    """The plan as aligned text lines: host, each family's subnet and public IP, the
    backend's lease data; then capacity."""
    leases = [(name, planned["nodes"][name]) for name in sorted(planned["nodes"])]
    leases += [(name + " (removed, lease kept)", planned["leases"][name])
               for name in planned.get("retained", [])]
    columns = [(heading, key) for heading, key in ADDRESS_COLUMNS
               if any(lease.get(key) for dummy, lease in leases)] or ADDRESS_COLUMNS[:2]
    rows = [("HOST",) + tuple(heading for heading, dummy in columns) + ("LEASE DATA",)]
    for name, lease in leases:
        rows.append((name,) + tuple(lease.get(key) or "-" for dummy, key in columns)
                    + (lease_data(lease),))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    cap = planned["capacity"]
    lines.append("%d of %d subnets used (%s), %d free"
                 % (cap["used"], cap["subnets"], cap["range"], cap["free"]))
    for name in planned.get("unplanned", []):
        lines.append("%s: no lease and no known public IP (run site.yml or set weft_public_ip, "
                     "or weft_public_ipv6 in an IPv6-only network)" % name)
    return lines


class FilterModule:
    def filters(self):
        return {"plan_hosts": plan_hosts, "plan_table": plan_table}
