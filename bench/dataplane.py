"""Data-plane benchmark: the underlay, host-gw, vxlan, the udp daemon and wireguard, in one run.

Two hosts, A (10.9.0.1, fd09::1) and B (10.9.0.2, fd09::2), are network namespaces joined
by a veth (MTU 1500). Each has a container behind a veth and a bridge, as Docker has it
(docker0 on the subnet's .1 and ::1, the container on .2 and ::2). Each backend is built by weft itself: weft_host
converges both hosts (lab/sandbox.py: their own files, users and units, nothing of this
machine), switching from one backend to the next as a user would; for udp the daemon then
runs as the unit runs it, as the unprivileged user weft-udpd. The plan is the real
planner's.

Per backend: TCP container to container (iperf3, one stream and four) and host to host
through the overlay (one stream), each the median of rounds, each round paired with an
underlay run right next to it, which the ratio is against, because load drifts (the host-gw
and vxlan targets apply to host to host: the underlay run has no container hop); vxlan is
measured again with weft_peer_ingress off ("vxlan-open"), to show what the check costs, and
over IPv6 in a dual-stack network ("vxlan6", its paired runs on the IPv6 underlay, which has
its own row, "underlay6"). Then
64-byte UDP datagrams, ping mean and p99, the machine's CPU seconds per GB moved by the
single stream (everything: both stacks, iperf3, the daemons), and for udp the daemons' own
CPU per GB and the peak RSS of all their processes on a host, the round trip the overlay
adds to the underlay's (each round a ping over the underlay right next to one container to
container: mean and p99) and TCP the other way (B to A); "udp-mixed" measures the same with
host B's daemon Flannel-like (no offloads, every checksum complete: Flannel's proxy as the
interop tests stand it in), so A to B is weft to Flannel and B to A Flannel to weft.
wireguard (wireguard-go: this kernel has no WireGuard module) is measured host to host
against two identical wireguard-go pairs configured by hand (ip, wg set) on the same hosts
at the same time, in interleaved rounds of 5 s (--wireguard-rounds), with each data path's
wireguard-go CPU seconds per GB; the second hand pair against the first shows the
benchmark's own spread.

    python3 bench/dataplane.py [--seconds 10] [--rounds 3] [--wireguard-rounds 18]
                               [--out bench/results] [--backends ...] [--name dataplane]

Writes <name>.json and <name>.md into --out. Run as root; needs iperf3 and ping.
Bounded: every iperf3 run stops after --seconds, every ping after 200 packets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lab"))
import weftcode  # noqa: E402,F401  (weft's code, as weft)
from weft.host.units import UDPD, UDPD_CONFIG  # noqa: E402
from weft.lease import encode_plan  # noqa: E402
from ansible_collections.weft.overlay.tests.unit.plans import (  # noqa: E402
    numbered_plan, sample_plan)
from sandbox import Sandbox, sh  # noqa: E402
import tc_udp  # noqa: E402  (bench/: the fast path attached and detached)

PREFIX = "weft-b-%d" % os.getpid()
HOSTS = {1: PREFIX + "-A", 2: PREFIX + "-B"}
CONTAINERS = {1: PREFIX + "-CA", 2: PREFIX + "-CB"}
TARGETS = {"host-gw": 0.95, "vxlan": 0.9}       # x underlay, TCP single stream host to host
UDP_TARGET_BPS, UDP_TARGET_RSS_MB = 2.7e9, 40
WIREGUARD_TARGET = 0.95                         # weft's wireguard x the hand-made pairs
WG_PID = "/run/weft-sandbox/units/weft-wireguard-flannel-wg.service.pid"
WG_ROUNDS, WG_SECONDS = 18, 5   # wireguard against the hand pairs: many short rounds
BASELINE_PORT = 5202                            # iperf3 on the underlay, for the paired runs
OPEN = "-open"                                  # "vxlan-open": vxlan with weft_peer_ingress off
IPV6 = "6"                                      # "vxlan6", "underlay6": measured over IPv6
MIXED = "-mixed"    # "udp-mixed": host B's daemon Flannel-like (no offloads, no weft peers)
DAEMON = "-daemon"  # "udp-daemon": weft-udpd alone, the kernel fast path off (as "udp-mixed")
UDP_TARGET_ADDED_MS = {"mean": 0.15, "p99": 0.30}  # udp's round trip over the underlay's
FAST_ROUNDS, FAST_SECONDS = 10, 5   # udp with its fast path against without, interleaved


# The daemon's user without capabilities, as weft-udpd.service runs it; then python3.
AS_UDPD_USER = ("setpriv", "--reuid=weft-udpd", "--regid=weft-udpd", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "/usr/bin/python3")


class Family:
    """The addresses one address family's runs use: B's container, underlay and bridge."""

    def __init__(self, container, underlay, bridge):
        self.container, self.underlay, self.bridge = container, underlay, bridge


FAMILIES = {4: Family("100.96.2.2", "10.9.0.2", "100.96.2.1"),
            6: Family("fd00:96:0:2::2", "fd09::2", "fd00:96:0:2::1")}


def family_of(name):
    return FAMILIES[6 if name.endswith(IPV6) else 4]


def backend_of(name):
    """The backend a result row measures ("vxlan-open" and "vxlan6" are vxlan)."""
    for suffix in (OPEN, IPV6, MIXED, DAEMON):
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return name


def run_in(ns, *cmd, check=True):
    proc = subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True)
    if check and proc.returncode:
        raise RuntimeError("%s: %s" % (" ".join(cmd), proc.stderr.strip()))
    return proc.stdout


def setup_hosts():
    for n in (1, 2):
        for ns in (HOSTS[n], CONTAINERS[n]):
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "set", "lo", "up", netns=ns)
        run_in(HOSTS[n], "sysctl", "-qw", "net.ipv4.ip_forward=1",
               "net.ipv6.conf.all.forwarding=1")
    sh("ip", "link", "add", "eth0", "netns", HOSTS[1], "type", "veth", "peer", "name", "eth0",
       "netns", HOSTS[2])
    for n in (1, 2):
        host, container = HOSTS[n], CONTAINERS[n]
        sh("ip", "addr", "add", "10.9.0.%d/24" % n, "dev", "eth0", netns=host)
        sh("ip", "addr", "add", "fd09::%d/64" % n, "dev", "eth0", "nodad", netns=host)
        sh("ip", "link", "set", "eth0", "up", netns=host)
        # docker0 and a container on it, as dockerd makes them from weft's bip and
        # fixed-cidr-v6.
        sh("ip", "link", "add", "docker0", "type", "bridge", netns=host)
        sh("ip", "addr", "add", "100.96.%d.1/24" % n, "dev", "docker0", netns=host)
        sh("ip", "addr", "add", "fd00:96:0:%d::1/64" % n, "dev", "docker0", "nodad", netns=host)
        sh("ip", "link", "set", "docker0", "up", netns=host)
        sh("ip", "link", "add", "veth0", "netns", host, "type", "veth", "peer", "name", "eth0",
           "netns", container)
        sh("ip", "link", "set", "veth0", "master", "docker0", "up", netns=host)
        sh("ip", "addr", "add", "100.96.%d.2/24" % n, "dev", "eth0", netns=container)
        sh("ip", "addr", "add", "fd00:96:0:%d::2/64" % n, "dev", "eth0", "nodad", netns=container)
        sh("ip", "link", "set", "eth0", "up", netns=container)
        sh("ip", "route", "add", "default", "via", "100.96.%d.1" % n, netns=container)
        sh("ip", "-6", "route", "add", "default", "via", "fd00:96:0:%d::1" % n, netns=container)


def teardown_hosts():
    for n in (1, 2):
        for ns in (HOSTS[n], CONTAINERS[n]):
            sh_quiet("ip", "netns", "del", ns)


def sh_quiet(*cmd):
    subprocess.run(cmd, capture_output=True)


def plan(name, reported=None):
    """The planner's plan of both hosts: dual-stack for a row measured over IPv6;
    `reported`: {n: what weft_facts reported on host n} (wireguard's public keys)."""
    if reported:
        return encode_plan(sample_plan(backend_of(name), [
            ("node%d" % n, "10.9.0.%d" % n, "100.96.%d.0/24" % n, reported[n]) for n in (1, 2)]))
    if not name.endswith(IPV6):
        return numbered_plan(backend_of(name), 2, encoded=True)
    hosts = [dict(name="node%d" % n, public_ip="10.9.0.%d" % n, subnet="100.96.%d.0/24" % n,
                  public_ipv6="fd09::%d" % n, subnet6="fd00:96:0:%d::/64" % n) for n in (1, 2)]
    return encode_plan(sample_plan(backend_of(name), hosts, ipv6_network="fd00:96::/48"))


FLANNEL_LIKE = """
import json, sys
path, plain = sys.argv[1], sys.argv[2] == "1"
with open(path) as handle:
    config = json.load(handle)
for peer in config["peers"]:
    peer["weft"] = False
if plain:
    config["offload"] = False
with open(path, "w") as handle:
    json.dump(config, handle)
"""


class Weft:
    """Both hosts converged by weft_host, and (udp) their daemons."""

    def __init__(self):
        self.boxes = {n: Sandbox(HOSTS[n]) for n in (1, 2)}
        self.daemons = {}

    def converge(self, name):
        """`name`: a backend, or a backend + OPEN: the same with weft_peer_ingress off, or
        + IPV6: the same in a dual-stack network; "udp" + MIXED: udp with host B's daemon
        as Flannel's proxy behaves (one plain packet per datagram both ways, every checksum
        complete), the way the interop tests run it; "udp" + DAEMON, and MIXED too: without
        the kernel fast path (Flannel has none, and weft sends a Flannel peer nothing from
        the kernel)."""
        backend = backend_of(name)
        self.stop_daemons()
        reported = {n: self.facts(box, backend) for n, box in self.boxes.items()} \
            if backend == "wireguard" else None
        for n, box in self.boxes.items():
            result = box.module("weft.overlay.host", {
                "plan": plan(name, reported),
                "host": {"name": "node%d" % n, "iface": "eth0", "public_ip": "10.9.0.%d" % n,
                         "underlay": "10.9.0.0/24", "public_ipv6": "fd09::%d" % n,
                         "underlay6": "fd09::/64", "mtu": 1500},
                "settings": {"docker": False, "heal_interval": 0,
                             "peer_ingress": not name.endswith(OPEN),
                             "udp_fastpath": not name.endswith((MIXED, DAEMON)),
                             "wireguard_implementation": "userspace"}})
            if result["failed"]:
                raise RuntimeError("weft_host on host %d: %s" % (n, result.get("msg")))
        if backend == "udp":
            if name.endswith(MIXED):
                self.flannel_like(2)
            for n, box in self.boxes.items():
                # As weft-udpd.service runs it: its own user, no capabilities.
                self.daemons[n] = box.popen(*AS_UDPD_USER, UDPD, "run", UDPD_CONFIG)
            time.sleep(1.5)

    def flannel_like(self, n):
        """Host n's daemon without TUN offloads, and neither side taking the other for a weft
        host (so each completes the checksums it sends), before the daemons start."""
        for m, box in self.boxes.items():
            box.run("python3", "-c", FLANNEL_LIKE, UDPD_CONFIG, "1" if m == n else "0")

    @staticmethod
    def facts(box, backend):
        """What weft_facts reports on a host for its lease (a key made there first)."""
        result = box.module("weft.overlay.facts", {"iface": "eth0", "backend": backend})
        if result["failed"]:
            raise RuntimeError("weft_facts: %s" % result.get("msg"))
        return result["ansible_facts"]["weft_backend_facts"]

    def wireguard_pids(self):
        """wireguard-go of each host, as the sandbox's systemd-run started it."""
        return [[int(self.boxes[n].read(WG_PID).strip())] for n in (1, 2)]

    def daemon_pids(self):
        """Every process of every daemon (a daemon may run workers)."""
        pids = []
        for proc in self.daemons.values():
            family = {proc.pid}
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    try:
                        with open("/proc/%s/stat" % entry) as handle:
                            if int(handle.read().rsplit(")", 1)[1].split()[1]) in family:
                                family.add(int(entry))
                    except (OSError, ValueError):
                        pass
            pids.append(sorted(family))
        return pids

    def stop_daemons(self):
        for proc in self.daemons.values():
            proc.terminate()
            proc.wait(10)
        self.daemons = {}

    def remove(self):
        self.stop_daemons()
        for box in self.boxes.values():
            box.remove()


# ---- measurements ------------------------------------------------------------------------

def cpu_ticks_machine():
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:8]]
    return sum(fields) - fields[3] - fields[4]  # all but idle and iowait


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total


