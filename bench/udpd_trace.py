"""Where a lone packet's time goes in weft-udpd: a trace of pings through both daemons.

The data-plane benchmark's two namespace hosts and containers (bench/dataplane.py), the
udp backend converged by weft. In interleaved rounds, 200 pings container A to container
B at 5 ms spacing, each round with an underlay ping right next to it, through:

  weft        weft-udpd as its unit runs it (its own user, no capabilities);
  floor       the least a Python forwarder can do (FLOOR below: epoll, read, a linear
              subnet match, sendto; recv, write; no checks, no counters, no offloads),
              as the same user: what the interpreter alone costs per wake-up here;
  kernel      no daemon: weft's kernel fast path alone (net/udp_fastpath.py, attached by
              bench/tc_udp.py with weft's own core), what a data path in the kernel adds
              (the other rounds detach it, so they measure their daemon alone);
  candidate   (with --candidate DIR) the daemon of another tree, DIR being its
              plugins/module_utils: a change measured against the installed one in the
              same rounds;
  traced      weft-udpd with timers around its two pumps and its four syscalls
              (a few microseconds of their own), and the kernel's receive timestamp on
              its socket (SO_TIMESTAMPNS).

For weft, floor, kernel and candidate: the round trip added over the underlay (mean and p99,
medians over rounds). For traced, per host and per wake-up (medians and p90 in microseconds):
pump_tun (a TUN read to the UDP send), pump_udp (a datagram to the TUN write), the
syscalls inside them, the Python time that is left, and the wake-up: from the kernel's
receive timestamp to the daemon holding the datagram. A TUN write and a UDP send on
these veths carry the packet through the receiving stack inline, so their syscall time
includes kernel work any proxy pays.

    python3 bench/udpd_trace.py [--rounds 3] [--candidate DIR] [--out bench/results]
                                [--name udpd-trace]

Writes <name>.json and <name>.md into --out. Run as root; needs ping.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataplane as dp  # noqa: E402  (its hosts, its weft, its ping)
import tc_udp  # noqa: E402
from weft.host.units import MODULE_UTILS, UDPD, UDPD_CONFIG  # noqa: E402

FLOOR = r"""
import fcntl, ipaddress, json, os, select, socket, struct, sys
config = json.load(open(sys.argv[1]))
tun = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
for flags in (0x1001, 0x1101):   # IFF_TUN | IFF_NO_PI, then with IFF_MULTI_QUEUE
    try:
        fcntl.ioctl(tun, 0x400454CA, struct.pack("16sH", config["tun"].encode(), flags))
        break
    except OSError:
        pass
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((config.get("listen", "0.0.0.0"), config.get("port", 8285)))
sock.setblocking(False)
peers = [(ipaddress.ip_network(p["subnet"]), (p["ip"], p.get("port", 8285)))
         for p in config["peers"]]
poller = select.epoll()
poller.register(tun, select.EPOLLIN)
poller.register(sock.fileno(), select.EPOLLIN)
udp = sock.fileno()
while True:
    for fd, _ in poller.poll():
        while True:
            try:
                data = sock.recv(65536) if fd == udp else os.read(tun, 65536)
            except BlockingIOError:
                break
            if fd == udp:
                os.write(tun, data)
                continue
            destination = ipaddress.IPv4Address(data[16:20])
            for net, address in peers:
                if destination in net:
                    sock.sendto(data, address)
                    break
"""

CANDIDATE = r"""
import sys
sys.path.insert(0, sys.argv[1])
from weft.daemon.udpd import main
sys.exit(main(["weft-udpd", "run", sys.argv[2]]))
"""

TRACED = r"""
import json, os, socket, struct, sys, time
sys.path.insert(0, sys.argv[1])
from weft.daemon import udpd
clock = time.perf_counter_ns
SO_TIMESTAMPNS = 35   # Linux; the socket module does not name it
samples = {}          # what -> [ns]
inside = [0]          # syscall ns inside the pump that runs

def record(what, ns):
    samples.setdefault(what, []).append(ns)

