#!/usr/bin/env python3
"""Data-plane benchmark: the underlay, host-gw, vxlan and the udp daemon, measured in one run.

Two network namespaces joined by a veth are the two hosts; each has a "container" address
(100.96.<n>.1) on its loopback that the backend must carry traffic for. For every backend:
TCP single stream and 4 streams (iperf3, median of 3 runs), small-packet UDP rate (64-byte datagrams), ping
latency (mean, p99) and, for the udp daemon, its peak RSS. Every figure is also given as a
ratio to the underlay measured in the same run, because these machines are noisy.

    python3 bench/dataplane.py [--seconds 3] [--out bench/results]

Writes dataplane.json and dataplane.md into --out. Run as root; needs iperf3 and ping.
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
DAEMON = os.path.join(ROOT, "roles", "weft", "files", "weft-udpd.py")
PREFIX = "weft-b-%d" % os.getpid()
HOSTS = {1: PREFIX + "-A", 2: PREFIX + "-B"}
TARGETS = {"host-gw": 0.95, "vxlan": 0.9}   # x underlay, TCP single stream
UDP_TARGET_BPS, UDP_TARGET_RSS_MB = 1e9, 30


def sh(*cmd, ns=None, check=True):
    if ns:
        cmd = ("ip", "netns", "exec", ns) + cmd
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode:
        raise RuntimeError("%s: %s" % (" ".join(cmd), proc.stderr.strip()))
    return proc.stdout


def setup_hosts():
    for ns in HOSTS.values():
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "set", "lo", "up", ns=ns)
        sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=ns)
    sh("ip", "link", "add", "eth0", "netns", HOSTS[1], "type", "veth", "peer", "name", "eth0",
       "netns", HOSTS[2])
    for n, ns in HOSTS.items():
        sh("ip", "addr", "add", "10.9.0.%d/24" % n, "dev", "eth0", ns=ns)
        sh("ip", "addr", "add", "100.96.%d.1/32" % n, "dev", "lo", ns=ns)
        sh("ip", "link", "set", "eth0", "up", ns=ns)


def teardown_hosts():
    for ns in HOSTS.values():
        sh("ip", "netns", "del", ns, check=False)


# ---- backends: set up, return (client address, server address, cleanup) --------------

def underlay():
    return "10.9.0.1", "10.9.0.2", lambda: None


def host_gw():
    for n, ns in HOSTS.items():
        other = 3 - n
        sh("ip", "route", "add", "100.96.%d.0/24" % other, "via", "10.9.0.%d" % other, ns=ns)

    def cleanup():
        for n, ns in HOSTS.items():
            sh("ip", "route", "del", "100.96.%d.0/24" % (3 - n), ns=ns)
    return "100.96.1.1", "100.96.2.1", cleanup


def vxlan():
    for n, ns in HOSTS.items():
        other = 3 - n
        mac = "0e:77:64:60:%02x:00" % other
        sh("ip", "link", "add", "flannel.1", "type", "vxlan", "id", "1", "local", "10.9.0.%d" % n,
           "dev", "eth0", "dstport", "8472", "nolearning", ns=ns)
        sh("ip", "link", "set", "flannel.1", "address", "0e:77:64:60:%02x:00" % n, "mtu", "1450",
           "up", ns=ns)
        sh("ip", "addr", "add", "100.96.%d.0/32" % n, "dev", "flannel.1", ns=ns)
        sh("ip", "neigh", "replace", "100.96.%d.0" % other, "lladdr", mac, "dev", "flannel.1",
           "nud", "permanent", ns=ns)
        sh("bridge", "fdb", "append", mac, "dev", "flannel.1", "dst", "10.9.0.%d" % other,
           "self", "permanent", ns=ns)
        sh("ip", "route", "add", "100.96.%d.0/24" % other, "via", "100.96.%d.0" % other,
           "dev", "flannel.1", "onlink", ns=ns)

    def cleanup():
        for ns in HOSTS.values():
            sh("ip", "link", "del", "flannel.1", ns=ns)
    return "100.96.1.1", "100.96.2.1", cleanup


UDP_DAEMONS = {}


def udp(tmpdir):
    for n, ns in HOSTS.items():
        other = 3 - n
        sh("ip", "tuntap", "add", "mode", "tun", "name", "flannel0", ns=ns)
        sh("ip", "addr", "add", "100.96.%d.0/32" % n, "dev", "flannel0", ns=ns)
        sh("ip", "link", "set", "flannel0", "mtu", "1472", "up", ns=ns)
        sh("ip", "route", "add", "100.96.0.0/16", "dev", "flannel0", "src", "100.96.%d.1" % n, ns=ns)
        config = os.path.join(tmpdir, "udpd-%d.json" % n)
        with open(config, "w") as handle:
            json.dump({"tun": "flannel0", "listen": "10.9.0.%d" % n, "port": 8285,
                       "network": "100.96.0.0/16", "subnet": "100.96.%d.0/24" % n,
                       "peers": [{"subnet": "100.96.%d.0/24" % other, "ip": "10.9.0.%d" % other}]},
                      handle)
        UDP_DAEMONS[n] = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, DAEMON,
                                           "run", config], stdout=subprocess.DEVNULL)
    time.sleep(1)

    def cleanup():
        for proc in UDP_DAEMONS.values():
            proc.terminate()
            proc.wait(5)
        for ns in HOSTS.values():
            sh("ip", "link", "del", "flannel0", ns=ns)
    return "100.96.1.1", "100.96.2.1", cleanup


def daemon_peak_rss_mb():
    peaks = []
    for proc in UDP_DAEMONS.values():
        # `ip netns exec` execs the daemon, so the PID is the daemon's.
        with open("/proc/%d/status" % proc.pid) as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
    return max(peaks)


# ---- measurements ------------------------------------------------------------------------

BASELINE_PORT = 5202  # a second iperf3 server on the underlay address, for paired runs


def iperf(client, server, seconds, *extra, attempts=3, port=5201):
    """One iperf3 run; the server may still be closing the previous test, so retry."""
    for attempt in range(attempts):
        out = sh("iperf3", "-c", server, "-p", str(port), "-B", client, "-t", str(seconds), "-J",
                 *extra, ns=HOSTS[1], check=False)
        doc = json.loads(out)
        if "error" not in doc:
            return doc["end"]
        time.sleep(1)
    raise RuntimeError("iperf3: %s" % doc["error"])


def tcp_bps(client, server, seconds, streams=1, rounds=3):
    """(backend, underlay) medians of `rounds` alternating runs of each.

    Single runs on a shared 2-core machine swing by 10%, and load drifts over a run:
    pairing every backend run with an underlay run next to it keeps the ratio honest.
    """
    def once(src, dst, port):
        return iperf(src, dst, seconds, "-P", str(streams),
                     port=port)["sum_received"]["bits_per_second"]
    runs = [(once(client, server, 5201), once("10.9.0.1", "10.9.0.2", BASELINE_PORT))
            for _ in range(rounds)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def udp_small_pps(client, server, seconds):
    end = iperf(client, server, seconds, "-u", "-l", "64", "-b", "0", attempts=1)
    total = end["sum"]
    received = total["packets"] - total["lost_packets"]
    return received / total["seconds"]


def ping_ms(client, server, count=200):
    out = sh("ping", "-c", str(count), "-i", "0.005", "-I", client, server, ns=HOSTS[1], check=False)
    times = sorted(float(word.split("=")[1]) for word in out.split() if word.startswith("time="))
    if not times:
        return None, None
    return statistics.mean(times), times[min(len(times) - 1, int(len(times) * 0.99))]


def measure(name, setup, seconds):
    client, server, cleanup = setup()
    # Bound to the server address: a UDP reply from the wildcard address would leave with
    # the route's preferred source (the underlay's), which the client's socket ignores.
    iperf_servers = [subprocess.Popen(["ip", "netns", "exec", HOSTS[2], "iperf3", "-s", "-B", address,
                                       "-p", str(port)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                     for address, port in ((server, 5201), ("10.9.0.2", BASELINE_PORT))]
    try:
        time.sleep(0.5)
        result = {"backend": name}
        result["ping_mean_ms"], result["ping_p99_ms"] = ping_ms(client, server)
        result["tcp1_bps"], result["tcp1_underlay_bps"] = tcp_bps(client, server, seconds)
        result["tcp4_bps"], result["tcp4_underlay_bps"] = tcp_bps(client, server, seconds, streams=4)
        result["udp64_pps"] = udp_small_pps(client, server, seconds)
        if name == "udp":
            result["daemon_rss_mb"] = round(daemon_peak_rss_mb(), 1)
        return result
    finally:
        for proc in iperf_servers:
            proc.terminate()
            proc.wait(5)
        cleanup()


def table(results):
    base = results[0]
    head = "| backend | TCP 1 stream | TCP 4 streams | UDP 64 B | ping mean | ping p99 |"
    lines = [head, "|" + "---|" * 6]
    for r in results:
        def ratio(key):
            # TCP: against the underlay runs paired with this backend's; others: the underlay row.
            ref = r.get(key.replace("_bps", "_underlay_bps")) if key.startswith("tcp") else None
            ref = ref or base[key]
            return "%.2fx" % (r[key] / ref) if r[key] and ref else "-"
        udp64 = "%.0f kpps (%s)" % (r["udp64_pps"] / 1e3, ratio("udp64_pps")) \
            if r["udp64_pps"] else "not measured"
        lines.append("| %s | %.2f Gbit/s (%s) | %.2f Gbit/s (%s) | %s | %.3f ms | %.3f ms |" % (
            r["backend"], r["tcp1_bps"] / 1e9, ratio("tcp1_bps"), r["tcp4_bps"] / 1e9,
            ratio("tcp4_bps"), udp64, r["ping_mean_ms"] or 0, r["ping_p99_ms"] or 0))
    return lines


def verdicts(results):
    by = {r["backend"]: r for r in results}
    lines = []
    for name, target in TARGETS.items():
        got = by[name]["tcp1_bps"] / by[name]["tcp1_underlay_bps"]
        lines.append("%s TCP single stream: %.3fx underlay (target >= %.2fx): %s"
                     % (name, got, target, "met" if got >= target else "NOT met"))
    udp_r = by["udp"]
    lines.append("udp daemon TCP single stream: %.2f Gbit/s (target >= 1 Gbit/s): %s; %.2fx vxlan"
                 % (udp_r["tcp1_bps"] / 1e9, "met" if udp_r["tcp1_bps"] >= UDP_TARGET_BPS else "NOT met",
                    udp_r["tcp1_bps"] / by["vxlan"]["tcp1_bps"]))
    lines.append("udp daemon peak RSS: %.1f MB (target <= %d MB): %s"
                 % (udp_r["daemon_rss_mb"], UDP_TARGET_RSS_MB,
                    "met" if udp_r["daemon_rss_mb"] <= UDP_TARGET_RSS_MB else "NOT met"))
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    import tempfile
    with tempfile.TemporaryDirectory() as tmpdir:
        try:
            setup_hosts()
            results = [measure("underlay", underlay, args.seconds),
                       measure("host-gw", host_gw, args.seconds),
                       measure("vxlan", vxlan, args.seconds),
                       measure("udp", lambda: udp(tmpdir), args.seconds)]
        finally:
            teardown_hosts()
    machine = "%s, %d cores, kernel %s, Python %s" % (
        platform.processor() or platform.machine(), os.cpu_count(), platform.release(),
        platform.python_version())
    lines = table(results) + [""] + verdicts(results)
    report = "Measured %s on %s.\n\n%s\n" % (time.strftime("%Y-%m-%d"), machine, "\n".join(lines))
    print(report)
    with open(os.path.join(args.out, "dataplane.json"), "w") as handle:
        json.dump({"date": time.strftime("%Y-%m-%d"), "machine": machine, "results": results},
                  handle, indent=2)
    with open(os.path.join(args.out, "dataplane.md"), "w") as handle:
        handle.write(report)


if __name__ == "__main__":
    main()
