# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options every weft device module shares (weft_vxlan, weft_tun)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  name:
    description: Device name, e.g. C(flannel.1) or C(flannel0).
    type: str
    required: true
  state:
    description: Whether the device exists.
    type: str
    choices: [present, absent]
    default: present
  mtu:
    description: Device MTU (Flannel's is the underlay's minus the backend's overhead). Left as
      the kernel chose it when omitted.
    type: int
  address:
    description: The device's one address in CIDR form, e.g. V(100.96.1.0/32). Any other
      address on the device is removed. Addresses are left alone when omitted.
    type: str
  up:
    description: Whether the device is administratively up.
    type: bool
    default: true
"""
