"""Checks of weft's kernel fast path for the udp backend (net/udp_fastpath.py), for
udpd_trace.py: attach it on a bench host (a network namespace) as weft_host does, see
that what it sends is Flannel's wire format, and that it takes in from the underlay only
what weft-udpd would.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
LAB = os.path.join(os.path.dirname(BENCH), "lab")
PORT = 8285
HEADERS = 14 + 20 + 8                                    # Ethernet, IPv4, UDP
CORE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import weftcode  # noqa: F401
from weft.module import Context, call
from weft.net import udp_fastpath
ctx = Context()
try:
    print(json.dumps(call(udp_fastpath, json.loads(sys.argv[2]), ctx)))
finally:
    ctx.close()
"""


def core(netns, params):
    """weft's fast-path core in the namespace, as weft_host runs it; its result."""
    out = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", CORE, LAB,
                          json.dumps(params)], capture_output=True, text=True, check=True).stdout
    result = json.loads(out)
    if result.get("warnings"):
        raise RuntimeError("the fast path did not attach: %s" % result["warnings"])
    return result


def attach(netns, tun, underlay, own_ip, own_subnet, peers, port=PORT):
    """The fast path on one host; `peers`: [(address, subnet)]."""
    core(netns, dict(name=tun, underlay=underlay, address=own_ip, subnet=own_subnet, port=port,
                     peers=[{"ip": ip, "subnet": subnet} for ip, subnet in peers]))


def detach(netns, tun):
    core(netns, dict(name=tun, state="absent"))


CAPTURE = """
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((sys.argv[1], 0))
s.settimeout(15)
while True:
    frame = s.recv(2048)
    if frame[12:14] == b"\\x08\\x00" and frame[23] == 17 and frame[36:38] == (%d).to_bytes(2, "big"):
        print(frame.hex())
        break
""" % PORT


def wire_check(receiver_netns, underlay, send, inner_source, inner_destination):
    """One datagram as the receiver's underlay device sees it (before the programs) while
    `send()` runs: UDP to PORT whose payload is the IPv4 packet inner_source ->
    inner_destination, untouched but for its TTL: Flannel's wire format. Raises when it is
    not."""
    capture = subprocess.Popen(["ip", "netns", "exec", receiver_netns, "python3", "-c", CAPTURE,
                                underlay], stdout=subprocess.PIPE, text=True)
    out = ""
    try:
        for _ in range(20):     # until the capture, which takes a moment to start, has one
            send()
            try:
                out = capture.communicate(timeout=0.5)[0]
                break
            except subprocess.TimeoutExpired:
                pass
    finally:
        if capture.poll() is None:
            capture.kill()
            capture.wait()
    if not out.strip():
        raise RuntimeError("no UDP datagram to port %d reached %s" % (PORT, underlay))
    frame = bytes.fromhex(out.strip())
    inner = frame[HEADERS:]
    found = (inner[0], socket.inet_ntoa(inner[12:16]), socket.inet_ntoa(inner[16:20]),
             struct.unpack("!H", frame[38:40])[0] - 8 == len(inner))
    if found != (0x45, inner_source, inner_destination, True):
        raise RuntimeError("not Flannel's wire format: version/IHL, inner source, inner "
                           "destination, UDP length matches = %s" % (found,))


ECHO = """
import socket, struct, sys
source, inner_source, inner_destination = sys.argv[1:4]
header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0x4000, 64, 1, 0,
                     socket.inet_aton(inner_source), socket.inet_aton(inner_destination))
total = sum(struct.unpack("!10H", header))
while total >> 16:
    total = (total & 0xFFFF) + (total >> 16)
header = header[:10] + struct.pack("!H", ~total & 0xFFFF) + header[12:]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((source, 0))
sock.sendto(header + bytes.fromhex("0800f7ff00000000"), (sys.argv[4], %d))
""" % PORT


def echoes_received(netns):
    """ICMP echo requests the namespace's stack has taken in (/proc/net/snmp InEchos)."""
    out = subprocess.run(["ip", "netns", "exec", netns, "cat", "/proc/net/snmp"],
                         capture_output=True, text=True, check=True).stdout
    names, values = [line.split() for line in out.splitlines() if line.startswith("Icmp:")][:2]
    return int(values[names.index("InEchos")])


def delivers(sender_netns, source, receiver, inner_source, inner_destination, container_netns):
    """Whether one datagram from `source` (an address of the sender's) to `receiver`'s
    port, carrying an echo request inner_source -> inner_destination, reaches the
    container (no daemon runs: only the programs can take it there)."""
    before = echoes_received(container_netns)
    subprocess.run(["ip", "netns", "exec", sender_netns, "python3", "-c", ECHO, source,
                    inner_source, inner_destination, receiver], check=True)
    time.sleep(0.3)
    return echoes_received(container_netns) > before