def peak_rss_mb(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/status" % pid) as handle:
                total += next(int(line.split()[1]) for line in handle if line.startswith("VmHWM:"))
        except (OSError, StopIteration):
            pass
    return total / 1024


def iperf(ns, server, seconds, *extra, port=5201):
    """One iperf3 run from namespace `ns`; the server may still be closing the previous
    test, so a refused start is retried."""
    for _ in range(5):
        out = run_in(ns, "iperf3", "-c", server, "-p", str(port), "-t", str(seconds), "-J",
                     *extra, check=False)
        doc = json.loads(out)
        if "error" not in doc:
            return doc["end"]
        time.sleep(1)
    raise RuntimeError("iperf3: %s" % doc["error"])


def tcp(seconds, rounds, streams=1, client=CONTAINERS[1], server="100.96.2.2", weft=None,
        port=5201, underlay="10.9.0.2"):
    """(medians of the backend's and the paired underlay runs, CPU s/GB machine, daemons);
    `underlay`: B's underlay address of the family measured, for the paired runs."""
    runs, machine, daemons = [], [], []
    for _ in range(rounds):
        pids = [p for group in weft.daemon_pids() for p in group] if weft else []
        ticks = os.sysconf("SC_CLK_TCK")
        before = cpu_ticks_machine(), cpu_ticks(pids)
        end = iperf(client, server, seconds, "-P", str(streams), port=port)
        after = cpu_ticks_machine(), cpu_ticks(pids)
        moved_gb = end["sum_received"]["bytes"] / 1e9
        machine.append((after[0] - before[0]) / ticks / moved_gb)
        daemons.append((after[1] - before[1]) / ticks / moved_gb)
        paired = iperf(HOSTS[1], underlay, seconds, "-P", str(streams), port=BASELINE_PORT)
        runs.append((end["sum_received"]["bits_per_second"], paired["sum_received"]["bits_per_second"]))
    return (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs),
            statistics.median(machine), statistics.median(daemons))


