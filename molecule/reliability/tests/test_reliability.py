"""What a production network must survive after the first converge, tested on lab nodes.

The tests run in file order on one converged lab (pytest keeps definition order):
drift repaired by site.yml (and shown by a dry run) with weft-heal off, then by weft-heal
alone, check.yml (a full matrix, then a firewalled pair, an MTU black hole, drift with
weft-heal stopped and a powered-off node, each named), weft's metrics served by
prometheus-node-exporter, a removed host, a public-IP change, interface rules for the group on a second NIC
and a VLAN-like interface, a node behind a 1:1 NAT (vxlan, udp, host-gw's refusal), the
bad-input matrix, masquerade on and off, TX checksum
offload off and on, EnableNFTables on a node without iptables, a run killed half-way, a
dockerd start that fails once,
then uninstall. (Reboots: the lifecycle scenario, every backend.)
Each re-runs the project's playbooks the way a user would and checks the nodes.
"""

import base64
import difflib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

import overlay as lab
from overlay import EPHEMERAL, INVENTORY, host, leases, playbook

NODES = lab.NODES
NETNS = "weftlab-%s"


def peer_view(node):
    """What `node` knows of its peers: neighbours, FDB entries and weft's routes."""
    h = host(node)
    neigh = sorted(h.check_output("ip neigh show dev flannel.1 nud permanent").splitlines())
    fdb = sorted(line for line in h.check_output("bridge fdb show dev flannel.1").splitlines()
                 if " dst " in line)
    routes = sorted(h.check_output("ip route show proto 119").splitlines())
    return neigh, fdb, routes


SNAPSHOT = " ; echo @@ ; ".join([
    "ip link show; ip -d link show type vxlan; ip -4 addr show",
    "ip route show table all", "ip neigh show nud permanent",
    "bridge fdb show | grep -E ' (permanent|static)'",
    "iptables-save | grep -v '^#' | sed 's/\\[[0-9:]*\\]//'",
    "nft list table inet weft 2>/dev/null | sed 's/packets [0-9]* bytes [0-9]*//'",
    "cat /etc/docker/daemon.json /run/flannel/subnet.env /etc/weft/host.json"])


def snapshot(node):
    """Everything weft manages on a node, to prove a refused run changed nothing (one
    round trip). ip -d for the VXLAN devices only: a bridge's details include running
    timers; IPv4 addresses only: a device re-created a moment ago still has a tentative
    IPv6 one; FDB entries that are set (permanent, static), not those a bridge learned
    from traffic; nft without its counters, which count traffic."""
    return tuple(host(node).check_output(SNAPSHOT).split("@@"))


def snapshot_diff(before, after):
    """The differing parts of two lab.on_all(snapshot) results, as unified diffs."""
    return "\n".join(
        "".join(difflib.unified_diff(b.splitlines(True), a.splitlines(True), node, node))
        for node in before for b, a in zip(before[node], after[node]) if a != b)


def settled_snapshot(node, attempts=10):
    """A snapshot once two taken a second apart agree: a device the previous run re-created
    may still be settling (link-local addresses, carrier), which is not weft's doing."""
    last = snapshot(node)
    for _ in range(attempts):
        time.sleep(1)
        now = snapshot(node)
        if now == last:
            return now
        last = now
    return last


def inventory_without(tmp_path, removed):
    """A copy of Molecule's inventory in which `removed` left the group weft_nodes."""
    source = os.path.dirname(INVENTORY)
    target = tmp_path / "inventory"
    shutil.copytree(source, target)
    path = target / os.path.basename(INVENTORY)
    doc = yaml.safe_load(path.read_text())
    doc["weft_nodes"]["hosts"].pop(removed)
    path.write_text(yaml.safe_dump(doc))
    return str(target)


def make_drift():
    """Delete a route, a neighbour and an FDB entry on node1, node2's device and a chain."""
    n1, n2 = host("node1"), host("node2")
    lease2 = leases()["node2"]
    n1.check_output("ip route del %s" % lease2["subnet"])
    n1.check_output("ip neigh del %s dev flannel.1" % lease2["subnet"].split("/")[0])
    n1.check_output("bridge fdb del %s dev flannel.1 dst %s"
                    % (lease2["backend_data"]["vtep_mac"], lease2["public_ip"]))
    n2.check_output("ip link del flannel.1")
    n2.check_output("iptables -F WEFT-FWD")


def test_drift_is_shown_by_a_dry_run_and_restored_by_site_yml():
    """With weft-heal off, drift stays until the next run, and a dry run shows it honestly."""
    playbook("weft.overlay.site", extra={"weft_heal_interval": 0})
    assert host("node1").check_output("systemctl show -p ActiveState --value weft-heal") != "active"
    before = {node: peer_view(node) for node in NODES}
    make_drift()
    time.sleep(2)
    assert peer_view("node1") != before["node1"]  # nothing repaired it

    _, out, changed = playbook("weft.overlay.site", extra={"weft_heal_interval": 0},
                               flags=("--check", "--diff"))
    assert changed["node1"] > 0 and changed["node2"] > 0 and changed["node3"] == 0
    assert "+%s via" % leases()["node2"]["subnet"] in out
    assert peer_view("node1") != before["node1"]  # the dry run changed nothing

    _, _, changed = playbook("weft.overlay.site", extra={"weft_heal_interval": 0})
    assert changed["node1"] > 0 and changed["node2"] > 0 and changed["node3"] == 0
    assert {node: peer_view(node) for node in NODES} == before
    assert "weft forward" in host("node2").check_output("iptables -S WEFT-FWD")
    _, _, changed = playbook("weft.overlay.site", extra={"weft_heal_interval": 0})
    assert set(changed.values()) == {0}


