# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The code of the weft_docker module (library/weft_docker.py holds its documentation).

It lives here so that weft_apply can run it in-process, and weft-restore at boot.
"""

from __future__ import annotations

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.weft_validate import int_range, ip_interface

# daemon.json key -> module option
MANAGED = {"bip": "bip", "mtu": "mtu", "ip-masq": "ip_masq"}
EXISTED = "weft:file-existed"  # in the record: whether daemon.json existed before weft


def load(module, path):
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None, {}
    try:
        doc = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        module.fail_json(msg="%s: not valid JSON (%s); fix it by hand first" % (path, exc))
    if not isinstance(doc, dict):
        module.fail_json(msg="%s: must hold a JSON object" % path)
    return text, doc


def render(doc):
    """As ansible's to_nice_json(indent=2) writes it, so earlier runs' files stay unchanged."""
    return json.dumps(doc, indent=2, sort_keys=True, separators=(",", ": ")) + "\n"


def write(path, text):
    tmp = path + ".weft-tmp"
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/etc/docker/daemon.json"),
            bip=dict(type="str"),
            mtu=dict(type="int"),
            ip_masq=dict(type="bool", default=False),
            original=dict(type="path", default="/etc/weft/docker-original.json"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        required_if=[("state", "present", ["bip", "mtu"])],
        supports_check_mode=True,
    )
    params = module.params
    path, original = params["path"], params["original"]
    before_text, current = load(module, path)
    _, remembered = load(module, original)
    writes = {}
    if params["state"] == "present":
        try:
            ip_interface(params["bip"], "bip")
            int_range(params["mtu"], "mtu", 68, 65535)
        except ValueError as exc:
            module.fail_json(msg=str(exc))
        if not os.path.exists(original):
            # What daemon.json held before weft's first run, for state=absent to put back.
            record = {key: current.get(key) for key in MANAGED}
            record[EXISTED] = before_text is not None
            writes[original] = render(record)
        wanted = dict(current, **{key: params[option] for key, option in MANAGED.items()})
    else:
        wanted = {k: v for k, v in current.items() if k not in remembered}
        wanted.update({k: v for k, v in remembered.items() if v is not None and k in MANAGED})
    after_text = render(wanted)
    if wanted != current or before_text is None and params["state"] == "present":
        writes[path] = after_text
    removes = [original] if params["state"] == "absent" and os.path.exists(original) else []
    if params["state"] == "absent" and not remembered:
        writes.pop(path, None)  # nothing recorded: weft never touched this file
    elif params["state"] == "absent" and remembered.get(EXISTED) is False and not wanted:
        # weft created the file and nothing else was added to it: remove it again.
        writes.pop(path, None)
        if before_text is not None:
            removes.append(path)
    if not module.check_mode:
        for target, text in writes.items():
            write(target, text)
        for target in removes:
            os.unlink(target)
    result = dict(changed=bool(writes or removes),
                  daemon_json_changed=path in writes or path in removes)
    if module._diff:
        result["diff"] = dict(before=before_text or "", after=writes.get(path, before_text or ""))
    module.exit_json(**result)
