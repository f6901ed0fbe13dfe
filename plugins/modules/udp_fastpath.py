#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: udp_fastpath
short_description: Carry the udp backend's lone packets in the kernel, in front of weft-udpd
description:
  - Attaches two tc-BPF programs (clsact, direct action) that carry Flannel's udp wire
    format (a container's IPv4 packet as the payload of a UDP datagram to the peer's
    port) with the kernel's latency, and hand everything else to the weft-udpd daemon.
  - On the TUN device's egress, a packet to a peer's subnet that is no GSO
    super-packet, is IPv4 without options, has a TTL above 1 and whose next hop the
    kernel has resolved is put in its datagram and sent from the underlay device. TCP bulk
    (GSO), TTL running out, no route, an unresolved neighbour and peers with O(peers[].send)
    off go on to the TUN device and the daemon.
  - On the underlay device's ingress, a datagram to O(address) and O(port) from a peer's
    address, whose inner packet is IPv4 without options, to O(subnet), from that peer's
    subnet, with lengths that agree, a good header checksum and a TTL above 1, enters the
    TUN device's ingress as the daemon would write it. Anything else goes on to the stack
    unchanged (the nftables ingress table, the daemon's own checks and counters). The
    program does not look at the outer fragment bits or the UDP checksum, and runs before
    netfilter, so the host's own firewall rules do not see what it takes in.
  - The programs are assembled by the module itself (no compiler on the host); the peers
    are in frozen maps. A change loads new programs in front of the old ones and then
    removes the old ones; the counters of packets carried each way are kept.
  - Where the kernel or the host does not allow it (no BPF or cls_bpf, bpf(2) forbidden),
    the module removes what it may have attached, warns and reports no change; the
    daemon then carries every packet.
  - Needs root (CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN to find the running programs).
version_added: "1.0.0"
author: weft contributors (@weft-overlay)
requirements:
  - pyroute2 0.7 or later on the managed host (Debian package C(python3-pyroute2))
  - a Linux kernel with BPF, cls_bpf and clsact (5.2 or later), x86_64 or aarch64
options:
  name:
    description: The udp backend's TUN device (its egress program).
    type: str
    required: true
  state:
    description: C(absent) removes every filter of weft's from every device, and each
      clsact qdisc they leave empty; other filters stay.
    type: str
    choices: [present, absent]
    default: present
  underlay:
    description: The device the peers' datagrams arrive on (its ingress program).
      Required when O(state=present).
    type: str
  address:
    description: This host's IPv4 address on O(underlay), which datagrams are sent from
      and received on. Required when O(state=present).
    type: str
  subnet:
    description: This host's containers' IPv4 subnet; only packets to it are taken in.
      Required when O(state=present).
    type: str
  port:
    description: The udp backend's port, on both ends.
    type: int
    default: 8285
  peers:
    description: The peers, at most 65536.
    type: list
    elements: dict
    default: []
    suboptions:
      ip:
        description: The peer's public IPv4 address.
        type: str
        required: true
      subnet:
        description: The peer's containers' subnet.
        type: str
        required: true
      send:
        description: Send to this peer from the kernel; false leaves its packets to the
          daemon (a Flannel peer, which needs complete inner checksums). Its datagrams
          are taken in either way.
        type: bool
        default: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Before and after list weft's filters by device, hook and name.
  platform:
    support: full
    platforms: linux
  action_group:
    support: full
    membership: [weft.overlay.weft]
"""

EXAMPLES = r"""
- name: The fast path in front of weft-udpd
  weft.overlay.udp_fastpath:
    name: flannel0
    underlay: eth0
    address: 10.0.0.11
    subnet: 100.96.1.0/24
    peers:
      - {ip: 10.0.0.12, subnet: 100.96.2.0/24}
      - {ip: 10.0.0.13, subnet: 100.96.3.0/24, send: false}
"""

RETURN = r"""
changed:
  description: Whether programs were attached or removed.
  returned: always
  type: bool
"""

from ansible_collections.weft.overlay.plugins.module_utils.weft.module import run_module
from ansible_collections.weft.overlay.plugins.module_utils.weft.net import udp_fastpath as core


def main():
    run_module(core)


if __name__ == "__main__":
    main()