def test_weft_heal_repairs_drift_without_ansible():
    playbook("weft.overlay.site")  # weft-heal on again (the default)
    before = {node: peer_view(node) for node in NODES}
    make_drift()
    host("node3").check_output("nft flush ruleset")  # a firewall reload: every table gone
    deadline = time.time() + 60
    while time.time() < deadline:
        if {node: peer_view(node) for node in NODES} == before and \
                "weft forward" in host("node2").run("iptables -S WEFT-FWD").stdout and \
                "WEFT-POSTRTG" in host("node3").check_output("iptables-save -t nat") and \
                "table inet weft" in host("node3").check_output("nft list tables"):
            break
        time.sleep(1)
    else:
        pytest.fail("not repaired within 60 s: %s" % host("node1").check_output(
            "journalctl -u weft-heal --no-pager -n 20"))
    print("repaired in %.1f s" % (60 - (deadline - time.time())))
    journal = host("node1").check_output("journalctl -u weft-heal --no-pager")
    assert "repaired routes: added %s" % leases()["node2"]["subnet"] in journal
    assert "repaired vxlan: changed" in host("node2").check_output("journalctl -u weft-heal --no-pager")
    _, _, changed = playbook("weft.overlay.site")
    assert set(changed.values()) == {0}  # nothing left for Ansible


CHECK_JSON = os.path.join(EPHEMERAL, "weft-check.json")


def check_play(nodes=NODES, flags=(), extra=None):
    """check.yml as a user runs it: (its JSON report, its output); the nodes' state is
    the same before and after, and no task reports a change."""
    before = lab.on_all(snapshot, nodes)
    if os.path.exists(CHECK_JSON):
        os.unlink(CHECK_JSON)
    rc, out, changed = playbook("weft.overlay.check", extra=dict(extra or {}, weft_check_json=CHECK_JSON),
                                check=False, flags=flags)
    after = lab.on_all(snapshot, nodes)
    assert after == before, snapshot_diff(before, after)
    assert {changed.get(node, 0) for node in nodes} == {0}, out[-3000:]
    assert os.path.exists(CHECK_JSON), out[-3000:]
    with open(CHECK_JSON) as handle:
        report = json.load(handle)
    assert (rc == 0) == report["ok"], out[-3000:]
    return report, out


def failing(report):
    """{(from, to): cell} of the pairs that failed."""
    return {(p["from"], p["to"]): p["cell"] for p in report["pairs"] if not p["ok"]}


def pairs_with(node):
    return {pair for pair in ((a, b) for a in NODES for b in NODES if a != b) if node in pair}


def test_check_yml_passes_with_a_full_matrix_and_changes_nothing():
    playbook("weft.overlay.site")
    report, out = check_play()
    assert report["ok"] and len(report["pairs"]) == 6, report["matrix"]
    assert all(float(p["cell"]) > 0 for p in report["pairs"]), report["matrix"]
    assert "read-only: nothing was changed on any host" in out
    assert "all 6 ordered pairs work" in out
    for result in report["results"].values():
        assert result["drift"] == [] and result["underlay"] == []
        assert all(path["mtu_ok"] and path["mtu"] == lab.MTU["vxlan"] for path in result["paths"])
    report, _ = check_play(flags=("--check",))      # the same in check mode
    assert report["ok"]


def test_check_yml_probes_from_containers_and_names_a_host_that_does_not_forward():
    lab.start_containers()
    lab.on_all(settled_snapshot)    # new containers' veths settle first (not the check's doing)
    n2 = host("node2")
    try:
        report, _ = check_play(extra={"weft_check_container": "weft-verify"})
        assert report["ok"], report["failures"]
        for result in report["results"].values():
            assert all(path["container"]["reachable"] and path["container"]["mtu_ok"]
                       for path in result["paths"]), result["paths"]
        # node2 drops what its containers send on: only its own pairs fail, as FWD
        subnet = leases()["node2"]["subnet"]
        n2.check_output("iptables -I FORWARD 1 -s %s -j DROP" % subnet)
        try:
            report, out = check_play(extra={"weft_check_container": "weft-verify"})
        finally:
            n2.check_output("iptables -D FORWARD -s %s -j DROP" % subnet)
        assert failing(report) == {("node2", "node1"): "FWD", ("node2", "node3"): "FWD"}, out
        assert "though the host itself reaches it" in " ".join(report["failures"])
        missing = check_play(extra={"weft_check_container": "no-such-container"})[0]
        assert not missing["ok"]
        assert "no running container 'no-such-container' on this host (tried docker, podman)" \
            in " ".join(report_line for report_line in missing["failures"]), missing["failures"]
    finally:
        for node in NODES:
            host(node).run("docker rm -f weft-verify")