def timed(what, call):
    def wrapper(*args):
        start = clock()
        try:
            return call(*args)
        finally:
            spent = clock() - start
            inside[0] += spent
            record(what, spent)
    return wrapper

os.read, os.writev = timed("read", os.read), timed("writev", os.writev)

class Socket:
    def __init__(self, sock):
        self._sock = sock
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sendmsg = timed("sendmsg", sock.sendmsg)
        self._recvmsg = timed("recvmsg", sock.recvmsg)
        self.first = True

    def recvmsg(self, *args):
        result = self._recvmsg(*args)
        for level, kind, value in result[1]:
            if self.first and level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                seconds, nanoseconds = struct.unpack("=qq", value[:16])
                record("wake_up", time.time_ns() - seconds * 10**9 - nanoseconds)
                self.first = False
        return result

    def __getattr__(self, name):
        return getattr(self._sock, name)

def pump(what, call):
    def wrapper(self):
        inside[0] = 0
        self.sock.first = True
        start = clock()
        try:
            return call(self)
        finally:
            spent = clock() - start
            record(what, spent)
            record(what + "_python", spent - inside[0])
    return wrapper

open_socket = udpd.Daemon.open_socket
udpd.Daemon.open_socket = lambda self, config: Socket(open_socket(self, config))
udpd.Daemon.pump_tun = pump("pump_tun", udpd.Daemon.pump_tun)
udpd.Daemon.pump_udp = pump("pump_udp", udpd.Daemon.pump_udp)
try:
    udpd.main(["weft-udpd", "run", sys.argv[2]])
