#!/usr/bin/python3
"""weft-udpd: Flannel's udp backend in one file (Python >= 3.9, standard library only).

Moves IPv4 packets between a TUN device and a UDP socket. The wire format is Flannel's:
each UDP datagram carries exactly one raw IPv4 packet, no header, so weft hosts and
Flannel udp hosts interoperate.

    udpd.py run CONFIG      forward until SIGTERM/SIGINT (SIGHUP reloads CONFIG)
    udpd.py check CONFIG    validate CONFIG, print nothing on success
    udpd.py status CONFIG   print the running daemon's counters (exit 3: not running)

weft installs it as /usr/local/lib/weft/module_utils/weft/daemon/udpd.py and runs it as
weft-udpd.service.

CONFIG is JSON:
    {"tun": "flannel0", "listen": "10.168.0.2", "port": 8285,
     "network": "100.96.0.0/16", "subnet": "100.96.1.0/24",
     "peers": [{"subnet": "100.96.2.0/24", "ip": "10.168.0.3", "port": 8285}],
     "status_file": "/run/weft-udpd/status.json"}          (the default)

Forwarding, TUN to UDP: longest-prefix match of the destination over the peers' subnets;
no match gives ICMP net-unreachable back into the TUN device; TTL is decremented with an
incremental checksum update and ICMP time-exceeded answers a TTL at its end. ICMP errors
follow RFC 1812 (never for multicast, broadcast, later fragments or ICMP errors) and are
rate-limited like the kernel's (1000/s with a burst of 50 overall, 1/s with a burst of 6
per destination).
UDP to TUN: only from a peer's address, only a whole IPv4 packet with a correct header
checksum, whose source lies in that peer's subnet and whose destination lies in ours
(Flannel checks none of this).

Nothing a peer or anyone else sends stops the daemon: every datagram and every packet is
either forwarded or dropped and counted by reason, so that
    tun_rx = udp_tx + sum(drops_out)    and    udp_rx = tun_tx + sum(drops_in).
Host faults (TUN device deleted or down, status file or log not writable) are counted in
`faults` and logged; the daemon never creates its TUN device (weft does, owned by the
daemon's user) and re-attaches when it comes back. A config that does not validate is
refused with one line naming the key: at start the daemon exits (status 2), on SIGHUP it
keeps the config it has. Only SIGTERM and SIGINT end it.

Speed: packets read from the TUN device in one wake-up are sent as runs of equal-size
datagrams to one peer with one sendmsg (UDP GSO), and received datagrams come coalesced
(UDP GRO); both keep one inner packet per datagram on the wire. A run the kernel refuses
as a whole is sent again datagram by datagram, so each packet is sent or counted.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import json
import os
import re
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
RECV_BUFFER = 1 << 16                   # a GRO batch is at most 64 KiB
ICMP_ERROR_TYPES = {3, 4, 5, 11, 12}
DEFAULT_TTL = 64
DEFAULT_PORT = 8285
DEFAULT_STATUS_FILE = "/run/weft-udpd/status.json"   # the unit's RuntimeDirectory
EXIT_BAD_CONFIG = 2
EXIT_NOT_RUNNING = 3                    # LSB: program is not running
# Errors after which a GSO run is retried datagram by datagram; these three also mean the
# kernel or path has no UDP GSO, so it is not tried again.
GSO_UNSUPPORTED = (errno.EIO, errno.ENOPROTOOPT, errno.EINVAL)
CONFIG_KEYS = {"tun", "listen", "port", "network", "subnet", "peers", "status_file"}
PEER_KEYS = {"subnet", "ip", "port"}
INTERFACE_NAME = re.compile(r"^[^/\s:]{1,15}$")


# --------------------------------------------------------------------------- config

class ConfigError(ValueError):
    """A config that does not validate; the message starts with the key it is about."""


class Config:
    """A validated config; every address is parsed, every default filled in."""

    def __init__(self, tun, listen, port, network, subnet, peers, status_file):
        self.tun, self.listen, self.port = tun, listen, port
        self.network, self.subnet = network, subnet
        self.peers = peers          # [(IPv4Network, ip str, port)]
        self.status_file = status_file


def _port(value, key):
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ConfigError("%s: %r is not a UDP port (1-65535)" % (key, value))
    return value


def _network(value, key):
    if not isinstance(value, str) or "/" not in value:
        raise ConfigError("%s: %r is not an IPv4 network in CIDR form" % (key, value))
    try:
        return ipaddress.IPv4Network(value)
    except ValueError as exc:
        raise ConfigError("%s: %r is not an IPv4 network (%s)" % (key, value, exc)) from None


def _address(value, key, any_ok=False):
    try:
        addr = ipaddress.IPv4Address(value) if isinstance(value, str) else None
    except ValueError:
        addr = None
    if addr is None:
        raise ConfigError("%s: %r is not an IPv4 address" % (key, value))
    if addr.is_unspecified and any_ok:
        return addr
    if addr.is_unspecified or addr.is_multicast or addr.is_loopback or addr.is_reserved \
            or addr == ipaddress.IPv4Address("255.255.255.255"):
        raise ConfigError("%s: %s is not a unicast host address" % (key, addr))
    return addr


def parse_config(raw) -> Config:
    """Validate a config as loaded from JSON; raises ConfigError naming the key."""
    if not isinstance(raw, dict):
        raise ConfigError("config: must be a JSON object, not %s" % type(raw).__name__)
    unknown = sorted(str(k) for k in raw if k not in CONFIG_KEYS)
    if unknown:
        raise ConfigError("%s: unknown key (known: %s)" % (unknown[0], ", ".join(sorted(CONFIG_KEYS))))
    for key in ("tun", "network", "subnet"):
        if key not in raw:
            raise ConfigError("%s: is required" % key)
    tun = raw["tun"]
    if not isinstance(tun, str) or not INTERFACE_NAME.match(tun) or tun in (".", ".."):
        raise ConfigError("tun: %r is not an interface name" % (tun,))
    listen = _address(raw.get("listen", "0.0.0.0"), "listen", any_ok=True)
    port = _port(raw.get("port", DEFAULT_PORT), "port")
    network = _network(raw["network"], "network")
    subnet = _network(raw["subnet"], "subnet")
    if not subnet.subnet_of(network) or subnet == network:
        raise ConfigError("subnet: %s is not a subnet of network %s" % (subnet, network))
    peers_raw = raw.get("peers", [])
    if not isinstance(peers_raw, list):
        raise ConfigError("peers: must be a list, not %s" % type(peers_raw).__name__)
    peers, senders = [], {}
    for i, item in enumerate(peers_raw):
        where = "peers[%d]" % i
        if not isinstance(item, dict):
            raise ConfigError("%s: must be an object with subnet and ip" % where)
        unknown = sorted(str(k) for k in item if k not in PEER_KEYS)
        if unknown:
            raise ConfigError("%s.%s: unknown key (known: ip, port, subnet)" % (where, unknown[0]))
        for key in ("subnet", "ip"):
            if key not in item:
                raise ConfigError("%s.%s: is required" % (where, key))
        net = _network(item["subnet"], where + ".subnet")
        if not net.subnet_of(network) or net == network:
            raise ConfigError("%s.subnet: %s is not a subnet of network %s" % (where, net, network))
        if net.overlaps(subnet):
            raise ConfigError("%s.subnet: %s overlaps this host's own subnet %s" % (where, net, subnet))
        ip = _address(item["ip"], where + ".ip")
        if ip in senders:
            raise ConfigError("%s.ip: %s is also the address of peers[%d]" % (where, ip, senders[ip]))
        senders[ip] = i
        peers.append((net, str(ip), _port(item.get("port", port), where + ".port"), i))
    # Sorted by first address, two peers overlap only if some neighbouring pair does.
    ordered = sorted(peers, key=lambda p: int(p[0].network_address))
    for (before, _, _, j), (net, _, _, i) in zip(ordered, ordered[1:]):
        if net.overlaps(before):
            raise ConfigError("peers[%d].subnet: %s overlaps peers[%d].subnet %s"
                              % (max(i, j), net if i > j else before, min(i, j),
                                 before if i > j else net))
    status_file = raw.get("status_file", DEFAULT_STATUS_FILE)
    if not isinstance(status_file, str) or not status_file.startswith("/") or "\0" in status_file:
        raise ConfigError("status_file: %r is not an absolute path" % (status_file,))
    return Config(tun, str(listen), port, network, subnet,
                  [(net, ip, peer_port) for net, ip, peer_port, _ in peers], status_file)


def load_config(path) -> Config:
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except OSError as exc:
        raise ConfigError("config: cannot read %s (%s)" % (path, exc.strerror or exc)) from None
    except (ValueError, RecursionError) as exc:
        raise ConfigError("config: %s is not valid JSON (%s)" % (path, exc)) from None
    return parse_config(raw)


# --------------------------------------------------------------------------- packet logic

def ones_sum(data) -> int:
    """The 16-bit one's complement sum of `data` (RFC 1071), via one big-integer modulo."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    number = int.from_bytes(data, "big")  # 2**16 = 1 (mod 0xFFFF): the words' sum
    total = number % 0xFFFF
    return 0xFFFF if total == 0 and number else total


