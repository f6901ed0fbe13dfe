#!/usr/bin/python3
"""weft-udpd: Flannel's udp backend in one file (Python >= 3.9, standard library only).

Moves IPv4 packets between a TUN device and a UDP socket. The wire format is Flannel's:
each UDP datagram carries exactly one raw IPv4 packet, no header, so weft hosts and
Flannel udp hosts interoperate.

    weft-udpd.py run CONFIG      forward until SIGTERM (SIGHUP reloads the peers)
    weft-udpd.py status CONFIG   print the running daemon's counters

CONFIG is JSON:
    {"tun": "flannel0", "listen": "10.168.0.2", "port": 8285,
     "network": "100.96.0.0/16", "subnet": "100.96.1.0/24",
     "peers": [{"subnet": "100.96.2.0/24", "ip": "10.168.0.3", "port": 8285}],
     "status_file": "/run/weft/udpd.json"}

Forwarding, TUN to UDP: longest-prefix match of the destination over the peers' subnets;
no match gives ICMP net-unreachable back into the TUN device; TTL is decremented with an
incremental checksum update and ICMP time-exceeded answers a TTL at its end.
UDP to TUN: only from a peer's address, only an inner packet whose source lies in that
peer's subnet and whose destination lies in ours (Flannel checks neither). Anything else
is dropped and counted by reason; input never raises.

Speed: packets read from the TUN device in one wake-up are sent as runs of equal-size
datagrams to one peer with one sendmsg (UDP GSO), and received datagrams come coalesced
(UDP GRO); both keep one inner packet per datagram on the wire.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import json
import os
import select
import signal
import socket
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI, IFF_MULTI_QUEUE = 0x0001, 0x1000, 0x0100
SOL_UDP = 17
UDP_SEGMENT, UDP_GRO = 103, 104
GSO_MAX_SEGMENTS, GSO_MAX_BYTES = 64, 65000
READ_BATCH = 64
ICMP_ERROR_TYPES = {3, 4, 5, 11, 12}
DEFAULT_TTL = 64


# --------------------------------------------------------------------------- packet logic

def ones_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def checksum(data: bytes) -> int:
    return ~ones_sum(data) & 0xFFFF


def decrement_ttl(packet: bytearray) -> None:
    """TTL - 1 with RFC 1624's incremental update of the header checksum (eqn. 3)."""
    old_word = (packet[8] << 8) | packet[9]
    packet[8] -= 1
    new_word = (packet[8] << 8) | packet[9]
    hc = (packet[10] << 8) | packet[11]
    total = (~hc & 0xFFFF) + (~old_word & 0xFFFF) + new_word
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    hc = ~total & 0xFFFF
    packet[10], packet[11] = hc >> 8, hc & 0xFF


def ipv4_problem(packet):
    """None for a whole IPv4 packet (sane header length, total length = what we got),
    else the drop reason."""
    if not packet or packet[0] >> 4 != 4:
        return "not_ipv4"
    ihl = (packet[0] & 0x0F) * 4
    if len(packet) < 20 or ihl < 20 or len(packet) < ihl \
            or ((packet[2] << 8) | packet[3]) != len(packet):
        return "malformed"
    return None


def icmp_error(packet, icmp_type: int, code: int):
    """The ICMP error that answers `packet` (RFC 1812 4.3.2.7), or None when none may be sent.

    Its source is the address the packet was for: written into the TUN device, an error
    from one of this host's own addresses would be dropped by the kernel as a martian.
    """
    ihl = (packet[0] & 0x0F) * 4
    if ((packet[6] & 0x1F) << 8 | packet[7]) != 0:
        return None  # not the first fragment
    if packet[9] == 1 and (len(packet) <= ihl or packet[ihl] in ICMP_ERROR_TYPES):
        return None  # never in answer to an ICMP error
    if packet[12] >= 224 or packet[12:16] == b"\0\0\0\0":
        return None  # no answer to a multicast, experimental or unspecified source
    quoted = bytes(packet[:ihl + 8])
    icmp = bytearray(struct.pack("!BBHI", icmp_type, code, 0, 0) + quoted)
    struct.pack_into("!H", icmp, 2, checksum(bytes(icmp)))
    total = 20 + len(icmp)
    header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, DEFAULT_TTL, 1, 0,
                                   bytes(packet[16:20]), bytes(packet[12:16])))
    struct.pack_into("!H", header, 10, checksum(bytes(header)))
    return bytes(header + icmp)


