#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: weft_apply
short_description: Converge a host's overlay in one call, and record it for weft-restore
description:
  - Runs weft's modules (M(weft_vxlan), M(weft_tun), M(weft_neighbours), M(weft_fdb),
    M(weft_routes), M(weft_iptables), M(weft_ingress), M(weft_docker)) in order in one process on the host,
    each with its own argument checks, check mode and diff, then writes weft's files and
    links. One call instead of one task per module keeps a run's cost per host small.
  - Stops at the first step that fails; its message starts with the module's name. Files,
    links and the record are written only when every step succeeded.
  - Records the calls in O(record) and installs the code that ran them in O(runtime), so
    that C(weft-restore.py) rebuilds the same state at boot with the same code.
version_added: "0.2.0"
author: weft contributors
options:
  steps:
    description: Module calls, in the order to run them.
    type: list
    elements: dict
    default: []
    suboptions:
      module:
        description: The weft module to run.
        type: str
        required: true
        choices: [weft_vxlan, weft_tun, weft_neighbours, weft_fdb, weft_routes, weft_iptables,
                  weft_docker, weft_ingress]
      args:
        description: Its arguments, as for a task of that module.
        type: dict
        default: {}
  users:
    description: System users (each with its own group, no home, no login shell) that
      weft's daemons run as; created first, since steps may name them.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The user name.
        type: str
        required: true
      comment:
        description: Its description (the GECOS field).
        type: str
        default: weft
  modes:
    description: Permission bits of existing paths weft needs open, such as C(/dev/net/tun)
      for an unprivileged daemon (0666, as Debian's udev sets it); set before the steps.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The path; it must exist.
        type: path
        required: true
      mode:
        description: Octal mode.
        type: str
        required: true
  files:
    description: Files weft owns on the host (written atomically; under C(/proc) in place).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path; missing parent directories are created.
        type: path
        required: true
      content:
        description: The whole content.
        type: str
        required: true
      mode:
        description: Octal mode.
        type: str
        default: "0644"
  links:
    description: Symlinks, e.g. the one C(systemctl enable) makes for a unit.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The link.
        type: path
        required: true
      target:
        description: What it points to.
        type: path
        required: true
  absent:
    description: Files and links weft no longer wants (another backend's), removed last.
    type: list
    elements: path
    default: []
  record:
    description: Where to record the steps, files and links for weft-restore; empty for none.
    type: path
    default: /etc/weft/state.json
  runtime:
    description: Where to install the code weft-restore runs the steps with.
    type: path
    default: /usr/local/lib/weft/module_utils
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: One diff per changed step and file.
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Converge this host
  weft_apply:
    steps:
      - module: weft_routes
        args: {routes: [{dst: 100.96.2.0/24, via: 10.168.0.3, dev: eth0}], purge: true}
    files:
      - {path: /run/flannel/subnet.env, content: "FLANNEL_SUBNET=100.96.1.1/24\n"}
"""

RETURN = r"""
steps:
  description: Each step's result (its module's return values) with its module name.
  returned: always
  type: list
  elements: dict
files_changed:
  description: Files and links that were (or in check mode would be) written or removed.
  returned: always
  type: list
  elements: str
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.weft_apply_runner import (STEP_MODULES, apply, runtime_sources,
                                                    write_files)
from ansible.module_utils.weft_files import exclusive_lock


def main():
    module = AnsibleModule(
        argument_spec=dict(
            steps=dict(type="list", elements="dict", default=[], options=dict(
                module=dict(type="str", required=True, choices=sorted(STEP_MODULES)),
                args=dict(type="dict", default={}),
            )),
            users=dict(type="list", elements="dict", default=[], options=dict(
                name=dict(type="str", required=True),
                comment=dict(type="str", default="weft"),
            )),
            modes=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="path", required=True),
                mode=dict(type="str", required=True),
            )),
            files=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="path", required=True),
                content=dict(type="str", required=True, no_log=False),
                mode=dict(type="str", default="0644"),
            )),
            links=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="path", required=True),
                target=dict(type="path", required=True),
            )),
            absent=dict(type="list", elements="path", default=[]),
            record=dict(type="path", default="/etc/weft/state.json"),
            runtime=dict(type="path", default="/usr/local/lib/weft/module_utils"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    state = {key: params[key] for key in ("users", "modes", "steps", "files", "links", "absent")}
    # Read the code weft-restore needs now: the steps replace this process's module args.
    sources = runtime_sources() if params["runtime"] else {}
    # weft-heal's passes wait while the host converges, and then read the new record.
    with exclusive_lock():
        result = apply(state, module.check_mode, module._diff)
        if result.pop("failed", False):
            result.pop("diff")
            module.fail_json(**result)
        # The record and the code weft-restore replays it with (no diff: they follow the above).
        restore = [dict(path=os.path.join(params["runtime"], name), content=source)
                   for name, source in sorted(sources.items())]
        if params["record"]:
            restore.append(dict(path=params["record"],
                                content=json.dumps(state, indent=2, sort_keys=True) + "\n"))
        write_files(restore, result, module.check_mode)
    if not result["diff"]:
        del result["diff"]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
