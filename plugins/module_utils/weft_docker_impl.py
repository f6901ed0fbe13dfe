# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The code of the weft_docker module (library/weft_docker.py holds its documentation).

It lives here so that weft_apply can run it in-process, and weft-restore at boot.
"""

from __future__ import annotations

import ipaddress
import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.weft_files import read_text, write_atomic
from ansible.module_utils.weft_netlink import Kernel, require_pyroute2
from ansible.module_utils.weft_validate import int_range, ip_interface

# daemon.json key -> module option
MANAGED = {"bip": "bip", "mtu": "mtu", "ip-masq": "ip_masq"}
EXISTED = "weft:file-existed"  # in the record: whether daemon.json existed before weft
BRIDGE = "weft:bridge-address"  # ... and the bridge's address then, which dockerd reuses
DOCKER_DEFAULT_BRIDGE = "172.17.0.1/16"  # what dockerd picks on a host that never had one


def load(module, path):
    """(text or None, the JSON object in it; {} for a missing or empty file)."""
    text = read_text(path)
    if text is None or not text.strip():
        return text, {}
    try:
        doc = json.loads(text)
    except ValueError as exc:
        module.fail_json(msg="%s: not valid JSON (%s); fix it by hand first" % (path, exc))
    if not isinstance(doc, dict):
        module.fail_json(msg="%s: must hold a JSON object" % path)
    return text, doc


def render(doc):
    """As ansible's to_nice_json(indent=2) writes it, so earlier runs' files stay unchanged."""
    return json.dumps(doc, indent=2, sort_keys=True, separators=(",", ": ")) + "\n"


def set_values(params, text, current, original_exists, bridge_address):
    """(writes, removes) that put weft's values in daemon.json, recording the old ones."""
    writes = {}
    if not original_exists:
        # What daemon.json held before weft's first run, for state=absent to put back.
        record = {key: current.get(key) for key in MANAGED}
        record[EXISTED] = text is not None
        record[BRIDGE] = bridge_address
        writes[params["original"]] = render(record)
    wanted = dict(current, **{key: params[option] for key, option in MANAGED.items()})
    if wanted != current or text is None:
        writes[params["path"]] = render(wanted)
    return writes, []


def put_back(params, text, current, remembered, original_exists):
    """(writes, removes) that restore the recorded values and drop the record."""
    path = params["path"]
    removes = [params["original"]] if original_exists else []
    if not remembered:
        return {}, removes  # nothing recorded: weft never touched this file
    wanted = {k: v for k, v in current.items() if k not in remembered}
    wanted.update({k: v for k, v in remembered.items() if v is not None and k in MANAGED})
    if remembered.get(EXISTED) is False and not wanted:
        # weft created the file and nothing else was added to it: remove it again.
        return {}, removes + ([path] if text is not None else [])
    return ({path: render(wanted)} if wanted != current else {}), removes


def bridge_addresses(kernel, bridge):
    """The bridge's IPv4 addresses in CIDR form ([] when there is no such device)."""
    index = kernel.index(bridge)
    if index is None:
        return []
    return [cidr for cidr in kernel.addresses(index) if ":" not in cidr]


def bridge_address_before_weft(module, bridge):
    """The bridge's address as weft first finds it, to put back at uninstall."""
    from ansible.module_utils.weft_netlink import IPRoute
    if IPRoute is None:
        return None
    with Kernel() as kernel:
        found = bridge_addresses(kernel, bridge)
    return found[0] if found else None


def readdress_bridge(module, params, remembered):
    """dockerd reuses its bridge's address, and remembers the subnet it used last, when no
    bip is set: a bridge left on the overlay gets back the address it had before weft
    (or Docker's own default), which dockerd then takes up on its restart."""
    try:
        network = ipaddress.ip_network(params["network"])
    except ValueError as exc:
        module.fail_json(msg="network: %r is not a network (%s)" % (params["network"], exc))
    require_pyroute2(module)
    with Kernel() as kernel:
        current = bridge_addresses(kernel, params["bridge"])
        if not any(ipaddress.ip_interface(cidr).ip in network for cidr in current):
            return None
        target = remembered.get(BRIDGE) or DOCKER_DEFAULT_BRIDGE
        if ipaddress.ip_interface(target).ip in network:
            target = DOCKER_DEFAULT_BRIDGE
        if not module.check_mode:
            index = kernel.index(params["bridge"])
            for cidr in current:
                addr, prefix = cidr.split("/")
                kernel.ipr.addr("del", index=index, address=addr, prefixlen=int(prefix))
            addr, prefix = target.split("/")
            kernel.ipr.addr("add", index=index, address=addr, prefixlen=int(prefix))
        return target


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/etc/docker/daemon.json"),
            bip=dict(type="str"),
            mtu=dict(type="int"),
            ip_masq=dict(type="bool", default=False),
            original=dict(type="path", default="/etc/weft/docker-original.json"),
            bridge=dict(type="str", default="docker0"),
            network=dict(type="str"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        required_if=[("state", "present", ["bip", "mtu"])],
        supports_check_mode=True,
    )
    params = module.params
    path = params["path"]
    text, current = load(module, path)
    original_exists = os.path.exists(params["original"])
    if params["state"] == "present":
        try:
            ip_interface(params["bip"], "bip")
            int_range(params["mtu"], "mtu", 68, 65535)
        except ValueError as exc:
            module.fail_json(msg=str(exc))
        bridge = None if original_exists else bridge_address_before_weft(module, params["bridge"])
        writes, removes = set_values(params, text, current, original_exists, bridge)
    else:
        remembered = load(module, params["original"])[1]
        writes, removes = put_back(params, text, current, remembered, original_exists)
    readdressed = None
    if params["state"] == "absent" and params["network"]:
        readdressed = readdress_bridge(module, params, remembered)
    if not module.check_mode:
        for target, content in writes.items():
            write_atomic(target, content)
        for target in removes:
            os.unlink(target)
    result = dict(changed=bool(writes or removes or readdressed),
                  daemon_json_changed=path in writes or path in removes,
                  bridge_readdressed=readdressed)
    if module._diff:
        result["diff"] = dict(before=text or "", after=writes.get(
            path, "" if path in removes else text or ""))
    module.exit_json(**result)
