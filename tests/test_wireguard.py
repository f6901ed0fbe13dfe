"""The wireguard backend on two sandbox hosts joined by a veth, with wireguard-go (this
kernel has no WireGuard module): keys born on each host, the plan from the reported public
keys, weft_host building devices and peers, traffic through the tunnel, idempotence, a
peer that goes, uninstall."""

import json
import os
import subprocess
import time

import pytest

from weft.lease import encode_plan
from conftest import NETNS_PREFIX, sh
from ansible_collections.weft.overlay.tests.unit.plans import sample_plan
from sandbox import two_hosts

HOSTS = {"node1": "10.9.0.1", "node2": "10.9.0.2"}
KEY = "/etc/weft/wireguard.key"
SETTINGS = {"docker": False, "heal_interval": 0, "wireguard_implementation": "userspace"}


@pytest.fixture
def two_boxes():
    with two_hosts("%s%d-wg" % (NETNS_PREFIX, os.getpid()), HOSTS) as boxes:
        # The sandboxes share this machine's PIDs: one more system user in the second makes
        # its weft-wireguard another UID, so that neither host's userdel sees the other's
        # wireguard-go as a process of its user.
        boxes["node2"].run("useradd", "--system", "--no-create-home", "weft-test-uid-pad")
        yield boxes


def public_key(box, check=False, **args):
    facts = box.module("weft.overlay.facts", dict({"iface": "eth0", "backend": "wireguard"}, **args),
                       check=check)
    assert not facts["failed"], facts
    found = facts["ansible_facts"]["weft_backend_facts"]
    assert found["implementation"] == "userspace"   # this kernel has no WireGuard
    assert facts["changed"] == bool(found.get("key_made")), facts   # a key made is a change
    return found["public_key"]


def wireguard_plan(keys, **options):
    return encode_plan(sample_plan("wireguard", [
        (name, ip, "100.96.%d.0/24" % i, {"public_key": keys[name]})
        for i, (name, ip) in enumerate(HOSTS.items(), 1)], **options))


def dual_plan(keys, **options):
    return encode_plan(sample_plan("wireguard", [
        dict(name=name, public_ip=ip, public_ipv6=HOSTS6[name], subnet="100.96.%d.0/24" % i,
             subnet6="fd00:96:0:%d::/64" % i, reported={"public_key": keys[name]})
        for i, (name, ip) in enumerate(HOSTS.items(), 1)], ipv6_network="fd00:96::/48",
        **options))


HOSTS6 = {"node1": "fd09::1", "node2": "fd09::2"}


def host_args(name, plan, **settings):
    return {"plan": plan, "settings": dict(SETTINGS, **settings),
            "host": {"name": name, "iface": "eth0", "public_ip": HOSTS[name],
                     "underlay": "10.9.0.0/24", "mtu": 1500}}


def wg_dump(box, dev="flannel-wg"):
    """wg show dump: ({public key of the device}, {peer: (endpoint, allowed ips)})."""
    lines = box.run("wg", "show", dev, "dump").stdout.splitlines()
    peers = {f[0]: (f[2], f[3]) for f in (line.split("\t") for line in lines[1:])}
    return lines[0].split("\t")[1], peers


def daemon_status(box):
    """The wireguard-go process's user and capabilities, from /proc."""
    pid = box.run("cat", "/run/weft-sandbox/units/weft-wireguard-flannel-wg.service.pid").stdout
    status = dict(line.split(":\t", 1) for line in
                  open("/proc/%s/status" % pid.strip()).read().splitlines() if ":\t" in line)
    return status["Uid"].split()[0], status["CapEff"].strip(), status["CapBnd"].strip()


# Everything that crosses a host's eth0 for a while, as hex (an AF_PACKET socket).
CAPTURE = r"""
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(("eth0", 0))
s.settimeout(0.1)
end, out = time.time() + float(sys.argv[1]), bytearray()
while time.time() < end:
    try:
        out += s.recv(65535)
    except socket.timeout:
        pass
sys.stdout.write(out.hex())
"""
# A datagram to a port, from a namespace (its source: that host's address).
SEND = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    s.sendto(bytes.fromhex(sys.argv[3]), (sys.argv[1], int(sys.argv[2])))
"""


def reaches(ns, source, target, within):
    """Whether an echo from `source` to `target` is answered within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "1", "-I",
                           source, target], capture_output=True).returncode == 0:
            return True
    return False


