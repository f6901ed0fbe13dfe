# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters between the inventory and the planner: the planner's hosts, the plan as a table."""

from __future__ import annotations


def weft_plan_hosts(names, hostvars):
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
        if found.get("public_ip"):
            entry["public_ip"] = found["public_ip"]
            entry["underlay"] = found.get("network")
            if found.get("public_ipv6"):
                entry.update(public_ipv6=found["public_ipv6"], underlay6=found.get("network6"))
        else:
            for variable, key in (("weft_public_ip", "public_ip"), ("weft_public_ipv6", "public_ipv6")):
                if hv.get(variable):
                    entry[key] = str(hv[variable])
        for variable, key in (("weft_subnet", "subnet"), ("weft_subnet6", "subnet6")):
            if hv.get(variable):
                entry[key] = str(hv[variable])
        if found.get("public_ip") and hv.get("weft_backend_facts"):
            entry["reported"] = dict(hv["weft_backend_facts"])
        hosts.append(entry)
    return hosts


def lease_data(lease):
    """A lease's backend data as one cell: key=value pairs, sorted."""
    data = lease.get("backend_data") or {}
    return " ".join("%s=%s" % (key, data[key]) for key in sorted(data)) or "-"


def weft_plan_table(planned):
    """The plan as aligned text lines: host, subnet, public IP, the backend's lease data;
    then capacity."""
    rows = [("HOST", "SUBNET", "PUBLIC IP", "LEASE DATA")]
    for name in sorted(planned["nodes"]):
        node = planned["nodes"][name]
        rows.append((name, node["subnet"], node["public_ip"] or "-", lease_data(node)))
    for name in planned.get("retained", []):
        lease = planned["leases"][name]
        rows.append((name + " (removed, lease kept)", lease["subnet"], lease["public_ip"] or "-",
                     lease_data(lease)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    cap = planned["capacity"]
    lines.append("%d of %d subnets used (%s), %d free"
                 % (cap["used"], cap["subnets"], cap["range"], cap["free"]))
    for name in planned.get("unplanned", []):
        lines.append("%s: no lease and no known public IP (run site.yml or set weft_public_ip)"
                     % name)
    return lines


class FilterModule:
    def filters(self):
        return {"weft_plan_hosts": weft_plan_hosts, "weft_plan_table": weft_plan_table}
