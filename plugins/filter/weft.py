# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn the subnet plan into what each host's modules need."""

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError


def weft_plan_hosts(names, hostvars):
    """The planner's `hosts` argument from the inventory: name, public IP, pin, underlay.

    A host that ran underlay detection in this play (registered as weft_underlay) reports
    what it found; any other host is described by its weft_public_ip/weft_subnet variables,
    and the planner keeps what its lease recorded.
    """
    hosts = []
    for name in names:
        hv = hostvars[name]
        found = hv.get("weft_underlay") or {}
        entry = {"name": name}
        if found.get("public_ip"):
            entry["public_ip"] = found["public_ip"]
            entry["underlay"] = found.get("network")
        elif hv.get("weft_public_ip"):
            entry["public_ip"] = str(hv["weft_public_ip"])
        if hv.get("weft_subnet"):
            entry["subnet"] = str(hv["weft_subnet"])
        hosts.append(entry)
    return hosts


def _on_link(peer_ip, underlay_network):
    try:
        return ipaddress.ip_address(peer_ip) in ipaddress.ip_network(underlay_network)
    except ValueError:
        return False


def weft_peer_entries(nodes, me, backend, vxlan_dev, iface, underlay_network=None,
                      direct_routing=False, network=None, tun_dev="flannel0", port=8285):
    """Neighbour, FDB and route entries for host `me`, one set per peer, Flannel's way.

    vxlan: neighbour VTEP IP -> VTEP MAC, FDB VTEP MAC -> public IP, and a route to the
    peer's subnet via its VTEP IP onlink. With DirectRouting, a peer on this host's L2
    network gets a host-gw route instead (and no neighbour/FDB entry).
    host-gw: a route to the peer's subnet via its public IP on the underlay interface.
    udp: one route for the whole network through the TUN device, and per peer the
    daemon's forwarding entry (subnet -> public IP and port).
    Every backend: the peers allowed to send to the encapsulation port (public IP, subnet).
    """
    if me not in nodes:
        raise AnsibleFilterError("weft_peer_entries: %s has no lease in the plan" % me)
    entries = {"neighbours": [], "fdb": [], "routes": [], "udp_peers": [], "ingress": []}
    if backend == "udp":
        entries["routes"].append({"dst": network, "dev": tun_dev})
    for name in sorted(nodes):
        peer = nodes[name]
        if name == me or not peer.get("public_ip"):
            continue
        entries["ingress"].append({"ip": peer["public_ip"], "subnet": peer["subnet"]})
        direct = backend == "host-gw" or (
            backend == "vxlan" and direct_routing and _on_link(peer["public_ip"], underlay_network))
        if direct:
            entries["routes"].append({"dst": peer["subnet"], "via": peer["public_ip"],
                                      "dev": iface})
        elif backend == "udp":
            entries["udp_peers"].append({"subnet": peer["subnet"], "ip": peer["public_ip"],
                                         "port": port})
        elif backend == "vxlan":
            entries["neighbours"].append({"ip": peer["vtep_address"], "mac": peer["vtep_mac"]})
            entries["fdb"].append({"mac": peer["vtep_mac"], "dst": peer["public_ip"]})
            entries["routes"].append({"dst": peer["subnet"], "via": peer["vtep_address"],
                                      "dev": vxlan_dev, "onlink": True})
    return entries


def weft_plan_table(planned):
    """The plan as aligned text lines: host, subnet, public IP, VTEP MAC; then capacity."""
    rows = [("HOST", "SUBNET", "PUBLIC IP", "VTEP MAC")]
    for name in sorted(planned["nodes"]):
        node = planned["nodes"][name]
        rows.append((name, node["subnet"], node["public_ip"] or "-", node.get("vtep_mac") or "-"))
    for name in planned.get("retained", []):
        lease = planned["leases"][name]
        rows.append((name + " (removed, lease kept)", lease["subnet"], lease["public_ip"] or "-", "-"))
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
        return {"weft_plan_hosts": weft_plan_hosts, "weft_peer_entries": weft_peer_entries,
                "weft_plan_table": weft_plan_table}