def checksum(data) -> int:
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
    if not packet:
        return "empty"
    if packet[0] >> 4 != 4:
        return "not_ipv4"
    ihl = (packet[0] & 0x0F) * 4
    if len(packet) < 20 or ihl < 20 or len(packet) < ihl \
            or ((packet[2] << 8) | packet[3]) != len(packet):
        return "malformed"
    return None


def _no_error_source(first_octet, src):
    """Sources an ICMP error must not answer (RFC 1812 4.3.2.7): 0/8, 127/8, 224/4 and up."""
    return first_octet == 0 or first_octet == 127 or first_octet >= 224 or src == b"\xff" * 4


class TokenBucket:
    def __init__(self, rate, burst, now):
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, float(burst), now

    def take(self, now) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class IcmpLimiter:
    """The kernel's ICMP rate limits: icmp_msgs_per_sec=1000 with icmp_msgs_burst=50 for
    all errors, and icmp_ratelimit=1000 ms with a burst of 6 per destination. The table of
    destinations is bounded, so a flood of spoofed sources cannot grow it."""

    MAX_DESTINATIONS = 4096

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.overall = TokenBucket(1000, 50, clock())
        self.per_destination = {}

    def allow(self, destination: bytes) -> bool:
        now = self.clock()
        if not self.overall.take(now):
            return False
        bucket = self.per_destination.pop(destination, None)
        if bucket is None:
            if len(self.per_destination) >= self.MAX_DESTINATIONS:
                del self.per_destination[next(iter(self.per_destination))]
            bucket = TokenBucket(1, 6, now)
        self.per_destination[destination] = bucket  # most recently used last
        return bucket.take(now)


