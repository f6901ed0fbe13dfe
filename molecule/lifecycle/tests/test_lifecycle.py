"""Every lifecycle step on every backend, on one lab of three nodes.

The tests run in file order on one lab (pytest keeps definition order), each a step a user
takes: the converged vxlan network; what strangers and peers may send; a reboot; uninstall
and site.yml again; then a switch to the next backend, and the same again. The switches
cover every ordered pair of backends. Every step is checked on every node.
"""

import concurrent.futures
import ipaddress
import json
import os
import sys
import time

import pytest

import overlay as lab

sys.path.insert(0, os.path.join(lab.PROJECT, "lab"))
import weftcode  # noqa: E402,F401  (lab/cni.py reads weft's CNI facts)
from cni import Network  # noqa: E402

NODES = lab.NODES


def network(backend):
    return {"Network": lab.NETWORK, "Backend": {"Type": backend}}


def site(backend, flags=(), **extra):
    """site.yml with this backend (and extra variables); {host: changed}."""
    return lab.playbook("weft.overlay.site", extra=dict(weft_network=network(backend), **extra),
                        flags=flags)[2]


def check_all(backend, runtime="docker"):
    """Every node holds the backend's state and nothing of another's; containers talk."""
    plan = lab.leases()
    states = lab.on_all(lab.state)
    for name in NODES:
        lab.check_converged(name, states[name], backend, plan, plan, runtime)
    check_containers(runtime, plan)


def check_containers(runtime, plan):
    """Docker's containers reach each other; with Docker and CNI on every node (podman on
    the CNI network), every container of either reaches every other, on its own node and
    across, each from its runtime's half of the node's subnet."""
    if runtime == "docker":
        lab.check_containers_reach_each_other(lab.start_containers())
        return
    endpoints = {}
    for kind, execute, ips in (("docker", lab.DOCKER, lab.start_containers()),
                               ("cni", lab.PODMAN, lab.start_pods())):
        for name, ip in ips.items():
            assert ipaddress.ip_address(ip) in ipaddress.ip_network(
                lab.runtime_subnets(plan[name]["subnet"], runtime)[kind]), (name, kind, ip)
            endpoints["%s %s" % (name, kind)] = (name, execute, ip)
    lab.check_reach(endpoints)


def fingerprint(st):
    """What a dry run must leave exactly as it was (no counters, no timestamps)."""
    return json.dumps({
        "links": sorted((link["ifname"], link.get("linkinfo", {}).get("info_kind"), link.get("mtu"))
                        for link in st["links"]),
        "addrs": sorted((a["ifname"], lab.addresses(st, a["ifname"])) for a in st["addrs"]),
        "routes": sorted(json.dumps(r, sort_keys=True) for r in lab.weft_routes(st)),
        "neigh": sorted((n["dst"], n.get("lladdr")) for n in st["neigh"]),
        "fdb": sorted((f["mac"], f.get("dst")) for f in st["fdb"] if "dst" in f),
        "iptables": sorted(line for line in st["iptables"].splitlines() if "WEFT" in line),
        "nft": [sorted(lab.nft_set(st, "peers4") or []), len(lab.nft_rules(st))],
        "files": st["files"], "unit_files": sorted(st["unit_files"]), "user": st["udpd_user"],
    }, sort_keys=True)


def switch(old, new):
    """From `old`, as every lease says: a dry run first (it changes nothing and reports the
    change), then the real run."""
    # (Flannel's udp leases leave BackendType empty)
    assert {lease["backend_type"] or "udp" for lease in lab.leases().values()} == {old}
    before = {name: fingerprint(st) for name, st in lab.on_all(lab.state).items()}
    dry = site(new, flags=("--check", "--diff"))
    assert all(dry[name] > 0 for name in NODES), dry
    assert {name: fingerprint(st) for name, st in lab.on_all(lab.state).items()} == before
    changed = site(new)
    assert all(changed[name] > 0 for name in NODES), changed
    assert set(site(new).values()) == {0}  # and the new backend is idempotent
    check_all(new)


