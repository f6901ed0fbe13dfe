#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fdb
short_description: Manage the forwarding database (FDB) of a VXLAN device over netlink
description:
  - Makes the remote entries of a VXLAN device's FDB exactly the listed MAC to underlay IP
    pairs, in one call for any number of entries, through pyroute2. Entries are written as
    C(self permanent), like C(bridge fdb append ... dst IP self permanent).
  - A unicast MAC has one remote destination, as in the kernel; when a peer moves to another
    underlay IP its entry is replaced in place, so traffic never finds no entry. The all-zero
    and multicast MACs may have several destinations, so for them MAC and destination
    together identify an entry.
  - With O(purge=true), entries on O(dev) that have a remote destination and that the list
    does not name are removed. Entries without a destination (the kernel's own multicast
    entries, or local bridge entries) are never touched.
  - The all-zero MAC C(00:00:00:00:00:00) is the flood (BUM) entry; list it once per
    destination that should receive broadcast, unknown-unicast and multicast frames. It is
    managed like any other entry, so O(purge) removes flood destinations that are not listed.
    weft's own overlay uses no flood entries (learning is off and every peer has a static
    entry), so a purge on a weft device also clears flood entries left by other tools.
version_added: "1.0.0"
author: weft contributors (@weft-overlay)
requirements:
  - pyroute2 0.7 or later on the managed host (Debian package C(python3-pyroute2))
options:
  dev:
    description: The VXLAN device, e.g. C(flannel.1).
    type: str
    required: true
  entries:
    description: The FDB entries that must exist on O(dev).
    type: list
    elements: dict
    default: []
    suboptions:
      mac:
        description: The remote VTEP's MAC, or the all-zero MAC for a flood entry.
        type: str
        required: true
      dst:
        description: The remote VTEP's underlay IP (IPv4 or IPv6).
        type: str
        required: true
  purge:
    description: Remove entries with a destination on O(dev) that the list does not name.
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
    details: One line per entry that is added or removed.
  platform:
    support: full
    platforms: linux
  action_group:
    support: full
    membership: [weft.overlay.weft]
"""

EXAMPLES = r"""
- name: Frames for each peer's VTEP MAC go to that peer's underlay address
  weft.overlay.fdb:
    dev: flannel.1
    purge: true
    entries:
      - {mac: "0e:77:64:60:02:00", dst: 10.168.0.3}
      - {mac: "0e:77:64:60:03:00", dst: 10.168.0.4}
"""

RETURN = r"""
added:
  description: Entries that were (or in check mode would be) added.
  returned: always
  type: list
  elements: str
  sample: ["0e:77:64:60:02:00 dst 10.168.0.3 dev flannel.1 self permanent"]
updated:
  description: Unicast entries whose destination was replaced.
  returned: always
  type: list
  elements: str
removed:
  description: Entries that O(purge) removed.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.weft.overlay.plugins.module_utils.weft.module import run_module
from ansible_collections.weft.overlay.plugins.module_utils.weft.net import fdb as core


def main():
    run_module(core)


if __name__ == "__main__":
    main()
