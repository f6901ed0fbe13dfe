#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: weft_lease_migrate
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
version_added: "0.2.0"
author: weft contributors
options:
  network:
    description:
      - The network config with Flannel's field names, as for M(weft_plan). It is written to
        C(<prefix>/config) when that key is absent.
    type: dict
    required: true
  to:
    description: The store to copy into; the other one is the source.
    type: str
    choices: [file, etcd]
    required: true
extends_documentation_fragment: [weft_lease_store]
attributes:
  check_mode:
    support: full
    details: Reports what would be copied without writing.
  diff_mode:
    support: full
    details: Shows the target's leases before and after.
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Move the leases of this inventory into etcd
  weft_lease_migrate:
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

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.weft_stores import STORE_ARGUMENT_SPEC, STORE_ERRORS, open_store
from ansible.module_utils.weft_subnets import Lease, PlanError, parse_network_config


def merge_into(incoming, config):
    """compute() for the target store: its leases plus `incoming`, or a PlanError."""
    def compute(existing, reserved):
        merged = dict(existing)
        holders = {lease.subnet: name for name, lease in existing.items()}
        for name in sorted(incoming):
            subnet, public_ip = incoming[name].subnet, incoming[name].public_ip
            where = "lease of %s" % name
            if not config.in_range(subnet):
                raise PlanError("%s: %s is outside the subnet range %s of weft_network"
                                % (where, subnet, config.range_text()))
            if name in existing and existing[name].subnet != subnet:
                raise PlanError("%s: %s in the source, but %s in the target"
                                % (where, subnet, existing[name].subnet))
            if holders.get(subnet, name) != name:
                raise PlanError("%s: %s is held by %s in the target"
                                % (where, subnet, holders[subnet]))
            found = reserved.get(subnet)
            if found is not None and found.public_ip != public_ip:
                raise PlanError("%s: %s is held by %s (public IP %s)"
                                % (where, subnet, found.origin, found.public_ip))
            merged[name] = Lease(subnet, public_ip, config.backend_type,
                                 config.backend_data(subnet))
        return merged
    return compute


def run(module):
    params = module.params
    config = parse_network_config(params["network"])
    source = open_store(params, "file" if params["to"] == "etcd" else "etcd")
    target = open_store(params, params["to"])
    incoming = source.leases()
    outcome = target.update(merge_into(incoming, config), config, module.check_mode)
    out = dict(changed=outcome.changed, copied=sorted(incoming))
    if module._diff:
        out["diff"] = outcome.diff()
    return out


def main():
    module = AnsibleModule(
        argument_spec=dict(
            network=dict(type="dict", required=True),
            to=dict(type="str", choices=["file", "etcd"], required=True),
            **STORE_ARGUMENT_SPEC,
        ),
        # Both stores are involved; the doc fragment documents them as optional for weft_plan.
        required_together=[("lease_file", "etcd")],
        required_one_of=[("lease_file", "etcd")],
        supports_check_mode=True,
    )
    try:
        module.exit_json(**run(module))
    except STORE_ERRORS as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
