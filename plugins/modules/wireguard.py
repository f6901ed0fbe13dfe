#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: wireguard
short_description: Manage a WireGuard device and its peers (Flannel's wireguard backend)
description:
  - Creates, updates or removes a WireGuard device, like Flannel's C(flannel-wg) and
    C(flannel-wg-v6), with its private key, listen port and one peer per other host.
  - The kernel's device where the host has WireGuard (O(implementation=kernel)); else
    wireguard-go's (O(implementation=userspace)), which systemd runs as a transient unit
    (O(unit)) as the unprivileged O(user) holding CAP_NET_ADMIN alone. wireguard-tools'
    C(wg) configures both the same way.
  - Peers are reconciled by public key; with O(purge) peers not listed are removed.
    Changed endpoints, allowed IPs and keepalives are updated in place.
  - The private key is read from O(private_key) by C(wg); it is never returned, logged or
    put in a diff (RV(key_or_port_changed) says only that the key or port was set).
  - O(preshared_key), the same for every peer, is read from its file too and compared in
    memory by digest; it is never returned, logged or put in a diff.
  - All changes to the peers are made in one C(wg set).
  - O(mtu), O(address) and O(up) change in place. An existing device of another kind with
    the same name is never touched; the module fails.
version_added: "1.0.0"
author: weft contributors (@weft-overlay)
requirements:
  - wireguard-tools (C(wg)) on the managed host; wireguard-go for O(implementation=userspace)
  - pyroute2 0.7 or later on the managed host (Debian package C(python3-pyroute2))
options:
  private_key:
    description: Root-only file holding this host's private key (as C(wg genkey) writes
      it). Required with O(state=present).
    type: path
  address:
    description: The device's addresses with their prefix lengths, one per family it
      carries (Flannel's C(Mode) auto, ipv4 and ipv6 put both on one device).
    type: list
    elements: str
  preshared_key:
    description: Root-only file holding a pre-shared key (as C(wg genpsk) writes it) for
      every peer; left out, the peers have none.
    type: path
  listen_port:
    description: The UDP port peers send to. Required with O(state=present).
    type: int
  peers:
    description: The other hosts.
    type: list
    elements: dict
    default: []
    suboptions:
      public_key:
        description: The peer's public key.
        type: str
        required: true
      endpoint:
        description: Where the peer listens, C(address:port) or C([IPv6 address]:port).
        type: str
        required: true
      allowed_ips:
        description: The networks routed to the peer (its subnet).
        type: list
        elements: str
        required: true
      persistent_keepalive:
        description: Seconds between keepalives; V(0) sends none.
        type: int
        default: 0
  purge:
    description: Remove the device's peers that O(peers) does not list.
    type: bool
    default: true
  implementation:
    description: V(kernel), V(userspace) (wireguard-go), or V(auto) (an existing device
      keeps its kind; a new one is the kernel's where the host has WireGuard loaded).
    type: str
    choices: [auto, kernel, userspace]
    default: auto
  user:
    description: The unprivileged user wireguard-go runs as (it must exist).
    type: str
    default: weft-wireguard
  unit:
    description: The transient systemd unit wireguard-go runs in; by default
      C(weft-wireguard-<name>.service).
    type: str
extends_documentation_fragment: [weft.overlay.device, ansible.builtin.action_common_attributes, ansible.builtin.action_common_attributes.actiongroups]
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Peers (public keys, endpoints, allowed IPs) before and after; never a key.
  platform:
    support: full
    platforms: linux
  action_group:
    support: full
    membership: [weft.overlay.weft]
"""

EXAMPLES = r"""
- name: Flannel's IPv4 WireGuard device with one peer
  weft.overlay.wireguard:
    name: flannel-wg
    mtu: 1420
    address: 100.96.1.0/32
    private_key: /etc/weft/wireguard.key
    listen_port: 51820
    peers:
      - public_key: xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=
        endpoint: 10.168.0.3:51820
        allowed_ips: [100.96.2.0/24]
"""

RETURN = r"""
implementation:
  description: Which implementation carries the device.
  returned: when state is present
  type: str
  sample: userspace
added:
  description: The peers added, one line each (public key, endpoint, allowed IPs).
  returned: when state is present
  type: list
  elements: str
updated:
  description: The peers changed in place.
  returned: when state is present
  type: list
  elements: str
removed:
  description: The peers removed.
  returned: when state is present
  type: list
  elements: str
key_or_port_changed:
  description: Whether the private key or the listen port was (or would be) set.
  returned: when it was
  type: bool
"""

from ansible_collections.weft.overlay.plugins.module_utils.weft.module import run_module
from ansible_collections.weft.overlay.plugins.module_utils.weft.net import wireguard as core


def main():
    run_module(core)


if __name__ == "__main__":
    main()