def test_check_yml_names_the_pair_a_firewall_drops_vxlan_between():
    n2 = host("node2")
    n2.check_output("nft 'add table inet weft-test; add chain inet weft-test in "
                    "{ type filter hook prerouting priority -400; }; add rule inet weft-test in "
                    "ip saddr %s udp dport 8472 drop'" % lab.node_ip("node1"))
    try:
        report, out = check_play()
    finally:
        n2.check_output("nft delete table inet weft-test")
    assert failing(report) == {("node1", "node2"): "LOST", ("node2", "node1"): "LOST"}, out
    assert "no reply to 3 of 3 echoes" in " ".join(report["failures"])
    assert "firewall dropping the encapsulation port" in " ".join(report["failures"])
    assert check_play()[0]["ok"]


def test_check_yml_finds_an_mtu_black_hole_and_the_largest_size_that_passed():
    n3 = host("node3")
    n3.check_output("ip link set eth0 mtu 1400")
    try:
        report, out = check_play()
    finally:
        n3.check_output("ip link set eth0 mtu 1500")
    assert failing(report) == {pair: "MTU" for pair in pairs_with("node3")}, out
    for pair in report["pairs"]:
        if "node3" in (pair["from"], pair["to"]):
            # 1400 on the wire is 1350 inside VXLAN; a veth lets 4 bytes (a VLAN tag) past
            assert 1350 <= pair["paths"][0]["largest"] <= 1354, pair
            assert "the largest that passed was %d bytes" % pair["paths"][0]["largest"] \
                in " ".join(pair["why"])
    assert check_play()[0]["ok"]


def test_check_yml_shows_drift_while_weft_heal_is_stopped():
    n1 = host("node1")
    lease2 = leases()["node2"]
    n1.check_output("systemctl stop weft-heal")
    try:
        n1.check_output("ip route del %s" % lease2["subnet"])
        n1.check_output("bridge fdb del %s dev flannel.1 dst %s"
                        % (lease2["backend_data"]["vtep_mac"], lease2["public_ip"]))
        report, out = check_play()
    finally:
        n1.check_output("systemctl start weft-heal")
    assert failing(report) == {("node1", "node2"): "LOST", ("node2", "node1"): "LOST"}, out
    own = report["hosts"]["node1"]
    assert any(line.startswith("drift: routes: added %s" % lease2["subnet"]) for line in own), own
    assert any(line.startswith("drift: fdb: added %s" % lease2["backend_data"]["vtep_mac"])
               for line in own), own
    assert report["hosts"]["node2"] == [] and report["hosts"]["node3"] == []
    _, _, changed = playbook("weft.overlay.site")        # the fix the README gives
    assert changed["node1"] > 0
    assert check_play()[0]["ok"]


def test_check_yml_names_every_pair_of_a_powered_off_host():
    lab.reboot("node3", command="poweroff")
    try:
        report, out = check_play(nodes=["node1", "node2"])
    finally:
        lab.reboot("node3", command="poweron")
    assert failing(report) == {pair: "?" for pair in pairs_with("node3")}, out
    assert "node3 did not answer (unreachable" in " ".join(report["failures"])
    deadline = time.time() + 60     # weft-restore brings it back at boot
    while True:
        settled_snapshot("node3")
        report, _ = check_play()
        if report["ok"]:
            break
        assert time.time() < deadline, report["failures"]


def scrape(node):
    """{series: value} of weft's series on the node's prometheus-node-exporter (port 9100)."""
    with urllib.request.urlopen("http://%s:9100/metrics" % lab.node_ip(node), timeout=5) as page:
        lines = page.read().decode().splitlines()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in lines if line.startswith("weft_")}


def test_node_exporter_serves_weft_metrics_and_counts_a_strangers_datagrams():
    """Debian's prometheus-node-exporter, started on node1 with its defaults, serves the
    file weft-heal writes; a non-peer's datagrams to 8472 show in the ingress drop counter."""
    playbook("weft.overlay.site", extra={"weft_heal_interval": 5,       # metrics every 5 s here
                                         "weft_metrics_file": "/var/lib/prometheus/node-exporter/weft.prom"})
    n1 = host("node1")
    n1.check_output("systemctl start prometheus-node-exporter")
    try:
        deadline = time.time() + 30
        while True:
            try:
                series = scrape("node1")
                if series.get("weft_heal_passes_total", 0) >= 1:
                    break
            except OSError:
                pass
            assert time.time() < deadline, "no weft_ series on node1:9100 within 30 s"
            time.sleep(1)
        for peer in ("node2", "node3"):
            assert series['weft_path_up{family="ipv4",peer="%s"}' % peer] == 1, series
            assert series['weft_path_rtt_seconds{family="ipv4",peer="%s"}' % peer] > 0, series
        assert series['weft_peers{family="ipv4"}'] == 2
        assert any(key.startswith("weft_info{backend=\"vxlan\"") for key in series), series
        drops = 'weft_ingress_dropped_packets_total{reason="not_a_peer"}'
        before = series[drops]
        lab.Outsider().send(lab.node_ip("node1"), 8472, [b"\0" * 16] * 5)
        deadline = time.time() + 30
        while scrape("node1")[drops] < before + 5:
            assert time.time() < deadline, "the drop counter did not rise within 30 s"
            time.sleep(1)
    finally:
        n1.check_output("systemctl stop prometheus-node-exporter")
        playbook("weft.overlay.site")