def reboot_and_check(backend, name="node2", runtime="docker"):
    """A power cycle: weft-restore rebuilds the overlay (and the CNI bridge) before dockerd
    starts, unattended."""
    lab.reboot(name)
    h = lab.host(name)
    assert h.check_output("systemctl show -p Result --value weft-restore") == "success"
    restored = int(h.check_output("systemctl show -p ExecMainExitTimestampMonotonic --value weft-restore"))
    docker = int(h.check_output("systemctl show -p ExecMainStartTimestampMonotonic --value docker"))
    assert 0 < restored <= docker, "weft-restore finished after dockerd started"
    deadline = time.time() + 30
    while time.time() < deadline:  # the udp daemon and weft-heal start alongside Docker
        st = lab.state(name)
        if all(st["units"][u]["ActiveState"] == "active" for u in
               ["weft-heal"] + (["weft-udpd"] if backend == "udp" else [])):
            break
        time.sleep(1)
    lab.check_converged(name, st, backend, lab.leases(), lab.leases(), runtime)
    check_containers(runtime, lab.leases())
    assert set(site(backend, weft_runtime=runtime).values()) == {0}  # nothing left to do


def uninstall_and_again(backend, runtime="docker"):
    """Uninstall leaves nothing of weft; site.yml then gives every host its old subnet."""
    plan = lab.leases()
    lab.playbook("weft.overlay.uninstall")
    for name, st in lab.on_all(lab.state).items():
        lab.check_clean(name, st)
    assert set(lab.playbook("weft.overlay.uninstall")[2].values()) == {0}
    site(backend, weft_runtime=runtime)
    assert lab.leases() == plan
    check_all(backend, runtime)


# ---- vxlan --------------------------------------------------------------------------

def test_vxlan_converged():
    check_all("vxlan")


def injected(backend, target, plan, containers):
    """An ICMP echo for node2's container, as the overlay would carry it from node3."""
    inner = lab.icmp_echo("100.96.%s.77" % plan["node3"]["subnet"].split(".")[2], containers[target])
    if backend == "udp":
        return inner
    return lab.vxlan_frame(plan[target]["backend_data"]["vtep_mac"],
                           plan["node3"]["backend_data"]["vtep_mac"], inner)


def test_vxlan_accepts_only_its_peers():
    plan, containers = lab.leases(), lab.start_containers()
    target, outsider = "node2", lab.Outsider()
    frame = injected("vxlan", target, plan, containers)
    echoes = lab.container_icmp_echoes(target)
    # Protected (the default): nothing reaches the container, and the drops are counted.
    outsider.send(plan[target]["public_ip"], 8472, [frame] * 3)
    time.sleep(1)
    assert lab.container_icmp_echoes(target) == echoes
    assert lab.nft_counters(lab.state(target))["not_a_peer"] >= 3
    # A peer may not speak for another host's containers (inner source in node3's subnet).
    lab.host("node1").check_output(
        "python3 -c \"import socket,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); "
        "s.bind((sys.argv[1],0)); s.sendto(bytes.fromhex(sys.argv[2]),(sys.argv[3],8472))\" %s %s %s"
        % (plan["node1"]["public_ip"], frame.hex(), plan[target]["public_ip"]))
    time.sleep(1)
    assert lab.container_icmp_echoes(target) == echoes
    assert lab.nft_counters(lab.state(target))["inner_source"] == 1
    # Unprotected: the stranger's frame reaches the container, which answers it.
    site("vxlan", weft_peer_ingress=False)
    assert lab.state(target)["nft"] is None
    outsider.send(plan[target]["public_ip"], 8472, [frame] * 3)
    time.sleep(1)
    assert lab.container_icmp_echoes(target) == echoes + 3
    site("vxlan")


def test_vxlan_keeps_working_through_a_flood_from_a_stranger():
    plan, containers = lab.leases(), lab.start_containers(["node1", "node2"])
    before = lab.nft_counters(lab.state("node2"))["not_a_peer"]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pinging = pool.submit(lab.host("node1").run, "docker exec weft-verify ping -c 25 -i 0.2 -W 2 %s"
                              % containers["node2"])
        sent = lab.Outsider().flood(plan["node2"]["public_ip"], 8472, 6)
        result = pinging.result()
    assert "25 packets received" in result.stdout, result.stdout
    dropped = lab.nft_counters(lab.state("node2"))["not_a_peer"] - before
    print("flood: %d datagrams sent, %d dropped by the ingress table" % (sent, dropped))
    assert sent > 10000 and dropped >= 0.95 * sent


def test_vxlan_survives_a_reboot():
    reboot_and_check("vxlan")


def test_vxlan_uninstall_and_again():
    uninstall_and_again("vxlan")


