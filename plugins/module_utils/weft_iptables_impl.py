# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The code of the weft_iptables module (library/weft_iptables.py holds its documentation).

It lives here so that weft_apply can run it in-process, and weft-restore at boot.
"""

from __future__ import annotations

import re

from ansible.module_utils.basic import AnsibleModule

CHAIN_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,28}$")


def read_table(module, table):
    rc, out, err = module.run_command(["iptables", "-w", "-t", table, "-S"])
    if rc:
        module.fail_json(msg="iptables -t %s -S failed: %s" % (table, err.strip()))
    return out.splitlines()


def chain_state(lines, chain, jump_from):
    exists = "-N %s" % chain in lines
    rules = [line for line in lines if line.startswith("-A %s " % chain)]
    jump = "-A %s -j %s" % (jump_from, chain) if jump_from else None
    return exists, rules, jump is not None and jump in lines


def restore(module, table, lines):
    script = "*%s\n%s\nCOMMIT\n" % (table, "\n".join(lines))
    rc, out, err = module.run_command(["iptables-restore", "-w", "--noflush"], data=script,
                                      binary_data=True)
    if rc:
        module.fail_json(msg="iptables-restore failed: %s" % err.strip(), script=script)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            table=dict(type="str", default="filter", choices=["filter", "nat", "mangle", "raw"]),
            chain=dict(type="str", required=True),
            rules=dict(type="list", elements="str", default=[]),
            jump_from=dict(type="str"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
        ),
        supports_check_mode=True,
    )
    p = module.params
    table, chain, jump_from = p["table"], p["chain"], p["jump_from"]
    if not CHAIN_NAME.match(chain) or chain.upper() in ("INPUT", "OUTPUT", "FORWARD",
                                                        "PREROUTING", "POSTROUTING"):
        module.fail_json(msg="chain: %r is not a user chain name (1-28 letters, digits, . _ -)"
                         % chain)
    for i, rule in enumerate(p["rules"]):
        if not rule.strip() or rule.strip().startswith(("-A ", "-I ", "-N ", "-D ")):
            module.fail_json(msg="rules[%d]: %r must be a rule without -A/-I CHAIN" % (i, rule))
    if module.get_bin_path("iptables") is None:
        module.fail_json(msg="iptables is not installed on this host")

    lines = read_table(module, table)
    exists, current, jumped = chain_state(lines, chain, jump_from)
    jump_line = "-A %s -j %s" % (jump_from, chain) if jump_from else None

    if p["state"] == "present":
        desired = ["-A %s %s" % (chain, " ".join(rule.split())) for rule in p["rules"]]
        script = []
        if not exists or current != desired:
            script.append(":%s - [0:0]" % chain)  # declaring a chain with --noflush flushes it
            script.extend(desired)
        if jump_from and not jumped:
            script.append("-I %s 1 -j %s" % (jump_from, chain))
        before = current + ([jump_line] if jumped else [])
        after = desired + ([jump_line] if jump_from else [])
    else:
        script = []
        if jumped:
            script.append("-D %s -j %s" % (jump_from, chain))
        if exists:
            script += ["-F %s" % chain, "-X %s" % chain]
        before = current + ([jump_line] if jumped else [])
        after = []

    result = dict(changed=bool(script), rules=after if script else current)
    if script and module._diff:
        result["diff"] = dict(before="".join(line + "\n" for line in before),
                              after="".join(line + "\n" for line in after),
                              before_header="%s/%s" % (table, chain),
                              after_header="%s/%s" % (table, chain))
    if script and not module.check_mode:
        restore(module, table, script)
        result["rules"] = chain_state(read_table(module, table), chain, jump_from)[1]
    module.exit_json(**result)