def test_removed_host_leaves_every_peer_and_keeps_its_lease(tmp_path):
    lease3 = leases()["node3"]
    _, _, changed = playbook("weft.overlay.site", inventory=inventory_without(tmp_path, "node3"))
    assert "node3" not in changed and changed["node1"] > 0 and changed["node2"] > 0
    for node in ("node1", "node2"):
        neigh, fdb, routes = peer_view(node)
        text = "\n".join(neigh + fdb + routes)
        assert lease3["subnet"] not in text and lease3["public_ip"] not in text
        assert lease3["backend_data"]["vtep_mac"] not in text
    assert leases()["node3"] == lease3  # kept until pruned
    playbook("weft.overlay.site")  # node3 comes back with its old subnet
    assert leases()["node3"] == lease3
    assert lease3["subnet"] in "\n".join(peer_view("node1")[2])


def test_public_ip_change_keeps_the_subnet_and_leaves_no_stale_entry(tmp_path):
    old = leases()["node3"]
    ns = NETNS % "node3"
    # Delete first: removing a primary address also removes its secondaries.
    subprocess.run(["ip", "-n", ns, "addr", "del", "10.168.0.4/24", "dev", "eth0"], check=True)
    subprocess.run(["ip", "-n", ns, "addr", "add", "10.168.0.44/24", "dev", "eth0"], check=True)
    try:
        inventory = tmp_path / "inventory"
        shutil.copytree(os.path.dirname(INVENTORY), inventory)
        path = inventory / os.path.basename(INVENTORY)
        doc = yaml.safe_load(path.read_text())
        # The same machine at a new address: its recorded host key, by its old address.
        doc["all"]["hosts"]["node3"].update(
            ansible_host="10.168.0.44",
            ansible_ssh_common_args=lab.SSH_COMMON_ARGS + " -o HostKeyAlias=10.168.0.4")
        path.write_text(yaml.safe_dump(doc))
        playbook("weft.overlay.site", inventory=str(inventory))
        new = leases()["node3"]
        assert new["subnet"] == old["subnet"] and new["public_ip"] == "10.168.0.44"
        for node in ("node1", "node2"):
            fdb = "\n".join(peer_view(node)[1])
            assert "%s dst 10.168.0.44" % old["backend_data"]["vtep_mac"] in fdb
            assert "dst 10.168.0.4 " not in fdb + " "
    finally:
        subprocess.run(["ip", "-n", ns, "addr", "del", "10.168.0.44/24", "dev", "eth0"], check=False)
        subprocess.run(["ip", "-n", ns, "addr", "add", "10.168.0.4/24", "dev", "eth0"], check=False)
    playbook("weft.overlay.site")
    assert leases()["node3"]["public_ip"] == "10.168.0.4"


SECOND_NIC = "ens5"      # each node's second NIC, on a lab bridge of its own ...
VLAN = "ens5.100"        # ... and an interface stacked on it, as a VLAN would be
SECOND_BRIDGE = "weftlab-nic2"


def add_second_nic_and_vlan():
    """Give every node a second NIC (10.169.0.N/24) on a bridge of its own and, stacked on
    it, "ens5.100" (10.170.0.N/24). This kernel has no 802.1Q (CONFIG_VLAN_8021Q), so a
    macvlan named as the VLAN stands in: the rules see names, addresses and routes."""
    remove_second_nic_and_vlan()
    subprocess.run(["ip", "link", "add", SECOND_BRIDGE, "type", "bridge"], check=True)
    subprocess.run(["ip", "link", "set", SECOND_BRIDGE, "up"], check=True)
    for number, node in enumerate(NODES, start=2):
        ns, outer = NETNS % node, "wl2-%s" % node
        for cmd in (["ip", "link", "add", outer, "type", "veth", "peer", "name", SECOND_NIC,
                     "netns", ns],
                    ["ip", "link", "set", outer, "master", SECOND_BRIDGE, "up"],
                    ["ip", "-n", ns, "link", "add", "link", SECOND_NIC, "name", VLAN, "type",
                     "macvlan", "mode", "bridge"],
                    ["ip", "-n", ns, "addr", "add", "10.169.0.%d/24" % number, "dev", SECOND_NIC],
                    ["ip", "-n", ns, "addr", "add", "10.170.0.%d/24" % number, "dev", VLAN],
                    ["ip", "-n", ns, "link", "set", SECOND_NIC, "up"],
                    ["ip", "-n", ns, "link", "set", VLAN, "up"]):
            subprocess.run(cmd, check=True)


def remove_second_nic_and_vlan():
    for node in NODES:  # the node's end goes with its peer, the VLAN with its NIC
        subprocess.run(["ip", "link", "del", "wl2-%s" % node], capture_output=True)
    subprocess.run(["ip", "link", "del", SECOND_BRIDGE], capture_output=True)


