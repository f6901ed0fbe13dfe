#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: weft_neighbours
short_description: Manage the permanent neighbour (ARP/NDP) entries of a device over netlink
description:
  - Makes the permanent neighbour entries of one device exactly the listed IP to MAC pairs,
    in one call for any number of entries, through pyroute2.
  - Entries are written with C(nud permanent), so the kernel never ages them out or sends
    ARP for them (what a VXLAN overlay with learning off needs for every peer's VTEP).
  - With O(purge=true), permanent entries on O(dev) that the list does not name are removed.
    Dynamic entries (learned by ARP) are never touched.
version_added: "0.1.0"
author: weft contributors
requirements:
  - pyroute2 0.7 or later on the managed host (Debian package C(python3-pyroute2))
options:
  dev:
    description: The device the entries belong to, e.g. C(flannel.1).
    type: str
    required: true
  neighbours:
    description: The permanent entries that must exist on O(dev).
    type: list
    elements: dict
    default: []
    suboptions:
      ip:
        description: The neighbour's IPv4 or IPv6 address.
        type: str
        required: true
      mac:
        description: Its link-layer address.
        type: str
        required: true
  purge:
    description: Remove permanent entries on O(dev) that the list does not name.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: One line per entry that is added, changed or removed.
  platform:
    platforms: linux
"""

EXAMPLES = r"""
- name: Every peer's VTEP address resolves to its VTEP MAC
  weft_neighbours:
    dev: flannel.1
    purge: true
    neighbours:
      - {ip: 100.96.2.0, mac: "0e:77:64:60:02:00"}
      - {ip: 100.96.3.0, mac: "0e:77:64:60:03:00"}
"""

RETURN = r"""
added:
  description: Entries that were (or in check mode would be) added.
  returned: always
  type: list
  elements: str
  sample: ["100.96.2.0 lladdr 0e:77:64:60:02:00 dev flannel.1 permanent"]
updated:
  description: Entries whose MAC was replaced.
  returned: always
  type: list
  elements: str
removed:
  description: Permanent entries that O(purge) removed.
  returned: always
  type: list
  elements: str
"""

import socket

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.weft_netlink import NUD_PERMANENT, Kernel, require_pyroute2
from ansible.module_utils.weft_reconcile import run_list
from ansible.module_utils.weft_validate import ip_address, mac_address


def desired_neighbours(params):
    desired = {}
    for i, item in enumerate(params["neighbours"]):
        where = "neighbours[%d]" % i
        ip = str(ip_address(item["ip"], where + ".ip"))
        if ip in desired:
            raise ValueError("%s.ip: %s is listed twice" % (where, ip))
        desired[ip] = dict(ip=ip, mac=mac_address(item["mac"], where + ".mac"),
                           dev=params["dev"])
    return desired


def current_neighbours(kernel, index, dev):
    return {m.get_attr("NDA_DST"): dict(ip=m.get_attr("NDA_DST"), mac=m.get_attr("NDA_LLADDR"),
                                        dev=dev)
            for m in kernel.neighbours(index) if m["state"] & NUD_PERMANENT}


def render(entry):
    return "%s lladdr %s dev %s permanent" % (entry["ip"], entry["mac"], entry["dev"])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dev=dict(type="str", required=True),
            neighbours=dict(type="list", elements="dict", default=[], options=dict(
                ip=dict(type="str", required=True),
                mac=dict(type="str", required=True),
            )),
            purge=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    require_pyroute2(module)
    params = module.params
    with Kernel() as kernel:
        index = kernel.index(params["dev"])
        try:
            if index is None:
                raise ValueError("dev: no device named %s" % params["dev"])
            desired = desired_neighbours(params)
        except ValueError as exc:
            module.fail_json(msg=str(exc))
        current = current_neighbours(kernel, index, params["dev"])

        def apply(action, ip, entry):
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            if action == "remove":
                kernel.ipr.neigh("del", dst=ip, ifindex=index, family=family)
            else:
                kernel.ipr.neigh("replace", dst=ip, lladdr=entry["mac"], ifindex=index,
                                 state=NUD_PERMANENT, family=family)

        run_list(module, current, desired, apply, render)


if __name__ == "__main__":
    main()
