#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: check_report
short_description: The overlay health matrix from every host's weft.overlay.check result
description:
  - Runs on the controller. Turns the M(weft.overlay.check) results of all hosts (by inventory
    name) into one matrix of ordered pairs (hosts x hosts; a cell is the mean round trip
    in milliseconds, or why the pair fails) with the failures explained below it, and
    writes the whole report as JSON.
  - A pair fails when no small echo gets through (V(LOST)), a packet of the overlay MTU
    with Don't Fragment set is lost (V(MTU), with the largest size that passed), the
    source does not know the destination as a peer (V(NOPEER)), or either host could not
    be checked (V(?); unreachable, not converged). A host fails on its own when its state
    drifted from its record, its lease's address is gone, or it converged another plan.
  - Returns RV(ok); C(weft.overlay.check) fails the play when it is false.
version_added: "1.0.0"
author: weft contributors (@weft-overlay)
options:
  results:
    description: Inventory name to that host's registered weft.overlay.check result (an
      unreachable or failed one included).
    type: dict
    required: true
  json_path:
    description: Where to write the report as JSON (replaced atomically, mode 0644). Not
      written when omitted.
    type: path
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  check_mode:
    support: full
    details: Writes the JSON in check mode too (it is the check's output, on the controller).
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
  action_group:
    support: full
    membership: [weft.overlay.weft]
"""

EXAMPLES = r"""
- name: Report the matrix
  weft.overlay.check_report:
    results: "{{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', hostvars, 'weft_check_host'))) }}"
    json_path: /var/tmp/weft-check.json
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
ok:
  description: Whether every pair works and no host has a problem of its own.
  returned: always
  type: bool
matrix:
  description: The matrix and its explanations, line by line.
  returned: always
  type: list
  elements: str
failures:
  description: One line per failing pair or host problem.
  returned: always
  type: list
  elements: str
pairs:
  description: Every ordered pair, with C(ok), C(cell), C(paths) and C(why).
  returned: always
  type: list
  elements: dict
hosts:
  description: Each host's own problems (drift, underlay, plan revision).
  returned: always
  type: dict
unusable:
  description: Hosts whose result could not be used, and why.
  returned: always
  type: dict
"""

from ansible_collections.weft.overlay.plugins.module_utils.weft.check import check_report as core
from ansible_collections.weft.overlay.plugins.module_utils.weft.module import run_module


def main():
    run_module(core)


if __name__ == "__main__":
    main()