def vxlan_underlay(node):
    """(device, local address) of node's flannel.1, as ip -d shows them."""
    words = host(node).check_output("ip -d link show flannel.1").split()
    return words[words.index("dev") + 1], words[words.index("local") + 1]


@pytest.mark.parametrize("rules, device, network", [
    ({"weft_iface_regex": ["^wlan", "^ens5\\.100$"]}, VLAN, "10.170.0"),
    ({"weft_iface_can_reach": "10.169.0.254"}, SECOND_NIC, "10.169.0"),
    ({"weft_iface_regex": ["^10\\.169\\."], "weft_iface_can_reach": "10.170.0.254"},
     SECOND_NIC, "10.169.0"),
], ids=["regex picks the VLAN", "can-reach picks the second NIC", "regex before can-reach"])
def test_interface_rules_for_the_group_pick_the_underlay_on_every_node(rules, device, network):
    """Rules for the whole group (no per-host weft_iface): every node's underlay, lease and
    VXLAN device follow them, containers reach each other over that network, a second run
    changes nothing; then the inventory's weft_iface again."""
    add_second_nic_and_vlan()
    try:
        extra = dict(rules, weft_iface=[])
        playbook("weft.overlay.site", extra=extra)
        for number, node in enumerate(NODES, start=2):
            address = "%s.%d" % (network, number)
            assert leases()[node]["public_ip"] == address, leases()[node]
            assert vxlan_underlay(node) == (device, address)
            fdb = "\n".join(peer_view(node)[1])
            assert all(" dst %s." % network in line for line in fdb.splitlines()), fdb
        lab.check_containers_reach_each_other(lab.start_containers())
        _, _, changed = playbook("weft.overlay.site", extra=extra)
        assert set(changed.values()) == {0}
    finally:
        lab.on_all(lambda node: host(node).run("docker rm -f weft-verify"))
        playbook("weft.overlay.site")  # back to eth0 before the NICs go
        remove_second_nic_and_vlan()
    for node in NODES:
        assert vxlan_underlay(node) == ("eth0", lab.node_ip(node))


NAT_PUBLIC = "10.168.0.204"  # node3's address at its 1:1 NAT, on the lab's underlay


@pytest.fixture(scope="class")
def node3_behind_nat(tmp_path_factory):
    """node3 behind a 1:1 NAT (weftlab's router owns NAT_PUBLIC and maps it to node3's
    private ens6 address both ways); an inventory in which node3 says so, as a cloud VM
    with an elastic address would: weft_iface names the NIC, weft_public_ip the NAT's
    address. Afterwards: the inventory's network again, then the NAT goes."""
    _, nic, private = subprocess.run([sys.executable, lab.LAB, "nat", "node3", NAT_PUBLIC],
                                     check=True, capture_output=True, text=True).stdout.split()
    inventory = tmp_path_factory.mktemp("nat") / "inventory"
    shutil.copytree(os.path.dirname(INVENTORY), inventory)
    (inventory / "host_vars").mkdir(exist_ok=True)
    (inventory / "host_vars" / "node3.yml").write_text(yaml.safe_dump(
        {"weft_iface": nic, "weft_public_ip": NAT_PUBLIC}))
    try:
        yield str(inventory), nic, private
    finally:
        lab.on_all(lambda node: host(node).run("docker rm -f weft-verify"))
        playbook("weft.overlay.site")  # node3 back on eth0 before its NAT goes
        subprocess.run([sys.executable, lab.LAB, "nat", "--remove"], check=True)
        assert vxlan_underlay("node3") == ("eth0", lab.node_ip("node3"))


class TestANodeBehindA1to1Nat:
    """Peers send to the NAT's address (the lease's); node3 binds and sends from its
    interface's own address, which the NAT maps; peer-only ingress accepts what arrives
    (the NAT'd source is the lease's address). host-gw refuses, as Flannel does."""

    def test_host_gw_refuses_it_before_any_host_changes(self, node3_behind_nat):
        inventory, nic, private = node3_behind_nat
        before = {node: settled_snapshot(node) for node in NODES}
        rc, out, changed = playbook("weft.overlay.site", inventory=inventory, check=False, extra={
            "weft_network": {"Network": "100.96.0.0/16", "Backend": {"Type": "host-gw"}}})
        assert rc != 0 and ("of node3: public_ip: %s is not on this host (its interface %s "
                            "has %s), so it is a NAT's address, and the host-gw backend "
                            "routes" % (NAT_PUBLIC, nic, private)) in out, out[-3000:]
        assert set(changed.values()) <= {0}
        assert lab.on_all(snapshot) == before

    @pytest.mark.parametrize("backend", ["vxlan", "udp"])
    def test_containers_reach_each_other_through_the_nat(self, node3_behind_nat, backend):
        inventory, nic, private = node3_behind_nat
        extra = {"weft_network": {"Network": "100.96.0.0/16", "Backend": {"Type": backend}}}
        playbook("weft.overlay.site", inventory=inventory, extra=extra)
        assert leases()["node3"]["public_ip"] == NAT_PUBLIC
        n3 = host("node3")
        if backend == "vxlan":
            assert vxlan_underlay("node3") == (nic, private)
            for node in ("node1", "node2"):
                fdb = "\n".join(peer_view(node)[1])
                assert " dst %s " % NAT_PUBLIC in fdb + " ", fdb
        else:
            assert json.loads(n3.file("/etc/weft/udpd.json").content_string)["listen"] == private
            assert "%s:8285" % private in n3.check_output("ss -Hulnp")
        dropped = {node: lab.nft_counters(lab.state(node)).get("not_a_peer") for node in NODES}
        lab.check_containers_reach_each_other(lab.start_containers())
        assert {node: lab.nft_counters(lab.state(node)).get("not_a_peer") for node in NODES} \
            == dropped
        _, _, changed = playbook("weft.overlay.site", inventory=inventory, extra=extra)
        assert set(changed.values()) == {0}
        lab.on_all(lambda node: host(node).run("docker rm -f weft-verify"))


