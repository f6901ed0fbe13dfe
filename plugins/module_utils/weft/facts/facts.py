# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Core of weft_facts: what planning needs to know about a host, as Ansible facts.

weft_underlay (the interface and address peers send to), weft_missing_packages (the
distribution packages weft needs that the host lacks) and weft_backend_facts (the public
lease data the network's backend has each host report, backends.Backend.host_facts): one
module call, since a call per host is most of what a run costs.
"""

from __future__ import annotations

import os

from ..backends import BACKENDS
from ..errors import WeftError
from .packages import missing_packages
from .underlay import Rules, find_underlay
from ..net.netlink import IPRoute
from ..runtime import cni
from ..validate import preshared_key

ARGUMENT_SPEC = dict(
    iface=dict(type="list", elements="str", default=[]),
    iface_regex=dict(type="list", elements="str", default=[]),
    iface_can_reach=dict(type="str"),
    overlay=dict(type="list", elements="str", default=[]),
    public_ip=dict(type="str"),
    public_ipv6=dict(type="str"),
    packages=dict(type="list", elements="str", default=[]),
    backend=dict(type="str"),
    ipv4=dict(type="bool", default=True),
    rotate_keys=dict(type="bool", default=False),
    docker=dict(type="bool", default=False),
    cni_name=dict(type="str"),
    cni_conf_dir=dict(type="path", default="/etc/cni/net.d"),
    # Only checked here (a bad one stops the play before any host changes); weft_host
    # writes it. no_log: Ansible masks it in every output.
    wireguard_psk=dict(type="str", no_log=True),
)


DOCKERD = ("/usr/sbin/dockerd", "/usr/bin/dockerd")


def runtime_problem(params):
    """Why this host cannot serve the runtimes asked of it (None: it can)."""
    if params["docker"] and not any(os.path.exists(path) for path in DOCKERD):
        return ("weft_runtime: Docker is asked for, but this host has no dockerd (tried %s); "
                "install docker.io, or set weft_runtime: cni (or weft_manage_docker: false)"
                % ", ".join(DOCKERD))
    name = params["cni_name"]
    if name:
        own = cni.conflist_path(params["cni_conf_dir"], name)
        others = cni.networks_in(params["cni_conf_dir"], skip=own)
        if name in others:
            return ("weft_cni_name: the CNI network %r is already defined by %s; pick another "
                    "name (weft writes %s)" % (name, others[name], own))
    return None


def refuse_nat(backend, underlay):
    """ValueError when the host advertises a NAT's address and the backend cannot use one."""
    if backend is None or backend.nat_refusal is None:
        return
    for public, own in (("public_ip", "iface_ip"), ("public_ipv6", "iface_ipv6")):
        if underlay[public] != underlay[own]:
            raise ValueError("%s: %s is not on this host (its interface %s has %s), so it is "
                             "a NAT's address, and %s" % (public, underlay[public],
                                                          underlay["iface"], underlay[own],
                                                          backend.nat_refusal))


def run(params, ctx):
    try:
        preshared_key(params["wireguard_psk"], "weft_wireguard_psk")
    except ValueError as exc:
        raise WeftError(str(exc)) from None
    # An unknown backend reports nothing here: the planner names it in its own error.
    backend = BACKENDS.get(params["backend"] or "")
    wanted = list(params["packages"]) + (backend.packages() if backend else [])
    facts = dict(weft_missing_packages=missing_packages(ctx, wanted))
    problem = runtime_problem(params)
    if problem:
        facts["weft_runtime_error"] = problem
    if IPRoute is None:
        # Reading the underlay needs pyroute2: report what to install instead of failing.
        facts["weft_underlay"] = dict(error="pyroute2 is not installed (python3-pyroute2)")
        return dict(changed=False, ansible_facts=facts)
    try:
        rules = Rules.parse(params["iface"], params["iface_regex"], params["iface_can_reach"])
        facts["weft_underlay"] = find_underlay(ctx.kernel, rules, params["public_ip"],
                                               params["public_ipv6"], params["ipv4"],
                                               params["overlay"])
        refuse_nat(backend, facts["weft_underlay"])
    except ValueError as exc:
        facts["weft_underlay"] = dict(error=str(exc))
        return dict(changed=False, ansible_facts=facts)
    changed = False
    if backend is not None:
        facts["weft_backend_facts"] = {}
        try:
            facts["weft_backend_facts"] = backend.host_facts(ctx, facts["weft_underlay"],
                                                             rotate=params["rotate_keys"])
        except (OSError, ValueError) as exc:
            raise WeftError("backend %s: %s" % (backend.name, exc)) from None
        # Secrets made on the host (a first key, a rotated one) are its only change.
        changed = bool(facts["weft_backend_facts"].get("key_made"))
    return dict(changed=changed, ansible_facts=facts)