# The device each encapsulating row's traffic must leave host A by (host-gw has none).
DEVICES = {"vxlan": "flannel.1", "vxlan-open": "flannel.1", "vxlan6": "flannel-v6.1",
           "udp": "flannel0", "udp-daemon": "flannel0", "udp-mixed": "flannel0",
           "wireguard": "flannel-wg", "wireguard-open": "flannel-wg"}


class HandWireguard:
    """A wireguard-go pair configured by hand (ip, wg set) beside weft's, as an admin would
    make one: devices wgh1/wgh2 on 10.200.0.1 and .2, port 51830, MTU 1420, root; pair
    `index` 1 (the control pair) is the same on wgi1/wgi2, 10.201.0.0/24, port 51831. Each
    wireguard-go runs in a session of its own, as systemd starts any service (wg-quick@, or
    weft's unit; the sandbox's stub does the same for weft's): with the scheduler's
    autogroups, a wireguard-go left in the benchmark's session shares the CPUs with iperf3
    differently, and that alone moved the ratio by 10-15% (2026-12-01: the same root pair
    0.69 Gbit/s in this session, 0.60 under setsid, weft's 0.63 in the same rounds)."""

    MTU = 1420

    def __init__(self, index=0):
        self.index, self.port = index, 51830 + index
        self.procs, self.keys = {}, {}
        try:
            for n in (1, 2):
                private = sh("wg", "genkey").strip()
                public = subprocess.run(["wg", "pubkey"], input=private, capture_output=True,
                                        text=True, check=True).stdout.strip()
                self.keys[n] = (private, public)
                self.procs[n] = subprocess.Popen(
                    ["ip", "netns", "exec", HOSTS[n], "env", "WG_PROCESS_FOREGROUND=1",
                     "setsid", "wireguard-go", self.device(n)], stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)
            for n in (1, 2):
                self.configure(n)
        except Exception:
            self.remove()
            raise

    def device(self, n):
        # one name per host and pair: the UAPI sockets share /run/wireguard
        return "%s%d" % ("wgh" if self.index == 0 else "wgi", n)

    def address(self, n):
        return "10.%d.0.%d" % (200 + self.index, n)

    def configure(self, n):
        other, dev = 3 - n, self.device(n)
        deadline = time.time() + 10
        while not os.path.exists("/run/wireguard/%s.sock" % dev):
            if time.time() > deadline:
                raise RuntimeError("wireguard-go did not make %s" % dev)
            time.sleep(0.05)
        key_file = "/run/weft-bench-%s.key" % dev
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, self.keys[n][0].encode())
        os.close(fd)
        try:
            run_in(HOSTS[n], "wg", "set", dev, "private-key", key_file, "listen-port",
                   str(self.port), "peer", self.keys[other][1], "endpoint",
                   "10.9.0.%d:%d" % (other, self.port), "allowed-ips", self.address(other) + "/32")
        finally:
            os.unlink(key_file)
        run_in(HOSTS[n], "ip", "addr", "add", self.address(n) + "/24", "dev", dev)
        run_in(HOSTS[n], "ip", "link", "set", dev, "mtu", str(self.MTU), "up")

    def pids(self):
        return [[proc.pid] for proc in self.procs.values()]

    def remove(self):
        for n, proc in self.procs.items():
            proc.terminate()
            proc.wait(10)
            sh_quiet("rm", "-f", "/run/wireguard/%s.sock" % self.device(n))
        self.procs = {}


