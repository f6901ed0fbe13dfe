#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: neighbours
short_description: Manage the permanent neighbour (ARP/NDP) entries of a device over netlink
description:
  - Makes the permanent neighbour entries of one device exactly the listed IP to MAC pairs,
    in one call for any number of entries, through pyroute2.
  - Entries are written with C(nud permanent), so the kernel never ages them out or sends
    ARP for them (what a VXLAN overlay with learning off needs for every peer's VTEP).
  - With O(purge=true), permanent entries on O(dev) that the list does not name are removed.
    Dynamic entries (learned by ARP) are never touched.
version_added: "1.0.0"
author: weft contributors (@weft-overlay)
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
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: One line per entry that is added, changed or removed.
  platform:
    support: full
    platforms: linux
  action_group:
    support: full
    membership: [weft.overlay.weft]
"""

EXAMPLES = r"""
- name: Every peer's VTEP address resolves to its VTEP MAC
  weft.overlay.neighbours:
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

from ansible_collections.weft.overlay.plugins.module_utils.weft.module import run_module
from ansible_collections.weft.overlay.plugins.module_utils.weft.net import neighbours as core


def main():
    run_module(core)


if __name__ == "__main__":
    main()
