#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tun
short_description: Manage a persistent TUN device (Flannel's udp backend) through pyroute2
description:
  - Creates, updates or removes a persistent layer-3 TUN device (IFF_TUN without packet
    information), like Flannel's C(flannel0), so that a daemon can attach to it later.
  - O(owner), O(group) and O(multi_queue) are fixed at creation; when one differs the device
    is re-created (RV(recreated)). O(mtu), O(address) and O(up) change in place.
  - An existing device of another kind with the same name is never touched; the module fails.
version_added: "1.0.0"
author: weft contributors (@weft-overlay)
requirements:
  - pyroute2 0.7 or later on the managed host (Debian package C(python3-pyroute2))
  - /dev/net/tun
options:
  owner:
    description: User (name or numeric ID) allowed to attach to the device without
      CAP_NET_ADMIN, e.g. the unprivileged user of the daemon that forwards its packets.
      Only processes with CAP_NET_ADMIN may attach when omitted.
    type: str
  group:
    description: Group (name or numeric ID) whose members may attach to the device.
    type: str
  multi_queue:
    description: Create a multi-queue device, so that several workers can each attach
      their own queue.
    type: bool
    default: false
extends_documentation_fragment: [weft.overlay.device, ansible.builtin.action_common_attributes, ansible.builtin.action_common_attributes.actiongroups]
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Before and after hold only the attributes that differ.
  platform:
    support: full
    platforms: linux
  action_group:
    support: full
    membership: [weft.overlay.weft]
"""

EXAMPLES = r"""
- name: Flannel's udp backend device
  weft.overlay.tun:
    name: flannel0
    mtu: 1472
    address: 100.96.1.0/32

- name: Remove it
  weft.overlay.tun:
    name: flannel0
    state: absent
"""

RETURN = r"""
recreated:
  description: Whether the device was (or would be) deleted and created again.
  returned: always
  type: bool
device:
  description: The device as the kernel has it after the change (not in check mode).
  returned: when state is present and not in check mode
  type: dict
  sample: {name: flannel0, kind: tun, owner: null, group: null, multi_queue: false,
           mtu: 1472, address: 100.96.1.0/32, up: true, mac: null}
"""

from ansible_collections.weft.overlay.plugins.module_utils.weft.module import run_module
from ansible_collections.weft.overlay.plugins.module_utils.weft.net import tun as core


def main():
    run_module(core)


if __name__ == "__main__":
    main()
