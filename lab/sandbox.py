"""weft's tests and benchmarks: a host for weft_host to converge, on this machine,
touching nothing of it: a network
namespace (its own links, routes, iptables and nftables) and a mount namespace in which
/etc, /usr/local, /run and /var/lib are copy-on-write overlays and /dev/net is private, so every file
weft writes (units, record, installed code, users) lands in a throwaway directory. The
mount namespace lives as long as the sandbox, so every command in it sees the same files.

systemd does not run as PID 1 on this machine (it does in the lab nodes, where the
Molecule scenarios test the real units), so a stub `systemctl` in the sandbox records
what weft asks of it and answers is-active from what it was asked before, and a stub
`systemd-run` starts a transient unit's command for real, detached, inside the sandbox, as
the unit's User= with its AmbientCapabilities= alone (stopped by the stub's `stop`).
"""

import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(*cmd, netns=None):
    """A command's output (in `netns` when given); raises on failure."""
    if netns:
        cmd = ("ip", "-n", netns) + cmd[1:] if cmd[0] == "ip" else ("ip", "netns", "exec", netns) + cmd
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise AssertionError("%s failed: %s" % (" ".join(cmd), proc.stderr))
    return proc.stdout


SYSTEMCTL = r"""#!/bin/sh
# Stub systemctl: logs its arguments; a started unit is active until stopped.
echo "$*" >> /run/weft-sandbox/systemctl.log
state=/run/weft-sandbox/active
touch "$state"
case "$1" in
  is-active) grep -qx "$2" "$state" && { echo active; exit 0; } || { echo inactive; exit 3; } ;;
  start|restart) grep -qx "$2" "$state" || echo "$2" >> "$state" ;;
  try-restart) ;;
  stop) grep -vx "$2" "$state" > "$state.new"; mv "$state.new" "$state"
        pid=/run/weft-sandbox/units/$2.pid
        if [ -f "$pid" ]; then  # as systemd's stop: return once the process is gone
          p=$(cat "$pid"); kill "$p" 2>/dev/null
          for i in $(seq 50); do [ -d "/proc/$p" ] || break; sleep 0.1; done
          rm -f "$pid"
        fi ;;
esac
exit 0
"""

SYSTEMD_RUN = r"""#!/bin/sh
# Stub systemd-run: the command detached in the sandbox, as User= with AmbientCapabilities=.
unit= user= caps= envs= rtdir=
while [ $# -gt 0 ]; do
  case "$1" in
    --unit=*) unit="${1#--unit=}" ;;
    --property=User=*) user="${1#--property=User=}" ;;
    --property=AmbientCapabilities=*) caps="${1#--property=AmbientCapabilities=}" ;;
    --property=RuntimeDirectory=*) rtdir="${1#--property=RuntimeDirectory=}" ;;
    --setenv=*) envs="$envs ${1#--setenv=}" ;;
    --*) ;;
    *) break ;;
  esac
  shift
done
echo "systemd-run $unit $*" >> /run/weft-sandbox/systemctl.log
mkdir -p /run/weft-sandbox/units
[ -n "$rtdir" ] && mkdir -p "/run/$rtdir" && [ -n "$user" ] && chown "$user:$user" "/run/$rtdir"
drop=""
if [ -n "$user" ]; then
  cap=$(echo "$caps" | tr 'A-Z' 'a-z' | sed 's/cap_//g')
  drop="setpriv --reuid=$user --regid=$user --clear-groups --inh-caps=-all,+$cap"
  drop="$drop --ambient-caps=+$cap --bounding-set=-all,+$cap"
fi
env $envs setsid $drop "$@" > "/run/weft-sandbox/units/$unit.log" 2>&1 < /dev/null &
echo $! > "/run/weft-sandbox/units/$unit.pid"
grep -qx "$unit" /run/weft-sandbox/active 2>/dev/null || echo "$unit" >> /run/weft-sandbox/active
exit 0
"""


def minimal_result(proc):
    """The result of one `ansible localhost -m ...` run with the minimal callback, which
    prints "localhost | STATUS => {json}", then any diff (kept in stdout_text)."""
    start = proc.stdout.rfind("localhost | ")
    head, _, body = proc.stdout[start:].partition(" => ")
    try:
        result, _ = json.JSONDecoder().raw_decode(body)
    except ValueError:
        raise AssertionError("ansible printed no result:\n%s\n%s" % (proc.stdout, proc.stderr))
    result.setdefault("failed", "FAILED" in head)
    result["stdout_text"] = proc.stdout
    # Module warnings are shown, not returned: what the user reads on stderr.
    result["warnings"] = [" ".join(text.split()) for text in
                          re.findall(r"\[WARNING\]: (.*?)(?=\n\S|\Z)", proc.stderr, re.S)]
    return result


