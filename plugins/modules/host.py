#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host
short_description: Converge a host's whole overlay from the plan every host gets
description:
  - Derives everything this host must hold from O(plan) (the same for every host, made by
    M(weft.overlay.plan)), its identity O(host) and O(settings), in one place, and converges it in
    one call. The device of the network's backend, every peer's neighbour, FDB entry and
    route, the forwarding and masquerade chains, the peer-only ingress table, Docker's
    bridge settings, C(/run/flannel/subnet.env), the udp daemon's config, user and unit, and
    the units that restore the overlay at boot and repair drift between runs.
  - Each part is applied by the core of the module that manages it (M(weft.overlay.vxlan),
    M(weft.overlay.tun), M(weft.overlay.neighbours), M(weft.overlay.fdb), M(weft.overlay.routes), M(weft.overlay.iptables),
    M(weft.overlay.ingress), M(weft.overlay.docker)), in this process, with its arguments validated as that
    module validates them, its check mode and its diff.
  - What weft put on the host before and the new state no longer holds is removed (another
    backend's device, daemon, unit, user and files when the backend changes, a device
    renamed by a new VNI, the repair unit when O(settings.heal_interval=0)).
  - Records O(plan), O(host) and O(settings) in C(/etc/weft/host.json) and installs the code
    that ran in C(/usr/local/lib/weft/module_utils), so that C(weft-restore) rebuilds the
    same state at boot, and C(weft-heal) keeps it between runs, with the same code.
  - Restarts dockerd when C(daemon.json) changed, and starts, restarts or reloads weft's units
    when their files changed.
  - With O(state=absent), removes everything weft put on the host (what the record names,
    and weft's defaults when there is none) and puts Docker's bridge back where it was
    before weft's first run (dockerd restarts twice when its bridge was on the overlay, as it
    remembers its last subnet).
version_added: "1.0.0"
author: weft contributors (@weft-overlay)
requirements:
  - pyroute2 0.7 or later, nftables, iptables and systemd on the managed host
  - ansible-core on the managed host for weft-restore and weft-heal