# ---- host-gw ------------------------------------------------------------------------

def test_switch_vxlan_to_host_gw():
    switch("vxlan", "host-gw")


def test_host_gw_survives_a_reboot():
    reboot_and_check("host-gw")


def test_host_gw_uninstall_and_again():
    uninstall_and_again("host-gw")


# ---- udp ----------------------------------------------------------------------------

def test_switch_host_gw_to_udp():
    switch("host-gw", "udp")


def udpd_status(name):
    return json.loads(lab.host(name).check_output(
        "python3 /usr/local/lib/weft/weft-udpd status /etc/weft/udpd.json"))


FAST_PATH = (
    "/usr/bin/python3 -c \"import json, sys; "
    "sys.path.insert(0, '/usr/local/lib/weft/module_utils'); "
    "from weft.net import netlink, udp_fastpath; "
    "print(json.dumps(udp_fastpath.counters(netlink.Kernel())))\"")


def fast_path_counters(name):
    """What the node's kernel fast path carried (the installed code reads the maps)."""
    return json.loads(lab.host(name).check_output(FAST_PATH))


def test_udp_fast_path_carries_the_pings_and_the_daemon_its_share():
    before = {name: fast_path_counters(name) for name in NODES}
    lab.check_containers_reach_each_other(lab.start_containers())
    for name in NODES:
        after, status = fast_path_counters(name), udpd_status(name)
        assert "weft-udp-encap-" in lab.host(name).check_output(
            "tc filter show dev flannel0 egress"), name
        # Each node's container pinged the other two: at least those echoes left from the
        # kernel and their replies came in there.
        assert after["sent"] >= before[name]["sent"] + 2, (name, before[name], after)
        assert after["received"] >= before[name]["received"] + 2, (name, before[name], after)
        # The daemon still counts what it saw, and its sums still add up.
        assert status["tun_rx"] == status["udp_tx"] + sum(status["drops_out"].values())
        assert status["udp_rx"] == status["tun_tx"] + sum(status["drops_in"].values())


def test_udp_accepts_only_its_peers():
    plan, containers = lab.leases(), lab.start_containers()
    target, outsider = "node2", lab.Outsider()
    packet = injected("udp", target, plan, containers)
    before = udpd_status(target)
    outsider.send(plan[target]["public_ip"], 8285, [packet] * 3)
    time.sleep(1)
    after = udpd_status(target)
    # None reached the daemon: it would have dropped them as from an unknown sender (its
    # udp_rx may still rise: the peers' weft-heal probe the path when metrics are on).
    assert after["drops_in"] == before["drops_in"]
    assert lab.nft_counters(lab.state(target))["not_a_peer"] >= 3
    # From a real peer, claiming a source outside that peer's subnet: the daemon drops it.
    lab.host("node1").check_output(
        "python3 -c \"import socket,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); "
        "s.bind((sys.argv[1],0)); s.sendto(bytes.fromhex(sys.argv[2]),(sys.argv[3],8285))\" %s %s %s"
        % (plan["node1"]["public_ip"], packet.hex(), plan[target]["public_ip"]))
    time.sleep(1)
    assert udpd_status(target)["drops_in"].get("spoofed_source", 0) == \
        before["drops_in"].get("spoofed_source", 0) + 1
    # Unprotected: the stranger's datagrams reach the daemon (which refuses them itself).
    site("udp", weft_peer_ingress=False)
    before = udpd_status(target)
    outsider.send(plan[target]["public_ip"], 8285, [packet] * 3)
    time.sleep(1)
    after = udpd_status(target)
    assert after["drops_in"].get("unknown_sender", 0) == before["drops_in"].get("unknown_sender", 0) + 3
    site("udp")
    status = udpd_status(target)
    assert status["tun_rx"] == status["udp_tx"] + sum(status["drops_out"].values())
    assert status["udp_rx"] == status["tun_tx"] + sum(status["drops_in"].values())


def test_udp_daemon_runs_unprivileged_and_sandboxed():
    out = lab.host("node1").check_output("systemd-analyze security weft-udpd --no-pager")
    score = float(out.strip().splitlines()[-1].split(":")[1].split()[0])
    print("systemd-analyze security weft-udpd.service: %.1f" % score)
    assert score <= 2.0, out
    pid = lab.host("node1").check_output("systemctl show -p MainPID --value weft-udpd")
    status = lab.host("node1").check_output("grep -E '^(Uid|CapEff|CapBnd)' /proc/%s/status" % pid)
    assert "CapEff:\t0000000000000000" in status and "CapBnd:\t0000000000000000" in status
    assert status.split("Uid:")[1].split()[0] != "0"


