#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lease_migrate
short_description: Copy weft's subnet leases from the lease file to etcd, or back
description:
  - Copies every lease of the source store (retained leases of removed hosts included) into
    the other store, so a team can move from the lease file to etcd (O(to=etcd)) or back
    (O(to=file)) without any host changing its subnet.
  - Leases already in the target stay. A host that holds a different subnet in the target,
    a subnet held there by another host, a subnet held in etcd by a Flannel lease of another
    public IP, or a lease outside O(network)'s subnet range is an error, and nothing is
    written.
  - The source is left as it was; switch C(weft_lease_store) once the copy is done.
  - "Runs on the controller (C(delegate_to: localhost), C(run_once: true))."
version_added: "1.0.0"
author: weft contributors (@weft-overlay)
options:
  network:
    description:
      - The network config with Flannel's field names, as for M(weft.overlay.plan). It is written to
        C(<prefix>/config) when that key is absent.
    type: dict
    required: true
  to:
    description: The store to copy into; the other one is the source.
    type: str
    choices: [file, etcd]
    required: true
extends_documentation_fragment: [weft.overlay.lease_store, ansible.builtin.action_common_attributes, ansible.builtin.action_common_attributes.actiongroups]
attributes:
  check_mode:
    support: full
    details: Reports what would be copied without writing.
  diff_mode:
    support: full
    details: Shows the target's leases before and after.
  platform:
    support: full
    platforms: posix
  action_group:
    support: full
    membership: [weft.overlay.weft]
"""

EXAMPLES = r"""
- name: Move the leases of this inventory into etcd
  weft.overlay.lease_migrate:
    network: "{{ weft_network }}"
    to: etcd
    lease_file: "{{ weft_lease_file }}"
    etcd:
      endpoints: [http://127.0.0.1:2379]
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
copied:
  description: Hosts whose leases the source holds, all now in the target.
  returned: success
  type: list
  sample: [node1, node2]
"""

from ansible_collections.weft.overlay.plugins.module_utils.weft.module import run_module
from ansible_collections.weft.overlay.plugins.module_utils.weft.plan import lease_migrate as core


def main():
    run_module(core)


if __name__ == "__main__":
    main()