BAD_INPUT = [
    ({"weft_network": {"Network": "100.96.0.0/33"}}, "weft_network.Network: '100.96.0.0/33'"),
    ({"weft_network": {"Network": "100.96.0.0/16", "SubnetLen": 31}}, "weft_network.SubnetLen: 31"),
    ({"weft_network": {"Network": "10.168.0.0/16"}}, "lies inside the overlay Network"),
    ({"weft_network": {"Network": "100.96.0.0/16", "Backend": {"Type": "ipip"}}},
     "weft_network.Backend.Type: 'ipip'"),
    ({"weft_network": {"Network": "100.96.0.0/16", "Backend": {"VNI": 0}}}, "weft_network.Backend.VNI: 0"),
    ({"weft_iface": "eth9"}, "weft_public_ipv6 of node1: no interface matches the underlay rules; "
     "tried iface eth9: no device named eth9"),
    ({"weft_iface": [], "weft_iface_regex": ["^eth9", "("]}, "iface_regex: '(' is not a regular expression"),
    ({"weft_iface": [], "weft_iface_regex": ["^wlan"], "weft_iface_can_reach": "100.64.0.1"},
     "tried iface_regex ^wlan: no interface's name or global IPv4 address matches; "
     "iface_can_reach 100.64.0.1: no route to it (Network is unreachable)"),
    ({"weft_iface_can_reach": "node2"}, "iface_can_reach: 'node2' is not an IP address"),
    ({"weft_iface": [], "weft_public_ip": "10.168.0.99"},
     "public_ip: 10.168.0.99 is not an address of this host; behind a 1:1 NAT"),
    ({"weft_public_ip": "10.168.0.99"},   # a NAT's address (weft_iface names the NIC), twice
     "weft_public_ip of node2: 10.168.0.99 is also the public IP of node1"),
    ({"weft_subnet": "100.97.0.0/24"}, "weft_subnet of node1: 100.97.0.0/24 is outside"),
    ({"weft_prune": "perhaps"}, "weft_prune"),
    ({"weft_manage_docker": "banana"}, "weft_manage_docker"),
    ({"weft_route_protocol": "many"}, "weft_route_protocol"),
    ({"weft_network": "100.96.0.0/16"}, "weft_network"),
]


@pytest.fixture(scope="module")
def untouched():
    """The nodes and the lease file before the bad-input runs, once they have settled."""
    return ({node: settled_snapshot(node) for node in NODES},
            open(os.path.join(EPHEMERAL, "weft_leases.yml")).read())


@pytest.mark.parametrize("extra, message", BAD_INPUT, ids=[m for _, m in BAD_INPUT])
def test_bad_input_stops_before_any_host_changes(untouched, extra, message):
    before, lease_text = untouched
    rc, out, changed = playbook("weft.overlay.site", extra=extra, check=False)
    assert rc != 0 and message in out, out[-3000:]
    assert set(changed.values()) <= {0}
    after = lab.on_all(snapshot)
    assert after == before, snapshot_diff(before, after)
    assert open(os.path.join(EPHEMERAL, "weft_leases.yml")).read() == lease_text


def test_masquerade_chain_follows_weft_ip_masq_and_its_random_ports():
    n1 = host("node1")
    playbook("weft.overlay.site", extra={"weft_ip_masq": False})
    assert "WEFT-POSTRTG" not in n1.check_output("iptables-save -t nat")
    assert "FLANNEL_IPMASQ=false" in n1.file("/run/flannel/subnet.env").content_string
    playbook("weft.overlay.site", extra={"weft_ip_masq_random_fully": False})
    chain = n1.check_output("iptables -t nat -S WEFT-POSTRTG")
    assert "-j MASQUERADE" in chain and "--random-fully" not in chain
    playbook("weft.overlay.site")
    assert "-A POSTROUTING -j WEFT-POSTRTG" in n1.check_output("iptables -t nat -S POSTROUTING")
    assert n1.check_output("iptables -t nat -S WEFT-POSTRTG").count("--random-fully") == 2


def tx_checksumming(node):
    return host(node).check_output("ethtool -k flannel.1 | grep '^tx-checksumming:'")