finally:
    summary = {}
    for what, values in samples.items():
        values.sort()
        summary[what] = {"count": len(values),
                         "median_us": round(values[len(values) // 2] / 1e3, 1),
                         "p90_us": round(values[int(len(values) * 0.9)] / 1e3, 1)}
    print("TRACE " + json.dumps(summary), flush=True)
"""


def start(weft, how, candidate=None):
    """Both hosts' daemons: weft-udpd as its unit runs it, the floor, the candidate, or
    weft traced; or none, with the kernel's programs on both hosts instead."""
    weft.stop_daemons()
    for n in weft.boxes:
        tc_udp.detach(dp.HOSTS[n], "flannel0")
    if how == "kernel":
        for n in weft.boxes:
            peer = 3 - n
            # the peer's MAC known, as the daemon's first datagram to it would have made it
            dp.ping_ms(dp.HOSTS[n], "10.9.0.%d" % peer, 1)
            tc_udp.attach(dp.HOSTS[n], "flannel0", "eth0", "10.9.0.%d" % n, "100.96.%d.0/24" % n,
                          [("10.9.0.%d" % peer, "100.96.%d.0/24" % peer)])
        kernel_checks()
        return
    for n, box in weft.boxes.items():
        argv = {"weft": (UDPD, "run", UDPD_CONFIG),
                "floor": ("-c", FLOOR, UDPD_CONFIG),
                "candidate": ("-c", CANDIDATE, candidate, UDPD_CONFIG),
                "traced": ("-c", TRACED, MODULE_UTILS, UDPD_CONFIG)}[how]
        weft.daemons[n] = box.popen(*dp.AS_UDPD_USER, *argv)
    time.sleep(1.5)


def kernel_checks():
    """The programs carry the pings in Flannel's format, and take from the underlay only
    what weft-udpd would: a peer's datagram with an inner source in its subnet (no daemon
    runs, so nothing else could deliver it), neither a spoofed inner source nor a
    stranger's datagram."""
    fam = dp.family_of("udp")
    tc_udp.wire_check(dp.HOSTS[2], "eth0", lambda: dp.run_in(
        dp.CONTAINERS[1], "ping", "-c", "1", "-W", "0.2", fam.container, check=False),
        "100.96.1.2", fam.container)
    dp.run_in(dp.HOSTS[1], "ip", "addr", "add", "10.9.0.3/24", "dev", "eth0")  # a stranger
    try:
        found = {(source, inner): tc_udp.delivers(dp.HOSTS[1], source, "10.9.0.2", inner,
                                                  fam.container, dp.CONTAINERS[2])
                 for source, inner in (("10.9.0.1", "100.96.1.2"), ("10.9.0.1", "100.96.7.9"),
                                       ("10.9.0.3", "100.96.1.2"))}
    finally:
        dp.run_in(dp.HOSTS[1], "ip", "addr", "del", "10.9.0.3/24", "dev", "eth0")
    if list(found.values()) != [True, False, False]:
        raise RuntimeError("the kernel path delivered (outer source, inner source): %s" % found)


def added(weft, fam):
    """dataplane's round, with what a daemon printed if it ended (a launcher broken)."""
    try:
        return dp.added_once(fam)
    except RuntimeError as exc:
        ended = "".join(proc.communicate(timeout=10)[0] for proc in weft.daemons.values()
                        if proc.poll() is not None)
        raise RuntimeError("%s%s" % (exc, ended and ": a daemon ended:\n" + ended)) from None


def traces(weft):
    """Stop the traced daemons and read what each printed."""
    found = {}
    for n, proc in weft.daemons.items():
        proc.terminate()
        out = proc.communicate(timeout=10)[0]
        lines = [line for line in out.splitlines() if line.startswith("TRACE ")]
        if not lines:
            raise RuntimeError("host %d's traced daemon printed no trace:\n%s" % (n, out))
        found["host %s" % "AB"[n - 1]] = json.loads(lines[-1][len("TRACE "):])
    weft.daemons = {}
    return found


def report(added_ms, traced):
    lines = ["| daemons | added RTT mean | added RTT p99 |", "|---|---:|---:|"]
    for how, rows in added_ms.items():
        lines.append("| %s | %.3f ms | %.3f ms |" % (how, statistics.median(r[0] for r in rows),
                                                     statistics.median(r[1] for r in rows)))
    lines += ["", "Per wake-up, traced (median / p90, microseconds):", "",
              "| host | what | median | p90 | count |", "|---|---|---:|---:|---:|"]
    for host, summary in traced.items():
        for what in ("wake_up", "pump_tun", "pump_tun_python", "pump_udp", "pump_udp_python",
                     "read", "sendmsg", "recvmsg", "writev"):
            if what in summary:
                row = summary[what]
                lines.append("| %s | %s | %.1f | %.1f | %d |" % (host, what, row["median_us"],
                                                                 row["p90_us"], row["count"]))
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--candidate", metavar="DIR",
                        help="another tree's plugins/module_utils, its daemon measured too")
    parser.add_argument("--out", default=os.path.join(dp.ROOT, "bench", "results"))
    parser.add_argument("--name", default="udpd-trace")
    args = parser.parse_args()
    fam = dp.family_of("udp")
    added_ms, traced, weft = {"weft": [], "floor": [], "kernel": []}, {}, None
    if args.candidate:
        if not os.path.isfile(os.path.join(args.candidate, "weft", "daemon", "udpd.py")):
            parser.error("--candidate: %s has no weft/daemon/udpd.py" % args.candidate)
        added_ms["candidate"] = []
    try:
        dp.setup_hosts()
        weft = dp.Weft()
        weft.converge("udp")
        for _ in range(args.rounds):
            for how in added_ms:
                start(weft, how, args.candidate and os.path.abspath(args.candidate))
                added_ms[how].append(added(weft, fam))
                print(how, added_ms[how][-1], flush=True)
        start(weft, "traced")
        added(weft, fam)
        traced = traces(weft)
    finally:
        if weft:
            weft.remove()
        dp.teardown_hosts()
    machine = dp.machine_name()
    text = "Measured %s on %s.\n\n%s\n" % (time.strftime("%Y-%m-%d"), machine,
                                           "\n".join(report(added_ms, traced)))
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, args.name + ".json"), "w") as handle:
        json.dump({"date": time.strftime("%Y-%m-%d"), "machine": machine,
                   "added_rtt_ms": added_ms, "traced": traced}, handle, indent=2)
    with open(os.path.join(args.out, args.name + ".md"), "w") as handle:
        handle.write(text)


if __name__ == "__main__":
    main()
