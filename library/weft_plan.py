#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: weft_plan
short_description: Plan one overlay subnet per host and keep the leases in a file or etcd
description:
  - Validates a Flannel network config and allocates one subnet of it to every host,
    persisting the leases in a YAML file that lives in the inventory, or in etcd in
    Flannel's registry layout (O(store=etcd)).
  - A host keeps its subnet for as long as it stays in the inventory, whatever its public IP
    does. New hosts get the lowest free subnet, so plans are reproducible and reviewable.
  - Leases of hosts that left the inventory are kept (their subnets stay reserved) until
    O(prune=true).
  - "Runs on the controller (C(delegate_to: localhost), C(run_once: true)). The file is read,
    planned and written under an exclusive lock and replaced atomically; on any error it is
    left byte-identical."
  - "With O(store=etcd), leases are Flannel leases (C(<prefix>/subnets/100.96.1.0-24) with
    Flannel's JSON) written without a TTL, which Flannel treats as reservations that never
    expire; C(<prefix>/weft/hosts/<name>) records which inventory host holds which subnet.
    Subnets held by others (Flannel daemons, hand-made reservations) are never handed out;
    a host without a lease takes over the one that has its public IP, as Flannel does.
    Every write is a transaction that succeeds only if the keys it read are unchanged, so
    controllers running at once never hand out one subnet twice."
version_added: "0.1.0"
author: weft contributors
options:
  network:
    description:
      - The network config with Flannel's field names, as in Flannel's C(net-conf.json),
        C(Network) (required), C(SubnetLen), C(SubnetMin), C(SubnetMax) and C(Backend) with
        C(Type) (V(vxlan), V(host-gw) or V(udp)), C(VNI), C(Port), C(DirectRouting), C(MTU).
      - Flannel's rules apply. C(SubnetLen) defaults to 24 for networks of /22 or larger, else
        prefix + 2, and must leave room for four subnets; C(SubnetMin) defaults to the second
        subnet and must not exceed C(SubnetMax).
    type: dict
    required: true
  hosts:
    description:
      - Every host of the overlay (not only those in the current play), by inventory name.
      - A host with no O(hosts[].public_ip) keeps the public IP its lease records; a new host
        without one is left unplanned and reported in RV(unplanned).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Inventory name, the host's identity.
        type: str
        required: true
      public_ip:
        description: The host's underlay address, which peers send to.
        type: str
      subnet:
        description: Pin the host to this subnet (must lie in the subnet range).
        type: str
      underlay:
        description: The host's underlay network (CIDR); the overlay network must not overlap it.
        type: str
  store:
    description: Where the leases live.
    type: str
    choices: [file, etcd]
    default: file
  prune:
    description: Release the leases of hosts that are no longer in O(hosts).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: Plans and reports the new leases without writing the file.
  diff_mode:
    support: full
    details: Shows the lease file before and after.
  platform:
    platforms: posix
extends_documentation_fragment: [weft_lease_store]
notes:
  - The VTEP MAC of a vxlan lease is derived from its subnet (C(0e:77) followed by the four
    bytes of the subnet address), unique per subnet, locally administered, and the same every
    time the device is re-created, so peers never need a second pass to learn it.
"""

EXAMPLES = r"""
- name: Plan the subnets of every weft node
  weft_plan:
    network:
      Network: 100.96.0.0/16
      Backend: {Type: vxlan}
    hosts:
      - {name: node1, public_ip: 10.168.0.2}
      - {name: node2, public_ip: 10.168.0.3, subnet: 100.96.9.0/24}
    lease_file: "{{ inventory_dir }}/group_vars/all/weft_leases.yml"
  delegate_to: localhost
  run_once: true
  register: weft_planned

