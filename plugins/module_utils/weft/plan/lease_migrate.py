# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Core of weft_lease_migrate: copy the leases from the lease file into etcd, or back,
without moving a subnet."""

from __future__ import annotations

from dataclasses import replace

from ..errors import WeftError
from .stores import STORE_ARGUMENT_SPEC, STORE_ERRORS, open_store
from .subnets import PlanError, parse_network_config

ARGUMENT_SPEC = dict(
    network=dict(type="dict", required=True),
    to=dict(type="str", choices=["file", "etcd"], required=True),
    **STORE_ARGUMENT_SPEC,
)
# Both stores are involved; the doc fragment documents them as optional for weft_plan.
SPEC_RULES = dict(required_together=[("lease_file", "etcd")],
                  required_one_of=[("lease_file", "etcd")])


def merge_into(incoming, config):
    """compute() for the target store: its leases plus `incoming`, or a PlanError."""
    def compute(existing, reserved):
        merged = dict(existing)
        fam = config.family  # the lease's subnet that decides (IPv6-only: its IPv6 one)
        holders = {fam.subnet_of(lease): name for name, lease in existing.items()}
        reserved = {fam.subnet_of(r): r for r in reserved.values()}
        for name in sorted(incoming):
            lease = incoming[name]
            subnet, public = fam.subnet_of(lease), fam.public_of(lease)
            where = "lease of %s" % name
            if not config.in_range(subnet):
                raise PlanError("%s: %s is outside the subnet range %s of weft_network"
                                % (where, subnet, config.range_text()))
            if name in existing and fam.subnet_of(existing[name]) != subnet:
                raise PlanError("%s: %s in the source, but %s in the target"
                                % (where, subnet, fam.subnet_of(existing[name])))
            if holders.get(subnet, name) != name:
                raise PlanError("%s: %s is held by %s in the target"
                                % (where, subnet, holders[subnet]))
            found = reserved.get(subnet)
            if found is not None and fam.public_of(found) != public:
                raise PlanError("%s: %s is held by %s (public IP %s)"
                                % (where, subnet, found.origin, fam.public_of(found)))
            # What a host reported for its lease travels with it; the rest is derived again.
            try:
                reported = config.backend.check_reported(
                    lease.backend_data or lease.backend_v6_data or {}, where)
            except ValueError as exc:
                raise PlanError(str(exc)) from None
            again = config.lease(lease.subnet if config.ipv4 else None, lease.public_ip, reported,
                                 lease.subnet6, lease.public_ipv6)
            merged[name] = replace(lease, backend_type=config.backend_type,
                                   backend_data=again.backend_data,
                                   backend_v6_data=again.backend_v6_data)
        return merged
    return compute


def run(params, ctx):
    try:
        config = parse_network_config(params["network"])
        source = open_store(params, "file" if params["to"] == "etcd" else "etcd")
        target = open_store(params, params["to"])
        incoming = source.leases()
        outcome = target.update(merge_into(incoming, config), config, ctx.check_mode)
    except STORE_ERRORS as exc:
        raise WeftError(str(exc)) from None
    out = dict(changed=outcome.changed, copied=sorted(incoming))
    if ctx.diff:
        out["diff"] = outcome.diff()
    return out
