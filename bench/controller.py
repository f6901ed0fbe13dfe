"""Controller benchmark: what weft.overlay.site costs the controller for 250 to 2,000 hosts.

Thousands of hosts cannot run here, so they are simulated: every host is reached with the
local connection, and the two modules that would run on the hosts, weft.overlay.facts and
weft.overlay.host, are replaced by stubs (bench/stubs/) that take the same arguments and
return at once. Everything else is the real playbook, from a shadow of the collection in
which the stubs take those two modules' places: the role, its templating, the real planner
(over a lease file), and the real plan string handed to every host. The baseline is a
play with the same tasks and the same stubs whose tasks carry no data (no plan, no
settings), so the ratio isolates what weft's data costs the controller.

Per size, both plays run once, interleaved (weft, baseline), from the same empty lease
file; reported: wall time, the ratio, and the peak memory of the controller (ansible-playbook
and its workers: the sum of their proportional set sizes, sampled every 0.2 s).

    python3 bench/controller.py [--sizes 250 500 1000 2000] [--out bench/results]

Writes controller.json and controller.md into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
TARGET_RATIO, TARGET_RSS_MB, TARGET_HOSTS = 1.5, 1024, 2000
BASELINE = """\
- name: Baseline - the same tasks as site.yml, carrying nothing
  hosts: weft_nodes
  gather_facts: false
  tasks:
    - name: Facts
      weft.overlay.facts: {}
    - name: Install (skipped, as on a converged host)
      ansible.builtin.debug: {msg: skipped}
      when: false
    - name: Facts again (skipped)
      ansible.builtin.debug: {msg: skipped}
      when: false
    - name: Check the underlay
      ansible.builtin.assert: {that: true, quiet: true}
    - name: Plan
      ansible.builtin.debug: {msg: planned}
      delegate_to: localhost
      run_once: true
    - name: Check the lease
      ansible.builtin.assert: {that: true, quiet: true}
    - name: Converge
      weft.overlay.host: {}
"""


def write_inventory(directory, size):
    hosts = {"h%05d" % i: {"weft_public_ip": "10.%d.%d.%d" % (i >> 16, (i >> 8) & 255, i & 255)}
             for i in range(1, size + 1)}
    inventory = {"weft_nodes": {"hosts": hosts, "vars": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "weft_lease_file": os.path.join(directory, "weft_leases.yml"),
        "weft_network": {"Network": "100.64.0.0/10", "SubnetLen": 24, "Backend": {"Type": "vxlan"}},
    }}}
    path = os.path.join(directory, "hosts.yml")
    with open(path, "w") as handle:
        json.dump(inventory, handle)
    return path


def tree_pss_kb(root):
    """Proportional set size of `root` and all its descendants, in KiB."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as handle:
                    parents[int(entry)] = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    family, grew = {root}, True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in family and pid not in family:
                family.add(pid)
                grew = True
    total = 0
    for pid in family:
        try:
            with open("/proc/%d/smaps_rollup" % pid) as handle:
                total += sum(int(line.split()[1]) for line in handle if line.startswith("Pss:"))
        except OSError:
            pass
    return total


def shadow_collection(directory):
    """A collections path in `directory` whose weft.overlay is this checkout with the two
    host-side modules replaced by the stubs; its path."""
    top = os.path.join(directory, "collections")
    target = os.path.join(top, "ansible_collections", "weft", "overlay")
    os.makedirs(os.path.join(target, "plugins", "modules"))
    for name in os.listdir(ROOT):
        if name not in ("plugins", ".cache", ".git", ".venv"):
            os.symlink(os.path.join(ROOT, name), os.path.join(target, name))
    for name in os.listdir(os.path.join(ROOT, "plugins")):
        if name != "modules":
            os.symlink(os.path.join(ROOT, "plugins", name), os.path.join(target, "plugins", name))
    stubs = os.path.join(ROOT, "bench", "stubs")
    for name in os.listdir(os.path.join(ROOT, "plugins", "modules")):
        source = os.path.join(stubs if name in os.listdir(stubs) else
                              os.path.join(ROOT, "plugins", "modules"), name)
        os.symlink(source, os.path.join(target, "plugins", "modules", name))
    return top


def run(play, inventory, size, collections):
    """(seconds, peak MiB) of one ansible-playbook run."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=collections,
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1",
               PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    start = time.monotonic()
    proc = subprocess.Popen(["ansible-playbook", "-i", inventory, "-f", "20", play], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_pss_kb(proc.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = proc.communicate()[0]
    seconds = time.monotonic() - start
    sampler.join()
    if proc.returncode:
        raise RuntimeError("%s failed:\n%s" % (play, out[-4000:]))
    if "failed=0" not in out:
        raise RuntimeError("%s: a host failed:\n%s" % (play, out[-4000:]))
    return seconds, peak[0] / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000, 2000])
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="weft-controller-") as directory:
        baseline = os.path.join(directory, "baseline.yml")
        with open(baseline, "w") as handle:
            handle.write(BASELINE)
        collections = shadow_collection(directory)
        site = "weft.overlay.site"
        for size in args.sizes:
            inventory = write_inventory(directory, size)
            lease_file = os.path.join(directory, "weft_leases.yml")
            if os.path.exists(lease_file):
                os.unlink(lease_file)
            weft_s, weft_mb = run(site, inventory, size, collections)
            base_s, base_mb = run(baseline, inventory, size, collections)
            row = dict(hosts=size, weft_s=round(weft_s, 1), baseline_s=round(base_s, 1),
                       ratio=round(weft_s / base_s, 2), weft_peak_mb=round(weft_mb),
                       baseline_peak_mb=round(base_mb),
                       per_host_ms=round(1000 * (weft_s - base_s) / size, 2))
            rows.append(row)
            print(json.dumps(row), flush=True)
    machine = "%s, %d CPUs, Python %s" % (platform.machine(), os.cpu_count(), platform.python_version())
    result = dict(machine=machine, date=time.strftime("%Y-%m-%d"), rows=rows)
    largest = rows[-1]
    lines = ["Controller: site.yml over N simulated hosts (%s), %s." % (machine, result["date"]), "",
             "| hosts | site.yml | baseline (same tasks, no data) | ratio | controller peak (weft) | controller peak (baseline) | weft's extra per host |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append("| %(hosts)d | %(weft_s).1f s | %(baseline_s).1f s | %(ratio).2fx | %(weft_peak_mb)d MB | "
                     "%(baseline_peak_mb)d MB | %(per_host_ms).2f ms |" % row)
    if largest["hosts"] >= TARGET_HOSTS:
        lines += ["", "Target at %d hosts: at most %.1fx the baseline and %d MB: %.2fx, %d MB (%s)."
                  % (TARGET_HOSTS, TARGET_RATIO, TARGET_RSS_MB, largest["ratio"], largest["weft_peak_mb"],
                     "met" if largest["ratio"] <= TARGET_RATIO and largest["weft_peak_mb"] <= TARGET_RSS_MB
                     else "NOT met")]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "controller.json"), "w") as handle:
        json.dump(result, handle, indent=2)
    with open(os.path.join(args.out, "controller.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
