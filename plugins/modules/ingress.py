#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ingress
short_description: Accept the overlay's encapsulation port only from its peers (nftables)
description:
  - Keeps an nftables table that weft owns whole (C(inet weft) by default) in which UDP
    datagrams to O(port) addressed to this host are dropped, and counted by reason, unless
    they come from the public IP of one of O(peers).
  - The check runs on the prerouting hook at the raw priority, before connection tracking
    and before any other table's input rules. nftables base chains see every packet
    whatever other tables accept, and a drop is final, so nothing elsewhere can let a
    stranger's datagram through.
  - With O(inner=vxlan), a peer's VXLAN frames must also carry the family its underlay
    address has (IPv4 over IPv4, IPv6 over IPv6, as Flannel's two VXLAN devices do) with a
    source in that peer's O(peers[].subnet), so a peer cannot speak for another host's
    containers.
  - A dual-stack peer is listed twice, once per family (its IPv4 address with its IPv4
    subnet, its IPv6 address with its IPv6 subnet).
  - When only the peers change, their addresses are added and removed in one transaction
    and the drop counters keep counting; any other difference (or a hand edit of the
    table's rules) replaces the whole table in one transaction.
version_added: "1.0.0"
author: weft contributors (@weft-overlay)
requirements:
  - nft (Debian package C(nftables)) and a kernel with nf_tables on the managed host
options:
  table:
    description: Name of the C(inet) table weft owns.
    type: str
    default: weft
  port:
    description: The UDP port of the encapsulation (VXLAN's 8472, the udp backend's 8285).
      O(state=present) needs it or O(ports).
    type: int
  ports:
    description: More UDP ports peers send to, beside O(port) (WireGuard's IPv4 and IPv6
      listen ports).
    type: list
    elements: int
    default: []
  peers:
    description: The hosts allowed to send to O(port).
    type: list
    elements: dict
    default: []
    suboptions:
      ip:
        description: The peer's public (underlay) address, IPv4 or IPv6.
        type: str
        required: true
      subnet:
        description: The peer's overlay subnet of the family of O(peers[].ip); required with
          O(inner=vxlan).
        type: str
  inner:
    description: Also check what is inside; V(vxlan) for VXLAN frames (inner packets of the
      underlay's family from the sending peer's subnet only), V(none) to check the sender
      only.
    type: str
    choices: [vxlan, none]
    default: none
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
    details: Peers added and removed, or the rule layout before and after.
  platform:
    support: full
    platforms: linux
  action_group:
    support: full
    membership: [weft.overlay.weft]
"""

EXAMPLES = r"""
- name: Only the peers may send VXLAN to this host
  weft.overlay.ingress:
    port: 8472
    inner: vxlan
    peers:
      - {ip: 10.168.0.3, subnet: 100.96.2.0/24}
      - {ip: 10.168.0.4, subnet: 100.96.3.0/24}

- name: Remove the table
  weft.overlay.ingress:
    state: absent
"""

RETURN = r"""
peers:
  description: How many peers may send.
  returned: when state is present
  type: int
  sample: 2
dropped:
  description: Datagrams dropped so far, by reason (C(not_a_peer), C(inner_not_ipv4),
    C(inner_not_ipv6), C(inner_source)), as the table's counters held them before this run.
  returned: always
  type: dict
  sample: {not_a_peer: 3, inner_not_ipv4: 0, inner_not_ipv6: 0, inner_source: 0}
"""

from ansible_collections.weft.overlay.plugins.module_utils.weft.module import run_module
from ansible_collections.weft.overlay.plugins.module_utils.weft.net import ingress as core


def main():
    run_module(core)


if __name__ == "__main__":
    main()