options:
  state:
    description: V(present) converges the host; V(absent) removes weft from it.
    type: str
    choices: [present, absent]
    default: present
  plan:
    description: The RV(weft.overlay.plan#module:plan) string, unchanged. Required with O(state=present).
    type: str
  host:
    description: This host's identity, as M(weft.overlay.facts) found it. Required with O(state=present).
    type: dict
    suboptions:
      name:
        description: Inventory name; its lease in O(plan) is this host's.
        type: str
        required: true
      iface:
        description: Underlay interface.
        type: str
        required: true
      public_ip:
        description: The address peers send to (a 1:1 NAT's when it is not the host's).
        type: str
        required: true
      iface_ip:
        description: The interface's own address, which the host binds to and sends from;
          differs from O(host.public_ip) behind a 1:1 NAT. Without it, O(host.public_ip).
        type: str
      underlay:
        description: The underlay network (CIDR), for DirectRouting.
        type: str
      public_ipv6:
        description: The IPv6 address peers send to (dual-stack networks).
        type: str
      iface_ipv6:
        description: The interface's own IPv6 address (as O(host.iface_ip)). Without it,
          O(host.public_ipv6).
        type: str
      underlay6:
        description: The IPv6 underlay network (CIDR), for DirectRouting over IPv6.
        type: str
      mtu:
        description: The underlay's MTU; the overlay's is this minus the backend's overhead
          (unless the network config names an MTU).
        type: int
        required: true
  settings:
    description: How this host takes part (the role's variables of the same names).
    type: dict
    default: {}
    suboptions:
      docker:
        description: Manage Docker's C(bip), C(mtu) and C(ip-masq) and restart dockerd when
          they change.
        type: bool
        default: true
      docker_daemon_json:
        description: Docker's daemon.json.
        type: path
        default: /etc/docker/daemon.json
      forward_accept:
        description: Chain C(WEFT-FWD) accepts the network's forwarded traffic.
        type: bool
        default: true
      ip_masq:
        description: Chain C(WEFT-POSTRTG) masquerades traffic leaving the network.
        type: bool
        default: true
      ip_masq_random_fully:
        description: The masquerading picks source ports at random (C(--random-fully)).
        type: bool
        default: true
      vxlan_tx_checksum_offload:
        description: TX checksum offload on the vxlan backend's devices (M(weft.overlay.vxlan)'s
          O(weft.overlay.vxlan#module:tx_checksum)).
        type: bool
        default: true
      peer_ingress:
        description: Accept the encapsulation port only from peers (M(weft.overlay.ingress)).
        type: bool
        default: true
      route_protocol:
        description: Route protocol marking weft's routes.
        type: int
        default: 119
      subnet_env:
        description: Where Flannel's subnet.env goes.
        type: path
        default: /run/flannel/subnet.env
      tun_device:
        description: The udp backend's TUN device.
        type: str
        default: flannel0
      udpd_user:
        description: The udp daemon's unprivileged user.
        type: str
        default: weft-udpd
      udp_fastpath:
        description: udp backend. Carry lone packets in the kernel, in front of the daemon
          (see M(weft.overlay.udp_fastpath)); false leaves every packet to the daemon.
        type: bool
        default: true
      heal_interval:
        description: weft-heal re-applies the record on kernel events and at least every this
          many seconds; V(0) turns it off.
        type: int
        default: 60
      metrics_file:
        description: weft-heal writes weft's figures here (Prometheus text format, for
          prometheus-node-exporter's textfile collector) after each pass; an absolute path
          ending in C(.prom) (Debian's collector reads
          C(/var/lib/prometheus/node-exporter/weft.prom)), or empty for none.
        type: str
        default: ""
      wireguard_implementation:
        description: The wireguard backend's devices, V(kernel) or V(userspace)
          (wireguard-go); V(auto), the kernel's where the host has WireGuard loaded.
        type: str
        choices: [auto, kernel, userspace]
        default: auto
      cni:
        description: Serve CNI runtimes too (podman, containerd, a kubelet) with a CNI
          network from this host's lease, the conflist C(<cni_conf_dir>/10-<cni_name>.conflist)
          and its bridge O(settings.cni_bridge) with the gateways. With O(settings.docker)
          as well, Docker gets the lower half of the host's subnet(s) and CNI the upper.
        type: bool
        default: false
      cni_name:
        description: The CNI network's name.
        type: str
        default: weft
      cni_bridge:
        description: The CNI network's bridge.
        type: str
        default: cni0
      cni_conf_dir:
        description: Where the conflist goes.
        type: path
        default: /etc/cni/net.d
  network:
    description: With O(state=absent) on a host without a record, the overlay network
      (CIDR), so that Docker's bridge is moved off it.
    type: str
  vni:
    description: With O(state=absent) on a host without a record, the VXLAN device's VNI.
    type: int
    default: 1
  wireguard_psk:
    description:
      - The wireguard backend's pre-shared key (C(wg genpsk)), the same on every host of
        the network; every peer's tunnel mixes it in. Written to the root-only file
        C(/etc/weft/wireguard.psk) and compared in memory; never returned, logged, diffed or
        recorded (the record says only that there is one). Left out, there is none (and a
        file from before is removed).
    type: str
  keep_keys:
    description: With O(state=absent), leave this host's keys (C(/etc/weft/wireguard.key),
      C(/etc/weft/wireguard.psk)) in place, so that a reinstall keeps its identity.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  check_mode:
    support: full
    details: Reports every change each core, file and service would make; writes nothing.
  diff_mode:
    support: full
    details: One diff per changed step and file.
  platform:
    support: full
    platforms: linux
  action_group:
    support: full
    membership: [weft.overlay.weft]
"""

EXAMPLES = r"""
- name: Plan once
  weft.overlay.plan:
    network: {Network: 100.96.0.0/16, Backend: {Type: vxlan}}
    hosts: "{{ groups['weft_nodes'] | weft.overlay.plan_hosts(hostvars) }}"
    lease_file: "{{ inventory_dir }}/group_vars/all/weft_leases.yml"
  delegate_to: localhost
  run_once: true
  register: weft_planned

- name: Converge every host from the same plan
  weft.overlay.host:
    plan: "{{ weft_planned.plan }}"
    host: "{{ weft_underlay | combine({'name': inventory_hostname}) }}"

- name: Remove weft from the host
  weft.overlay.host:
    state: absent
"""

RETURN = r"""
backend:
  description: The backend converged.
  returned: when state is present
  type: str
  sample: vxlan
steps:
  description: Each core's outcome, in order; lists of entries are counted (C(added),
    C(updated), C(removed)) with the first three shown (C(first_added)...).
  returned: always
  type: list
  elements: dict
  sample: [{core: routes, changed: true, added: 2, first_added: ["100.96.2.0/24 via 100.96.2.0 dev flannel.1 onlink"]}]
files_changed:
  description: Files, links, users and modes written or removed (or that would be).
  returned: always
  type: list
  elements: str
services:
  description: What was (or would be) done to units, e.g. C(restart docker), C(reload weft-udpd).
  returned: always
  type: list
  elements: str
"""

from ansible_collections.weft.overlay.plugins.module_utils.weft.host import host as core
from ansible_collections.weft.overlay.plugins.module_utils.weft.module import run_module


def main():
    run_module(core)


if __name__ == "__main__":
    main()
