#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: facts
short_description: What planning needs to know about a host, as facts
description:
  - Reads four things about the host, as facts (the fourth, C(weft_runtime_error), only
    when the host cannot serve the container runtimes asked of it). It changes nothing, except that the
    wireguard backend's key is made on the host the first time, and again on O(rotate_keys)
    (RV(ansible_facts.weft_backend_facts.key_made); the module then reports changed).
  - C(weft_underlay), the interface and addresses that overlay peers send to. With any of
    O(iface), O(iface_regex), O(iface_can_reach), Flannel's interface rules in Flannel's
    order (every O(iface) item, then every O(iface_regex), then O(iface_can_reach)); the
    first that finds an interface with an address of the network's family wins. With none
    of them, the interface holding O(public_ip) (O(public_ipv6) in an IPv6-only network),
    else the interface of the default route (where every NAT'ed virtual machine would claim
    the same address, hence the plan's duplicate check). Of several addresses on the
    interface, the first static one in the kernel's order (the oldest primary address). When nothing is found, C(weft_underlay.error)
    says why, naming the option and listing what each rule found.
  - C(weft_missing_packages), which of O(packages) dpkg does not list as installed, so that
    a converged host costs no package-manager call.
  - C(weft_backend_facts), with O(backend), the public lease data that backend has each host
    report (born on the host, such as wireguard's public key, whose private key it makes
    on first use in a root-only file); the planner puts it into the host's lease. Anything
    secret it is derived from stays on the host. wireguard also says which implementation
    (kernel or userspace) this host would use.
  - The missing packages include what O(backend) needs (for wireguard, wireguard-tools and
    wireguard-go where the kernel has no WireGuard).
version_added: "1.0.0"
author: weft contributors (@weft-overlay)
requirements:
  - pyroute2 0.7 or later on the managed host to read the underlay (Debian package
    C(python3-pyroute2)); without it C(weft_underlay.error) says so and the missing
    packages are still reported.
options:
  iface:
    description:
      - Flannel's C(--iface), repeatable. Interface names (V(eth1)) or addresses of the
        host (V(10.0.0.5), meaning the interface holding it and that address), tried in order.
      - A single string is a one-item list; a comma separates items.
    type: list
    elements: str
    default: []
  iface_regex:
    description:
      - Flannel's C(--iface-regex), repeatable, tried in order after O(iface). Each is
        matched (unanchored, Python's C(re.search); Go's RE2 patterns in common use mean
        the same) against the global addresses of every interface in index order, then
        against interface names; a name match needs an address of the network's family.
    type: list
    elements: str
    default: []
  iface_can_reach:
    description:
      - Flannel's C(--iface-can-reach), tried last. The interface the kernel routes this
        address by (as C(ip route get) says), with the route's source address when it is
        that interface's.
    type: str
  overlay:
    description:
      - The overlay's own networks (C(Network), C(IPv6Network)). O(iface_regex) never
        matches an address inside them, since weft's devices, Docker's bridge and the CNI
        bridge hold such addresses once a host is converged.
    type: list
    elements: str
    default: []
  public_ip:
    description: The address peers send to. An address of this host must be on the
      interface the rules pick; one on no interface of the host is a 1:1 NAT's (a cloud's
      elastic address), which needs a rule to pick the interface the host binds to and
      sends from (C(iface_ip)); the host-gw backend refuses it, as Flannel does.
    type: str
  public_ipv6:
    description: The IPv6 address peers send to in a dual-stack network, as O(public_ip)
      (on no interface of the host, a NAT's, sent from the underlay interface's own IPv6
      address). Without it, the first global IPv6 address of the underlay interface, else
      of the IPv6 default route's interface.
    type: str
  packages:
    description: Debian packages to look for.
    type: list
    elements: str
    default: []
  backend:
    description: The network's backend (C(Backend.Type)), whose host facts to report; an
      unknown one reports none (the planner refuses it by name).
    type: str
  ipv4:
    description: Whether the network has IPv4 (its C(EnableIPv4)). V(false), an IPv6-only
      network, finds the underlay by IPv6 instead (the rules match IPv6 addresses; without
      rules O(public_ipv6), else the interface of the IPv6 default route) and reports its
      IPv4 address only if it has one.
    type: bool
    default: true
  rotate_keys:
    description: Make the backend's secrets anew (wireguard, a new key pair). The new public
      key is reported at once; the new private key waits beside the old one
      (C(/etc/weft/wireguard.key.next)) until M(weft.overlay.host) converges with a plan that has
      handed the public key to every peer.
    type: bool
    default: false
  docker:
    description: Whether the host is to serve Docker; without dockerd,
      RV(ansible_facts.weft_runtime_error) says so.
    type: bool
    default: false
  cni_name:
    description: The CNI network the host is to serve; when another configuration in
      O(cni_conf_dir) already has this name, RV(ansible_facts.weft_runtime_error) names its
      file.
    type: str
  cni_conf_dir:
    description: Where the host's CNI configurations are.
    type: path
    default: /etc/cni/net.d
  wireguard_psk:
    description: The wireguard backend's pre-shared key, only checked here (the base64 of 32
      bytes), so that a bad one stops the play before any host changes; never stored or
      returned.
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  facts:
    support: full
  platform:
    support: full
    platforms: linux
  action_group:
    support: full
    membership: [weft.overlay.weft]
"""

EXAMPLES = r"""
- name: Find the underlay by interface name
  weft.overlay.facts:
    iface: eth1
    packages: [python3-pyroute2, nftables]

- name: Find it by rules for a whole group, as flanneld's flags would
  weft.overlay.facts:
    iface_regex: ['^10\.20\.', '^ens']
    iface_can_reach: 10.20.0.1
    overlay: [10.244.0.0/16]
"""

RETURN = r"""
ansible_facts:
  description: The facts.
  returned: always
  type: dict
  contains:
    weft_underlay:
      description: The underlay (C(iface), C(public_ip), C(iface_ip), C(network), C(mtu),
        and C(public_ipv6), C(iface_ipv6), C(network6), null when the host has no global
        IPv6 address; C(rule), what found the interface), or C(error). C(public_ip) is what
        peers send to, C(iface_ip) the interface's own address (they differ behind a NAT).
      type: dict
      returned: always
      sample: {iface: eth0, public_ip: 10.168.0.2, iface_ip: 10.168.0.2,
               network: 10.168.0.0/24, mtu: 1500, public_ipv6: "fd00:168::2",
               iface_ipv6: "fd00:168::2", network6: "fd00:168::/64",
               rule: "iface_regex ^eth"}
    weft_runtime_error:
      description: Why the host cannot serve the runtimes asked of it (O(docker),
        O(cni_name)), naming the variable; absent when it can.
      type: str
      returned: when there is a problem
    weft_missing_packages:
      description: The packages of O(packages) that are not installed.
      type: list
      elements: str
      returned: always
      sample: []
    weft_backend_facts:
      description: The public facts O(backend) reports for this host's lease ({} for vxlan,
        host-gw and udp, which derive their lease data on the controller).
      type: dict
      returned: when O(backend) is a known backend and the underlay was found
      sample: {public_key: xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=, implementation: userspace}
      contains:
        key_made:
          description: V(new) (the host's first key) or V(rotated), when this run made a key.
          type: str
          returned: when a key was made (or would be, in check mode)
"""

from ansible_collections.weft.overlay.plugins.module_utils.weft.facts import facts as core
from ansible_collections.weft.overlay.plugins.module_utils.weft.module import run_module


def main():
    run_module(core)


if __name__ == "__main__":
    main()