def test_udp_a_burst_of_crashes_never_leaves_the_daemon_down():
    h = lab.host("node1")
    for _ in range(10):
        h.run("systemctl kill -s KILL weft-udpd")
        time.sleep(0.3)
    deadline = time.time() + 15
    while h.check_output("systemctl show -p ActiveState --value weft-udpd") != "active":
        assert time.time() < deadline, h.run("systemctl status weft-udpd").stdout
        time.sleep(0.5)
    assert int(h.check_output("systemctl show -p NRestarts --value weft-udpd")) >= 5
    check_all("udp")


def test_udp_survives_a_reboot():
    reboot_and_check("udp")


def test_udp_uninstall_and_again():
    uninstall_and_again("udp")


# ---- the remaining switches ---------------------------------------------------------

@pytest.mark.parametrize("old, new", [("udp", "vxlan"), ("vxlan", "udp"), ("udp", "host-gw"),
                                      ("host-gw", "vxlan")])
def test_switch(old, new):
    switch(old, new)


# ---- dual-stack: IPv6 beside IPv4 (the lab's underlay has both) ----------------------

def dual_stack(backend):
    return dict(network(backend), EnableIPv6=True, IPv6Network=lab.NETWORK6)


def site6(backend, flags=()):
    return lab.playbook("weft.overlay.site", extra=dict(weft_network=dual_stack(backend)), flags=flags)[2]


def check_dual_stack(backend):
    """Both families on every node; every container reaches every other over each."""
    plan = lab.leases()
    for name, st in lab.on_all(lab.state6).items():
        lab.check_dual_stack(name, st, backend, plan)
    ips = lab.start_containers()
    lab.check_containers_reach_each_other(ips)
    lab.check_containers_reach_each_other(lab.on_all(lab.container_ipv6))


def converge_twice(run, backend):
    """`run(backend)` changes every node, and a second run changes nothing."""
    changed = run(backend)
    assert all(changed[name] > 0 for name in NODES), changed
    assert set(run(backend).values()) == {0}


def check_ipv6_stranger_dropped(target):
    """A stranger's IPv6 VXLAN datagram to `target` is dropped and counted."""
    before = lab.nft_counters(lab.state(target))["not_a_peer"]
    lab.Outsider().send(lab.leases()[target]["public_ipv6"], 8472, [b"\x08" + b"\0" * 60] * 3)
    time.sleep(1)
    assert lab.nft_counters(lab.state(target))["not_a_peer"] >= before + 3


def restored_after_a_reboot(name):
    lab.reboot(name)
    assert lab.host(name).check_output("systemctl show -p Result --value weft-restore") == "success"


def uninstall_leaves_nothing_of_either_family():
    lab.playbook("weft.overlay.uninstall")
    for name, st in lab.on_all(lab.state).items():
        lab.check_clean(name, st)
    for name, st in lab.on_all(lab.state6).items():
        lab.check_clean6(name, st)


def test_dual_stack_vxlan():
    converge_twice(site6, "vxlan")
    assert sorted(lab.leases()[n]["subnet6"] for n in NODES) == \
        ["fd00:96:0:%d::/64" % i for i in (1, 2, 3)]
    check_dual_stack("vxlan")
    check_ipv6_stranger_dropped("node2")


def test_dual_stack_survives_a_reboot():
    restored_after_a_reboot("node2")
    check_dual_stack("vxlan")
    assert set(site6("vxlan").values()) == {0}


def test_dual_stack_host_gw():
    converge_twice(site6, "host-gw")
    check_dual_stack("host-gw")


def test_dual_stack_uninstall_leaves_nothing_of_either_family():
    uninstall_leaves_nothing_of_either_family()
    site6("vxlan")
    check_dual_stack("vxlan")
    # IPv6 off on a live network: the IPv6 side goes, IPv4 stays as it was.
    site("vxlan")
    for name, st in lab.on_all(lab.state6).items():
        lab.check_clean6(name, st)
    check_all("vxlan")


# ---- IPv6-only: EnableIPv4 false (the lab's nodes still have IPv4, which weft leaves be) --