class Router:
    """The forwarding decisions, free of I/O so that they can be tested and fuzzed."""

    def __init__(self, config: dict):
        self.subnet = ipaddress.IPv4Network(config["subnet"])
        self.network = ipaddress.IPv4Network(config["network"])
        self.own = (int(self.subnet.network_address), int(self.subnet.netmask))
        default_port = int(config.get("port", 8285))
        self.tables = []   # [(mask, {network: (ip, port)})], longest prefix first
        self.by_sender = {}  # peer ip -> (network int, mask int)
        by_length = {}
        for peer in config.get("peers", []):
            net = ipaddress.IPv4Network(peer["subnet"])
            addr = (str(ipaddress.IPv4Address(peer["ip"])), int(peer.get("port", default_port)))
            by_length.setdefault(net.prefixlen, {})[int(net.network_address)] = addr
            self.by_sender[addr[0]] = (int(net.network_address), int(net.netmask))
        for length in sorted(by_length, reverse=True):
            mask = (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF
            self.tables.append((mask, by_length[length]))

    def lookup(self, dst: int):
        for mask, table in self.tables:
            hit = table.get(dst & mask)
            if hit is not None:
                return hit
        return None

    def from_tun(self, packet: bytearray):
        """-> ('send', addr, packet) | ('tun', reply) | ('drop', reason)."""
        problem = ipv4_problem(packet)
        if problem:
            return ("drop", problem)
        dst = int.from_bytes(packet[16:20], "big")
        peer = self.lookup(dst)
        if peer is None:
            reply = icmp_error(packet, 3, 0)  # net unreachable
            return ("tun", reply) if reply else ("drop", "no_route")
        if packet[8] <= 1:
            reply = icmp_error(packet, 11, 0)  # TTL exceeded in transit
            return ("tun", reply) if reply else ("drop", "ttl")
        decrement_ttl(packet)
        return ("send", peer, packet)

    def from_udp(self, packet: bytearray, sender: str):
        """-> ('tun', packet) | ('drop', reason)."""
        peer = self.by_sender.get(sender)
        if peer is None:
            return ("drop", "unknown_sender")
        problem = ipv4_problem(packet)
        if problem:
            return ("drop", problem)
        src = int.from_bytes(packet[12:16], "big")
        dst = int.from_bytes(packet[16:20], "big")
        if src & peer[1] != peer[0]:
            return ("drop", "spoofed_source")
        if dst & self.own[1] != self.own[0]:
            return ("drop", "not_for_us")
        if packet[8] <= 1:
            return ("drop", "ttl")
        decrement_ttl(packet)
        return ("tun", packet)


# --------------------------------------------------------------------------- I/O

def open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    flags = IFF_TUN | IFF_NO_PI
    multi_queue = os.path.exists("/sys/class/net/%s/tun_flags" % name) and \
        int(open("/sys/class/net/%s/tun_flags" % name).read(), 16) & IFF_MULTI_QUEUE
    if multi_queue:
        flags |= IFF_MULTI_QUEUE
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), flags))
    return fd


