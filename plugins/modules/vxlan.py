#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: vxlan
short_description: Manage a VXLAN device (a Flannel-style VTEP) over netlink
description:
  - Creates, updates or removes a VXLAN device through pyroute2, the way Flannel's vxlan
    backend sets up C(flannel.<VNI>).
  - O(vni), O(local), O(dev), O(port), O(learning) and O(gbp) are fixed when the kernel
    creates the device; when one of them differs the device is deleted and re-created
    (RV(recreated)).
    O(mtu), O(mac), O(address) and O(up) change in place.
  - An existing device of another kind with the same name is never touched; the module fails.
version_added: "1.0.0"
author: weft contributors (@weft-overlay)
requirements:
  - pyroute2 0.7 or later on the managed host (Debian package C(python3-pyroute2))
options:
  vni:
    description: VXLAN network identifier, 1 to 16777215. Required with O(state=present).
    type: int
  local:
    description: This host's underlay (public) address, the source of encapsulated packets.
      Must be an address of O(dev), or of some device when O(dev) is not given.
      Required with O(state=present).
    type: str
  dev:
    description: The underlay device the encapsulated packets leave by.
    type: str
  port:
    description: UDP destination port. Flannel and the Linux kernel use 8472; IANA's is 4789.
    type: int
    default: 8472
  learning:
    description: Learn remote MACs from received packets. Off for a Flannel-style overlay,
      whose FDB is programmed (see M(weft.overlay.fdb)).
    type: bool
    default: false
  gbp:
    description: The VXLAN Group Policy extension (C(gbp)), which carries the sender's
      policy group in the header (Flannel's GBP option).
    type: bool
    default: false
  tx_checksum:
    description:
      - TX checksum offload on the device (what C(ethtool -K <name> tx) sets), changed in
        place and set again on a re-created device. V(false) is the workaround for NICs
        and hypervisors that corrupt the inner checksums of VXLAN packets
        (flannel-io/flannel#1279). Omitted, the kernel's setting is left alone.
    type: bool
  mac:
    description: The device's MAC (a unicast address). weft derives a stable one per
      subnet so that peers' neighbour and FDB entries stay valid when the device is
      re-created. Left as the kernel chose it when omitted.
    type: str
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
- name: Flannel's VTEP for VNI 1 on eth0
  weft.overlay.vxlan:
    name: flannel.1
    vni: 1
    local: 10.168.0.2
    dev: eth0
    mac: "0e:77:64:60:01:00"
    mtu: 1450
    address: 100.96.1.0/32

- name: Remove it
  weft.overlay.vxlan:
    name: flannel.1
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
  sample:
    name: flannel.1
    kind: vxlan
    vni: 1
    local: 10.168.0.2
    dev: eth0
    port: 8472
    learning: false
    gbp: false
    mac: "0e:77:64:60:01:00"
    mtu: 1450
    address: 100.96.1.0/32
    up: true
"""

from ansible_collections.weft.overlay.plugins.module_utils.weft.module import run_module
from ansible_collections.weft.overlay.plugins.module_utils.weft.net import vxlan as core


def main():
    run_module(core)


if __name__ == "__main__":
    main()