def ipv6_only(backend):
    return {"EnableIPv4": False, "EnableIPv6": True, "IPv6Network": lab.NETWORK6,
            "Backend": {"Type": backend}}


def site_only6(backend, flags=()):
    return lab.playbook("weft.overlay.site", extra=dict(weft_network=ipv6_only(backend)), flags=flags)[2]


def check_ipv6_only(backend):
    """The IPv6 side of `backend` on every node and nothing on the IPv4 one; every container
    reaches every other over IPv6, seeing the other's own address."""
    plan = lab.leases()
    for name, st in lab.on_all(lab.state6).items():
        lab.check_dual_stack(name, st, backend, plan)
    for name, st in lab.on_all(lab.state).items():
        lab.check_no_ipv4_overlay(name, st)
    lab.start_containers()
    lab.check_containers_reach_each_other(lab.on_all(lab.container_ipv6))


def test_ipv6_only_vxlan():
    converge_twice(site_only6, "vxlan")
    # Leases of the IPv6 side alone (the IPv4 network before had none: fresh IPv6 subnets).
    assert sorted((lease["subnet"], lease["public_ip"], lease["subnet6"])
                  for lease in lab.leases().values()) == \
        [(None, None, "fd00:96:0:%d::/64" % i) for i in (1, 2, 3)]
    check_ipv6_only("vxlan")
    check_ipv6_stranger_dropped("node3")


def test_ipv6_only_survives_a_reboot():
    restored_after_a_reboot("node1")
    check_ipv6_only("vxlan")
    assert set(site_only6("vxlan").values()) == {0}


def test_ipv6_only_host_gw():
    converge_twice(site_only6, "host-gw")
    check_ipv6_only("host-gw")


def test_ipv6_only_uninstall_leaves_nothing_and_ipv4_comes_back():
    uninstall_leaves_nothing_of_either_family()
    site("vxlan")
    check_all("vxlan")


# ---- wireguard (wireguard-go: the lab's kernel has no WireGuard module) ---------------

def test_switch_vxlan_to_wireguard():
    switch("vxlan", "wireguard")
    # Only peers may reach the WireGuard port: a stranger's datagram is dropped and counted.
    target = "node2"
    before = lab.nft_counters(lab.state(target))["not_a_peer"]
    lab.Outsider().send(lab.node_ip(target), 51820, [b"\x01" + b"\0" * 147] * 3)
    time.sleep(1)
    assert lab.nft_counters(lab.state(target))["not_a_peer"] >= before + 3
    # A forged peer source gets past the address check to WireGuard's socket, and no further:
    # without the peer's key nothing comes out of the device.
    h = lab.host(target)

    def counters():
        snmp = [line.split() for line in h.check_output("cat /proc/net/snmp").splitlines()
                if line.startswith("Udp:")]
        device = json.loads(h.check_output("ip -s -j link show flannel-wg"))[0]["stats64"]
        return int(snmp[1][snmp[0].index("InDatagrams")]), device["rx"]["packets"]
    before = counters()
    lab.Outsider().send(lab.node_ip(target), 51820, [b"\x01" + b"\0" * 147] * 3,
                        src=lab.node_ip("node1"))
    time.sleep(1)
    after = counters()
    assert after[0] >= before[0] + 3 and after[1] == before[1], (before, after)


# Everything crossing a node's eth0 for a while, as hex (an AF_PACKET socket).
CAPTURE = ("import socket,sys,time\n"
           "s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW,socket.htons(3)); s.bind(('eth0',0))\n"
           "s.settimeout(0.1); end=time.time()+float(sys.argv[1]); out=bytearray()\n"
           "while time.time()<end:\n"
           "    try: out+=s.recv(65535)\n"
           "    except socket.timeout: pass\n"
           "sys.stdout.write(out.hex())\n")


MARK = "weft-capture-mark"      # a payload only the containers' HTTP request carries


