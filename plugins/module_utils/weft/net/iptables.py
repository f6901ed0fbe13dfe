# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Core of weft_iptables: one iptables chain's rules, in order, and the jump into it."""

from __future__ import annotations

import re

from ..errors import WeftError

CHAIN_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,28}$")
BUILT_IN = ("INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING")
# weft's two chains (Flannel's FLANNEL-FWD and FLANNEL-POSTRTG), as this core takes them;
# dual-stack networks have them in ip6tables too.
FORWARD_CHAIN = dict(table="filter", chain="WEFT-FWD", jump_from="FORWARD")
MASQUERADE_CHAIN = dict(table="nat", chain="WEFT-POSTRTG", jump_from="POSTROUTING")
CHAINS = (FORWARD_CHAIN, MASQUERADE_CHAIN)
COMMANDS = {"ipv4": "iptables", "ipv6": "ip6tables"}
# MASQUERADE's --random-fully came with iptables 1.6.2; older ones refuse the rule, so it
# is used where supported, as Flannel does (go-iptables' HasRandomFully).
RANDOM_FULLY = "--random-fully"
RANDOM_FULLY_SINCE = (1, 6, 2)
VERSION = re.compile(r"\bv(\d+)\.(\d+)\.(\d+)")

ARGUMENT_SPEC = dict(
    table=dict(type="str", default="filter", choices=["filter", "nat", "mangle", "raw"]),
    chain=dict(type="str", required=True),
    rules=dict(type="list", elements="str", default=[]),
    jump_from=dict(type="str"),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    family=dict(type="str", default="ipv4", choices=sorted(COMMANDS)),
)


def read_table(ctx, table, command="iptables"):
    rc, out, err = ctx.run([ctx.which(command), "-w", "-t", table, "-S"])
    if rc:
        raise WeftError("%s -t %s -S failed: %s" % (command, table, err.strip()))
    return out.splitlines()


def version(ctx, command):
    """(major, minor, patch) of the host's iptables, None when it does not say."""
    rc, out, dummy = ctx.run([ctx.which(command), "--version"])
    found = VERSION.search(out) if rc == 0 else None
    return tuple(int(part) for part in found.groups()) if found else None


def where_supported(ctx, command, rules):
    """The rules this host's iptables can take, and a warning for what was left out."""
    if not any(RANDOM_FULLY in rule.split() for rule in rules):
        return rules, []
    found = version(ctx, command)
    if found is None or found >= RANDOM_FULLY_SINCE:
        return rules, []
    kept = [" ".join(word for word in rule.split() if word != RANDOM_FULLY) for rule in rules]
    return kept, ["%s %s on this host has no %s (it came with %s): masquerading with "
                  "sequential source ports, as Flannel does there; set "
                  "weft_ip_masq_random_fully: false to say so" % (
                      command, ".".join(map(str, found)), RANDOM_FULLY,
                      ".".join(map(str, RANDOM_FULLY_SINCE)))]


def chain_state(lines, chain, jump_from):
    exists = "-N %s" % chain in lines
    rules = [line for line in lines if line.startswith("-A %s " % chain)]
    jump = "-A %s -j %s" % (jump_from, chain) if jump_from else None
    return exists, rules, jump is not None and jump in lines


def restore(ctx, table, lines, command="iptables"):
    script = "*%s\n%s\nCOMMIT\n" % (table, "\n".join(lines))
    rc, dummy, err = ctx.run([ctx.which(command + "-restore"), "-w", "--noflush"], data=script)
    if rc:
        raise WeftError("%s-restore failed: %s" % (command, err.strip()), script=script)


def run(params, ctx):
    table, chain, jump_from = params["table"], params["chain"], params["jump_from"]
    if not CHAIN_NAME.match(chain) or chain.upper() in BUILT_IN:
        raise WeftError("chain: %r is not a user chain name (1-28 letters, digits, . _ -)" % chain)
    for i, rule in enumerate(params["rules"]):
        if not rule.strip() or rule.strip().startswith(("-A ", "-I ", "-N ", "-D ")):
            raise WeftError("rules[%d]: %r must be a rule without -A/-I CHAIN" % (i, rule))
    command = COMMANDS[params["family"]]
    if ctx.which(command) is None:
        if params["state"] == "absent":
            return dict(changed=False, rules=[])  # no iptables: no chain to remove
        raise WeftError("%s is not installed on this host (or set EnableNFTables: true in "
                        "weft_network)" % command)

    lines = read_table(ctx, table, command)
    exists, current, jumped = chain_state(lines, chain, jump_from)
    jump_line = "-A %s -j %s" % (jump_from, chain) if jump_from else None

    warnings = []
    if params["state"] == "present":
        wanted, warnings = where_supported(ctx, command, params["rules"])
        desired = ["-A %s %s" % (chain, " ".join(rule.split())) for rule in wanted]
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
    if warnings:
        result["warnings"] = warnings
    if script and ctx.diff:
        result["diff"] = dict(before="".join(line + "\n" for line in before),
                              after="".join(line + "\n" for line in after),
                              before_header="%s/%s" % (table, chain),
                              after_header="%s/%s" % (table, chain))
    if script and not ctx.check_mode:
        restore(ctx, table, script, command)
        result["rules"] = chain_state(read_table(ctx, table, command), chain, jump_from)[1]
    return result
