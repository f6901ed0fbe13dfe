#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: docker
short_description: Docker's bridge address, MTU and ip-masq in daemon.json, and back
description:
  - Sets C(bip), C(mtu) and C(ip-masq) in Docker's C(daemon.json) from the plan, keeping
    every other key, as Flannel's C(--bip=$FLANNEL_SUBNET --mtu=$FLANNEL_MTU) does.
  - Before the first change it records what the file held for those keys, and whether it
    existed, in O(original); O(state=absent) puts them back (removing the file when weft
    created it and nothing else was added) and removes that record.
  - Does not restart dockerd; the result's RV(daemon_json_changed) says whether to.
  - dockerd reuses its bridge's address (and remembers the subnet it last used) when no
    C(bip) is set. So the record also keeps O(bridge)'s address before weft's first
    change, and with O(state=absent) and O(network) a bridge still holding an address of
    the overlay network gets that address back (Docker's default C(172.17.0.1/16) when it
    had none), which dockerd takes up when it restarts.
version_added: "1.0.0"
author: weft contributors (@weft-overlay)
options:
  path:
    description: Docker's daemon.json.
    type: path
    default: /etc/docker/daemon.json
  bip:
    description: The bridge's address with the subnet's length, e.g. C(100.96.1.1/24). Left
      out (an IPv6-only network), the key keeps the value it had before weft.
    type: str
  mtu:
    description: The containers' MTU (the overlay's).
    type: int
  ip_masq:
    description: Docker's own masquerading; V(false) when weft masquerades. Left out, the
      key keeps the value it had before weft.
    type: bool
  ipv6:
    description: Docker's C(ipv6) (dual-stack networks). Left out, the key keeps the value
      it had before weft.
    type: bool
  fixed_cidr_v6:
    description: Docker's C(fixed-cidr-v6), the IPv6 subnet containers get addresses from.
      Left out, the key keeps the value it had before weft.
    type: str
  iptables:
    description: Docker's C(iptables); V(false) on a host without iptables (the network's
      C(EnableNFTables), where weft's nftables chains forward and masquerade). Left out,
      the key keeps the value it had before weft.
    type: bool
  ip6tables:
    description: Docker's C(ip6tables), as O(iptables). Left out, the key keeps the value it
      had before weft.
    type: bool
  original:
    description: Where the values before weft's first change are recorded.
    type: path
    default: /etc/weft/docker-original.json
  bridge:
    description: Docker's bridge device.
    type: str
    default: docker0
  network:
    description: The overlay network (CIDR); with O(state=absent), O(bridge) is moved off it
      when one of its addresses lies in it.
    type: str
  state:
    description: V(present) sets the values; V(absent) puts the recorded ones back.
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
  platform:
    support: full
    platforms: posix
  action_group:
    support: full
    membership: [weft.overlay.weft]
"""

EXAMPLES = r"""
- name: Give Docker's bridge this host's subnet
  weft.overlay.docker:
    bip: 100.96.1.1/24
    mtu: 1450
    ip_masq: false
"""

RETURN = r"""
daemon_json_changed:
  description: Whether daemon.json was (or in check mode would be) rewritten; restart dockerd then.
  returned: success
  type: bool
bridge_readdressed:
  description: The address O(bridge) was (or would be) given instead of an overlay one;
    null when it was not on the overlay. Restart dockerd then.
  returned: success
  type: str
  sample: 172.17.0.1/16
"""

from ansible_collections.weft.overlay.plugins.module_utils.weft.module import run_module
from ansible_collections.weft.overlay.plugins.module_utils.weft.runtime import docker as core


def main():
    run_module(core)


if __name__ == "__main__":
    main()
