#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: iptables
short_description: Own one iptables chain, its rules in order, and the jump into it
description:
  - Makes the user chain O(chain) of O(table) hold exactly O(rules), in that order, and a
    built-in chain (O(jump_from)) jump to it. With O(state=absent) the jump and the chain go.
  - A chain that differs is rewritten whole in one C(iptables-restore --noflush)
    transaction, so packets never see a half-written chain; other chains and rules in the
    table are not touched.
  - Rules are compared as C(iptables -S) prints them. Write them in that form (for example
    C(-s 100.96.0.0/16 -j ACCEPT), comments as C(-m comment --comment "text")), or every
    run reports a change.
  - C(--random-fully) is used where the host's iptables has it (1.6.2 and later, as
    Flannel decides); an older one gets the rules without it, and a warning.
version_added: "1.0.0"
author: weft contributors (@weft-overlay)
requirements:
  - iptables (legacy or nf_tables variant) on the managed host
options:
  table:
    description: The table.
    type: str
    default: filter
    choices: [filter, nat, mangle, raw]
  chain:
    description: The user chain this module owns, e.g. C(WEFT-FWD).
    type: str
    required: true
  rules:
    description: The chain's rules without the leading C(-A CHAIN).
    type: list
    elements: str
    default: []
  jump_from:
    description: Built-in chain that jumps to O(chain), e.g. V(FORWARD) or V(POSTROUTING).
      A missing jump is inserted at the top, so that other tools' DROP rules come after it.
    type: str
  state:
    description: Whether the chain (and the jump) exist.
    type: str
    choices: [present, absent]
    default: present
  family:
    description: V(ipv4) (C(iptables)) or V(ipv6) (C(ip6tables)).
    type: str
    choices: [ipv4, ipv6]
    default: ipv4
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The chain's rules (and the jump) before and after, as C(iptables -S) lines.
  platform:
    support: full
    platforms: linux
  action_group:
    support: full
    membership: [weft.overlay.weft]
"""

EXAMPLES = r"""
- name: Accept the overlay's forwarded traffic
  weft.overlay.iptables:
    chain: WEFT-FWD
    jump_from: FORWARD
    rules:
      - -s 100.96.0.0/16 -j ACCEPT
      - -d 100.96.0.0/16 -j ACCEPT
"""

RETURN = r"""
rules:
  description: The chain's rules after the run, as C(iptables -S) prints them.
  returned: always
  type: list
  elements: str
  sample: ["-A WEFT-FWD -s 100.96.0.0/16 -j ACCEPT"]
"""

from ansible_collections.weft.overlay.plugins.module_utils.weft.module import run_module
from ansible_collections.weft.overlay.plugins.module_utils.weft.net import iptables as core


def main():
    run_module(core)


if __name__ == "__main__":
    main()
