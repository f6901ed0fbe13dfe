"""Containers on different nodes reach each other by IP, keeping their source address."""

import itertools
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import BACKEND


def test_every_container_pings_every_other(nodes, containers):
    for a, b in itertools.permutations(sorted(nodes), 2):
        out = nodes[a].run("docker exec weft-verify ping -c 2 -W 2 %s" % containers[b])
        assert out.rc == 0, "%s -> %s (%s): %s" % (a, b, containers[b], out.stdout + out.stderr)
        assert "2 packets received" in out.stdout


def test_receiver_sees_the_sending_container_address(nodes, containers):
    for a, b in itertools.permutations(sorted(nodes), 2):
        seen = nodes[a].check_output(
            "docker exec weft-verify wget -qO- http://%s:8080/cgi-bin/ip" % containers[b])  # busybox wget -T crashes
        assert seen.strip().replace("::ffff:", "").strip("[]") == containers[a], (a, b, seen)


SEND = ("python3 -c \"import socket,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); "
        "s.bind((sys.argv[1],0)); s.sendto(bytes.fromhex(sys.argv[2]),(sys.argv[3],8285))\" %s %s %s")


def inner_packet(src, dst):
    """A minimal IPv4/UDP packet with a valid header checksum."""
    import ipaddress
    import struct
    header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 1, 0, 64, 17, 0,
                                   ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed))
    total = sum(struct.unpack("!10H", bytes(header)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    struct.pack_into("!H", header, 10, ~total & 0xFFFF)
    return bytes(header) + b"\0" * 8


@pytest.mark.skipif(BACKEND != "udp", reason="udp backend only")
def test_spoofed_datagram_is_dropped_and_counted(nodes, leases, containers):
    sender, receiver = sorted(nodes)[:2]
    status = "python3 /usr/local/lib/weft/weft-udpd.py status /etc/weft/udpd.json"
    before = json.loads(nodes[receiver].check_output(status))["drops_in"].get("spoofed_source", 0)
    target = containers[receiver]
    # From the sender's real public IP, but claiming a source outside the sender's subnet.
    spoofed = inner_packet("100.96.250.9", target).hex()
    nodes[sender].check_output(SEND % (leases[sender]["public_ip"], spoofed, leases[receiver]["public_ip"]))
    deadline = time.time() + 5
    while time.time() < deadline:
        after = json.loads(nodes[receiver].check_output(status))["drops_in"].get("spoofed_source", 0)
        if after == before + 1:
            break
        time.sleep(0.2)
    assert after == before + 1


@pytest.mark.skipif(BACKEND != "udp", reason="udp backend only (the reliability scenario reboots vxlan)")
def test_udp_overlay_survives_a_power_cycle(nodes, containers):
    """weft-restore rebuilds the TUN device before the daemon starts; no Ansible involved.
    (Named to run last in this file; test_nodes.py then checks the rebooted node too.)"""
    first, rebooted = sorted(nodes)[:2]
    lab = os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "lab", "weftlab.py")
    subprocess.run([sys.executable, lab, "reboot", rebooted], check=True, capture_output=True)
    node = nodes[rebooted]
    assert node.check_output("systemctl show -p Result --value weft-restore") == "success"
    assert node.service("weft-udpd").is_running
    assert node.check_output("ip -br link show flannel0").startswith("flannel0")
    node.check_output("docker rm -f weft-verify; docker run -d --name weft-verify weft/busybox sleep 600")
    target = node.check_output("docker inspect -f '{{.NetworkSettings.IPAddress}}' weft-verify")
    deadline = time.time() + 20
    while True:  # the daemon may still be starting when the container is
        out = nodes[first].run("docker exec weft-verify ping -c 2 -W 2 %s" % target)
        if out.rc == 0 or time.time() > deadline:
            break
        time.sleep(1)
    assert out.rc == 0, out.stdout + out.stderr
