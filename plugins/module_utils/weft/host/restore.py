# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""weft-restore: put this host's overlay back as weft last converged it, without the
controller (the command /usr/local/lib/weft/weft-restore runs this).

weft_host records the plan, this host's identity and the settings in /etc/weft/host.json
and installs the code it ran below /usr/local/lib/weft/module_utils. This derives the
host's state from that record with the same model and converges it with the same cores
(under the distribution's ansible-core), so the kernel comes back exactly as the converge
left it: nothing is re-implemented.

    weft-restore [RECORD]                   once (at boot, before Docker and weft-udpd)
    weft-restore --watch SECONDS [RECORD]   keep it so (weft-heal.service)
    weft-restore --cost PASSES [RECORD]     CPU seconds of a pass that finds nothing to do

With --watch it converges again whenever the kernel reports a change that may be drift
(weft's devices or the underlay changed, an address of theirs, a weft route or one of their
neighbour or FDB entries deleted, weft's nftables tables (ingress; the chains with
EnableNFTables) or its iptables-nft chains and the jumps into them changed) and at least
every SECONDS; each pass changes only what drifted and logs what it repaired.

Against a converge from the controller: a pass reads the record only once it holds
/run/weft/apply.lock, which weft_host holds while it converges and writes the record, so a
pass converges the record that is current when it changes the kernel, and what the last
converge from the controller made is what stays. A pass never removes a key: weft_facts may
have made one for a converge still to come. Told to stop while it waits for the lock (as
an uninstall, holding it, tells weft-heal), a pass gives up its wait and changes nothing.
"""
# weft-restore and weft-heal are programs that systemd runs, not modules: they log to stdout and exit with a status.
# pylint: disable=ansible-bad-function


from __future__ import annotations

import json
import os
import resource
import select
import signal
import socket
import struct
import sys
import time

from ..errors import WeftError
from ..files import LockAbandoned, exclusive_lock
from . import metrics, model, units
from .converge import converge
from ..module import Context
from ..net import ingress, iptables, nftables
from ..net.netlink import RTPROT_WEFT

# rtnetlink groups: links, neighbours (FDB entries too), IPv4 and IPv6 addresses and routes.
RTMGRP = 0x1 | 0x4 | 0x10 | 0x40 | 0x100 | 0x400
RTM_NEWLINK, RTM_DELLINK, RTM_DELADDR, RTM_DELROUTE, RTM_DELNEIGH = 16, 17, 21, 25, 29
IFLA_IFNAME = 3
NETLINK_NETFILTER, NFNLGRP_NFTABLES, NFNL_SUBSYS_NFTABLES = 12, 7, 10
NFT_MSG_NEWGEN = 15
# iptables-nft keeps weft's chains, and the jumps into them, in these tables and chains.
IPTABLES_TABLES = {chain["table"] for chain in iptables.CHAINS}
IPTABLES_CHAINS = {name for chain in iptables.CHAINS for name in (chain["chain"], chain["jump_from"])}
# weft's own nftables tables: the ingress table, and the chains' with EnableNFTables.
NFT_TABLES = {ingress.TABLE} | {table for dummy, table in nftables.TABLES.values()}
SETTLE = 1.0        # after an event, wait for the burst to end
MIN_GAP = 5.0       # at most one pass per this many seconds on events


def log(message):
    print("weft-restore: " + message, flush=True)


def describe(step):
    """What one step changed, in a line for the journal."""
    words = []
    for key in ("added", "updated", "removed"):
        if step.get(key):
            words.append("%s %s%s" % (key, "; ".join(step["first_" + key]),
                                      " (+%d more)" % (step[key] - 3) if step[key] > 3 else ""))
    if step.get("recreated"):
        words.append("re-created")
    return "%s: %s" % (step["core"], ", ".join(words) or "changed")


def converge_record(ctx, record):
    """Converge the state a record derives, services left alone (in check mode: what a
    pass would repair, which is how weft_check sees drift). The caller holds the apply
    lock and read `record` under it."""
    state = model.derive(record["plan"], record["identity"], record["settings"])
    old = model.known(record["plan"], record["identity"], record["settings"])
    return converge(ctx, state, old, services=False)


def read_record(record_path):
    """The record, or None when there is none (not converged yet, or uninstalled); a
    record that is not JSON raises ValueError."""
    try:
        with open(record_path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None


def one_pass(record_path, abandon=None):
    """Converge the recorded state once, reading the record under the apply lock;
    (changed, failed, the record read or None). `abandon`: see files.exclusive_lock."""
    ctx, record = Context(), None
    try:
        with exclusive_lock(units.APPLY_LOCK, abandon=abandon):
            record = read_record(record_path)
            if record is None:
                return False, False, None
            result = converge_record(ctx, record)
    except LockAbandoned:
        return False, False, None
    except (WeftError, KeyError, TypeError, ValueError) as exc:
        log("%s: %s" % (record_path, exc))
        return False, True, record
    finally:
        ctx.close()
    for step in result["steps"]:
        if step.get("changed"):
            log("repaired " + describe(step))
    for path in result["files_changed"]:
        log("repaired %s" % path)
    return result["changed"], False, record


def event_sockets():
    """Netlink sockets that wake the watch on drift; those the kernel refuses are skipped."""
    sockets = []
    for protocol, groups in ((socket.NETLINK_ROUTE, RTMGRP),
                             (NETLINK_NETFILTER, 1 << (NFNLGRP_NFTABLES - 1))):
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK,
                                 protocol)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.bind((0, groups))
            sockets.append(sock)
        except OSError as exc:
            log("no %s events (%s); checking on the timer only"
                % ("rtnetlink" if protocol == socket.NETLINK_ROUTE else "nftables", exc))
    return sockets


def attributes(data, offset, end):
    """{type: payload} of the netlink attributes in data[offset:end]."""
    found = {}
    while offset + 4 <= end:
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        found[kind & 0x3FFF] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return found


def name(payload):
    return payload.split(b"\0", 1)[0].decode(errors="replace") if payload else ""


class Watched:
    """What of the host's state a kernel event can touch: weft's devices, the underlay,
    weft's routes and nftables tables and chains. Other events (containers coming and
    going, ARP on the underlay, Docker's own rules) wake no pass."""

    def __init__(self, record):
        """`record`: the one the last pass converged (None: nothing yet)."""
        self.devices, self.protocol = set(), RTPROT_WEFT
        try:
            state = model.derive(record["plan"], record["identity"], record["settings"])
            self.devices = {dev for dummy, dev in state.devices} | {record["identity"]["iface"]}
            self.protocol = record["settings"]["route_protocol"]
        except (KeyError, TypeError, WeftError):
            pass
        self.indexes = set()
        for dev in self.devices:
            try:
                self.indexes.add(socket.if_nametoindex(dev))
            except OSError:
                pass

    def route_event(self, kind, data, offset, end):
        if kind in (RTM_NEWLINK, RTM_DELLINK):
            index = struct.unpack_from("=i", data, offset + 4)[0]
            ifname = name(attributes(data, offset + 16, end).get(IFLA_IFNAME))
            return ifname in self.devices or index in self.indexes
        if kind == RTM_DELADDR:
            return struct.unpack_from("=I", data, offset + 4)[0] in self.indexes
        if kind == RTM_DELROUTE:
            return data[offset + 5] == self.protocol
        if kind == RTM_DELNEIGH:
            return struct.unpack_from("=i", data, offset + 4)[0] in self.indexes
        return False

    @staticmethod
    def nftables_event(kind, data, offset, end):
        if kind >> 8 != NFNL_SUBSYS_NFTABLES or kind & 0xFF == NFT_MSG_NEWGEN:
            return False
        found = attributes(data, offset + 4, end)  # after struct nfgenmsg
        table, chain = name(found.get(1)), name(found.get(2 if kind & 0xFF in (6, 7, 8) else 3))
        return table in NFT_TABLES or (table in IPTABLES_TABLES and
                                       (chain in IPTABLES_CHAINS or kind & 0xFF == 2))

    def drifted(self, sock):
        """Drain a socket; True if any of its messages may mean drift."""
        relevant = False
        while True:
            try:
                data = sock.recv(1 << 16)
            except BlockingIOError:
                return relevant
            except OSError:  # ENOBUFS: events were lost, so look anyway
                return True
            offset = 0
            while offset + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                end = offset + max(length, 16)
                check = self.route_event if sock.proto == socket.NETLINK_ROUTE else self.nftables_event
                try:
                    relevant = relevant or check(kind, data, offset + 16, min(end, len(data)))
                except (struct.error, IndexError):
                    relevant = True  # a message we cannot read: look rather than miss drift
                offset += max((length + 3) & ~3, 16)