class Daemon:
    def __init__(self, config_path: str):
        self.config_path = config_path
        self.config = load_config(config_path)
        self.router = Router(self.config)
        self.counters = {"tun_rx": 0, "udp_tx": 0, "udp_rx": 0, "tun_tx": 0, "icmp_tx": 0,
                         "gso_sends": 0, "drops": {}}
        self.reload_wanted = self.status_wanted = self.stop_wanted = False
        self.tun = open_tun(self.config["tun"])
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        self.sock.bind((self.config.get("listen", "0.0.0.0"), int(self.config.get("port", 8285))))
        self.sock.setblocking(False)
        self.gso = self.gro = True
        try:
            self.sock.setsockopt(SOL_UDP, UDP_GRO, 1)
        except OSError:
            self.gro = False

    def drop(self, reason):
        drops = self.counters["drops"]
        drops[reason] = drops.get(reason, 0) + 1

    # TUN -> UDP
    def pump_tun(self):
        runs = []  # [addr, segment size, [packets]]
        for _ in range(READ_BATCH):
            try:
                packet = bytearray(os.read(self.tun, 65535))
            except BlockingIOError:
                break
            self.counters["tun_rx"] += 1
            verdict = self.router.from_tun(packet)
            if verdict[0] == "send":
                addr, packet = verdict[1], verdict[2]
                last = runs[-1] if runs else None
                if last and last[0] == addr and len(last[2]) < GSO_MAX_SEGMENTS \
                        and len(last[2][-1]) == last[1] and len(packet) <= last[1] \
                        and (len(last[2]) + 1) * last[1] <= GSO_MAX_BYTES:
                    last[2].append(packet)
                else:
                    runs.append([addr, len(packet), [packet]])
            elif verdict[0] == "tun":
                self.write_tun(verdict[1])
                self.counters["icmp_tx"] += 1
            else:
                self.drop(verdict[1])
        for addr, size, packets in runs:
            self.send(addr, size, packets)

    def send(self, addr, size, packets):
        try:
            if len(packets) > 1 and self.gso:
                try:
                    self.sock.sendmsg([b"".join(packets)],
                                      [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", size))], 0, addr)
                    self.counters["gso_sends"] += 1
                    self.counters["udp_tx"] += len(packets)
                    return
                except OSError as exc:
                    if exc.errno not in (errno.EIO, errno.ENOPROTOOPT, errno.EINVAL):
                        raise
                    self.gso = False  # no UDP GSO here: one datagram per sendto from now on
            for packet in packets:
                self.sock.sendto(packet, addr)
                self.counters["udp_tx"] += 1
        except OSError as exc:
            self.drop("send_" + errno.errorcode.get(exc.errno, str(exc.errno)).lower())

    # UDP -> TUN
    def pump_udp(self):
        for _ in range(READ_BATCH):
            try:
                data, ancillary, _flags, sender = self.sock.recvmsg(65535, 64)
            except BlockingIOError:
                break
            segment = len(data)
            for level, kind, value in ancillary:
                if level == SOL_UDP and kind == UDP_GRO:
                    segment = struct.unpack("=i", value[:4])[0] or len(data)
            for start in range(0, len(data), segment):
                self.counters["udp_rx"] += 1
                verdict = self.router.from_udp(bytearray(data[start:start + segment]), sender[0])
                if verdict[0] == "tun":
                    self.write_tun(verdict[1])
                else:
                    self.drop(verdict[1])

    def write_tun(self, packet):
        try:
            os.write(self.tun, packet)
            self.counters["tun_tx"] += 1
        except OSError as exc:
            self.drop("tun_" + errno.errorcode.get(exc.errno, str(exc.errno)).lower())

    # control
    def reload(self):
        try:
            config = load_config(self.config_path)
            self.router = Router(config)
            self.config["peers"] = config["peers"]
            log("reloaded %s: %d peers" % (self.config_path, len(config["peers"])))
        except (OSError, ValueError, KeyError) as exc:
            log("reload failed, keeping the old peers: %s" % exc)

    def write_status(self):
        path = self.config.get("status_file")
        status = dict(self.counters, pid=os.getpid(), peers=len(self.config["peers"]),
                      gso=self.gso, gro=self.gro, time=time.time())
        log("counters " + json.dumps(status, sort_keys=True))
        if path:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = path + ".tmp"
            with open(tmp, "w") as handle:
                json.dump(status, handle, sort_keys=True)
            os.replace(tmp, path)

    def run(self):
        signal.signal(signal.SIGHUP, lambda *_: setattr(self, "reload_wanted", True))
        signal.signal(signal.SIGUSR1, lambda *_: setattr(self, "status_wanted", True))
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stop_wanted", True))
        signal.signal(signal.SIGINT, lambda *_: setattr(self, "stop_wanted", True))
        poller = select.epoll()
        poller.register(self.tun, select.EPOLLIN)
        poller.register(self.sock.fileno(), select.EPOLLIN)
        log("forwarding %s <-> udp %s:%s, %d peers, gro=%s"
            % (self.config["tun"], self.config.get("listen", "0.0.0.0"),
               self.config.get("port", 8285), len(self.config["peers"]), self.gro))
        self.write_status()
        tun, udp = self.tun, self.sock.fileno()
        while not self.stop_wanted:
            try:
                events = poller.poll(1.0)
            except InterruptedError:
                events = []
            for fd, _ in events:
                if fd == tun:
                    self.pump_tun()
                elif fd == udp:
                    self.pump_udp()
            if self.reload_wanted:
                self.reload_wanted = False
                self.reload()
            if self.status_wanted:
                self.status_wanted = False
                self.write_status()
        self.write_status()
        log("stopped")


def load_config(path):
    with open(path) as handle:
        config = json.load(handle)
    for key in ("tun", "network", "subnet"):
        if key not in config:
            raise ValueError("%s: missing %r" % (path, key))
    config.setdefault("peers", [])
    Router(config)  # validates every address
    return config


def log(message):
    print("weft-udpd: " + message, flush=True)


def status(config_path):
    config = load_config(config_path)
    path = config.get("status_file")
    if not path or not os.path.exists(path):
        raise SystemExit("weft-udpd: no status file; is the daemon running?")
    with open(path) as handle:
        pid = json.load(handle)["pid"]
    before = os.stat(path).st_mtime_ns
    os.kill(pid, signal.SIGUSR1)
    deadline = time.time() + 3
    while os.stat(path).st_mtime_ns == before and time.time() < deadline:
        time.sleep(0.05)
    with open(path) as handle:
        print(json.dumps(json.load(handle), indent=2, sort_keys=True))


def main(argv):
    if len(argv) != 3 or argv[1] not in ("run", "status"):
        raise SystemExit(__doc__.split("\n\n")[1])
    if argv[1] == "run":
        Daemon(argv[2]).run()
    else:
        status(argv[2])


if __name__ == "__main__":
    main(sys.argv)