class Sandbox:
    PREFIX = os.path.join(tempfile.gettempdir(), "weft-sandbox-")

    def __init__(self, netns):
        self.netns = netns
        self.dir = tempfile.mkdtemp(prefix="%s%d-" % (self.PREFIX, os.getpid()))
        for layer in ("etc", "local", "run", "varlib"):
            for sub in ("upper", "work"):
                os.makedirs(os.path.join(self.dir, layer, sub))
        sbin = os.path.join(self.dir, "local", "upper", "sbin")
        os.makedirs(sbin)
        for name, text in (("systemctl", SYSTEMCTL), ("systemd-run", SYSTEMD_RUN)):
            with open(os.path.join(sbin, name), "w") as handle:
                handle.write(text)
            os.chmod(os.path.join(sbin, name), 0o755)
        os.makedirs(os.path.join(self.dir, "run", "upper", "weft-sandbox"))
        # One mount namespace for the sandbox's whole life, kept by a bind mount of its
        # nsfs file: every command sees the same overlays (two overlay mounts of one upper
        # directory would not see each other's writes).
        ns = os.path.join(self.dir, "ns")
        os.makedirs(ns)
        subprocess.run(["mount", "--bind", ns, ns], check=True)
        subprocess.run(["mount", "--make-private", ns], check=True)
        open(os.path.join(ns, "mnt"), "w").close()
        subprocess.run(["unshare", "--mount=%s/mnt" % ns, "--propagation", "private",
                        "sh", "-c", self.mounts()], check=True)

    def mounts(self):
        d = self.dir
        return " && ".join([
            "mount -t overlay overlay -o lowerdir=/etc,upperdir=%s/etc/upper,workdir=%s/etc/work /etc" % (d, d),
            "mount -t overlay overlay -o lowerdir=/usr/local,upperdir=%s/local/upper,workdir=%s/local/work /usr/local" % (d, d),
            "mount -t overlay overlay -o lowerdir=/run,upperdir=%s/run/upper,workdir=%s/run/work /run" % (d, d),
            # (what CNI plugins keep: host-local's address reservations)
            "mount -t overlay overlay -o lowerdir=/var/lib,upperdir=%s/varlib/upper,workdir=%s/varlib/work /var/lib" % (d, d),
            "mount -t tmpfs -o mode=0755 weft-sandbox /dev/net",
            "mknod -m 0600 /dev/net/tun c 10 200",
        ])

    def argv(self, *cmd):
        """A command line that runs `cmd` inside the sandbox."""
        inner = "PATH=/usr/local/sbin:$PATH exec %s" % " ".join(shlex.quote(c) for c in cmd)
        return ["nsenter", "--mount=%s/ns/mnt" % self.dir, "--net=/run/netns/%s" % self.netns,
                "sh", "-c", inner]

    def run(self, *cmd, check=True):
        proc = subprocess.run(self.argv(*cmd), capture_output=True, text=True)
        if check and proc.returncode:
            raise AssertionError("%s: %s" % (" ".join(cmd), proc.stdout + proc.stderr))
        return proc

    def popen(self, *cmd):
        return subprocess.Popen(self.argv(*cmd), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    # The sandbox's files are read and changed from inside it: its overlays must see
    # every change (touching their upper directories from outside is undefined).
    def read(self, path):
        proc = self.run("cat", path, check=False)
        return proc.stdout if proc.returncode == 0 else None

    def exists(self, path):
        return self.run("test", "-e", path, check=False).returncode == 0 or \
            self.run("test", "-L", path, check=False).returncode == 0

    def readlink(self, path):
        return self.run("readlink", path).stdout.strip()

    def listdir(self, path):
        return self.run("ls", "-A", path).stdout.split()

    def unlink(self, path):
        self.run("rm", "-f", path)

    def systemctl(self):
        """What weft asked of systemctl since the last call (is-active left out)."""
        log = self.read("/run/weft-sandbox/systemctl.log") or ""
        self.unlink("/run/weft-sandbox/systemctl.log")
        return [line.strip() for line in log.splitlines() if not line.startswith("is-active")]

    def module(self, module, args, check=False, diff=False, python="/usr/bin/python3",
               verbose=False, collections=None):
        """A module run through the real ansible CLI inside the sandbox (from the
        collections path `collections` when given, else this checkout)."""
        proc = self.start_module(module, args, check, diff, python, verbose, collections)
        try:
            out, err = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        return minimal_result(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))

    def start_module(self, module, args, check=False, diff=False, python="/usr/bin/python3",
                     verbose=False, collections=None):
        """The same run, started: a Popen whose output minimal_result() reads."""
        cmd = [os.path.join(os.path.dirname(sys.executable), "ansible"), "localhost", "-i",
               "localhost,", "-c", "local", "-m", module, "-a", json.dumps(args), "-e",
               "ansible_python_interpreter=%s" % python]
        cmd += ["--check"] if check else []
        cmd += ["--diff"] if diff else []
        cmd += ["-vvv"] if verbose else []
        env_cmd = ["env", "ANSIBLE_CONFIG=%s" % os.path.join(ROOT, "ansible.cfg"),
                   "ANSIBLE_LOAD_CALLBACK_PLUGINS=1", "ANSIBLE_STDOUT_CALLBACK=minimal",
                   "ANSIBLE_CALLBACK_RESULT_FORMAT=json", "ANSIBLE_NOCOLOR=1",
                   "ANSIBLE_LOCAL_TEMP=/run/weft-sandbox/ansible-tmp",
                   "ANSIBLE_REMOTE_TEMP=/run/weft-sandbox/ansible-tmp"]
        env_cmd += ["ANSIBLE_COLLECTIONS_PATH=%s" % collections] if collections else []
        return subprocess.Popen(self.argv(*env_cmd, *cmd), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=ROOT)

    def remove(self):
        remove_sandbox(self.dir)


