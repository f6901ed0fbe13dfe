"""weft_check and weft_check_report on two sandbox hosts of a vxlan network that weft_host
converged: the full matrix when all is well; then a black hole (the underlay MTU lowered
on one side, with the largest size that passed), a firewall dropping one peer's VXLAN
datagrams, and drift (a route and an FDB entry deleted) each fail exactly the pair they
break and say why; the check changes nothing (kernel state and files read before and
after), in check mode too; a host without a record says so."""

import json
import os

import pytest

from weft.check import check_report as report
from weft.lease import encode_plan
from conftest import NETNS_PREFIX, run_ansible_module
from ansible_collections.weft.overlay.tests.unit.plans import sample_plan
from sandbox import two_hosts

HOSTS = {"node1": "10.9.0.1", "node2": "10.9.0.2"}
SETTINGS = {"docker": False, "heal_interval": 0}


def host_args(name):
    plan = encode_plan(sample_plan("vxlan", [(n, ip, "100.96.%d.0/24" % i)
                                             for i, (n, ip) in enumerate(HOSTS.items(), 1)]))
    return {"plan": plan, "settings": SETTINGS,
            "host": {"name": name, "iface": "eth0", "public_ip": HOSTS[name],
                     "underlay": "10.9.0.0/24", "mtu": 1500}}


@pytest.fixture(scope="module")
def boxes():
    with two_hosts("%s%d-check" % (NETNS_PREFIX, os.getpid()), HOSTS) as found:
        for name, box in found.items():
            box.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
            result = box.module("weft.overlay.host", host_args(name))
            assert result["changed"] and not result["failed"], result
        yield found


def fingerprint(box):
    """What a check must not change: devices, routes, neighbours, FDB, rules, weft's files
    (not the link-local addresses the kernel finishes on its own)."""
    return ["\n".join(line for line in box.run(*cmd).stdout.splitlines() if "fe80:" not in line)
            for cmd in (
        ("ip", "-d", "link"), ("ip", "addr"), ("ip", "route", "show", "table", "all"),
        ("ip", "neigh", "show", "nud", "permanent"), ("bridge", "fdb"),
        ("nft", "-s", "list", "ruleset"),      # without counters, which the probes move
        ("sh", "-c", "ls -lR --time-style=+%s.%N /etc/weft /run/weft"))]


def check(boxes, check_mode=False):
    """{host: weft_check result} and the report of them, every host's state unchanged."""
    before = {name: fingerprint(box) for name, box in boxes.items()}
    results = {name: box.module("weft.overlay.check", {"timeout": 0.5}, check=check_mode)
               for name, box in boxes.items()}
    for result in results.values():
        assert not result["failed"], result
        result.pop("stdout_text")
    assert {name: fingerprint(box) for name, box in boxes.items()} == before
    return results, report.build(results)


def pair(built, src, dst):
    return next(p for p in built["pairs"] if (p["from"], p["to"]) == (src, dst))


def test_a_healthy_network_passes_with_every_pair(boxes):
    results, built = check(boxes)
    assert built["ok"], built["matrix"]
    a = results["node1"]
    assert (a["converged"], a["host"], a["backend"], a["overlay_mtu"], a["peers"]) == \
        (True, "node1", "vxlan", 1450, ["node2"])
    [path] = a["paths"]
    assert (path["source"], path["address"], path["received"], path["mtu_ok"]) == \
        ("100.96.1.0", "100.96.2.0", 3, True)
    assert 0 < path["rtt_ms"]["min"] <= path["rtt_ms"]["avg"] <= path["rtt_ms"]["max"]
    assert a["drift"] == [] and a["underlay"] == []
    assert set(a["counters"]["ingress_drops"]) >= {"not_a_peer", "inner_source"}
    assert results["node1"]["revision"] == results["node2"]["revision"]
    assert built["matrix"][2].split()[:2] == ["node1", "-"]
    assert [p["cell"] != "ok" and float(p["cell"]) > 0 for p in built["pairs"]] == [True, True]
    # check mode: the same probes, the same answers
    assert check(boxes, check_mode=True)[1]["ok"]


def test_a_black_hole_names_the_pair_and_the_largest_size_that_passed(boxes):
    b = boxes["node2"]
    b.run("ip", "link", "set", "eth0", "mtu", "1400")
    try:
        results, built = check(boxes)
    finally:
        b.run("ip", "link", "set", "eth0", "mtu", "1500")
    assert not built["ok"]
    for src, dst in (("node1", "node2"), ("node2", "node1")):
        found = pair(built, src, dst)
        assert found["cell"] == "MTU", built["matrix"]
        # 1400 on the wire is 1350 inside (VXLAN's 50 bytes); a veth lets a VLAN tag's
        # 4 bytes past its MTU
        largest = found["paths"][0]["largest"]
        assert 1350 <= largest <= 1354, found
        assert "a 1450-byte packet with DF set is lost" in " ".join(found["why"])
        assert "the largest that passed was %d bytes" % largest in " ".join(found["why"])
    assert check(boxes)[1]["ok"]


