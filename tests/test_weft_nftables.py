"""weft_nftables in a throwaway namespace (its own nftables ruleset): Flannel's
EnableNFTables chains, as the host model writes them."""

import json

import pytest

from weft.host.model import forward_nft, masquerade_nft
from conftest import run_ansible_module, sh

V4 = {"family": "ipv4", "forward": forward_nft("100.96.0.0/16"),
      "masquerade": masquerade_nft("100.96.0.0/16", "100.96.1.0/24")}
V6 = {"family": "ipv6", "forward": forward_nft("fd00:96::/48"),
      "masquerade": masquerade_nft("fd00:96::/48", "fd00:96:0:1::/64", random_fully=False)}


@pytest.fixture
def run(netns):
    return lambda args, **kw: run_ansible_module("weft.overlay.nftables", args, netns=netns, **kw)


def table(netns, family, name):
    """{chain: (hook, prio, type)} and [(chain, comment)] of a table, None if absent."""
    out = sh("sh", "-c", "nft -j list table %s %s 2>/dev/null || true" % (family, name), netns=netns)
    if not out.strip():
        return None
    items = [next(iter(i.items())) for i in json.loads(out)["nftables"] if "metainfo" not in i]
    return ({b["name"]: (b["hook"], b["prio"], b["type"]) for k, b in items if k == "chain"},
            [(b["chain"], b["comment"]) for k, b in items if k == "rule"])


def test_both_families_tables_hold_the_rules_in_order(netns, run):
    assert run(V4)["changed"] and run(V6)["changed"]
    chains, rules = table(netns, "ip", "weft-ipv4")
    assert chains == {"forward": ("forward", 0, "filter"), "postrtg": ("postrouting", 100, "nat")}
    assert rules == [("forward", r) for r in V4["forward"]] + [("postrtg", r) for r in V4["masquerade"]]
    listing = sh("nft", "list", "table", "ip", "weft-ipv4", netns=netns)
    assert "meta mark & 0x00004000 == 0x00004000 return" in listing
    assert "masquerade fully-random" in listing
    _, rules6 = table(netns, "ip6", "weft-ipv6")
    assert rules6[-1] == ("postrtg", "ip6 saddr != fd00:96::/48 ip6 daddr fd00:96::/48 masquerade")
    assert not run(V4)["changed"] and not run(V6)["changed"]


def test_drift_and_new_rules_replace_the_table_and_absent_removes_it(netns, run):
    run(V4)
    # Someone deletes a rule: the next run puts the whole table back.
    handle = json.loads(sh("nft", "-j", "-a", "list", "chain", "ip", "weft-ipv4", "postrtg",
                           netns=netns))["nftables"][-1]["rule"]["handle"]
    sh("nft", "delete", "rule", "ip", "weft-ipv4", "postrtg", "handle", str(handle), netns=netns)
    repaired = run(V4, diff=True)
    assert repaired["changed"] and "+postrtg %s" % V4["masquerade"][-1] in repaired["stdout_text"]
    assert table(netns, "ip", "weft-ipv4")[1][-1] == ("postrtg", V4["masquerade"][-1])
    # Masquerade off: the postrtg chain goes, forward stays.
    assert run(dict(V4, masquerade=[]))["changed"]
    assert table(netns, "ip", "weft-ipv4")[0] == {"forward": ("forward", 0, "filter")}
    # Check mode reports without touching; absent removes the table, then nothing to do.
    assert run(dict(V4, state="absent"), check=True)["changed"]
    assert table(netns, "ip", "weft-ipv4") is not None
    assert run(dict(V4, state="absent"))["changed"]
    assert table(netns, "ip", "weft-ipv4") is None
    assert not run(dict(V4, state="absent"))["changed"]
    assert not run(dict(V4, forward=[], masquerade=[]))["changed"]


def test_other_tables_are_left_alone(netns, run):
    sh("nft", "add", "table", "ip", "someone", netns=netns)
    sh("nft", "add", "chain", "ip", "someone", "post",
       "{ type nat hook postrouting priority srcnat; }", netns=netns)
    run(V4)
    run(dict(V4, state="absent"))
    assert table(netns, "ip", "someone")[0] == {"post": ("postrouting", 100, "nat")}


@pytest.mark.parametrize("rule, message", [
    ('ip saddr 10.0.0.0/8 accept comment "x"', "forward[0]: "),
    ("ip saddr 10.0.0.0/8 " + "accept " * 30, "forward[0]: "),
    ("", "forward[0]: "),
])
def test_rules_it_cannot_carry_are_refused_by_name(netns, run, rule, message):
    result = run(dict(V4, forward=[rule]))
    assert result["failed"] and result["msg"].startswith(message), result
    assert table(netns, "ip", "weft-ipv4") is None


def test_a_rule_nft_refuses_leaves_the_old_table(netns, run):
    run(V4)
    result = run(dict(V4, forward=["ip saddr 100.96.0.0/16 acceptt"]))
    assert result["failed"] and "nft -f failed" in result["msg"], result
    assert table(netns, "ip", "weft-ipv4")[1][0] == ("forward", V4["forward"][0])
