# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""weft-udpd: Flannel's udp backend (Python >= 3.9, standard library only).

Moves IPv4 packets between a TUN device and a UDP socket. The wire format is Flannel's:
each UDP datagram carries exactly one raw IPv4 packet, no header, so weft hosts and
Flannel udp hosts interoperate.

    weft-udpd run CONFIG      forward until SIGTERM/SIGINT (SIGHUP reloads CONFIG)
    weft-udpd check CONFIG    validate CONFIG, print nothing on success
    weft-udpd status CONFIG   print the running daemon's counters (exit 3: not running)

weft installs it below /usr/local/lib/weft/module_utils/weft/daemon/ with the launcher
/usr/local/lib/weft/weft-udpd, and runs it as weft-udpd.service (config.py says what
CONFIG holds).

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
    tun_rx = udp_tx + sum(drops_out)    and    udp_rx = tun_tx + sum(drops_in)
(in packets as they are on the wire). Host faults (TUN device deleted or down, status file
or log not writable) are counted in `faults` and logged; the daemon never creates its TUN
device (weft does, owned by the daemon's user) and re-attaches when it comes back. A config
that does not validate is refused with one line naming the key: at start the daemon exits
(status 2), on SIGHUP it keeps the config it has. Only SIGTERM and SIGINT end it.

Speed (offload.py): the kernel hands the daemon a TCP stream in super-packets of up to
64 KiB (TUN offloads), which go out as one datagram per segment in a few sendmsg calls of
at most 64 KiB each (UDP GSO); datagrams arrive coalesced (UDP GRO), and consecutive
segments of a flow, across the reads of one sender, go into the TUN device as one
super-packet. Other packets read in one wake-up go out as runs of equal-size datagrams
with one sendmsg. A batch the kernel refuses whole is sent again datagram by datagram, so
each packet is sent or counted.
"""
# weft-udpd is a daemon that systemd runs, not a module: it logs to stdout and exits with a status.
# pylint: disable=ansible-bad-function


from __future__ import annotations

import errno
import fcntl
import json
import os
import select
import signal
import socket
import struct
import sys
import time

from .config import Config, ConfigError, load_config
from .offload import (GSO_TCPV4, IFF_VNET_HDR, NEEDS_CSUM, PLAIN, TUN_F_CSUM, TUN_F_TSO4,
                      TUNSETOFFLOAD, VNET_HDR, VNET_LEN, Coalescer, finish_checksum,
                      segment_tcp)
from .packets import Router, decrement_ttl
from .status import process_start_time, status_command

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI, IFF_MULTI_QUEUE = 0x0001, 0x1000, 0x0100
SOL_UDP = 17
UDP_SEGMENT, UDP_GRO = 103, 104
GSO_MAX_SEGMENTS, GSO_MAX_BYTES = 64, 65000
READ_BATCH = 64
READ_SIZE = 65536 + VNET_LEN
RECV_BUFFER = 1 << 16                   # a GRO batch is at most 64 KiB
EXIT_BAD_CONFIG = 2
STATUS_EVERY = 15.0                     # seconds between quiet rewrites of the status file
# Errors after which a GSO run is retried datagram by datagram; these three also mean the
# kernel or path has no UDP GSO, so it is not tried again.
GSO_UNSUPPORTED = (errno.EIO, errno.ENOPROTOOPT, errno.EINVAL)
# How the daemon shows in its command line: the launcher, this file, or python3 -m.


def errno_name(exc) -> str:
    return errno.errorcode.get(exc.errno, str(exc.errno)).lower() if exc.errno else "error"


class Tun:
    """The TUN device weft created for us: attached to, never created."""

    def __init__(self, name, offload=True):
        self.name = name
        self.fd = None
        self.want_offload = offload
        self.vnet = False       # packets carry a virtio_net_hdr
        self.offload = False    # ... and TCP comes as TSO super-packets

    def attach(self):
        """Open a queue of the existing device; raises OSError if it is missing or is not a
        TUN device without packet information (sysfs may show another namespace's devices,
        so the kernel is asked through the device's own ioctls)."""
        index = socket.if_nametoindex(self.name)  # OSError when there is no such device
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            vnet = IFF_VNET_HDR if self.want_offload else 0
            for flags in (IFF_TUN | IFF_NO_PI | vnet, IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE | vnet):
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
            self.vnet, self.offload = bool(vnet), False
            try:
                # Without the header, no offloads: the device keeps them from an earlier
                # attach otherwise, and would hand over packets with checksums to finish.
                fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 if vnet else 0)
                self.offload = bool(vnet)
            except OSError:
                pass  # no offloads: packets still carry a header, with nothing to do
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
        self.tso_rx = self.gro_tx = 0   # super-packets read from and written to the TUN device
        self.drops_out, self.drops_in, self.faults = {}, {}, {}

    @staticmethod
    def bump(table, reason, count=1):
        table[reason] = table.get(reason, 0) + count

    def as_dict(self):
        return dict(tun_rx=self.tun_rx, udp_tx=self.udp_tx, udp_rx=self.udp_rx,
                    tun_tx=self.tun_tx, icmp_tx=self.icmp_tx, gso_sends=self.gso_sends,
                    tso_rx=self.tso_rx, gro_tx=self.gro_tx,
                    drops_out=dict(self.drops_out), drops_in=dict(self.drops_in),
                    faults=dict(self.faults))


class Daemon:
    def __init__(self, config_path: str, config: Config):
        self.config_path = config_path
        self.config = config
        self.router = Router(config)
        self.counters = Counters()
        self.reload_wanted = self.status_wanted = self.stop_wanted = False
        self.status_written = 0.0
        self.started = process_start_time(os.getpid())
        self.poller = select.epoll()
        self.tun = Tun(config.tun, config.offload)
        self.coalescer = Coalescer(self.write_tun_buffers)
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
        counters, router, vnet = self.counters, self.router, self.tun.vnet
        runs = []  # [peer, segment size, [packets]]
        for dummy in range(READ_BATCH):
            try:
                data = os.read(self.tun.fd, READ_SIZE)
            except BlockingIOError:
                break
            except OSError as exc:
                self.detach_tun("tun_read_" + errno_name(exc))
                break
            flags = gso = 0
            if vnet:
                if len(data) <= VNET_LEN:
                    counters.tun_rx += 1
                    Counters.bump(counters.drops_out, "malformed")
                    continue
                flags, gso, dummy, mss, csum_start, csum_offset = VNET_HDR.unpack_from(data)
                packet = bytearray(memoryview(data)[VNET_LEN:])
            else:
                packet = bytearray(data)
            stands_for = 1
            tso = gso == GSO_TCPV4 and mss and len(packet) > 40
            if tso:
                ihl = (packet[0] & 0x0F) * 4
                hlen = ihl + (packet[ihl + 12] >> 4) * 4
                stands_for = max(1, -(-(len(packet) - hlen) // mss))
            counters.tun_rx += stands_for
            verdict = router.from_tun(packet)
            if verdict[0] == "send":
                peer = verdict[1]
                if tso:
                    counters.tso_rx += 1
                    for run in runs:  # what came before goes first: TCP takes reordering as loss
                        self.send(*run)
                    runs.clear()
                    self.send_segments(peer, *segment_tcp(packet, mss, not peer.weft))
                    continue
                if flags & NEEDS_CSUM and not peer.weft:
                    finish_checksum(packet, csum_start, csum_offset)
                last = runs[-1] if runs else None
                if last and last[0] is peer and len(last[2]) < GSO_MAX_SEGMENTS \
                        and len(last[2][-1]) == last[1] and len(packet) <= last[1] \
                        and (len(last[2]) + 1) * last[1] <= GSO_MAX_BYTES:
                    last[2].append(packet)
                else:
                    runs.append([peer, len(packet), [packet]])
            elif verdict[0] == "icmp":
                Counters.bump(counters.drops_out, verdict[2], stands_for)
                if self.write_tun(verdict[1], icmp=True):
                    counters.icmp_tx += 1
            else:
                Counters.bump(counters.drops_out, verdict[1], stands_for)
        for peer, size, packets in runs:
            self.send(peer, size, packets)

    def send(self, peer, size, packets):
        """Send one run of whole packets of `size` bytes (the last may be shorter)."""
        self.send_batch(peer, size, packets, 1)

    def send_segments(self, peer, pieces, size, count):
        """Send the segments of a TCP super-packet (pieces: header, payload, header...).
        One UDP GSO sendmsg carries at most 64 KiB, and a 64 KiB super-packet's segments
        with their headers are a little more, so they go in a few even sendmsg calls."""
        calls = -(-count // min(GSO_MAX_SEGMENTS, max(1, GSO_MAX_BYTES // size)))
        per = -(-count // calls)
        for first in range(0, count, per):
            self.send_batch(peer, size, pieces[2 * first:2 * (first + per)], 2)

    def send_batch(self, peer, size, buffers, per):
        """One UDP GSO sendmsg of datagrams of `size` bytes, each `per` of `buffers`; a
        batch the kernel refuses whole goes again datagram by datagram, so each datagram
        ends up in udp_tx or in drops_out."""
        count = len(buffers) // per
        if count > 1 and self.gso:
            try:
                self.sock.sendmsg(buffers, [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", size))], 0,
                                  (peer.ip, peer.port))
                self.counters.gso_sends += 1
                self.counters.udp_tx += count
                return
            except OSError as exc:
                self.gso_failed(exc)
        for i in range(0, len(buffers), per):
            self.send_one(buffers[i:i + per], peer)

    def gso_failed(self, exc):
        if exc.errno in GSO_UNSUPPORTED:
            self.gso = False  # no UDP GSO here: one datagram per sendmsg from now on
            self.log("UDP GSO refused (%s): sending datagram by datagram" % exc)

    def send_one(self, buffers, peer):
        try:
            self.sock.sendmsg(buffers, [], 0, (peer.ip, peer.port))
            self.counters.udp_tx += 1
        except OSError as exc:
            Counters.bump(self.counters.drops_out, "send_" + errno_name(exc))

    # ---- UDP -> TUN
    def pump_udp(self):
        """Read what the socket holds (at most READ_BATCH reads). With offloads, a run of
        TCP segments may span reads, so the sender cuts one 64 KiB super-packet into two GSO
        sends and the receiver still writes it as one; a run never spans two senders,
        because follow() trusts that its segments passed the checks of the run's sender."""
        try:
            self.receive_batches()
        finally:
            self.coalescer.flush()

    def receive_batches(self):
        counters, router = self.counters, self.router
        vnet, run_peer = self.tun.vnet, None
        admit, coalesce, follow = router.admit, self.coalescer.add, self.coalescer.follow
        for dummy in range(READ_BATCH):
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
            count = -(-len(data) // segment)
            counters.udp_rx += count
            peer = router.by_sender.get(sender[0])
            if peer is None:
                Counters.bump(counters.drops_in, "unknown_sender", count)
                continue
            if peer is not run_peer:
                self.coalescer.flush()
                run_peer = peer
            view = memoryview(data)
            start, size = 0, len(data)
            while start < size:
                if vnet:
                    start = follow(view, start, size, segment)
                    if start >= size:
                        break
                end = min(start + segment, size)
                packet = view[start:end]
                start = end
                problem = admit(packet, peer)
                if problem:
                    Counters.bump(counters.drops_in, problem)
                elif vnet:
                    coalesce(packet)
                else:
                    forwarded = bytearray(packet)
                    decrement_ttl(forwarded)
                    self.write_tun_buffers([forwarded], 1)

    def write_tun(self, packet, icmp=False) -> bool:
        """Write one complete packet into the TUN device (an ICMP error we made is counted
        in icmp_tx by the caller, not in tun_tx)."""
        buffers = [PLAIN, packet] if self.tun.vnet else [packet]
        return self.write_tun_buffers(buffers, 0 if icmp else 1)

    def write_tun_buffers(self, buffers, count) -> bool:
        """One writev into the TUN device standing for `count` forwarded packets: counted in
        tun_tx, or in drops_in with the reason."""
        if self.tun.fd is None:
            if count:
                Counters.bump(self.counters.drops_in, "tun_detached", count)
            return False
        try:
            os.writev(self.tun.fd, buffers)
            self.counters.tun_tx += count
            if count > 1:
                self.counters.gro_tx += 1
            return True
        except OSError as exc:
            reason = "tun_down" if exc.errno == errno.EIO else "tun_write_" + errno_name(exc)
            if count:
                Counters.bump(self.counters.drops_in, reason, count)
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
        if (config.tun, config.offload) != (old.tun, old.offload):
            self.detach_tun("tun_renamed")
            self.tun = Tun(config.tun, config.offload)
            self.next_attach = 0.0
        self.config, self.router = config, Router(config)
        self.log("reloaded %s: %d peers" % (self.config_path, len(config.peers)))

    def status(self, stopped=False):
        return dict(self.counters.as_dict(), pid=os.getpid(), started=self.started,
                    stopped=stopped, config=os.path.abspath(self.config_path),
                    peers=len(self.config.peers), tun_attached=self.tun.fd is not None,
                    offload=self.tun.offload, gso=self.gso, gro=self.gro, time=time.time())

    def write_status(self, stopped=False, log=True):
        status = self.status(stopped)
        self.status_written = time.monotonic()
        if log:
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
        for fd, dummy in events:
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
        elif time.monotonic() - self.status_written > STATUS_EVERY:
            self.write_status(log=False)    # fresh figures for weft-heal's metrics


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
