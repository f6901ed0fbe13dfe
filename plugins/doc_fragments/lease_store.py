# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options of the lease store, shared by weft_plan and weft_lease_migrate."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  lease_file:
    description:
      - Path of the lease file, e.g. C(inventories/prod/group_vars/all/weft_leases.yml).
      - Required when the leases are in the file.
    type: path
  etcd:
    description: The etcd v3 cluster that holds the leases; required when the leases are in etcd.
    type: dict
    suboptions:
      endpoints:
        description: Client URLs, tried in order (C(http://) or C(https://)).
        type: list
        elements: str
        required: true
      prefix:
        description: Flannel's C(--etcd-prefix).
        type: str
        default: /coreos.com/network
      ca_file:
        description: CA bundle that signed the endpoints' certificates.
        type: path
      cert_file:
        description: Client certificate, for etcd clusters that require one.
        type: path
      key_file:
        description: Key of O(etcd.cert_file).
        type: path
      username:
        description: etcd user, when etcd authentication is on.
        type: str
      password:
        description: Password of O(etcd.username).
        type: str
      timeout:
        description: Seconds to wait for each request.
        type: float
        default: 5.0
      replace_config:
        description:
          - Write O(network) over a different network config in C(<prefix>/config).
            Without it, a difference is an error and nothing is written.
        type: bool
        default: false
notes:
  - The etcd client speaks etcd's v3 JSON gateway (etcd 3.3 and later) with ansible-core's
    C(open_url); nothing needs installing on the controller.
"""
