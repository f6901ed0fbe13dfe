#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: plan
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
version_added: "1.0.0"
author: weft contributors (@weft-overlay)
options:
  network:
    description:
      - The network config with Flannel's field names, as in Flannel's C(net-conf.json),
        C(Network) (required), C(SubnetLen), C(SubnetMin), C(SubnetMax) and C(Backend) with
        C(Type) (V(vxlan), V(host-gw) or V(udp)) and that backend's own options (vxlan
        C(VNI), C(Port), C(DirectRouting), C(MTU); udp C(Port), C(MTU); host-gw C(MTU));
        an option the backend does not have is refused by name.
      - Dual-stack (vxlan, host-gw) with C(EnableIPv6) and C(IPv6Network), C(IPv6SubnetLen)
        (default 64, or prefix + 2 for a network smaller than /62), C(IPv6SubnetMin),
        C(IPv6SubnetMax), by Flannel's rules; every host then also gets an IPv6 subnet.
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
      public_ipv6:
        description: The host's IPv6 underlay address (dual-stack networks), which peers send to.
        type: str
      subnet6:
        description: Pin the host to this IPv6 subnet (must lie in the IPv6 subnet range).
        type: str
      underlay6:
        description: The host's IPv6 underlay network; the IPv6 overlay network must not overlap it.
        type: str
      reported:
        description:
          - The lease data the network's backend has the host report (fact
            C(weft_backend_facts) of M(weft.overlay.facts)), validated by the backend and put into
            the host's lease, the store and every peer's plan.
          - A host that reports nothing keeps what its lease recorded.
        type: dict
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
    support: full
    platforms: posix
  action_group:
    support: full
    membership: [weft.overlay.weft]
extends_documentation_fragment: [weft.overlay.lease_store, ansible.builtin.action_common_attributes, ansible.builtin.action_common_attributes.actiongroups]
notes:
  - The VTEP MAC of a vxlan lease is derived from its subnet (C(0e:77) followed by the four
    bytes of the subnet address), unique per subnet, locally administered, and the same every
    time the device is re-created, so peers never need a second pass to learn it.
"""

EXAMPLES = r"""
- name: Plan the subnets of every weft node
  weft.overlay.plan:
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
  weft.overlay.plan:
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
plan:
  description:
    - The plan as every host receives it (the network and each host's lease record, with its
      subnets, public IPs and the backend's data), compressed JSON in one string; pass it to
      M(weft.overlay.host) unchanged. The same value for every host, made once (its size grows with
      the hosts, its cost per host does not).
  returned: always
  type: str
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
      backend_type: vxlan
      backend_data: {vni: 1, vtep_mac: "0e:77:64:60:01:00"}
      bridge_address: 100.96.1.1/24
      vtep_address: 100.96.1.0
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

from ansible_collections.weft.overlay.plugins.module_utils.weft.module import run_module
from ansible_collections.weft.overlay.plugins.module_utils.weft.plan import plan as core


def main():
    run_module(core)


if __name__ == "__main__":
    main()
