# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Core of weft_plan: plan one subnet per host, keep the leases in their store, and hand
every host the same plan (compact, compressed once on the controller)."""

from __future__ import annotations

from ..backends import bridge_address, vtep_address
from ..errors import WeftError
from ..lease import encode_plan, host_plan
from .stores import STORE_ARGUMENT_SPEC, STORE_ERRORS, open_store
from .subnets import (capacity_summary, leases_as_dict, parse_hosts,
                      parse_network_config, plan)

SPEC_RULES = dict(required_if=[("store", "file", ["lease_file"]), ("store", "etcd", ["etcd"])])
ARGUMENT_SPEC = dict(
    network=dict(type="dict", required=True),
    hosts=dict(type="list", elements="dict", required=True, options=dict(
        name=dict(type="str", required=True),
        public_ip=dict(type="str"),
        subnet=dict(type="str"),
        underlay=dict(type="str"),
        public_ipv6=dict(type="str"),
        subnet6=dict(type="str"),
        underlay6=dict(type="str"),
        reported=dict(type="dict"),
    )),
    prune=dict(type="bool", default=False),
    store=dict(type="str", choices=["file", "etcd"], default="file"),
    **STORE_ARGUMENT_SPEC,
)


def node_view(lease):
    """A lease with the addresses roles and tables need (of its IPv4 subnet, else its IPv6 one)."""
    subnet = lease.subnet or lease.subnet6
    return dict(lease.as_dict(), bridge_address=bridge_address(subnet),
                vtep_address=vtep_address(subnet))


def foreign_leases(store, result):
    """Leases in etcd that weft did not write but that share this network and backend:
    Flannel hosts, peers of every weft host."""
    fam, network = result.config.family, result.config.primary.network
    ours = {fam.subnet_of(lease) for lease in result.leases.values()}
    return {key.rsplit("/", 1)[-1]: lease for key, lease in store.foreign.items()
            if fam.subnet_of(lease) is not None and fam.subnet_of(lease).subnet_of(network)
            and fam.subnet_of(lease) not in ours and fam.public_of(lease)
            and lease.backend_type == result.config.backend_type}


def run(params, ctx):
    try:
        config = parse_network_config(params["network"])
        hosts = parse_hosts(params["hosts"], config)
        store = open_store(params)
        planned = {}

        def compute(existing, reserved):
            planned["plan"] = plan(config, hosts, existing, prune=params["prune"],
                                   reserved=reserved)
            return planned["plan"].leases

        outcome = store.update(compute, config, ctx.check_mode)
    except STORE_ERRORS as exc:
        raise WeftError(str(exc)) from None
    result = planned["plan"]
    foreign = foreign_leases(store, result)
    # What every host gets: the network and every peer's lease, in one string.
    for_hosts = host_plan(config.summary(), {name: result.leases[name] for name in result.members},
                          foreign)
    out = dict(
        changed=outcome.changed,
        plan=encode_plan(for_hosts),
        leases=leases_as_dict(result.leases),
        nodes={name: node_view(result.leases[name]) for name in result.members},
        foreign={key: node_view(lease) for key, lease in foreign.items()},
        network=config.summary(),
        capacity=capacity_summary(result),
        retained=result.retained, released=result.released, unplanned=result.unplanned,
        adopted=result.adopted,
    )
    if ctx.diff:
        out["diff"] = outcome.diff()
    return out