def test_probes_set_dont_fragment_so_a_device_mtu_below_the_overlays_shows(boxes):
    a = boxes["node1"]
    a.run("ip", "link", "set", "flannel.1", "mtu", "1400")
    try:
        results, built = check(boxes)
    finally:
        assert a.module("weft.overlay.host", host_args("node1"))["changed"]
    [path] = results["node1"]["paths"]
    assert (path["reachable"], path["mtu_ok"]) == (True, False), path
    assert path["error"] == "a 1450-byte packet does not fit this host's own device MTU"
    assert any(line.startswith("vxlan: ") for line in results["node1"]["drift"])
    assert pair(built, "node1", "node2")["cell"] == "MTU"
    assert check(boxes)[1]["ok"]


def test_a_firewall_dropping_one_peer_fails_that_pair(boxes):
    b = boxes["node2"]
    b.run("nft", "add table inet weft-test; add chain inet weft-test in "
          "{ type filter hook prerouting priority -400; }; "
          "add rule inet weft-test in ip saddr 10.9.0.1 udp dport 8472 drop")
    try:
        results, built = check(boxes)
    finally:
        b.run("nft", "delete", "table", "inet", "weft-test")
    assert [pair(built, *p)["cell"] for p in (("node1", "node2"), ("node2", "node1"))] == \
        ["LOST", "LOST"], built["matrix"]
    why = " ".join(pair(built, "node1", "node2")["why"])
    assert "no reply to 3 of 3 echoes (100.96.1.0 -> 100.96.2.0)" in why
    assert "a firewall dropping the encapsulation port" in why
    assert results["node2"]["drift"] == []
    assert any(line.startswith("node1 -> node2: ") for line in built["failures"])
    assert check(boxes)[1]["ok"]


def test_drift_is_reported_as_what_a_repair_would_do(boxes):
    a = boxes["node1"]
    a.run("ip", "route", "del", "100.96.2.0/24")
    [mac] = [line.split()[0] for line in a.run("bridge", "fdb", "show", "dev", "flannel.1")
             .stdout.splitlines() if "dst 10.9.0.2" in line]
    a.run("bridge", "fdb", "del", mac, "dev", "flannel.1", "dst", "10.9.0.2")
    try:
        results, built = check(boxes)
    finally:
        assert a.module("weft.overlay.host", host_args("node1"))["changed"]
    drift = results["node1"]["drift"]
    assert any(line.startswith("routes: added 100.96.2.0/24") for line in drift), drift
    assert any(line.startswith("fdb: added %s" % mac) for line in drift), drift
    assert pair(built, "node1", "node2")["cell"] == "LOST"
    assert any(line.startswith("node1: drift: routes: added") for line in built["failures"])
    assert "IPv4: no echo could be sent (100.96.1.0 -> 100.96.2.0): cannot send: Network is " \
        "unreachable" in " ".join(pair(built, "node1", "node2")["why"])
    assert results["node2"]["drift"] == []
    assert check(boxes)[1]["ok"]


def test_a_host_whose_address_changed_says_so(boxes):
    a = boxes["node1"]
    a.run("ip", "addr", "add", "10.9.5.1/24", "dev", "eth0")
    a.run("ip", "addr", "del", "10.9.0.1/24", "dev", "eth0")
    try:
        results, built = check(boxes)
    finally:
        a.run("ip", "addr", "add", "10.9.0.1/24", "dev", "eth0")
        a.run("ip", "addr", "del", "10.9.5.1/24", "dev", "eth0")
        a.module("weft.overlay.host", host_args("node1"))   # the vxlan device followed its address away
    assert results["node1"]["underlay"] == [
        "eth0 no longer holds 10.9.0.1, which this host's lease announces (it has 10.9.5.1): "
        "re-run site.yml"]
    assert "node1: underlay: eth0 no longer holds 10.9.0.1" in " ".join(built["failures"])
    assert not built["ok"] and results["node2"]["underlay"] == []
    assert check(boxes)[1]["ok"]


def test_an_unconverged_or_unreachable_host_fails_its_pairs(boxes, tmp_path):
    missing = boxes["node1"].module("weft.overlay.check", {"record": "/etc/weft/no-such.json"})
    assert (missing["converged"], missing["failed"]) == (False, False)
    results, _ = check(boxes)
    results["node2"] = {"unreachable": True, "msg": "Failed to connect to the host via ssh"}
    built = report.build(results)
    assert not built["ok"] and pair(built, "node1", "node2")["cell"] == "?"
    assert "node2 did not answer (unreachable: Failed to connect" in built["failures"][0]
    # the report module writes its JSON where asked, and says the same
    out = tmp_path / "check.json"
    written = run_ansible_module("weft.overlay.check_report", {"results": results, "json_path": str(out)})
    assert not written["ok"] and json.loads(out.read_text())["failures"] == built["failures"]
