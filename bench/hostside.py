"""Host-side benchmark: what weft_host costs one host with 500 to 2,000 peers.

The host is a sandbox (lab/sandbox.py: its own network namespace, and copy-on-write /etc,
/usr/local and /run), converged by the real weft_host through the ansible CLI with a vxlan
plan of N+1 hosts: N neighbours, N FDB entries, N routes and N peers in the ingress table.
Per size: the first converge, a re-run that finds nothing to change, and one weft-restore
pass that finds nothing to repair (CPU seconds: what weft-heal costs a quiet host).

    python3 bench/hostside.py [--sizes 500 1000 2000] [--out bench/results]

Writes hostside.json and hostside.md into --out. Run as root.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lab"))
import weftcode  # noqa: E402,F401  (weft's code, as weft)
from weft.lease import encode_plan  # noqa: E402
from ansible_collections.weft.overlay.tests.unit.plans import sample_plan  # noqa: E402
from sandbox import Sandbox, sh  # noqa: E402

NETNS = "weft-hostbench-%d" % os.getpid()
IDENTITY = {"name": "h00000", "iface": "eth0", "public_ip": "10.9.0.1",
            "underlay": "10.9.0.0/16", "mtu": 1500}


def plan(peers):
    hosts = [("h%05d" % i, "10.9.%d.%d" % ((i + 1) // 250, (i + 1) % 250 + 1),
              "100.%d.%d.0/24" % (64 + (i + 1) // 256, (i + 1) % 256)) for i in range(peers + 1)]
    hosts[0] = ("h00000", "10.9.0.1", hosts[0][2])
    return encode_plan(sample_plan("vxlan", hosts, network="100.64.0.0/10", SubnetLen=24))


def timed(function):
    start = time.monotonic()
    result = function()
    return time.monotonic() - start, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    args = parser.parse_args()
    rows = []
    for peers in args.sizes:
        subprocess.run(["ip", "netns", "add", NETNS], check=True)
        box = Sandbox(NETNS)
        try:
            sh("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1", netns=NETNS)
            sh("ip", "link", "set", "eth1", "up", netns=NETNS)
            sh("ip", "addr", "add", "10.9.0.1/16", "dev", "eth0", netns=NETNS)
            sh("ip", "link", "set", "eth0", "up", netns=NETNS)
            module_args = {"plan": plan(peers), "host": IDENTITY,
                           "settings": {"docker": False, "heal_interval": 0}}
            first_s, first = timed(lambda: box.module("weft.overlay.host", module_args))
            again_s, again = timed(lambda: box.module("weft.overlay.host", module_args))
            if first["failed"] or not first["changed"] or again["changed"]:
                raise RuntimeError("unexpected result: %s / %s" % (first, again))
            routes = len(sh("ip", "route", "show", "proto", "119", netns=NETNS).splitlines())
            cost = json.loads(box.run("/usr/bin/python3", "/usr/local/lib/weft/weft-restore",
                                      "--cost", "3").stdout.strip().splitlines()[-1])
            row = dict(peers=peers, routes=routes, converge_s=round(first_s, 2),
                       no_change_s=round(again_s, 2),
                       restore_pass_cpu_s=round(cost["cpu_seconds_per_pass"], 3),
                       converge_ms_per_peer=round(1000 * first_s / peers, 2))
            rows.append(row)
            print(json.dumps(row), flush=True)
        finally:
            box.remove()
            subprocess.run(["ip", "netns", "del", NETNS], check=False)
    machine = "%s, %d CPUs, kernel %s" % (platform.machine(), os.cpu_count(), platform.release())
    lines = ["Host side: weft_host on one host with N vxlan peers (%s), %s." % (machine, time.strftime("%Y-%m-%d")),
             "", "| peers | routes | first converge | no-change run | no-drift weft-heal pass (CPU) | converge per peer |",
             "|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append("| %(peers)d | %(routes)d | %(converge_s).2f s | %(no_change_s).2f s | "
                     "%(restore_pass_cpu_s).3f s | %(converge_ms_per_peer).2f ms |" % row)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "hostside.json"), "w") as handle:
        json.dump(dict(machine=machine, rows=rows), handle, indent=2)
    with open(os.path.join(args.out, "hostside.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