def rx_packets(ns, dev):
    return json.loads(sh("ip", "-s", "-j", "link", "show", dev, netns=ns))[0]["stats64"]["rx"]["packets"]


def test_wireguard_hosts_carry_traffic_with_keys_born_on_each_host(two_boxes):
    boxes = two_boxes
    # A dry run on hosts that have no key yet: a stand-in key, nothing written anywhere.
    dry_keys = {name: public_key(box, check=True) for name, box in boxes.items()}
    dry = encode_plan(sample_plan("wireguard", [
        (name, ip, "100.96.%d.0/24" % i, {"public_key": dry_keys[name]})
        for i, (name, ip) in enumerate(HOSTS.items(), 1)]))
    for name, box in boxes.items():
        result = box.module("weft.overlay.host", host_args(name, dry), check=True, diff=True)
        assert result["changed"] and not result["failed"], result
        assert not box.exists(KEY) and "flannel-wg" not in sh("ip", "link", netns=box.netns)
    keys = {name: public_key(box) for name, box in boxes.items()}
    for name, box in boxes.items():
        mode = box.run("stat", "-c", "%a %U", KEY).stdout.split()
        assert mode == ["400", "root"], mode           # root-only, made on the host
        private = box.read(KEY).strip()
        assert private and private != keys[name]
        assert public_key(box) == keys[name]           # the same key on every run
    plan = wireguard_plan(keys)
    for name, box in boxes.items():
        result = box.module("weft.overlay.host", host_args(name, plan), diff=True)
        assert result["changed"] and not result["failed"], result
        # The private key appears nowhere in the result, its diffs or the record.
        private = box.read(KEY).strip()
        assert private not in result["stdout_text"] and private not in box.read("/etc/weft/host.json")
    a, b = boxes["node1"], boxes["node2"]
    assert wg_dump(a) == (keys["node1"], {keys["node2"]: ("10.9.0.2:51820", "100.96.2.0/24")})
    link = json.loads(sh("ip", "-j", "-d", "link", "show", "flannel-wg", netns=a.netns))[0]
    assert (link["mtu"], link["linkinfo"]["info_kind"]) == (1420, "tun")
    assert "100.96.1.0/32" in sh("ip", "addr", "show", "flannel-wg", netns=a.netns)
    assert "100.96.0.0/16 dev flannel-wg proto 119" in sh("ip", "route", netns=a.netns)
    assert "udp dport 51820" in sh("nft", "list", "table", "inet", "weft", netns=a.netns)
    # wireguard-go runs as its own user with CAP_NET_ADMIN (bit 12) and nothing else.
    uid, effective, bounding = daemon_status(a)
    assert uid != "0" and int(effective, 16) == int(bounding, 16) == 1 << 12
    # Traffic between the hosts' overlay addresses goes through the tunnel, both ways.
    out = sh("ping", "-c", "3", "-i", "0.2", "-W", "2", "-I", "100.96.1.0", "100.96.2.0",
             netns=a.netns)
    assert " 0% packet loss" in out, out
    assert wg_dump(b)[1] == {keys["node1"]: ("10.9.0.1:51820", "100.96.1.0/24")}
    # On the underlay: the hosts' addresses, never the inner ones nor the payload.
    capture = subprocess.Popen(["ip", "netns", "exec", b.netns, "/usr/bin/python3", "-c",
                                CAPTURE, "2"], stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    sh("ping", "-c", "5", "-i", "0.1", "-p", "77656674", "-I", "100.96.1.0", "100.96.2.0",
       netns=a.netns)
    seen = capture.communicate(timeout=10)[0]
    assert "0a0900010a090002" in seen and "ca6c" in seen   # 10.9.0.1 -> .2, port 51820
    for inner in ("64600100", "64600200", "77656674" * 4):  # 100.96.1.0, 100.96.2.0, "weft"
        assert inner not in seen, inner
    # A datagram from a peer's address without its key (forged, or a stranger behind it)
    # reaches the port and delivers nothing.
    before = (rx_packets(b.netns, "flannel-wg"), rx_packets(b.netns, "eth0"))
    handshake = "01000000" + "00" * 144        # a WireGuard initiation of made-up bytes
    sh("/usr/bin/python3", "-c", SEND, "10.9.0.2", "51820", handshake, netns=a.netns)
    time.sleep(0.5)
    after = (rx_packets(b.netns, "flannel-wg"), rx_packets(b.netns, "eth0"))
    assert after[1] >= before[1] + 3 and after[0] == before[0], (before, after)
    for name, box in boxes.items():
        again = box.module("weft.overlay.host", host_args(name, plan))
        assert not again["changed"], again["steps"]
    # (One test, not two: another test's sandboxes would have the same UIDs as these.)

    # A pre-shared key: checked before anything changes and never repeated; then written
    # root-only, in every tunnel, and in no output, diff or record.
    psk = sh("wg", "genpsk").strip()
    for bad in ("not-a-key", psk[:-1] + "A"):     # 33 bytes
        refused = a.module("weft.overlay.facts", {"iface": "eth0", "backend": "wireguard",
                                                  "wireguard_psk": bad})
        # (The ad-hoc CLI itself echoes a failed task's arguments; a play does not.)
        assert refused["failed"] and "weft_wireguard_psk: the value given is not a WireGuard " \
            "key" in refused["msg"] and bad not in refused["msg"], refused
    for name, box in boxes.items():
        result = box.module("weft.overlay.host", dict(host_args(name, plan), wireguard_psk=psk),
                            diff=True, verbose=True)
        assert result["changed"] and not result["failed"], result
        assert psk not in result["stdout_text"] and psk not in box.read("/etc/weft/host.json")
        assert box.run("stat", "-c", "%a %U", "/etc/weft/wireguard.psk").stdout.split() == \
            ["400", "root"]
        record = json.loads(box.read("/etc/weft/host.json"))
        assert record["settings"]["wireguard_psk"] is True
    assert [line.split("\t")[1] for line in
            a.run("wg", "show", "flannel-wg", "dump").stdout.splitlines()[1:]] == [psk]
    out = sh("ping", "-c", "2", "-i", "0.2", "-W", "2", "-I", "100.96.1.0", "100.96.2.0",
             netns=a.netns)
    assert " 0% packet loss" in out, out
    assert not a.module("weft.overlay.host", dict(host_args("node1", plan), wireguard_psk=psk))["changed"]
    # Only one side with it: a fresh handshake fails (the PSK is enforced).
    for name, box in boxes.items():
        peer = keys["node2" if name == "node1" else "node1"]
        box.run("wg", "set", "flannel-wg", "peer", peer, "remove")  # no session left
    assert a.module("weft.overlay.host", dict(host_args("node1", plan), wireguard_psk=psk))["changed"]
    assert b.module("weft.overlay.host", host_args("node2", plan))["changed"]
    assert not b.exists("/etc/weft/wireguard.psk")
    lost = subprocess.run(["ip", "netns", "exec", a.netns, "ping", "-c", "2", "-i", "0.3", "-W",
                           "1", "-I", "100.96.1.0", "100.96.2.0"], capture_output=True, text=True)
    assert " 100% packet loss" in lost.stdout, lost.stdout
    b.module("weft.overlay.host", dict(host_args("node2", plan), wireguard_psk=psk))

    # Key rotation: the new key waits beside the old one (weft-restore keeps the old one
    # in the device) until weft_host converges with a plan that has given it to the peer.
    old_private = a.read(KEY).strip()
    rotated = public_key(a, rotate_keys=True)
    assert rotated != keys["node1"] and a.read(KEY).strip() == old_private
    assert a.run("stat", "-c", "%a %U", KEY + ".next").stdout.split() == ["400", "root"]
    a.run("/usr/bin/python3", "/usr/local/lib/weft/weft-restore")
    assert wg_dump(a)[0] == keys["node1"]
    assert public_key(a) == rotated            # a run that stopped here reports it again
    keys["node1"] = rotated
    plan = wireguard_plan(keys)
    for name, box in boxes.items():
        result = box.module("weft.overlay.host", dict(host_args(name, plan), wireguard_psk=psk), diff=True)
        assert result["changed"] and not result["failed"], result
        assert old_private not in result["stdout_text"]
    assert wg_dump(a)[0] == rotated and not a.exists(KEY + ".next")
    assert a.read(KEY).strip() not in (old_private, "")
    assert list(wg_dump(b)[1]) == [rotated]
    # A peer removed behind weft's back comes back with the next repair pass (weft-heal).
    b.run("wg", "set", "flannel-wg", "peer", rotated, "remove")
    assert wg_dump(b)[1] == {}
    b.run("/usr/bin/python3", "/usr/local/lib/weft/weft-restore")
    assert list(wg_dump(b)[1]) == [rotated]
    # B's restored peer has no session, and A still sends on its old one: WireGuard has A
    # start a new handshake once its data goes unanswered for KEEPALIVE_TIMEOUT +
    # REKEY_TIMEOUT (15 s), and retries an unanswered initiation after 5 s. The CI saw 12 s
    # run out on a slow day.
    assert reaches(a.netns, "100.96.1.0", "100.96.2.0", within=30)

    # Dual-stack on one device (Mode ipv6): both families through tunnels over IPv6.
    for name, box in boxes.items():
        sh("ip", "addr", "add", HOSTS6[name] + "/64", "dev", "eth0", "nodad", netns=box.netns)
    dual = dual_plan(keys, Mode="ipv6")
    for name, box in boxes.items():
        args = dict(host_args(name, dual), wireguard_psk=psk)
        args["host"].update(public_ipv6=HOSTS6[name], underlay6="fd09::/64")
        result = box.module("weft.overlay.host", args)
        assert result["changed"] and not result["failed"], result
        again = box.module("weft.overlay.host", args)
        assert not again["changed"], again["steps"]
    assert wg_dump(a)[1] == {keys["node2"]: ("[fd09::2]:51820", "100.96.2.0/24,fd00:96:0:2::/64")}
    assert "flannel-wg-v6" not in sh("ip", "link", netns=a.netns)
    for source, target in (("100.96.1.0", "100.96.2.0"), ("fd00:96:0:1::", "fd00:96:0:2::")):
        out = sh("ping", "-c", "2", "-i", "0.2", "-W", "2", "-I", source, target, netns=a.netns)
        assert " 0% packet loss" in out, out
    for name, box in boxes.items():
        box.module("weft.overlay.host", dict(host_args(name, plan), wireguard_psk=psk))

    # A peer that goes is purged; uninstall leaves nothing of the backend.
    alone = encode_plan(sample_plan("wireguard", [("node1", HOSTS["node1"], "100.96.1.0/24",
                                                   {"public_key": keys["node1"]})]))
    result = a.module("weft.overlay.host", dict(host_args("node1", alone), wireguard_psk=psk))
    assert result["changed"] and not result["failed"], result
    assert wg_dump(a)[1] == {}
    # Uninstall asked to keep the keys keeps them alone; a reinstall has the same public key.
    kept = a.module("weft.overlay.host", {"state": "absent", "keep_keys": True})
    assert kept["changed"] and not kept["failed"], kept
    assert sorted(a.listdir("/etc/weft")) == ["wireguard.key", "wireguard.psk"]
    assert "flannel-wg" not in sh("ip", "link", netns=a.netns)
    assert public_key(a) == keys["node1"]
    result = a.module("weft.overlay.host", dict(host_args("node1", alone), wireguard_psk=psk))
    assert result["changed"] and not result["failed"], result
    gone = a.module("weft.overlay.host", {"state": "absent"})
    assert gone["changed"] and not gone["failed"], gone
    assert "flannel-wg" not in sh("ip", "link", netns=a.netns)
    assert not a.exists(KEY) and not a.exists("/run/weft-sandbox/units/"
                                              "weft-wireguard-flannel-wg.service.pid")
    assert "weft-wireguard" not in (a.read("/etc/passwd") or "")
    assert not a.module("weft.overlay.host", {"state": "absent"})["changed"]
