# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Core of weft_docker: Docker's bridge settings in daemon.json, and putting them back.

dockerd keeps the subnet of its default bridge in its own store and, without a `bip`,
starts on that subnet again. So putting Docker back after weft takes two steps while
docker0 still sits on the overlay: first daemon.json gets the bridge address Docker had
before weft (as `bip`; the record stays), dockerd restarts and moves docker0 there; then
the values before weft go back (no `bip` if there was none) and dockerd restarts once
more, now remembering its own subnet.
"""

from __future__ import annotations

import ipaddress
import json
import os

from ..errors import WeftError
from ..files import read_text, write_atomic
from ..host.units import DOCKER_ORIGINAL
from ..validate import int_range, ip_interface, ip_network

# daemon.json key -> option; an option left out (None) is not weft's on this host: its key
# keeps the value it had before weft.
MANAGED = {"bip": "bip", "mtu": "mtu", "ip-masq": "ip_masq", "ipv6": "ipv6",
           "fixed-cidr-v6": "fixed_cidr_v6", "iptables": "iptables", "ip6tables": "ip6tables"}
EXISTED = "weft:file-existed"  # in the record: whether daemon.json existed before weft
BRIDGE = "weft:bridge-address"  # ... and the bridge's address then
DOCKER_DEFAULT_BRIDGE = "172.17.0.1/16"  # what dockerd picks on a host that never had one

SPEC_RULES = dict(required_if=[("state", "present", ["mtu"])])
ARGUMENT_SPEC = dict(
    path=dict(type="path", default="/etc/docker/daemon.json"),
    bip=dict(type="str"),
    mtu=dict(type="int"),
    ip_masq=dict(type="bool"),
    ipv6=dict(type="bool"),
    fixed_cidr_v6=dict(type="str"),
    iptables=dict(type="bool"),
    ip6tables=dict(type="bool"),
    original=dict(type="path", default=DOCKER_ORIGINAL),
    bridge=dict(type="str", default="docker0"),
    network=dict(type="str"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
)


def load(path):
    """(text or None, the JSON object in it; {} for a missing or empty file)."""
    text = read_text(path)
    if text is None or not text.strip():
        return text, {}
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise WeftError("%s: not valid JSON (%s); fix it by hand first" % (path, exc)) from None
    if not isinstance(doc, dict):
        raise WeftError("%s: must hold a JSON object" % path)
    return text, doc


def render(doc):
    """As ansible's to_nice_json(indent=2) writes it, so earlier runs' files stay unchanged."""
    return json.dumps(doc, indent=2, sort_keys=True, separators=(",", ": ")) + "\n"


def bridge_addresses(ctx, bridge):
    """The bridge's IPv4 addresses in CIDR form ([] when there is no such device)."""
    kernel = ctx.kernel
    index = kernel.index(bridge)
    return [cidr for cidr in kernel.addresses(index) if ":" not in cidr] if index else []


def set_values(params, ctx, text, current, original_exists):
    """{path: content} that put weft's values in daemon.json, recording the old ones."""
    writes = {}
    if not original_exists:
        # What daemon.json held before weft's first run, for state=absent to put back.
        record = {key: current.get(key) for key in MANAGED}
        record[EXISTED] = text is not None
        found = bridge_addresses(ctx, params["bridge"])
        record[BRIDGE] = found[0] if found else None
        writes[params["original"]] = render(record)
    else:
        record = load(params["original"])[1]
        # A key an earlier weft did not manage yet: its value now is the one before weft.
        missing = [k for k, option in MANAGED.items() if k not in record and params[option] is not None]
        if missing:
            record.update({k: current.get(k) for k in missing})
            writes[params["original"]] = render(record)
    wanted = dict(current)
    for key, option in MANAGED.items():
        value = params[option] if params[option] is not None else record.get(key, current.get(key))
        if value is None:
            wanted.pop(key, None)
        else:
            wanted[key] = value
    if params["bip"] is None and record.get("bip") is None and current.get("bip") is not None:
        # weft stops setting the bridge (the network went IPv6-only): without a bip dockerd
        # would stay on weft's subnet, so the bridge gets back the address it had before.
        wanted["bip"] = record.get(BRIDGE) or DOCKER_DEFAULT_BRIDGE
    if wanted != current or text is None:
        writes[params["path"]] = render(wanted)
    return writes, [], None


def bridge_on_overlay(params, ctx):
    if not params["network"]:
        return False
    try:
        network = ipaddress.ip_network(params["network"])
    except ValueError as exc:
        raise WeftError("network: %r is not a network (%s)" % (params["network"], exc)) from None
    return any(ipaddress.ip_interface(cidr).ip in network
               for cidr in bridge_addresses(ctx, params["bridge"]))


def put_back(params, ctx, text, current, remembered, original_exists):
    """(writes, removes, bridge move) that restore the recorded values and drop the record."""
    path = params["path"]
    if not remembered:
        return {}, [params["original"]] if original_exists else [], None
    wanted = {k: v for k, v in current.items() if k not in remembered}
    wanted.update({k: v for k, v in remembered.items() if v is not None and k in MANAGED})
    if remembered.get("bip") is None and bridge_on_overlay(params, ctx):
        # First of two steps: dockerd must start once on the old address to forget ours.
        move = remembered.get(BRIDGE) or DOCKER_DEFAULT_BRIDGE
        network = ipaddress.ip_network(params["network"])
        if ipaddress.ip_interface(move).ip in network:
            move = DOCKER_DEFAULT_BRIDGE
        wanted["bip"] = move
        return ({path: render(wanted)} if wanted != current else {}), [], move
    removes = [params["original"]]
    if remembered.get(EXISTED) is False and not wanted:
        # weft created the file and nothing else was added to it: remove it again.
        return {}, removes + ([path] if text is not None else []), None
    return ({path: render(wanted)} if wanted != current else {}), removes, None


def run(params, ctx):
    path = params["path"]
    text, current = load(path)
    original_exists = os.path.exists(params["original"])
    if params["state"] == "present":
        try:
            if params["bip"] is not None:
                ip_interface(params["bip"], "bip")
            int_range(params["mtu"], "mtu", 68, 65535)
            if params["fixed_cidr_v6"] is not None:
                ip_network(params["fixed_cidr_v6"], "fixed_cidr_v6")
        except ValueError as exc:
            raise WeftError(str(exc)) from None
        writes, removes, move = set_values(params, ctx, text, current, original_exists)
    else:
        remembered = load(params["original"])[1] if original_exists else {}
        writes, removes, move = put_back(params, ctx, text, current, remembered, original_exists)
    if not ctx.check_mode:
        for target, content in writes.items():
            write_atomic(target, content)
        for target in removes:
            os.unlink(target)
    result = dict(changed=bool(writes or removes),
                  daemon_json_changed=path in writes or path in removes,
                  bridge_moving_to=move)
    if ctx.diff:
        result["diff"] = dict(before=text or "", after=writes.get(
            path, "" if path in removes else text or ""))
    return result