def remove_sandbox(directory):
    """Stop what its stub systemd-run started, unmount its namespace (its mounts go with
    it) and delete its files."""
    import glob
    import signal
    for pidfile in glob.glob(os.path.join(directory, "run", "upper", "weft-sandbox", "units",
                                          "*.pid")):
        with open(pidfile) as handle:
            pid = handle.read().strip()
        try:
            # Only the process the stub started (the PID may have been reused since).
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                started = handle.read().split(b"\0")[0]
            if os.path.basename(started.decode(errors="replace")) in ("wireguard-go", "setpriv"):
                os.kill(int(pid), signal.SIGTERM)
        except (OSError, ValueError):
            pass
    ns = os.path.join(directory, "ns")
    for mount in (os.path.join(ns, "mnt"), ns):
        subprocess.run(["umount", mount], check=False, capture_output=True)
    subprocess.run(["rm", "-rf", directory], check=False)


def remove_stale_sandboxes():
    """Sandboxes of test runs that were killed half-way (their process is gone)."""
    import glob
    for directory in glob.glob(Sandbox.PREFIX + "*"):
        pid = directory[len(Sandbox.PREFIX):].split("-")[0]
        if not os.path.exists("/proc/%s" % pid):
            remove_sandbox(directory)


def kernel_view(netns, dev="flannel.1"):
    """Routes, FDB and neighbours of the overlay, as iproute2 prints them ({} when gone)."""
    view = {"routes": [line.strip() for line in
                       sh("ip", "route", "show", "proto", "119", netns=netns).splitlines()]}
    if dev in sh("ip", "link", netns=netns):
        view["fdb"] = sorted(line.strip() for line in sh("bridge", "fdb", "show", "dev", dev,
                                                         netns=netns).splitlines() if " dst " in line)
        view["neigh"] = sorted(line.strip() for line in
                               sh("ip", "neigh", "show", "dev", dev, netns=netns).splitlines())
    # weft's nftables table as it stands (without counter values), False when absent.
    view["nft"] = "table inet weft" in sh("nft", "list", "tables", netns=netns) and \
        sh("nft", "-s", "list", "table", "inet", "weft", netns=netns)
    view["chains"] = sorted(line for line in sh("iptables-save", netns=netns).splitlines()
                            if "WEFT" in line and not line.startswith(":"))
    return view


def run_in(box):
    """A CNI plugin runner (lab/cni.py) that executes plugins inside the sandbox `box`."""
    def run(argv, env, stdin):
        cmd = box.argv("env", "-i", *["%s=%s" % item for item in sorted(env.items())], *argv)
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
        return proc.returncode, proc.stdout, proc.stderr
    return run


@contextlib.contextmanager
def two_hosts(tag, hosts):
    """Two sandbox hosts ({name: IPv4 address}, names ending in a digit), each a namespace
    `<tag>-<digit>` whose eth0 is one end of a veth between them on a /24; {name: Sandbox}."""
    names = {h: "%s-%s" % (tag, h[-1]) for h in hosts}
    boxes = {}
    try:
        for ns in names.values():
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "set", "lo", "up", netns=ns)
        first, second = names.values()
        sh("ip", "link", "add", "eth0", "netns", first, "type", "veth",
           "peer", "name", "eth0", "netns", second)
        for h, ip in hosts.items():
            sh("ip", "addr", "add", ip + "/24", "dev", "eth0", netns=names[h])
            sh("ip", "link", "set", "eth0", "up", netns=names[h])
            boxes[h] = Sandbox(names[h])
        yield boxes
    finally:
        for box in boxes.values():
            box.remove()
        for ns in names.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