def test_vxlan_tx_checksum_offload_follows_its_variable_on_every_node():
    """The checksum workaround: off on every node's flannel.1 (ethtool reads it in the
    node), containers still reaching each other, a re-run changing nothing; on again."""
    off = {"weft_vxlan_tx_checksum_offload": False}
    playbook("weft.overlay.site", extra=off)
    assert {node: tx_checksumming(node) for node in NODES} == {node: "tx-checksumming: off" for node in NODES}
    try:
        lab.check_containers_reach_each_other(lab.start_containers())
    finally:
        lab.on_all(lambda node: host(node).run("docker rm -f weft-verify"))
    _, _, changed = playbook("weft.overlay.site", extra=off)
    assert set(changed.values()) == {0}
    playbook("weft.overlay.site")
    assert {node: tx_checksumming(node) for node in NODES} == {node: "tx-checksumming: on" for node in NODES}


NFTABLES_NETWORK = {"Network": "100.96.0.0/16", "Backend": {"Type": "vxlan"}, "EnableNFTables": True}
IPTABLES_AWAY = "/root/weft-test-iptables-away"
IPTABLES_PROGRAMS = "^(ip6?|arp|eb|x)tables"   # every program of iptables (and arptables, ebtables)


def hide_iptables(node):
    """Take every iptables program off the node, as on a host that ships none (RHEL 10):
    the node's root is copy-on-write, so this host keeps its own."""
    host(node).check_output("mkdir -p {0} && cd /usr/sbin && mv $(ls | grep -E '{1}') {0}/ && "
                            "mv /usr/bin/iptables-xml {0}/".format(IPTABLES_AWAY, IPTABLES_PROGRAMS))


def bring_iptables_back(node):
    host(node).run("test -d {0} && mv {0}/iptables-xml /usr/bin/; test -d {0} && "
                   "mv {0}/* /usr/sbin/ && rmdir {0}".format(IPTABLES_AWAY))


def weft_nft_tables(node):
    return sorted(line for line in host(node).check_output("nft list tables").splitlines()
                  if "weft-ipv" in line)


def test_enable_nftables_runs_the_network_on_a_node_without_iptables():
    """Flannel's EnableNFTables: weft's forward and masquerade chains in nftables and none
    in iptables, Docker off iptables; then node2 without any iptables program and every
    node power-cycled (Docker's rules from its iptables days go): weft-restore builds it all
    again, containers reach each other across every pair, a re-run changes nothing and
    weft-heal puts a deleted table back on node2. Then iptables again, leaving nothing of
    the nftables chains. The power cycle also shows TX checksum offload staying off across
    a boot (weft-restore sets it on the re-created device)."""
    extra = {"weft_network": NFTABLES_NETWORK, "weft_vxlan_tx_checksum_offload": False}
    playbook("weft.overlay.site", extra=extra)
    for node in NODES:
        assert "WEFT" not in host(node).check_output("iptables-save"), node
        assert weft_nft_tables(node) == ["table ip weft-ipv4"], node
        assert json.loads(host(node).file("/etc/docker/daemon.json").content_string)["iptables"] is False
    hide_iptables("node2")
    try:
        lab.reboot(*NODES)
        assert host("node2").run("command -v iptables || command -v iptables-nft").rc != 0
        assert {node: tx_checksumming(node) for node in NODES} == \
            {node: "tx-checksumming: off" for node in NODES}
        table = host("node2").check_output("nft list table ip weft-ipv4")
        assert "type nat hook postrouting priority srcnat" in table and "fully-random" in table
        lab.check_containers_reach_each_other(lab.start_containers())
        _, _, changed = playbook("weft.overlay.site", extra=extra)
        assert set(changed.values()) == {0}
        host("node2").check_output("nft delete table ip weft-ipv4")
        deadline = time.time() + 20  # an event wakes weft-heal (its timer: 60 s)
        while weft_nft_tables("node2") != ["table ip weft-ipv4"]:
            assert time.time() < deadline, "weft-heal did not put the table back"
            time.sleep(1)
    finally:
        lab.on_all(lambda node: host(node).run("docker rm -f weft-verify"))
        bring_iptables_back("node2")
    playbook("weft.overlay.site")
    for node in NODES:
        assert weft_nft_tables(node) == [], node
        assert "-A POSTROUTING -j WEFT-POSTRTG" in host(node).check_output("iptables-save")
        assert "iptables" not in json.loads(host(node).file("/etc/docker/daemon.json").content_string)
        assert tx_checksumming(node) == "tx-checksumming: on"


# A drop-in failing docker.service's next start once, as a transient dockerd failure does.
FAILS_ONCE = "/run/weft-test-docker-fails-once"
FAILS_ONCE_DROP_IN = "/run/systemd/system/docker.service.d/weft-test-fails-once.conf"
FAILS_ONCE_UNIT = """[Service]
ExecStartPre=/bin/sh -c 'if [ -e %s ]; then rm -f %s; exit 1; fi'
""" % (FAILS_ONCE, FAILS_ONCE)


