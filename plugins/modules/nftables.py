#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nftables
short_description: Own the overlay's forward and masquerade chains in nftables
description:
  - Flannel's C(EnableNFTables) layout, for hosts without iptables. One table per address
    family that this module owns whole (C(ip weft-ipv4), C(ip6 weft-ipv6)), with the base
    chain C(forward) (filter hook forward, filter priority) holding O(forward) and
    C(postrtg) (nat hook postrouting, source NAT priority) holding O(masquerade), each
    rule in the order given. A chain without rules is left out; without any, the table goes.
  - Each rule carries its own text as its comment, which is how a run recognises it. A
    table that differs in any rule or chain is replaced whole in one C(nft -f)
    transaction, so packets never see a half-written table; other tables are not touched.
version_added: "1.0.0"
author: weft contributors (@weft-overlay)
requirements:
  - nft (nftables) on the managed host
options:
  family:
    description: V(ipv4) (the table C(ip weft-ipv4)) or V(ipv6) (C(ip6 weft-ipv6)).
    type: str
    choices: [ipv4, ipv6]
    default: ipv4
  forward:
    description: The C(forward) chain's rules, in nft's syntax (no quotes; at most 128
      characters each, nftables' limit on the comment that holds them).
    type: list
    elements: str
    default: []
  masquerade:
    description: The C(postrtg) chain's rules, as O(forward).
    type: list
    elements: str
    default: []
  state:
    description: Whether the table exists.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The table's rules before and after, one C(chain rule) line each.
  platform:
    support: full
    platforms: linux
  action_group:
    support: full
    membership: [weft.overlay.weft]
"""

EXAMPLES = r"""
- name: Forward and masquerade the overlay's traffic without iptables
  weft.overlay.nftables:
    family: ipv4
    forward:
      - ip saddr 100.96.0.0/16 accept
      - ip daddr 100.96.0.0/16 accept
    masquerade:
      - ip saddr 100.96.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random
"""

RETURN = r"""
rules:
  description: The table's rules after the run, one C(chain rule) line each.
  returned: always
  type: list
  elements: str
  sample: ["forward ip saddr 100.96.0.0/16 accept"]
"""

from ansible_collections.weft.overlay.plugins.module_utils.weft.module import run_module
from ansible_collections.weft.overlay.plugins.module_utils.weft.net import nftables as core


def main():
    run_module(core)


if __name__ == "__main__":
    main()