class Router:
    """The forwarding decisions, free of I/O so that they can be tested and fuzzed."""

    def __init__(self, config: Config, clock=time.monotonic):
        self.own = (int(config.subnet.network_address), int(config.subnet.netmask))
        self.network = config.network
        self.broadcast = config.network.broadcast_address.packed
        self.tables = []   # [(mask, {network: (ip, port)})], longest prefix first
        self.by_sender = {}  # peer ip -> (network int, mask int)
        by_length = {}
        for net, ip, port in config.peers:
            by_length.setdefault(net.prefixlen, {})[int(net.network_address)] = (ip, port)
            self.by_sender[ip] = (int(net.network_address), int(net.netmask))
        for length in sorted(by_length, reverse=True):
            mask = (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF
            self.tables.append((mask, by_length[length]))
        self.icmp = IcmpLimiter(clock)

    def lookup(self, dst: int):
        for mask, table in self.tables:
            hit = table.get(dst & mask)
            if hit is not None:
                return hit
        return None

    def icmp_error(self, packet, icmp_type: int, code: int):
        """The ICMP error that answers `packet`, None when RFC 1812 4.3.2.7 forbids one,
        'limited' when the rate limit holds it back.

        Its source is the address the packet was for: written into the TUN device, an
        error from one of this host's own addresses would be dropped by the kernel as a
        martian.
        """
        ihl = (packet[0] & 0x0F) * 4
        if ((packet[6] & 0x1F) << 8 | packet[7]) != 0:
            return None  # not the first fragment
        if packet[9] == 1 and (len(packet) <= ihl or packet[ihl] in ICMP_ERROR_TYPES):
            return None  # never in answer to an ICMP error (or a truncated ICMP message)
        dst = bytes(packet[16:20])
        if dst[0] >= 224 or dst == self.broadcast:
            return None  # multicast, experimental or broadcast destination
        if _no_error_source(packet[12], bytes(packet[12:16])):
            return None  # no host to answer
        if not self.icmp.allow(bytes(packet[12:16])):
            return "limited"
        quoted = bytes(packet[:ihl + 8])
        icmp = bytearray(struct.pack("!BBHI", icmp_type, code, 0, 0) + quoted)
        struct.pack_into("!H", icmp, 2, checksum(icmp))
        header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0, 0,
                                       DEFAULT_TTL, 1, 0, dst, bytes(packet[12:16])))
        struct.pack_into("!H", header, 10, checksum(header))
        return bytes(header + icmp)

    def _answer(self, packet, icmp_type, reason):
        reply = self.icmp_error(packet, icmp_type, 0)
        if reply is None:
            return ("drop", reason)
        if reply == "limited":
            return ("drop", reason + "_icmp_limited")
        return ("icmp", reply, reason)

    def from_tun(self, packet: bytearray):
        """-> ('send', (ip, port), packet) | ('icmp', reply, reason) | ('drop', reason)."""
        problem = ipv4_problem(packet)
        if problem:
            return ("drop", problem)
        peer = self.lookup(int.from_bytes(packet[16:20], "big"))
        if peer is None:
            return self._answer(packet, 3, "no_route")       # net unreachable
        if packet[8] <= 1:
            return self._answer(packet, 11, "ttl_exceeded")  # time exceeded in transit
        decrement_ttl(packet)
        return ("send", peer, packet)

    def from_udp(self, packet, sender: str):
        """-> ('tun', packet) | ('drop', reason)."""
        peer = self.by_sender.get(sender)
        if peer is None:
            return ("drop", "unknown_sender")
        problem = ipv4_problem(packet)
        if problem:
            return ("drop", problem)
        ihl = (packet[0] & 0x0F) * 4
        if ones_sum(packet[:ihl]) != 0xFFFF:
            return ("drop", "bad_checksum")
        src = int.from_bytes(packet[12:16], "big")
        dst = int.from_bytes(packet[16:20], "big")
        if src & peer[1] != peer[0]:
            return ("drop", "spoofed_source")
        if dst & self.own[1] != self.own[0]:
            return ("drop", "not_for_us")
        if packet[8] <= 1:
            return ("drop", "ttl_exceeded")
        packet = bytearray(packet)
        decrement_ttl(packet)
        return ("tun", packet)