def fast_path_against_daemon(rounds=FAST_ROUNDS, seconds=FAST_SECONDS):
    """TCP on the converged udp network, its daemons running, with the kernel fast path and
    without it (detached on both hosts), in interleaved rounds whose order alternates: the
    machine's drift between rows measured minutes apart is larger than what is compared.
    Per direction, the median of the per-round ratios, and the senders' retransmits (the
    fast path may let a flow's small segments overtake its bulk in the daemon)."""
    def fast_path(on):
        for n in (1, 2):
            if on:      # what weft_host attached: the same parameters, the same programs
                tc_udp.attach(HOSTS[n], "flannel0", "eth0", "10.9.0.%d" % n, "100.96.%d.0/24" % n,
                              [("10.9.0.%d" % (3 - n), "100.96.%d.0/24" % (3 - n))])
            else:
                tc_udp.detach(HOSTS[n], "flannel0")

    rounds_seen = {True: [], False: []}
    try:
        for i in range(rounds):
            for on in ((True, False) if i % 2 == 0 else (False, True)):
                fast_path(on)
                runs = [iperf(CONTAINERS[1], FAMILIES[4].container, seconds, *extra)
                        for extra in ((), ("-R",))]
                rounds_seen[on].append([[run["sum_received"]["bits_per_second"],
                                         run["sum_sent"].get("retransmits", 0)] for run in runs])
    finally:
        fast_path(True)     # as weft converged it
    ratios = [statistics.median(f[d][0] / s[d][0] for f, s in zip(rounds_seen[True],
                                                                  rounds_seen[False]))
              for d in (0, 1)]
    return {"fast_rounds": rounds, "fast_seconds": seconds,
            "fast_vs_daemon_tcp": [round(r, 3) for r in ratios],
            "fast_retransmits": [sum(r[d][1] for r in rounds_seen[True]) for d in (0, 1)],
            "daemon_retransmits": [sum(r[d][1] for r in rounds_seen[False]) for d in (0, 1)],
            "fast_rounds_bps": rounds_seen}


