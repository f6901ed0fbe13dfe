#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: check
short_description: Probe every overlay path from this host and read its weft state, changing nothing
description:
  - Reads the host's record (the plan, identity and settings weft last converged) and
    probes every peer of the plan at once; ICMP echo from this host's overlay address to
    the peer's (the overlay device's address; with host-gw the container bridge's, the
    subnet's first address), small echoes for reachability and round trip, then a packet
    of the overlay MTU with Don't Fragment set; when that one is lost, the largest size
    that passes, by bisection.
  - Drift is what a weft-restore pass would repair, found by the same converge in check
    mode; the underlay check says whether the interface still holds the address the
    host's lease announces.
  - Counters since boot, as weft keeps them; ingress drops by reason (encapsulating
    backends), the udp daemon's packets and drops, weft-heal's passes and repairs.
  - Never changes anything, whether or not in check mode. Needs root (raw ICMP sockets).
  - C(check.yml) runs it on every host and M(weft.overlay.check_report) turns the results into
    the matrix.
version_added: "1.0.0"
author: weft contributors (@weft-overlay)
requirements:
  - python3-pyroute2 and nftables on the managed host (as weft.overlay.host)
options:
  count:
    description: Echoes per peer and size.
    type: int
    default: 3
  timeout:
    description: Seconds to wait for the replies of one round of echoes.
    type: float
    default: 1.0
  record:
    description: The host's record, as weft.overlay.host writes it.
    type: path
    default: /etc/weft/host.json
  container:
    description:
      - A running Docker or podman container of this name on the host; the same probes
        are sent from inside it (its network namespace, joined by a forked child) to the
        same peer addresses, so the containers' path through forwarding is checked too.
        Each path then has C(container) with its outcome. Omitted, host paths only.
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  check_mode:
    support: full
    details: Runs the same in check mode; it never changes anything.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: linux
  action_group:
    support: full
    membership: [weft.overlay.weft]
"""

EXAMPLES = r"""
- name: Probe every path from this host
  weft.overlay.check:
  register: weft_check_host
"""

RETURN = r"""
converged:
  description: Whether the host has a record (false when weft never converged it, or it was uninstalled).
  returned: always
  type: bool
problems:
  description: Why nothing was probed (with RV(converged=false)).
  returned: when not converged
  type: list
  elements: str
host:
  description: The host's name in the plan.
  returned: when converged
  type: str
backend:
  description: The network's backend.
  returned: when converged
  type: str
revision:
  description: A digest of the plan the host converged; hosts on one revision have the same plan.
  returned: when converged
  type: str
overlay_mtu:
  description: The MTU the overlay promises its containers.
  returned: when converged
  type: int
peers:
  description: The plan's peers of this host.
  returned: when converged
  type: list
  elements: str
paths:
  description: One entry per peer and address family.
  returned: when converged
  type: list
  elements: dict
  sample:
    - {"peer": "node2", "family": 4, "source": "100.96.1.0", "address": "100.96.2.0", "sent": 3,
       "received": 3, "reachable": true, "mtu": 1450, "mtu_ok": true,
       "rtt_ms": {"min": 0.09, "avg": 0.12, "max": 0.15}}
drift:
  description: What a weft-restore pass would repair now, a line per step or file (empty, no drift).
  returned: when converged
  type: list
  elements: str
underlay:
  description: Problems with the address the host's lease announces.
  returned: when converged
  type: list
  elements: str
counters:
  description: C(ingress_drops) by reason, C(udpd) (the udp daemon's counters, null when it
    is not running), C(udp_fastpath) (the packets the udp backend's kernel fast path carried,
    C(sent) and C(received); null when it is not attached), C(heal) (weft-heal's passes and repairs since boot, null before its
    first pass).
  returned: when converged
  type: dict
"""

from ansible_collections.weft.overlay.plugins.module_utils.weft.check import check as core
from ansible_collections.weft.overlay.plugins.module_utils.weft.module import run_module


def main():
    run_module(core)


if __name__ == "__main__":
    main()