# --------------------------------------------------------------------------- I/O

def errno_name(exc) -> str:
    return errno.errorcode.get(exc.errno, str(exc.errno)).lower() if exc.errno else "error"


class Tun:
    """The TUN device weft created for us: attached to, never created."""

    def __init__(self, name):
        self.name = name
        self.fd = None

    def attach(self):
        """Open a queue of the existing device; raises OSError if it is missing or is not a
        TUN device without packet information (sysfs may show another namespace's devices,
        so the kernel is asked through the device's own ioctls)."""
        index = socket.if_nametoindex(self.name)  # OSError when there is no such device
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            for flags in (IFF_TUN | IFF_NO_PI, IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE):
                try:
                    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", self.name.encode(), flags))
                    break
                except OSError as exc:
                    # EINVAL: a multi-queue device (or not a plain TUN device at all).
                    if exc.errno != errno.EINVAL or flags & IFF_MULTI_QUEUE:
                        raise
            # Deleted and created anew between our look and the ioctl: that device is not
            # weft's (and, not persistent, it vanishes when we close it).
            if socket.if_nametoindex(self.name) != index:
                raise OSError(errno.ENODEV, "%s changed while attaching" % self.name)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return fd

    def detach(self):
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None


class Counters:
    """What happened to every packet, so that the totals add up; and host faults."""

    def __init__(self):
        self.tun_rx = self.udp_tx = self.udp_rx = self.tun_tx = 0
        self.icmp_tx = self.gso_sends = 0
        self.drops_out, self.drops_in, self.faults = {}, {}, {}

    @staticmethod
    def bump(table, reason, count=1):
        table[reason] = table.get(reason, 0) + count

    def as_dict(self):
        return dict(tun_rx=self.tun_rx, udp_tx=self.udp_tx, udp_rx=self.udp_rx,
                    tun_tx=self.tun_tx, icmp_tx=self.icmp_tx, gso_sends=self.gso_sends,
                    drops_out=dict(self.drops_out), drops_in=dict(self.drops_in),
                    faults=dict(self.faults))