def wireguard_against_hand(rounds, weft, seconds=WG_SECONDS):
    """weft's wireguard against two hand-made pairs, host to host, in interleaved rounds
    (each round one run through each, back to back, the order rotating from round to round
    so that none always runs first). Single-stream wireguard-go on two shared cores swings
    by +-15% from one run to the next, so: many short rounds, and the hand pairs are two,
    the same configuration twice. weft's ratio is to their mean in its round; the second
    pair's to the first (the "control", which would be 1.0 on a quiet machine) shows how
    far this benchmark itself can tell two identical data paths apart. Medians over the
    rounds, and each data path's wireguard-go CPU seconds per GB."""
    hands = [HandWireguard(0)]
    servers = []
    try:
        hands.append(HandWireguard(1))
        paths = [("100.96.2.1", 5203, weft.wireguard_pids())] + [
            (hand.address(2), 5204 + hand.index, hand.pids()) for hand in hands]
        servers = [subprocess.Popen(["ip", "netns", "exec", HOSTS[2], "iperf3", "-s", "-B",
                                     address, "-p", str(port)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
                   for address, port, _ in paths]
        time.sleep(0.5)
        ticks = os.sysconf("SC_CLK_TCK")
        runs = []
        for number in range(rounds):
            round_ = {}
            for which in [(number + k) % len(paths) for k in range(len(paths))]:
                server, port, pids = paths[which]
                flat = [p for group in pids for p in group]
                before = cpu_ticks(flat)
                end = iperf(HOSTS[1], server, seconds, port=port)
                gb = end["sum_received"]["bytes"] / 1e9
                round_[which] = (end["sum_received"]["bits_per_second"],
                                 (cpu_ticks(flat) - before) / ticks / gb)
            runs.append(round_)
        med = statistics.median
        hand_mean = [(r[1][0] + r[2][0]) / 2 for r in runs]
        control = sorted(r[2][0] / r[1][0] for r in runs)
        return {"wg_rounds": rounds, "wg_seconds": seconds,
                "weft_host_tcp1_bps": med(r[0][0] for r in runs),
                "hand_host_tcp1_bps": med(hand_mean),
                "weft_vs_hand": med(r[0][0] / h for r, h in zip(runs, hand_mean)),
                "control_vs_hand": med(control),
                "control_range": [control[len(control) // 10], control[-1 - len(control) // 10]],
                "weft_wg_cpu_s_per_gb": med(r[0][1] for r in runs),
                "hand_wg_cpu_s_per_gb": med((r[1][1] + r[2][1]) / 2 for r in runs),
                "hand_ping_mean_ms": ping_ms(HOSTS[1], hands[0].address(2))[0],
                "wg_rounds_gbps": [[round(r[k][0] / 1e9, 3) for k in range(len(paths))]
                                   for r in runs],     # weft, hand pair, control pair
                "weft_ping_mean_ms": ping_ms(HOSTS[1], "100.96.2.1")[0]}
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(5)
        for hand in hands:
            hand.remove()


def tx_bytes(ns, device):
    return json.loads(run_in(ns, "ip", "-s", "-j", "link", "show", "dev", device))[0][
        "stats64"]["tx"]["bytes"]


def udp_small_pps(seconds, server="100.96.2.2"):
    end = iperf(CONTAINERS[1], server, seconds, "-u", "-l", "64", "-b", "0")
    total = end["sum"]
    return (total["packets"] - total["lost_packets"]) / total["seconds"]


def added_rtt(rounds, fam):
    """What the overlay adds to the underlay's round trip: each round a ping host A to B
    over the underlay right next to one container to container; the medians over the
    rounds of the differences of their means and of their p99s, in ms."""
    means, p99s = zip(*(added_once(fam) for _ in range(rounds)))
    return {"added_rtt_mean_ms": round(statistics.median(means), 3),
            "added_rtt_p99_ms": round(statistics.median(p99s), 3)}


def added_once(fam):
    """One round: (mean, p99) of a container-to-container ping minus those of an underlay
    ping right before it, in ms."""
    under = ping_ms(HOSTS[1], fam.underlay)
    over = ping_ms(CONTAINERS[1], fam.container)
    if under[0] is None or over[0] is None:
        raise RuntimeError("a ping got no answer (underlay %s, overlay %s)" % (under, over))
    return over[0] - under[0], over[1] - under[1]


def machine_name():
    """This machine, as every result file names it."""
    return "%s, %d cores, kernel %s, Python %s" % (
        platform.processor() or platform.machine(), os.cpu_count(), platform.release(),
        platform.python_version())


def ping_ms(ns, server, count=200):
    out = run_in(ns, "ping", "-c", str(count), "-i", "0.005", server, check=False)
    times = sorted(float(word.split("=")[1]) for word in out.split() if word.startswith("time="))
    if not times:
        return None, None
    return statistics.mean(times), times[min(len(times) - 1, int(len(times) * 0.99))]


def measure(name, seconds, rounds, weft, wireguard_rounds=WG_ROUNDS):
    fam = family_of(name)
    servers = [subprocess.Popen(["ip", "netns", "exec", ns, "iperf3", "-s", "-B", address, "-p", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for ns, address, port in ((CONTAINERS[2], fam.container, 5201),
                                         (HOSTS[2], fam.underlay, BASELINE_PORT),
                                         (HOSTS[2], fam.bridge, 5203))]
    try:
        time.sleep(0.5)
        r = {"backend": name}
        if backend_of(name) == "underlay":
            r["ping_mean_ms"], r["ping_p99_ms"] = ping_ms(HOSTS[1], fam.underlay)
            r["tcp1_bps"], r["tcp1_underlay_bps"], r["cpu_s_per_gb"], _ = tcp(
                seconds, rounds, client=HOSTS[1], server=fam.underlay, port=BASELINE_PORT,
                underlay=fam.underlay)
            r["tcp4_bps"], r["tcp4_underlay_bps"], _, _ = tcp(
                seconds, 1, 4, HOSTS[1], fam.underlay, port=BASELINE_PORT, underlay=fam.underlay)
            return r
        daemons = weft if backend_of(name) == "udp" else None
        r["ping_mean_ms"], r["ping_p99_ms"] = ping_ms(CONTAINERS[1], fam.container)
        device = DEVICES.get(name)
        sent = tx_bytes(HOSTS[1], device) if device else 0
        r["tcp1_bps"], r["tcp1_underlay_bps"], r["cpu_s_per_gb"], r["daemon_cpu_s_per_gb"] = \
            tcp(seconds, rounds, server=fam.container, weft=daemons, underlay=fam.underlay)
        if device:  # the stream really took the backend's device, not some other path
            sent = tx_bytes(HOSTS[1], device) - sent
            moved = r["tcp1_bps"] * seconds * rounds / 8
            if sent < 0.5 * moved:
                raise RuntimeError("%s: only %d bytes left host A by %s while %d were moved"
                                   % (name, sent, device, moved))
        r["tcp4_bps"], r["tcp4_underlay_bps"], _, _ = tcp(
            seconds, 1, 4, server=fam.container, weft=daemons, underlay=fam.underlay)
        r["host_tcp1_bps"], r["host_tcp1_underlay_bps"], r["host_cpu_s_per_gb"], _ = tcp(
            seconds, rounds, client=HOSTS[1], server=fam.bridge, weft=daemons, port=5203,
            underlay=fam.underlay)
        r["udp64_pps"] = udp_small_pps(seconds, fam.container)
        if name == "udp":
            r.update(fast_path_against_daemon())
        if backend_of(name) == "udp":
            r.update(added_rtt(rounds, fam))
            # B to A: on the mixed pair the Flannel-like side sends and weft receives
            r["tcp1_reverse_bps"] = statistics.median(
                iperf(CONTAINERS[1], fam.container, seconds, "-R")["sum_received"]["bits_per_second"]
                for _ in range(rounds))
        if backend_of(name) == "wireguard":
            r.update(wireguard_against_hand(wireguard_rounds, weft))
        if backend_of(name) == "udp":
            r["daemon_rss_mb"] = round(max(peak_rss_mb(group) for group in weft.daemon_pids()), 1)
            r["daemon_processes"] = max(len(group) for group in weft.daemon_pids())
        else:
            r.pop("daemon_cpu_s_per_gb")
        return r
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(5)


def table(results):
    lines = ["| backend | TCP 1 stream, container to container | TCP 4 streams | TCP host to host | "
             "UDP 64 B | ping mean / p99 | CPU s per GB (machine) |", "|" + "---|" * 7]
    for r in results:
        def gbit(key):
            ref = r.get(key.replace("_bps", "_underlay_bps"))
            return "%.2f Gbit/s (%.2fx)" % (r[key] / 1e9, r[key] / ref) if ref else \
                "%.2f Gbit/s" % (r[key] / 1e9)
        lines.append("| %s | %s | %s | %s | %s | %.3f / %.3f ms | %.2f |" % (
            r["backend"], gbit("tcp1_bps"), gbit("tcp4_bps"),
            gbit("host_tcp1_bps") if "host_tcp1_bps" in r else "-",
            "%.0f kpps" % (r["udp64_pps"] / 1e3) if "udp64_pps" in r else "-",
            r["ping_mean_ms"] or 0, r["ping_p99_ms"] or 0, r["cpu_s_per_gb"]))
    return lines


def verdicts(results):
    by = {r["backend"]: r for r in results}
    lines = []
    for name, target in TARGETS.items():
        if name not in by:      # a run of some rows
            continue
        got = by[name]["host_tcp1_bps"] / by[name]["host_tcp1_underlay_bps"]
        hop = by[name]["tcp1_bps"] / by[name]["tcp1_underlay_bps"]
        lines.append("%s TCP single stream, host to host through the overlay: %.3fx underlay "
                     "(target >= %.2fx): %s; container to container %.3fx (that path also crosses "
                     "both containers' veths and bridges, which the underlay run does not)"
                     % (name, got, target, "met" if got >= target else "NOT met", hop))
    if "vxlan" + OPEN in by:
        open_, closed = by["vxlan" + OPEN], by["vxlan"]
        lines.append("vxlan with weft_peer_ingress off: %.3fx underlay host to host, %.3fx container "
                     "to container; the peer-only ingress check costs %.0f%% of vxlan's single stream"
                     % (open_["host_tcp1_bps"] / open_["host_tcp1_underlay_bps"],
                        open_["tcp1_bps"] / open_["tcp1_underlay_bps"],
                        100 * (1 - (closed["host_tcp1_bps"] / closed["host_tcp1_underlay_bps"])
                               / (open_["host_tcp1_bps"] / open_["host_tcp1_underlay_bps"]))))
    if "vxlan" + IPV6 in by:
        v6, v4 = by["vxlan" + IPV6], by["vxlan"]
        lines.append("vxlan over IPv6 (dual-stack network, container MTU 1430): %.3fx the IPv6 "
                     "underlay host to host (IPv4: %.3fx the IPv4 underlay), %.3fx container to "
                     "container (IPv4: %.3fx); %.2f Gbit/s against IPv4's %.2f Gbit/s host to host"
                     % (v6["host_tcp1_bps"] / v6["host_tcp1_underlay_bps"],
                        v4["host_tcp1_bps"] / v4["host_tcp1_underlay_bps"],
                        v6["tcp1_bps"] / v6["tcp1_underlay_bps"], v4["tcp1_bps"] / v4["tcp1_underlay_bps"],
                        v6["host_tcp1_bps"] / 1e9, v4["host_tcp1_bps"] / 1e9))
    if "wireguard" in by:
        lines.append(wireguard_verdict(by["wireguard"]))
    udp = by["udp"]
    lines.append("udp TCP single stream, container to container: %.2f Gbit/s (target >= %.1f Gbit/s): %s;"
                 " %.2fx vxlan, %.2fx underlay"
                 % (udp["tcp1_bps"] / 1e9, UDP_TARGET_BPS / 1e9,
                    "met" if udp["tcp1_bps"] >= UDP_TARGET_BPS else "NOT met",
                    udp["tcp1_bps"] / by["vxlan"]["tcp1_bps"], udp["tcp1_bps"] / udp["tcp1_underlay_bps"]))
    for row in [udp] + [by["udp" + s] for s in (DAEMON, MIXED) if "udp" + s in by]:
        lines.append(udp_latency_verdict(row))
    lines.append("udp daemons: %.2f CPU s per GB moved; peak RSS of all %d processes on a host %.1f MB "
                 "(target <= %d MB): %s" % (udp["daemon_cpu_s_per_gb"], udp["daemon_processes"],
                                            udp["daemon_rss_mb"], UDP_TARGET_RSS_MB,
                                            "met" if udp["daemon_rss_mb"] <= UDP_TARGET_RSS_MB else "NOT met"))
    return lines


def udp_latency_verdict(row):
    """The round trip a udp row adds to the underlay's, against the targets (which are the
    weft pair's; the mixed pair's are shown beside them), and its TCP both ways."""
    verdict = " and ".join(
        "%s %.3f ms (target <= %.2f ms): %s" % (
            kind, row["added_rtt_%s_ms" % kind], limit,
            "met" if row["added_rtt_%s_ms" % kind] <= limit else "NOT met")
        for kind, limit in UDP_TARGET_ADDED_MS.items())
    who = {MIXED: "Flannel-like B (weft sends A to B, Flannel-like B to A), no fast path",
           DAEMON: "weft-udpd both ways, no fast path"}.get(
               "-" + row["backend"].partition("-")[2], "weft both ways, with the kernel fast path")
    return ("%s, %s: round trip added over the underlay, container to container: %s; TCP single "
            "stream A to B %.2f Gbit/s, B to A %.2f Gbit/s"
            % (row["backend"], who, verdict, row["tcp1_bps"] / 1e9, row["tcp1_reverse_bps"] / 1e9))


def fast_path_verdict(fast, daemon):
    """The udp row (the kernel fast path in front of weft-udpd) against weft-udpd alone in
    the same run: #24's TCP target is "no lower than without it"."""
    ratios = [fast[key] / daemon[key] for key in ("tcp1_bps", "tcp1_reverse_bps")]
    return ("udp with the kernel fast path against weft-udpd alone (udp-daemon), rows of the "
            "same run: TCP single stream A to B %.2fx, B to A %.2fx; added round trip "
            "%.3f against %.3f ms mean, %.3f against %.3f ms p99; UDP 64 B %.0f against %.0f kpps"
            % (ratios[0], ratios[1], fast["added_rtt_mean_ms"], daemon["added_rtt_mean_ms"],
               fast["added_rtt_p99_ms"], daemon["added_rtt_p99_ms"], fast["udp64_pps"] / 1e3,
               daemon["udp64_pps"] / 1e3))


def interleaved_fast_path_verdict(row):
    """#24's TCP target, from fast_path_against_daemon's interleaved rounds."""
    ratios = row["fast_vs_daemon_tcp"]
    return ("udp TCP single stream with the kernel fast path against without it, %d interleaved "
            "rounds of %d s each way: A to B %.3fx, B to A %.3fx (median of the rounds' ratios; "
            "target >= 1.0x, no lower than without): %s; senders' retransmits with / without: "
            "A to B %d / %d, B to A %d / %d"
            % (row["fast_rounds"], row["fast_seconds"], ratios[0], ratios[1],
               "met" if min(ratios) >= 1.0 else "NOT met", row["fast_retransmits"][0],
               row["daemon_retransmits"][0], row["fast_retransmits"][1], row["daemon_retransmits"][1]))


def wireguard_verdict(wg):
    return ("wireguard (wireguard-go both ways) host to host: weft %.2f Gbit/s, two hand-configured "
            "wireguard-go pairs %.2f Gbit/s in the same %d rounds of %d s: %.3fx (target >= %.2fx): "
            "%s; the second hand pair against the first (the benchmark's own spread): %.3fx, "
            "%.2f-%.2fx from the 10th to the 90th percentile of the rounds; wireguard-go CPU s per "
            "GB %.2f (weft) / %.2f (hand); ping mean %.3f / %.3f ms"
            % (wg["weft_host_tcp1_bps"] / 1e9, wg["hand_host_tcp1_bps"] / 1e9, wg["wg_rounds"],
               wg["wg_seconds"], wg["weft_vs_hand"], WIREGUARD_TARGET,
               "met" if wg["weft_vs_hand"] >= WIREGUARD_TARGET else "NOT met",
               wg["control_vs_hand"], wg["control_range"][0], wg["control_range"][1],
               wg["weft_wg_cpu_s_per_gb"], wg["hand_wg_cpu_s_per_gb"],
               wg["weft_ping_mean_ms"], wg["hand_ping_mean_ms"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", nargs="+",
                        default=["host-gw", "vxlan", "vxlan" + OPEN, "vxlan" + IPV6, "udp",
                                 "udp" + DAEMON, "udp" + MIXED,
                                 "wireguard"])
    parser.add_argument("--wireguard-rounds", type=int, default=WG_ROUNDS,
                        help="rounds of wireguard against the hand pairs (%d s each)" % WG_SECONDS)
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    parser.add_argument("--name", default="dataplane",
                        help="file name of the results (a run of some rows: its own name)")
    args = parser.parse_args()
    weft = None
    try:
        setup_hosts()
        weft = Weft()
        results = [measure("underlay", args.seconds, args.rounds, None)]
        if any(name.endswith(IPV6) for name in args.backends):
            results.append(measure("underlay" + IPV6, args.seconds, args.rounds, None))
        for backend in args.backends:
            weft.converge(backend)
            results.append(measure(backend, args.seconds, args.rounds, weft, args.wireguard_rounds))
            print(json.dumps(results[-1]), flush=True)
    finally:
        if weft:
            weft.remove()
        teardown_hosts()
    machine = machine_name()
    lines = table(results)
    if {"host-gw", "vxlan", "udp"} <= {r["backend"] for r in results}:  # the verdicts need all
        lines += [""] + verdicts(results)
    else:   # a run of some rows: the verdicts those rows carry on their own
        lines += [""] + [wireguard_verdict(r) for r in results if r["backend"] == "wireguard"] \
            + [udp_latency_verdict(r) for r in results if backend_of(r["backend"]) == "udp"]
    by = {r["backend"]: r for r in results}
    if "udp" in by and "udp" + DAEMON in by:
        lines.append(fast_path_verdict(by["udp"], by["udp" + DAEMON]))
    if "udp" in by:
        lines.append(interleaved_fast_path_verdict(by["udp"]))
    report = "Measured %s on %s.\n\n%s\n" % (time.strftime("%Y-%m-%d"), machine, "\n".join(lines))
    print(report)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, args.name + ".json"), "w") as handle:
        json.dump({"date": time.strftime("%Y-%m-%d"), "machine": machine, "results": results},
                  handle, indent=2)
    with open(os.path.join(args.out, args.name + ".md"), "w") as handle:
        handle.write(report)


if __name__ == "__main__":
    main()
