#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: bridge
short_description: Manage a Linux bridge and its gateway addresses (the CNI network's bridge)
description:
  - Creates, updates or removes a Linux bridge, like the CNI network's C(cni0), with the
    gateway addresses of the host's subnet, so that the gateway is there before the first
    container and again after a reboot; the CNI C(bridge) plugin finds it and attaches the
    containers' veths to it.
  - O(mtu), O(address) and O(up) change in place. An existing device of another kind with
    the same name is never touched; the module fails.
version_added: "1.0.0"
author: weft contributors (@weft-overlay)
requirements:
  - pyroute2 0.7 or later on the managed host (Debian package C(python3-pyroute2))
options:
  address:
    description: The bridge's addresses with their prefix lengths, one per family (the
      gateway of each range containers get). Any other address on it is removed.
    type: list
    elements: str
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
- name: The CNI network's bridge with its gateways
  weft.overlay.bridge:
    name: cni0
    mtu: 1450
    address: [100.96.1.129/25, "fd00:96:0:1:8000::1/65"]
"""

RETURN = r"""
recreated:
  description: Always false; nothing of a bridge that weft sets is fixed at creation.
  returned: always
  type: bool
device:
  description: The bridge as the kernel has it after the change (not in check mode).
  returned: when state is present and not in check mode
  type: dict
  sample: {name: cni0, kind: bridge, mtu: 1450, address: 100.96.1.1/24, up: true,
           mac: "3a:1f:0c:55:e2:10"}
"""

from ansible_collections.weft.overlay.plugins.module_utils.weft.module import run_module
from ansible_collections.weft.overlay.plugins.module_utils.weft.net import bridge as core


def main():
    run_module(core)


if __name__ == "__main__":
    main()
