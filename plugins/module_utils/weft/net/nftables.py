# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Core of weft_nftables: the forward and masquerade chains in nftables (Flannel's
EnableNFTables), one table per address family that weft owns whole.

Flannel's layout: a table per family (``ip weft-ipv4``, ``ip6 weft-ipv6``) with the chain
``forward`` (filter hook, forward) and ``postrtg`` (nat hook, postrouting), each holding
the rules it is given, in order. Each rule carries its own text as its comment, which is
how a run recognises it; a table that differs in any rule or chain is replaced whole in
one ``nft -f`` transaction, so packets never see a half-written table.
"""

from __future__ import annotations

from ..errors import WeftError
from .ingress import Nft

TABLES = {"ipv4": ("ip", "weft-ipv4"), "ipv6": ("ip6", "weft-ipv6")}
# chain -> (its parameter, the base chain's declaration as nft -j reports it: hook, prio, type)
CHAINS = {"forward": ("forward", ("forward", 0, "filter")),
          "postrtg": ("masquerade", ("postrouting", 100, "nat"))}
DECLARE = {"forward": "type filter hook forward priority filter; policy accept;",
           "postrtg": "type nat hook postrouting priority srcnat; policy accept;"}
MAX_COMMENT = 128   # nftables' limit on a rule's comment

ARGUMENT_SPEC = dict(
    family=dict(type="str", default="ipv4", choices=sorted(TABLES)),
    forward=dict(type="list", elements="str", default=[]),
    masquerade=dict(type="list", elements="str", default=[]),
    state=dict(type="str", default="present", choices=["present", "absent"]),
)


def desired(params):
    """[(chain, rule)] in order; raises WeftError naming a rule nft could not carry."""
    found = []
    for chain, (key, dummy) in CHAINS.items():
        for i, rule in enumerate(params[key]):
            text = " ".join(str(rule).split())
            if not text or '"' in text or len(text) > MAX_COMMENT:
                raise WeftError("%s[%d]: %r must be one nft rule without quotes, at most %d "
                                "characters" % (key, i, rule, MAX_COMMENT))
            found.append((chain, text))
    return found


def current(objects):
    """[(chain, comment)] of the table's rules, and {chain: (hook, prio, type)}."""
    rules, chains = [], {}
    for item in objects:
        kind, body = next(iter(item.items()))
        if kind == "chain":
            chains[body["name"]] = (body.get("hook"), body.get("prio"), body.get("type"))
        elif kind == "rule":
            rules.append((body["chain"], body.get("comment")))
    return rules, chains


def render(family, table, rules) -> str:
    chains = [chain for chain in CHAINS if any(c == chain for c, dummy in rules)]
    lines = ["table %s %s {" % (family, table)]
    lines += ["  chain %s { %s }" % (chain, DECLARE[chain]) for chain in chains]
    lines.append("}")
    lines += ['add rule %s %s %s %s comment "%s"' % (family, table, chain, rule, rule)
              for chain, rule in rules]
    return "\n".join(lines) + "\n"


def run(params, ctx):
    family, table = TABLES[params["family"]]
    wanted = desired(params) if params["state"] == "present" else []
    nft = Nft(ctx)
    objects = nft.table(table, family)
    have, chains = current(objects) if objects is not None else ([], {})
    wanted_chains = {chain: CHAINS[chain][1] for chain, dummy in wanted}
    result = dict(changed=False, rules=["%s %s" % pair for pair in have])
    if objects is None and not wanted:
        return result
    if objects is not None and have == wanted and chains == wanted_chains:
        return result
    # Declaring the table first makes the delete safe when it is not there.
    script = "table %s %s\ndelete table %s %s\n" % (family, table, family, table)
    if wanted:
        script += render(family, table, wanted)
    result.update(changed=True, rules=["%s %s" % pair for pair in wanted])
    if ctx.diff:
        result["diff"] = dict(before="".join("%s %s\n" % pair for pair in have),
                              after="".join("%s %s\n" % pair for pair in wanted),
                              before_header="%s %s" % (family, table),
                              after_header="%s %s" % (family, table))
    if not ctx.check_mode:
        nft.run(script)
    return result