def test_wireguard_underlay_shows_no_inner_address_or_payload():
    containers = lab.start_containers(["node1", "node2"])
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        capture = pool.submit(lab.host("node2").check_output,
                              "python3 -c \"%s\" 3" % CAPTURE.replace('"', '\\"'))
        time.sleep(0.5)
        pinged = lab.host("node1").run("docker exec weft-verify ping -c 5 -i 0.2 %s"
                                       % containers["node2"])
        fetched = lab.host("node1").run("docker exec weft-verify wget -qO- http://%s:8080/cgi-bin/"
                                        "ip?%s" % (containers["node2"], MARK))
        seen = capture.result()
    assert pinged.rc == 0 and fetched.rc == 0, pinged.stdout + pinged.stderr + fetched.stderr
    hexed = {name: "".join("%02x" % int(o) for o in ip.split(".")) for name, ip in containers.items()}
    assert "%04x" % 51820 in seen and len(seen) > 2000, "no WireGuard traffic captured"
    for inner in list(hexed.values()) + [MARK.encode().hex()]:
        assert inner not in seen, inner


def test_wireguard_survives_a_reboot_with_its_key_and_peers():
    keys = {name: lease["backend_data"]["public_key"] for name, lease in lab.leases().items()}
    reboot_and_check("wireguard")   # (its final site.yml reports changed=0: nothing re-planned)
    assert {name: lease["backend_data"]["public_key"]
            for name, lease in lab.leases().items()} == keys


def test_wireguard_uninstall_and_again():
    subnets = {name: lease["subnet"] for name, lease in lab.leases().items()}
    lab.playbook("weft.overlay.uninstall")
    for name, st in lab.on_all(lab.state).items():
        lab.check_clean(name, st)       # no device, daemon, user or key file
    site("wireguard")
    # Every host keeps its subnet; its key is a new one (uninstall removed the old).
    assert {name: lease["subnet"] for name, lease in lab.leases().items()} == subnets
    check_all("wireguard")


def public_keys():
    return {name: lease["backend_data"]["public_key"] for name, lease in lab.leases().items()}


def test_wireguard_keys_rotate_with_every_peer_following():
    before = public_keys()
    changed = site("wireguard", weft_wireguard_rotate=True)
    assert all(changed[name] > 0 for name in NODES), changed
    after = public_keys()
    assert all(after[name] != before[name] for name in NODES), (before, after)
    # Every device has its lease's new key and every peer the others' (check_converged),
    # in the same run: the containers talk without a second one.
    check_all("wireguard")
    for name in NODES:
        assert lab.host(name).run("test -e /etc/weft/wireguard.key.next").rc != 0
    assert set(site("wireguard").values()) == {0}


def test_wireguard_pre_shared_key_stays_on_the_hosts():
    psk = lab.host("node1").check_output("wg genpsk")
    extra = dict(weft_network=network("wireguard"), weft_wireguard_psk=psk)
    _, out, changed = lab.playbook("weft.overlay.site", extra=extra, flags=("--diff",))
    assert all(changed[name] > 0 for name in NODES), changed
    _, again, changed = lab.playbook("weft.overlay.site", extra=extra, flags=("-vvv", "--diff"))
    assert set(changed.values()) == {0}
    assert psk not in out and psk not in again     # neither in output, diffs nor arguments
    for name in NODES:
        h = lab.host(name)
        assert {line.split("\t")[1] for line in
                h.check_output("wg show flannel-wg preshared-keys").splitlines()} == {psk}
        assert h.check_output("stat -c '%a %U' /etc/weft/wireguard.psk") == "400 root"
        assert psk not in h.check_output("cat /etc/weft/host.json")
    assert psk not in json.dumps(lab.leases())
    check_all("wireguard")
    # Left out again: the file goes and the tunnels have none.
    site("wireguard")
    for name in NODES:
        h = lab.host(name)
        assert h.run("test -e /etc/weft/wireguard.psk").rc != 0
        assert {line.split("\t")[1] for line in
                h.check_output("wg show flannel-wg preshared-keys").splitlines()} == {"(none)"}


def test_dual_stack_wireguard():
    converge_twice(site6, "wireguard")
    check_dual_stack("wireguard")
    assert public_keys() == {name: lease["backend_v6_data"]["public_key"]
                             for name, lease in lab.leases().items()}
    # IPv6 off on a live network: its device goes, IPv4 stays.
    site("wireguard")
    for name in NODES:
        assert lab.host(name).run("ip link show flannel-wg-v6").rc != 0
    check_all("wireguard")


def test_switch_wireguard_to_vxlan():
    switch("wireguard", "vxlan")


# What each backend's device is called on a node; a node holds exactly its backend's.
DEVICES = {"vxlan": "flannel.1", "udp": "flannel0", "wireguard": "flannel-wg"}