def process_start_time(pid) -> str | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks since boot): with the PID,
    it names one process for the life of the system."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError, ValueError):
        return None


class Daemon:
    def __init__(self, config_path: str, config: Config):
        self.config_path = config_path
        self.config = config
        self.router = Router(config)
        self.counters = Counters()
        self.reload_wanted = self.status_wanted = self.stop_wanted = False
        self.started = process_start_time(os.getpid())
        self.poller = select.epoll()
        self.tun = Tun(config.tun)
        self.next_attach = 0.0
        self.sock = self.open_socket(config)
        self.poller.register(self.sock.fileno(), select.EPOLLIN)
        self.gso = True
        self.log_suppressed = {}

    # ---- resources
    def open_socket(self, config):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                sock.setsockopt(socket.SOL_SOCKET, option, 4 << 20)
            sock.bind((config.listen, config.port))
            sock.setblocking(False)
            try:
                sock.setsockopt(SOL_UDP, UDP_GRO, 1)
                self.gro = True
            except OSError:
                self.gro = False
        except BaseException:
            sock.close()
            raise
        return sock

    def attach_tun(self):
        """Attach to the TUN device when it exists; retried once a second while it does not."""
        now = time.monotonic()
        if self.tun.fd is not None or now < self.next_attach:
            return
        self.next_attach = now + 1.0
        try:
            fd = self.tun.attach()
        except OSError as exc:
            self.fault("tun_attach", "cannot attach to %s: %s; retrying every second"
                       % (self.tun.name, exc))
            return
        self.poller.register(fd, select.EPOLLIN)
        self.log("attached to %s" % self.tun.name)

    def detach_tun(self, why):
        if self.tun.fd is not None:
            try:
                self.poller.unregister(self.tun.fd)
            except (OSError, ValueError):
                pass
            self.tun.detach()
            self.fault(why, "detached from %s (%s); re-attaching when it is back"
                       % (self.tun.name, why))

    # ---- accounting and logging
    def fault(self, kind, message):
        Counters.bump(self.counters.faults, kind)
        self.log(message, key=kind)

    def log(self, message, key=None):
        """One line to the journal; a repeated fault logs at most once every 10 s."""
        if key is not None:
            now = time.monotonic()
            last, skipped = self.log_suppressed.get(key, (0.0, 0))
            if now - last < 10:
                self.log_suppressed[key] = (last, skipped + 1)
                return
            self.log_suppressed[key] = (now, 0)
            if skipped:
                message += " (%d more like this suppressed)" % skipped
        try:
            print("weft-udpd: " + message, flush=True)
        except (OSError, ValueError):
            Counters.bump(self.counters.faults, "log")

    # ---- TUN -> UDP
    def pump_tun(self):
        counters, router = self.counters, self.router
        runs = []  # [addr, segment size, [packets]]
        for _ in range(READ_BATCH):
            try:
                packet = bytearray(os.read(self.tun.fd, 65535))
            except BlockingIOError:
                break
            except OSError as exc:
                self.detach_tun("tun_read_" + errno_name(exc))
                break
            counters.tun_rx += 1
            verdict = router.from_tun(packet)
            if verdict[0] == "send":
                addr, packet = verdict[1], verdict[2]
                last = runs[-1] if runs else None
                if last and last[0] == addr and len(last[2]) < GSO_MAX_SEGMENTS \
                        and len(last[2][-1]) == last[1] and len(packet) <= last[1] \
                        and (len(last[2]) + 1) * last[1] <= GSO_MAX_BYTES:
                    last[2].append(packet)
                else:
                    runs.append([addr, len(packet), [packet]])
            elif verdict[0] == "icmp":
                Counters.bump(counters.drops_out, verdict[2])
                if self.write_tun(verdict[1]):
                    counters.icmp_tx += 1
            else:
                Counters.bump(counters.drops_out, verdict[1])
        for addr, size, packets in runs:
            self.send(addr, size, packets)

    def send(self, addr, size, packets):
        """Send one run; every packet ends up in udp_tx or in drops_out."""
        if len(packets) > 1 and self.gso:
            try:
                self.sock.sendmsg([b"".join(packets)],
                                  [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", size))], 0, addr)
                self.counters.gso_sends += 1
                self.counters.udp_tx += len(packets)
                return
            except OSError as exc:
                if exc.errno in GSO_UNSUPPORTED:
                    self.gso = False  # no UDP GSO here: one datagram per sendto from now on
                    self.log("UDP GSO refused (%s): sending datagram by datagram" % exc)
        for packet in packets:
            try:
                self.sock.sendto(packet, addr)
                self.counters.udp_tx += 1
            except OSError as exc:
                Counters.bump(self.counters.drops_out, "send_" + errno_name(exc))

    # ---- UDP -> TUN
    def pump_udp(self):
        counters, router = self.counters, self.router
        for _ in range(READ_BATCH):
            try:
                data, ancillary, flags, sender = self.sock.recvmsg(RECV_BUFFER, 64)
            except BlockingIOError:
                break
            except OSError as exc:  # e.g. an ICMP error queued on the socket
                self.fault("udp_recv_" + errno_name(exc), "receive failed: %s" % exc)
                break
            segment = len(data)
            for level, kind, value in ancillary:
                if level == SOL_UDP and kind == UDP_GRO and len(value) >= 4:
                    segment = struct.unpack("=i", value[:4])[0]
            if flags & socket.MSG_TRUNC:
                counters.udp_rx += 1
                Counters.bump(counters.drops_in, "truncated")
                continue
            if not data:
                counters.udp_rx += 1
                Counters.bump(counters.drops_in, "empty")
                continue
            if segment <= 0 or segment > len(data):
                segment = len(data)
            view = memoryview(data)
            for start in range(0, len(data), segment):
                counters.udp_rx += 1
                verdict = router.from_udp(view[start:start + segment], sender[0])
                if verdict[0] == "tun":
                    if self.write_tun(verdict[1]):
                        counters.tun_tx += 1
                else:
                    Counters.bump(counters.drops_in, verdict[1])

    def write_tun(self, packet) -> bool:
        """Write one packet into the TUN device; False (counted) when it could not be."""
        if self.tun.fd is None:
            Counters.bump(self.counters.drops_in, "tun_detached")
            return False
        try:
            os.write(self.tun.fd, packet)
            return True
        except OSError as exc:
            reason = "tun_down" if exc.errno == errno.EIO else "tun_write_" + errno_name(exc)
            Counters.bump(self.counters.drops_in, reason)
            if exc.errno == errno.EBADFD:
                self.detach_tun("tun_gone")
            return False

    # ---- control
    def reload(self):
        """Load the config again; a config that does not validate, or whose socket cannot
        be opened, leaves everything as it was."""
        try:
            config = load_config(self.config_path)
        except ConfigError as exc:
            Counters.bump(self.counters.faults, "reload_refused")
            self.log("reload refused, keeping the running config: %s" % exc)
            return
        old = self.config
        if (config.listen, config.port) != (old.listen, old.port):
            try:
                sock = self.open_socket(config)
            except OSError as exc:
                Counters.bump(self.counters.faults, "reload_refused")
                self.log("reload refused, keeping the running config: listen: cannot bind "
                         "%s:%d (%s)" % (config.listen, config.port, exc))
                return
            self.poller.unregister(self.sock.fileno())
            self.sock.close()
            self.sock = sock
            self.poller.register(sock.fileno(), select.EPOLLIN)
        if config.tun != old.tun:
            self.detach_tun("tun_renamed")
            self.tun = Tun(config.tun)
            self.next_attach = 0.0
        self.config, self.router = config, Router(config)
        self.log("reloaded %s: %d peers" % (self.config_path, len(config.peers)))

    def status(self, stopped=False):
        return dict(self.counters.as_dict(), pid=os.getpid(), started=self.started,
                    stopped=stopped, config=os.path.abspath(self.config_path),
                    peers=len(self.config.peers), tun_attached=self.tun.fd is not None,
                    gso=self.gso, gro=self.gro, time=time.time())

    def write_status(self, stopped=False):
        status = self.status(stopped)
        self.log("counters " + json.dumps(status, sort_keys=True))
        path = self.config.status_file
        tmp = path + ".tmp"
        try:
            with open(tmp, "w") as handle:
                json.dump(status, handle, sort_keys=True)
            os.replace(tmp, path)
        except OSError as exc:
            self.fault("status_write", "cannot write %s: %s" % (path, exc))

    def run(self):
        signal.signal(signal.SIGHUP, lambda *_: setattr(self, "reload_wanted", True))
        signal.signal(signal.SIGUSR1, lambda *_: setattr(self, "status_wanted", True))
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stop_wanted", True))
        signal.signal(signal.SIGINT, lambda *_: setattr(self, "stop_wanted", True))
        self.attach_tun()
        self.log("forwarding %s <-> udp %s:%d, %d peers, gro=%s"
                 % (self.config.tun, self.config.listen, self.config.port,
                    len(self.config.peers), self.gro))
        self.write_status()
        while not self.stop_wanted:
            try:
                self.step()
            except Exception as exc:  # the last line of defence: count, log, go on
                self.fault("internal", "internal error, continuing: %r" % (exc,))
        self.write_status(stopped=True)
        self.log("stopped")

    def step(self):
        if self.tun.fd is None:
            self.attach_tun()
        try:
            events = self.poller.poll(1.0)
        except InterruptedError:
            events = []
        udp = self.sock.fileno()
        for fd, _ in events:
            if fd == udp:
                self.pump_udp()
            elif fd == self.tun.fd:
                self.pump_tun()
        if self.reload_wanted:
            self.reload_wanted = False
            self.reload()
        if self.status_wanted:
            self.status_wanted = False
            self.write_status()


# --------------------------------------------------------------------------- commands

def running_daemon(status):
    """The PID in a status file, if that process is the daemon that wrote it."""
    pid = status.get("pid")
    if not isinstance(pid, int) or pid <= 0 or status.get("stopped"):
        return None
    if process_start_time(pid) != status.get("started"):
        return None  # gone, or the PID now belongs to another process
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            argv = handle.read().split(b"\0")
    except OSError:
        return None
    script = os.path.basename(os.path.abspath(__file__)).encode()
    ours = any(os.path.basename(arg) == script for arg in argv)
    return pid if ours and b"run" in argv else None


def read_status(path):
    try:
        with open(path) as handle:
            status = json.load(handle)
        return status if isinstance(status, dict) else None
    except (OSError, ValueError):
        return None


def status_file_of(config_path):
    """The status file CONFIG names, read leniently: a config broken since the daemon
    started still tells where its status is."""
    try:
        with open(config_path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except (OSError, ValueError, RecursionError):
        raw = None
    path = raw.get("status_file") if isinstance(raw, dict) else None
    return path if isinstance(path, str) and path.startswith("/") else DEFAULT_STATUS_FILE


def status_command(config_path):
    path = status_file_of(config_path)
    status = read_status(path)
    pid = running_daemon(status) if status else None
    if pid is None:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(status["time"])) \
            if status and isinstance(status.get("time"), (int, float)) else None
        print("weft-udpd is not running%s" % (" (its last status is from %s)" % when if when else ""))
        return EXIT_NOT_RUNNING
    before = os.stat(path).st_mtime_ns
    os.kill(pid, signal.SIGUSR1)
    deadline = time.time() + 3
    while os.stat(path).st_mtime_ns == before and time.time() < deadline:
        time.sleep(0.05)
    print(json.dumps(read_status(path), indent=2, sort_keys=True))
    return 0


def main(argv):
    if len(argv) != 3 or argv[1] not in ("run", "check", "status"):
        print(__doc__.split("\n\n")[2], file=sys.stderr)
        return EXIT_BAD_CONFIG
    command, path = argv[1], argv[2]
    try:
        if command == "status":
            return status_command(path)
        config = load_config(path)
    except ConfigError as exc:
        print("weft-udpd: %s: %s" % (path, exc), file=sys.stderr)
        return EXIT_BAD_CONFIG
    if command == "check":
        return 0
    try:
        daemon = Daemon(path, config)
    except OSError as exc:
        print("weft-udpd: listen: cannot bind %s:%d (%s)" % (config.listen, config.port, exc),
              file=sys.stderr)
        return 1
    daemon.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