def watch(record_path, interval):
    stop = []
    # A signal wakes select() through this pipe (PEP 475 would otherwise resume the wait).
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    sockets = event_sockets()
    log("keeping %s: on kernel events and every %ds" % (record_path, interval))

    def abandon():
        return bool(stop)

    counters = dict(pid=os.getpid(), passes=0, on_events=0, repairs=0, failures=0)
    last_up = {}    # (peer, family): when its path last answered, for the metrics
    record = locked_record(record_path, abandon)
    write_status(counters)      # watching: the first pass comes on drift or the timer
    if metrics_wanted(record):
        publish_metrics(record_path, counters, last_up, abandon)
    watched, last = Watched(record), 0.0
    while not stop:
        deadline = time.monotonic() + interval
        due = False
        while not stop and not due and time.monotonic() < deadline:
            ready = select.select(sockets + [wake_read], [], [],
                                  max(0.0, deadline - time.monotonic()))[0]
            # A list, not a generator: every ready socket is drained, whatever the first says.
            due = any([watched.drifted(sock) for sock in ready if sock is not wake_read])  # pylint: disable=use-a-generator
        if stop:
            break
        if due:
            # Let the burst end (a firewall reload is many events), at most one pass per
            # MIN_GAP. Events of our own repairs wake one more pass, which finds nothing.
            select.select([wake_read], [], [], max(SETTLE, last + MIN_GAP - time.monotonic()))
            if stop:
                break
            for sock in sockets:
                watched.drifted(sock)
        last = time.monotonic()
        try:
            changed, failed, record = one_pass(record_path, abandon)
        except Exception as exc:  # keep watching; the next pass may succeed
            log("pass failed: %r" % (exc,))
            changed, failed, record = False, True, None
        if stop:
            break
        counters.update(passes=counters["passes"] + 1, on_events=counters["on_events"] + due,
                        repairs=counters["repairs"] + changed, failures=counters["failures"] + failed,
                        last_pass=time.time())
        write_status(counters)
        if metrics_wanted(record):
            publish_metrics(record_path, counters, last_up, abandon)
        watched = Watched(record)   # a converge may have changed the devices
    log("stopped")
    return 0