def overlay_now(name):
    """(the overlay devices of the node, weft-heal's state, the device's WireGuard public
    key or None)."""
    h = lab.host(name)
    links = [line.split(":")[1].strip().split("@")[0] for line in
             h.check_output("ip -o link show").splitlines()]
    key = h.run("wg show flannel-wg public-key")
    return (sorted(link for link in links if link in DEVICES.values()),
            h.run("systemctl is-active weft-heal").stdout.strip(),
            key.stdout.strip() if key.rc == 0 else None)


def test_twenty_switches_in_a_row_with_weft_heal_running():
    """udp, vxlan and wireguard, twenty runs of site.yml in a row while weft-heal keeps
    every node (woken by each converge's kernel events, racing weft_facts' new keys): every
    run passes, every node holds the backend just converged, and every WireGuard device has
    the key its lease announces."""
    order = ["udp", "wireguard", "vxlan"] * 6 + ["udp", "vxlan"]
    for i, backend in enumerate(order):
        changed = site(backend)
        assert all(changed[name] > 0 for name in NODES), (i, backend, changed)
        now = lab.on_all(overlay_now)
        keys = public_keys() if backend == "wireguard" else {name: None for name in NODES}
        assert now == {name: ([DEVICES[backend]], "active", keys[name]) for name in NODES}, \
            (i, backend, now)
    check_all("vxlan")


# ---- CNI runtimes: podman, and the plugins as containerd and the kubelet drive them ------

def test_docker_and_cni_on_every_node():
    changed = site("vxlan", weft_runtime="both")
    assert all(changed[name] > 0 for name in NODES), changed
    assert set(site("vxlan", weft_runtime="both").values()) == {0}
    check_all("vxlan", "both")
    # The CNI bridge is weft's: weft-heal puts it back when it goes behind weft's back.
    gateway = lab.bridge_address(lab.runtime_subnets(lab.leases()["node3"]["subnet"], "both")["cni"])
    lab.host("node3").check_output("ip link del cni0")
    deadline = time.time() + 30
    while lab.addresses(lab.state("node3"), "cni0") != [gateway] and time.time() < deadline:
        time.sleep(0.5)
    assert lab.addresses(lab.state("node3"), "cni0") == [gateway]
    check_containers("both", lab.leases())   # (containers started anew: the old veths went with it)


def on_node(h):
    """lab/cni.py's way to run a plugin, on node `h` (testinfra)."""
    def run(argv, env, stdin):
        words = ["%s=%s" % item for item in sorted(env.items())] + list(argv)
        out = h.run("printf %s %s | env -i" + " %s" * len(words), "%s", stdin, *words)
        return out.rc, out.stdout, out.stderr
    return run


def test_cni_plugins_driven_as_the_kubelet_drives_them():
    pod = lab.start_pods(["node2"])["node2"]
    h, netns = lab.host("node1"), "weft-kubelet"
    h.run("ip netns del %s" % netns)   # a run killed half-way
    links = h.check_output("ip -o link show type veth | wc -l")
    h.check_output("ip netns add %s" % netns)
    try:
        network = Network(h.check_output("cat /etc/cni/net.d/10-weft.conflist"), on_node(h))
        result = network.add(netns, "/run/netns/" + netns)
        ip = result["ips"][0]["address"].split("/")[0]
        cni = lab.runtime_subnets(lab.leases()["node1"]["subnet"], "both")["cni"]
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(cni), ip
        assert ip in lab.state("node1")["ipam"]
        h.check_output("ip netns exec %s ping -c 2 -W 2 %s" % (netns, pod))
        network.check(netns, "/run/netns/" + netns)
        network.delete(netns, "/run/netns/" + netns)
        assert h.check_output("ip -o link show type veth | wc -l") == links
        assert "inet " not in h.check_output("ip netns exec %s ip -4 addr" % netns)
        assert ip not in lab.state("node1")["ipam"]
    finally:
        h.run("ip netns del %s" % netns)


def test_docker_and_cni_survive_a_reboot():
    reboot_and_check("vxlan", runtime="both")


def test_docker_and_cni_uninstall_and_again():
    lab.remove_pods()   # (a container holding an address keeps host-local's bookkeeping)
    uninstall_and_again("vxlan", runtime="both")


def test_cni_off_again_leaves_nothing_of_it():
    lab.remove_pods()
    changed = site("vxlan")
    assert all(changed[name] > 0 for name in NODES), changed
    check_all("vxlan")