- name: Plan the subnets in etcd, beside Flannel hosts on the same network
  weft_plan:
    network: {Network: 100.96.0.0/16, Backend: {Type: vxlan}}
    hosts: [{name: node1, public_ip: 10.168.0.2}]
    store: etcd
    etcd:
      endpoints: [https://etcd1.example.net:2379, https://etcd2.example.net:2379]
      ca_file: /etc/weft/etcd-ca.pem
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
leases:
  description: Every lease in the file after the plan, retained ones included.
  returned: always
  type: dict
  sample:
    node1:
      subnet: 100.96.1.0/24
      public_ip: 10.168.0.2
      backend_type: vxlan
      backend_data: {vni: 1, vtep_mac: "0e:77:64:60:01:00"}
nodes:
  description: The planned inventory hosts with the values roles need.
  returned: always
  type: dict
  sample:
    node1:
      subnet: 100.96.1.0/24
      public_ip: 10.168.0.2
      bridge_address: 100.96.1.1/24
      vtep_address: 100.96.1.0
      vtep_mac: "0e:77:64:60:01:00"
foreign:
  description:
    - Leases in etcd that weft did not write (Flannel hosts) in this network and with its
      backend, keyed by subnet key; peers route to them like to O(hosts). Empty for the file.
  returned: always
  type: dict
adopted:
  description: Hosts that took over a reservation with their public IP.
  returned: always
  type: list
network:
  description: The validated network config with every default filled in.
  returned: always
  type: dict
  sample: {network: 100.96.0.0/16, subnet_len: 24, subnet_min: 100.96.1.0/24,
           subnet_max: 100.96.255.0/24, backend_type: vxlan, vni: 1, port: 8472,
           direct_routing: false, mtu: null, overhead: 50}
capacity:
  description: Subnets in the range, used and free.
  returned: always
  type: dict
  sample: {subnets: 255, used: 3, free: 252, range: 100.96.1.0/24 to 100.96.255.0/24}
retained:
  description: Hosts no longer in the inventory whose leases are kept.
  returned: always
  type: list
released:
  description: Hosts whose leases O(prune) released.
  returned: always
  type: list
unplanned:
  description: Hosts with no lease and no known public IP.
  returned: always
  type: list
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.weft_stores import STORE_ARGUMENT_SPEC, STORE_ERRORS, open_store
from ansible.module_utils.weft_subnets import (bridge_address, capacity_summary, leases_as_dict,
                                            parse_hosts, parse_network_config, plan,
                                            vtep_address)


def node_view(lease):
    view = lease.as_dict()
    view.update(bridge_address=bridge_address(lease.subnet),
                vtep_address=vtep_address(lease.subnet),
                vtep_mac=lease.backend_data.get("vtep_mac"))
    return view


def foreign_peers(store, result):
    """Leases in etcd that weft did not write but that share this network: Flannel hosts."""
    ours = {lease.subnet for lease in result.leases.values()}
    return {key.rsplit("/", 1)[-1]: node_view(lease) for key, lease in store.foreign.items()
            if lease.subnet.subnet_of(result.config.network) and lease.subnet not in ours
            and lease.public_ip and lease.backend_type == result.config.backend_type}


def run(module):
    params = module.params
    config = parse_network_config(params["network"])
    hosts = parse_hosts(params["hosts"], config)
    store = open_store(params)
    planned = {}

    def compute(existing, reserved):
        planned["plan"] = plan(config, hosts, existing, prune=params["prune"], reserved=reserved)
        return planned["plan"].leases

    outcome = store.update(compute, config, module.check_mode)
    result = planned["plan"]
    out = dict(
        changed=outcome.changed,
        leases=leases_as_dict(result.leases),
        nodes={name: node_view(result.leases[name]) for name in result.members},
        foreign=foreign_peers(store, result),
        network=config.summary(),
        capacity=capacity_summary(result),
        retained=result.retained, released=result.released, unplanned=result.unplanned,
        adopted=result.adopted,
    )
    if module._diff:
        out["diff"] = outcome.diff()
    return out


def main():
    module = AnsibleModule(
        argument_spec=dict(
            network=dict(type="dict", required=True),
            hosts=dict(type="list", elements="dict", required=True, options=dict(
                name=dict(type="str", required=True),
                public_ip=dict(type="str"),
                subnet=dict(type="str"),
                underlay=dict(type="str"),
            )),
            prune=dict(type="bool", default=False),
            store=dict(type="str", choices=["file", "etcd"], default="file"),
            **STORE_ARGUMENT_SPEC,
        ),
        required_if=[("store", "file", ["lease_file"]), ("store", "etcd", ["etcd"])],
        supports_check_mode=True,
    )
    try:
        module.exit_json(**run(module))
    except STORE_ERRORS as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