def locked_record(record_path, abandon=None):
    """The record as it stands, read under the apply lock (None: none, or unreadable)."""
    try:
        with exclusive_lock(units.APPLY_LOCK, abandon=abandon):
            return read_record(record_path)
    except (LockAbandoned, OSError, ValueError):
        return None


def metrics_wanted(record):
    return bool(record and record["settings"].get("metrics_file"))


def publish_metrics(record_path, counters, last_up, abandon=None):
    """The metrics file the record asks for (host/metrics.py), written under the apply
    lock from the record read under it (a converge may have moved or removed the file
    since the pass); a failure is logged, and the watch goes on."""
    ctx = Context()
    try:
        with exclusive_lock(units.APPLY_LOCK, abandon=abandon):
            record = read_record(record_path)
            if record is not None:
                metrics.publish(ctx, record, record_path, counters, last_up)
    except LockAbandoned:
        pass
    except (WeftError, OSError, KeyError, TypeError, ValueError) as exc:
        log("metrics: %s" % exc)
    finally:
        ctx.close()


def read_status():
    """The watch's counters (None: it has not written any since boot)."""
    try:
        with open(units.HEAL_STATUS) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def write_status(counters):
    try:
        os.makedirs(os.path.dirname(units.HEAL_STATUS), exist_ok=True)
        with open(units.HEAL_STATUS + ".tmp", "w") as handle:
            json.dump(counters, handle)
        os.replace(units.HEAL_STATUS + ".tmp", units.HEAL_STATUS)
    except OSError as exc:
        log("cannot write %s: %s" % (units.HEAL_STATUS, exc))


def cost(record_path, passes):
    """CPU seconds of a pass that finds nothing to repair (the watch's price)."""
    before = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    for dummy in range(passes):
        one_pass(record_path)
    after = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime for a, b in zip(after, before))
    print(json.dumps({"passes": passes, "cpu_seconds_per_pass": cpu / passes}))
    return 0


def main(argv):
    args = argv[1:]
    mode, number = None, 0
    if args and args[0] in ("--watch", "--cost"):
        if len(args) < 2 or not args[1].isdigit() or int(args[1]) < 1:
            print(__doc__.split("\n\n")[2], file=sys.stderr)
            return 2
        mode, number, args = args[0], int(args[1]), args[2:]
    record_path = args[0] if args else units.RECORD
    if mode == "--watch":
        return watch(record_path, number)
    if mode == "--cost":
        return cost(record_path, number)
    failed = one_pass(record_path)[1]
    return 1 if failed else 0
