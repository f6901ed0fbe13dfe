"""weft_iptables in a throwaway namespace (its own iptables tables)."""

import shutil

import pytest

from weft.host.model import masquerade_rules
from conftest import run_ansible_module, sh

FWD = {"chain": "WEFT-FWD", "jump_from": "FORWARD",
       "rules": ['-s 100.96.0.0/16 -m comment --comment "weft forward" -j ACCEPT',
                 "-d 100.96.0.0/16 -j ACCEPT"]}


@pytest.fixture
def run(netns):
    return lambda args, **kw: run_ansible_module("weft.overlay.iptables", args, netns=netns, **kw)


def rules(netns, table="filter"):
    return sh("iptables", "-t", table, "-S", netns=netns).splitlines()


def test_create_idempotent_change_absent(netns, run):
    sh("iptables", "-A", "FORWARD", "-j", "DROP", netns=netns)  # someone else's rule
    result = run(FWD)
    assert result["changed"], result
    assert rules(netns)[3:] == ["-N WEFT-FWD", "-A FORWARD -j WEFT-FWD", "-A FORWARD -j DROP",
                                '-A WEFT-FWD -s 100.96.0.0/16 -m comment --comment "weft forward" -j ACCEPT',
                                "-A WEFT-FWD -d 100.96.0.0/16 -j ACCEPT"]
    assert not run(FWD)["changed"]

    changed = run(dict(FWD, rules=["-d 100.96.0.0/16 -j ACCEPT"]), diff=True)
    assert changed["changed"] and changed["rules"] == ["-A WEFT-FWD -d 100.96.0.0/16 -j ACCEPT"]
    assert '--comment "weft forward"' not in "\n".join(rules(netns))
    assert "-A FORWARD -j DROP" in rules(netns)

    gone = run(dict(FWD, state="absent"))
    assert gone["changed"]
    assert rules(netns)[3:] == ["-A FORWARD -j DROP"]
    assert not run(dict(FWD, state="absent"))["changed"]


def test_nat_chain_with_random_fully_and_check_mode(netns, run):
    masq = {"table": "nat", "chain": "WEFT-POSTRTG", "jump_from": "POSTROUTING",
            "rules": ["-s 100.96.0.0/16 ! -d 224.0.0.0/4 -j MASQUERADE --random-fully"]}
    assert run(masq, check=True)["changed"]
    assert "-N WEFT-POSTRTG" not in rules(netns, "nat")
    assert run(masq)["changed"] and not run(masq)["changed"]
    assert "-A WEFT-POSTRTG -s 100.96.0.0/16 ! -d 224.0.0.0/4 -j MASQUERADE --random-fully" \
        in rules(netns, "nat")


@pytest.mark.parametrize("random_fully", [True, False])
def test_flannels_masquerade_chain_as_the_model_writes_it(netns, run, random_fully):
    masq = {"table": "nat", "chain": "WEFT-POSTRTG", "jump_from": "POSTROUTING",
            "rules": masquerade_rules("100.96.0.0/16", "100.96.1.0/24", random_fully)}
    assert run(masq)["changed"] and not run(masq)["changed"]   # iptables prints them as written
    chain = [r for r in rules(netns, "nat") if r.startswith("-A WEFT-POSTRTG")]
    assert chain[0] == \
        '-A WEFT-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment "weft masq" -j RETURN'
    assert sum(r.endswith("--random-fully") for r in chain) == (2 if random_fully else 0)
    assert sum("-j MASQUERADE" in r for r in chain) == 2


@pytest.fixture
def old_iptables(tmp_path, monkeypatch):
    """An iptables that says it is 1.6.1 (Debian 9's, before --random-fully) and is the
    real one otherwise: iptables-restore, which would take the option, stays the real one."""
    shim = tmp_path / "iptables"
    shim.write_text('#!/bin/sh\n[ "$1" = --version ] && exec echo "iptables v1.6.1"\n'
                    'exec %s "$@"\n' % shutil.which("iptables", path="/usr/sbin:/sbin"))
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (tmp_path, "/usr/local/bin:/usr/bin:/bin"))


def test_random_fully_only_where_iptables_has_it(netns, run, old_iptables):
    masq = {"table": "nat", "chain": "WEFT-POSTRTG", "jump_from": "POSTROUTING",
            "rules": masquerade_rules("100.96.0.0/16", "100.96.1.0/24", random_fully=True)}
    first = run(masq)
    assert first["changed"] and not run(masq)["changed"], first
    chain = [r for r in rules(netns, "nat") if r.startswith("-A WEFT-POSTRTG")]
    assert sum(r.endswith("-j MASQUERADE") for r in chain) == 2, chain
    assert "--random-fully" not in "\n".join(chain)
    assert any("iptables 1.6.1 on this host has no --random-fully" in w
               for w in first.get("warnings", [])), first


@pytest.mark.parametrize("args, message", [
    ({"chain": "FORWARD"}, "chain: 'FORWARD' is not a user chain name"),
    ({"chain": "bad name"}, "chain: 'bad name' is not a user chain name"),
    ({"chain": "WEFT-X", "rules": ["-A WEFT-X -j ACCEPT"]}, "rules[0]: '-A WEFT-X -j ACCEPT' must be a rule"),
    ({"chain": "WEFT-X", "rules": ["-j NOSUCHTARGET"]}, "iptables-restore failed"),
])
def test_bad_input(netns, run, args, message):
    result = run(args)
    assert result["failed"] and result["msg"].startswith(message), result["msg"]
    assert "WEFT-X" not in "\n".join(rules(netns))
