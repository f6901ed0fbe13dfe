# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""weft's code, shared by its modules and installed on every host for boot and repair.

    plan/      controller: Flannel's network rules, the subnet plan, the lease stores
    backends   what vxlan, host-gw and udp mean: devices, overhead, ports, per-peer entries
    facts/     what planning needs to know about a host (underlay, missing packages)
    host/      a host's desired state derived from the plan (model), applied (converge),
               and kept (restore at boot, heal between runs)
    net/       module cores for kernel state: devices, routes, neighbours, FDB, chains,
               peer-only ingress; each takes validated parameters and returns a result
    runtime/   module cores for container runtimes (Docker's daemon.json)
    daemon/    the udp backend's forwarding daemon (standard library only)
    module     the Ansible face every module in plugins/modules/ uses

See ARCHITECTURE.md at the top of the project.
"""