def test_a_dockerd_start_that_fails_once_is_waited_for_and_named():
    """Docker's unit restarts a failed dockerd itself (Restart=on-failure): weft_host waits
    for that instead of failing the play, and says what failed."""
    n2 = host("node2")
    daemon_json = n2.file("/etc/docker/daemon.json").content_string
    try:
        n2.check_output("mkdir -p %s", os.path.dirname(FAILS_ONCE_DROP_IN))
        n2.check_output("echo %s | base64 -d > %s",
                        base64.b64encode(FAILS_ONCE_UNIT.encode()).decode(), FAILS_ONCE_DROP_IN)
        n2.check_output("systemctl daemon-reload && touch %s", FAILS_ONCE)
        # Drift that makes weft restart dockerd (weft-heal, stopped, would repair the file first).
        n2.check_output("systemctl stop weft-heal && echo '{}' > /etc/docker/daemon.json")
        _, out, changed = playbook("weft.overlay.site")
        assert changed == {"node1": 0, "node2": 1, "node3": 0}
        assert not n2.file(FAILS_ONCE).exists  # the start did fail once
        assert "dockerd failed its first start after the restart" in out
        assert "exit-code" in out  # systemd's reason, named
        assert n2.check_output("systemctl is-active docker") == "active"
        assert n2.file("/etc/docker/daemon.json").content_string == daemon_json
        lab.check_containers_reach_each_other(lab.start_containers())
    finally:
        n2.run("rm -f %s %s && systemctl daemon-reload", FAILS_ONCE, FAILS_ONCE_DROP_IN)


# Run on node1: wait for the VXLAN device weft_host creates, then stop (SIGSTOP) the process
# holding weft's apply lock and print its PID. A frozen host makes the kill below land while
# the run is half-way on every try; polling from here lost the race to a fast converge.
FREEZE_HALF_WAY = r"""
import os, signal, sys, time
deadline = time.time() + 240  # gone by itself if the test never gets there
while not os.path.exists("/proc/sys/net/ipv4/conf/flannel.1"):  # the node's /sys is not its own
    if time.time() > deadline:
        sys.exit("no flannel.1 within 240 s")
    time.sleep(0.002)
inode = os.stat("/run/weft/apply.lock").st_ino
for line in open("/proc/locks"):
    fields = line.split()
    if fields[1] == "FLOCK" and fields[5].endswith(":%d" % inode):
        os.kill(int(fields[4]), signal.SIGSTOP)
        print(fields[4], flush=True)
"""
FROZEN = "/run/weft-test-frozen"


def test_a_run_killed_half_way_converges_on_the_next_run():
    before = {node: peer_view(node) for node in NODES}
    playbook("weft.overlay.uninstall")
    n1 = host("node1")
    n1.check_output("rm -f %s; setsid python3 -c %s > %s 2>&1 < /dev/null &",
                    FROZEN, FREEZE_HALF_WAY, FROZEN)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(EPHEMERAL, "ansible.cfg"))
    proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
                             "weft.overlay.site", "-i", os.path.dirname(INVENTORY)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)
    frozen = ""
    try:
        # Kill the run, workers and all, while node1's weft_host is stopped between making
        # its VXLAN device and adding its peers, rules and files; then kill that process.
        deadline = time.time() + 180
        while not frozen.strip() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
            frozen = n1.run("cat %s", FROZEN).stdout
        assert frozen.strip().isdigit(), "node1 never reached the half-way point: %r" % frozen
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        if frozen.strip().isdigit():
            n1.run("kill -KILL %s", frozen.strip())
        n1.run("rm -f %s", FROZEN)
    assert n1.interface("flannel.1").exists
    assert not n1.file("/run/flannel/subnet.env").exists  # the run stopped before its files
    playbook("weft.overlay.site")
    assert {node: peer_view(node) for node in NODES} == before
    _, _, changed = playbook("weft.overlay.site")
    assert set(changed.values()) == {0}


def test_uninstall_removes_weft_and_nothing_else():
    n1 = host("node1")
    n1.check_output("ip route add 198.51.100.0/24 via 10.168.0.1 proto static")
    n1.check_output("iptables -A FORWARD -s 198.51.100.0/24 -j ACCEPT")
    try:
        playbook("weft.overlay.uninstall")
        for node in NODES:
            h = host(node)
            assert not h.interface("flannel.1").exists
            assert h.check_output("ip route show proto 119") == ""
            assert "WEFT" not in h.check_output("iptables-save")
            assert not h.file("/etc/docker/daemon.json").exists  # the lab had none before weft
            assert not h.file("/etc/systemd/system/weft-restore.service").exists
            assert not h.file("/etc/systemd/system/weft-heal.service").exists
            for path in ("/run/flannel/subnet.env", "/etc/weft", "/etc/sysctl.d/60-weft.conf"):
                assert not h.file(path).exists, path
        assert "198.51.100.0/24 via 10.168.0.1" in n1.check_output("ip route show proto static")
        assert "-A FORWARD -s 198.51.100.0/24 -j ACCEPT" in n1.check_output("iptables -S FORWARD")
        _, _, changed = playbook("weft.overlay.uninstall")
        assert set(changed.values()) == {0}
        before = leases()
        playbook("weft.overlay.site")
        assert leases() == before
        assert host("node1").interface("flannel.1").exists
    finally:
        n1.run("ip route del 198.51.100.0/24")
        n1.run("iptables -D FORWARD -s 198.51.100.0/24 -j ACCEPT")
