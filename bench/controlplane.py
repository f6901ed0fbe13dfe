"""Control-plane benchmark: site.yml and check.yml on 2, 4, 8 and 16 lab nodes, in one run.

For each size the lab is rebuilt from empty nodes, then: a baseline play that runs one
module (ansible.builtin.ping) per host (it also opens the SSH connections every later play
reuses), site.yml from empty, three rounds of the baseline followed by site.yml again
with nothing to change (which must report changed=0), and three rounds of the baseline
followed by check.yml (which must pass: every pair works). Reported: wall time of the first
converge and the medians of the re-runs and baselines, time per host, the re-run as a ratio
to the baseline (these machines are noisy, so ratios are the comparable figures), and module invocations per host (on the host, and on the controller)
counted by bench/callback_plugins/weft_count.py.

    python3 bench/controlplane.py [--sizes 2 4 8 16] [--out bench/results]

Writes controlplane.json and controlplane.md into --out. Run as root; the lab is torn down
at the end (and at the start, so an earlier killed run leaves nothing in the way).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB = os.path.join(ROOT, "lab", "weftlab.py")
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
# The 16-host no-change re-run measured at 27e7ff0 (README, before the host model): 13.6 s,
# 2.9x its baseline.
RERUN_TARGET_S, RERUN_TARGET_X, RERUN_TARGET_HOSTS = 13.6, 2.9, 16
ROUNDS = 3
CHECK_TARGET_X = 2.0        # check.yml at most this many times the one-module play
BEFORE = "27e7ff0"
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                   re.M)
BASELINE_PLAY = """\
- name: Baseline - one module per host
  hosts: weft_nodes
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
"""


def lab(*args):
    subprocess.run([sys.executable, LAB, *args], check=True, stdout=subprocess.DEVNULL)


def write_inventory(directory, size):
    hosts = {"node%d" % k: {"ansible_host": "10.168.0.%d" % (k + 1)} for k in range(1, size + 1)}
    inventory = {"weft_nodes": {"hosts": hosts, "vars": {
        "ansible_user": "root",
        "ansible_ssh_private_key_file": "/var/lib/weftlab/id_ed25519",
        "ansible_ssh_common_args": "-o UserKnownHostsFile=/var/lib/weftlab/known_hosts",
        "ansible_python_interpreter": "/usr/bin/python3",
        "weft_iface": "eth0",
        "weft_lease_file": os.path.join(directory, "weft_leases.yml"),
    }}}
    path = os.path.join(directory, "hosts.yml")
    with open(path, "w") as handle:
        json.dump(inventory, handle)  # JSON is YAML
    return path


def play_path(root, play):
    """A playbook of the tree `root`: under playbooks/ since weft is a collection, at the
    top before."""
    inside = os.path.join(root, "playbooks", play)
    return inside if os.path.exists(inside) else os.path.join(root, play)


def playbook(inventory, play, size, counts_file=None, root=ROOT, extra=None):
    """Run a playbook of the tree `root`; (seconds, {host: (ok, changed, unreachable,
    failed)}, counts)."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(root, "ansible.cfg"),
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1",
               ANSIBLE_CALLBACK_PLUGINS=os.path.join(ROOT, "bench", "callback_plugins"),
               ANSIBLE_CALLBACKS_ENABLED="weft_count", WEFT_COUNT_FILE=counts_file or "",
               PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    start = time.monotonic()
    extra = ["-e", json.dumps(extra)] if extra else []
    proc = subprocess.run(["ansible-playbook", "-i", inventory, "-f", str(max(size, 5)), *extra,
                           play_path(root, play)], cwd=root, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if proc.returncode:
        raise RuntimeError("%s failed:\n%s" % (play, proc.stdout[-4000:] + proc.stderr[-2000:]))
    recap = {m[0]: tuple(int(x) for x in m[1:]) for m in RECAP.findall(proc.stdout)}
    counts = {}
    if counts_file:
        with open(counts_file) as handle:
            counts = json.load(handle)
    return seconds, recap, counts


def per_host_invocations(counts):
    """Module invocations per host, as the set of distinct values over the hosts."""
    hosts = counts["hosts"].values()
    on_host = {sum(v for k, v in c.items() if k.startswith("host_") and k != "host_skipped")
               for c in hosts}
    on_controller = {sum(v for k, v in c.items()
                         if k.startswith("controller_") and k != "controller_skipped")
                     for c in hosts}
    return sorted(on_host), sorted(on_controller)


def measure(size, workdir, root=ROOT):
    lab("down")
    lab("up", *["node%d" % k for k in range(1, size + 1)])
    inventory = write_inventory(workdir, size)
    baseline_play = os.path.join(workdir, "baseline.yml")
    with open(baseline_play, "w") as handle:
        handle.write(BASELINE_PLAY)
    playbook(inventory, baseline_play, size)  # opens the SSH connections every play reuses
    counts_file = os.path.join(workdir, "counts.json")
    empty, recap_empty, counts_empty = playbook(inventory, "site.yml", size, counts_file, root)
    # Re-runs interleaved with baselines, medians of each: load on these machines drifts.
    baselines, reruns, changed_rerun = [], [], 0
    for _ in range(ROUNDS):
        baselines.append(playbook(inventory, baseline_play, size)[0])
        seconds, recap_rerun, counts_rerun = playbook(inventory, "site.yml", size, counts_file,
                                                      root)
        reruns.append(seconds)
        changed_rerun += sum(r[1] for r in recap_rerun.values())
    baseline, rerun = statistics.median(baselines), statistics.median(reruns)
    host_empty, ctl_empty = per_host_invocations(counts_empty)
    host_rerun, ctl_rerun = per_host_invocations(counts_rerun)
    checked = measure_check(inventory, baseline_play, size, workdir, root) \
        if os.path.exists(play_path(root, "check.yml")) else {}
    return dict(checked, **{
        "hosts": size,
        "baseline_s": round(baseline, 2),
        "empty_s": round(empty, 2),
        "rerun_s": round(rerun, 2),
        "rerun_changed": changed_rerun,
        "empty_per_host_s": round(empty / size, 2),
        "rerun_per_host_s": round(rerun / size, 2),
        "rerun_x_baseline": round(rerun / baseline, 2),
        "modules_per_host_empty": host_empty,
        "modules_per_host_rerun": host_rerun,
        "controller_tasks_per_host_rerun": ctl_rerun,
        "slowest_tasks_rerun": counts_rerun["slowest_tasks"],
        "hosts_in_recap": len(recap_empty),
    })


def measure_check(inventory, baseline_play, size, workdir, root):
    """check.yml against the baseline, interleaved; its report must say every pair works."""
    report_path = os.path.join(workdir, "weft-check.json")
    baselines, checks = [], []
    for _ in range(ROUNDS):
        baselines.append(playbook(inventory, baseline_play, size)[0])
        checks.append(playbook(inventory, "check.yml", size, root=root,
                               extra={"weft_check_json": report_path})[0])
        with open(report_path) as handle:
            report = json.load(handle)
        if not report["ok"] or len(report["pairs"]) != size * (size - 1):
            raise RuntimeError("check.yml found failures: %s" % report["failures"][:5])
    baseline, check = statistics.median(baselines), statistics.median(checks)
    return {"check_baseline_s": round(baseline, 2), "check_s": round(check, 2),
            "check_x_baseline": round(check / baseline, 2)}


def tree_at(ref, directory):
    """The files of commit `ref` of this checkout, unpacked into `directory`."""
    os.makedirs(directory)
    archive = subprocess.run(["git", "-C", ROOT, "archive", ref], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", directory], input=archive, check=True)
    return directory


def machine():
    return {"cpus": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(),
            "ansible": subprocess.run([os.path.join(VENV_BIN, "ansible"), "--version"],
                                      capture_output=True, text=True).stdout.split("\n")[0]}


def markdown(results, info):
    lines = ["Control plane: site.yml over N lab nodes (%s CPUs, kernel %s, %s), %s."
             % (info["cpus"], info["kernel"], info["ansible"], time.strftime("%Y-%m-%d")), "",
             "| weft | hosts | baseline (1 module/host) | site.yml from empty | no-change re-run "
             "| re-run / host | re-run x baseline | modules/host (on host, re-run) "
             "| changed on re-run |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append("| %s | %d | %.1f s | %.1f s | %.1f s | %.2f s | %.1fx | %s | %d |" % (
            r.get("ref", "this tree"), r["hosts"], r["baseline_s"], r["empty_s"], r["rerun_s"],
            r["rerun_per_host_s"], r["rerun_x_baseline"],
            "/".join(str(x) for x in r["modules_per_host_rerun"]), r["rerun_changed"]))
    now = [r for r in results if r["hosts"] == RERUN_TARGET_HOSTS and "ref" not in r]
    before = [r for r in results if r["hosts"] == RERUN_TARGET_HOSTS and "ref" in r]
    if now:
        r = now[0]
        lines += ["", "Target: the no-change re-run over %d hosts at or below the %.1f s measured "
                  "before the host model (%s). This machine's speed drifts, so the verdict is "
                  "against that tree run in the same run." % (RERUN_TARGET_HOSTS, RERUN_TARGET_S,
                                                              BEFORE)]
        if before:
            b = before[0]
            lines.append("This tree: %.1f s; %s: %.1f s; ratio %.2fx (%s)."
                         % (r["rerun_s"], b["ref"], b["rerun_s"], r["rerun_s"] / b["rerun_s"],
                            "met" if r["rerun_s"] <= b["rerun_s"] else "NOT met"))
        else:
            lines.append("%s was not measured in this run (--before ''): no verdict." % BEFORE)
    checked = [r for r in results if "check_s" in r and "ref" not in r]
    if checked:
        lines += ["", "check.yml (read-only, every ordered pair probed; must pass) against a "
                  "play of one no-op module per host, interleaved, medians:", "",
                  "| hosts | ordered pairs | baseline | check.yml | check.yml x baseline |",
                  "|---:|---:|---:|---:|---:|"]
        for r in checked:
            lines.append("| %d | %d | %.1f s | %.1f s | %.2fx |" % (
                r["hosts"], r["hosts"] * (r["hosts"] - 1), r["check_baseline_s"], r["check_s"],
                r["check_x_baseline"]))
        largest = max(checked, key=lambda r: r["hosts"])
        four = [r for r in checked if r["hosts"] == 4]
        lines += ["", "Target: at most %.1fx the baseline at %d hosts: %.2fx (%s)." % (
            CHECK_TARGET_X, largest["hosts"], largest["check_x_baseline"],
            "met" if largest["check_x_baseline"] <= CHECK_TARGET_X else "NOT met")]
        if four:
            grows = largest["check_x_baseline"] > four[0]["check_x_baseline"] * 1.1
            lines.append("From 4 to %d hosts the ratio goes %.2fx -> %.2fx (%s, 10%% noise "
                         "allowed)." % (largest["hosts"], four[0]["check_x_baseline"],
                                        largest["check_x_baseline"],
                                        "GROWS" if grows else "does not grow"))
    constant = len({tuple(r["modules_per_host_rerun"]) for r in results if "ref" not in r}) == 1
    lines.append("Module invocations per host %s as hosts grow."
                 % ("stay constant" if constant else "DO NOT stay constant"))
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    parser.add_argument("--before", default=BEFORE, metavar="REF",
                        help="also measure this commit at the largest size, in the same run "
                             "(default %(default)s, where 13.6 s was measured; '' skips)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("controlplane.py: run as root (it boots lab nodes)")
    results = []
    try:
        for size in args.sizes:
            with tempfile.TemporaryDirectory(prefix="weft-bench-") as workdir:
                result = measure(size, workdir)
            print(json.dumps(result), flush=True)
            results.append(result)
        if args.before:
            with tempfile.TemporaryDirectory(prefix="weft-bench-") as workdir:
                root = tree_at(args.before, os.path.join(workdir, "tree"))
                os.mkdir(os.path.join(workdir, "run"))
                result = measure(max(args.sizes), os.path.join(workdir, "run"), root)
            result["ref"] = args.before
            print(json.dumps(result), flush=True)
            results.append(result)
    finally:
        lab("down")
    info = machine()
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "controlplane.json"), "w") as handle:
        json.dump({"machine": info, "results": results}, handle, indent=1)
    text = markdown(results, info)
    with open(os.path.join(args.out, "controlplane.md"), "w") as handle:
        handle.write(text)
    print(text)


if __name__ == "__main__":
    main()
