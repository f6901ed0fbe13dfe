"""weftlab: local multi-node labs for weft, each node a real systemd machine.

    weftlab.py up node1 node2 ...   boot nodes (idempotent: running nodes are kept)
    weftlab.py down                 power every node off and remove all the lab made
    weftlab.py reboot NODE...       power off, re-create the network namespace, boot again
                                    (the node's files survive, like a disk)
    weftlab.py status               list the nodes
    weftlab.py instances NODE...    connection details as JSON (Molecule's instance config)
    weftlab.py ssh NODE [CMD...]    run a command on a node (or a shell)
    weftlab.py outsider             a namespace on the lab's underlay that is no node
                                    (10.168.0.240), for tests of what strangers may send
    weftlab.py nat NODE PUBLIC      put NODE behind a 1:1 NAT that owns PUBLIC on the
                                    lab's underlay (nat --remove: take it away)

A node is systemd-nspawn booting a copy-on-write overlay of this host's root file
system in a network namespace of its own, attached by a veth to the bridge weftlab0
(10.168.0.1/24, and fd00:168::1/64 for dual-stack networks). node<k> gets 10.168.0.<k+1>
and fd00:168::<k+1> (a ULA: it routes nowhere). Nodes have their own systemd, journald,
sshd and dockerd, and no default route: they reach only each other and this host.
Everything lives under /var/lib/weftlab, so any checkout can tear down any lab, including
one whose creator was killed half-way. Standard library only; run as root.
"""

from __future__ import annotations

import argparse
import fcntl
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import etcdserver

STATE = "/var/lib/weftlab"
NODES_DIR = os.path.join(STATE, "nodes")
ETCD_DIR = os.path.join(STATE, "etcd")
KEY = os.path.join(STATE, "id_ed25519")
# Every node's own SSH host key, recorded as the node is made: ssh, Ansible and testinfra
# check it (the lab makes the nodes, so it knows their keys; nothing is trusted on first use).
KNOWN_HOSTS = os.path.join(STATE, "known_hosts")
SSH_CHECKED = ["-o", "UserKnownHostsFile=%s" % KNOWN_HOSTS, "-o", "StrictHostKeyChecking=yes"]
IMAGE_TAR = os.path.join(STATE, "weft-busybox.tar")
BRIDGE = "weftlab0"
PREFIX = "10.168.0"
PREFIX6 = "fd00:168::"
NETNS = "weftlab-%s"
VETH = "wl-%s"
NODE_NAME = re.compile(r"^node([1-9][0-9]?)$")
OUTSIDER, OUTSIDER_IP = "outsider", PREFIX + ".240"
OUTSIDER_IP6 = PREFIX6 + "f0"
# A 1:1 NAT router (a cloud's elastic address): NAT_ROUTER's namespace, on the lab bridge
# with the public address, and a private link to the node behind it (PRIVATE.0/24).
NAT_ROUTER, NAT_ROUTER_IP6, PRIVATE = "nat", PREFIX6 + "f1", "10.171.0"
NAT_INSIDE_NIC = "ens6"   # the node's NIC on the private link
BOOT_TIMEOUT = 120

# Units of this host that have no business in a lab node.
MASKED_UNITS = [
    "postgresql.service", "etcd.service", "iperf3.service", "redis-server.service",
    "systemd-networkd.service", "systemd-networkd.socket", "systemd-networkd-wait-online.service",
    "systemd-resolved.service", "systemd-timesyncd.service", "console-getty.service",
    "getty@tty1.service", "apparmor.service", "e2scrub_reap.service", "systemd-pstore.service",
    "apt-daily.timer", "apt-daily-upgrade.timer", "man-db.timer", "dpkg-db-backup.timer",
    "e2scrub_all.timer", "fstrim.timer",
    # podman's API socket and its registry polling: the lab's podman runs containers only
    "podman.socket", "podman.service", "podman-auto-update.timer", "podman-auto-update.service",
    "podman-restart.service",
]
ENABLED_UNITS = {"multi-user.target.wants": ["ssh.service", "containerd.service",
                                             "docker.service"]}
# nspawn mounts the cgroup v1 controllers read-only; dockerd needs them writable.
DOCKER_DROPIN = """[Service]
ExecStartPre=/bin/sh -c 'for c in cpu cpuacct cpuset memory devices freezer blkio pids; do \
[ -d /sys/fs/cgroup/$c ] && mount -o remount,bind,rw /sys/fs/cgroup/$c || true; done'
"""
# Podman as a node runs it (its CNI backend; cgroupfs and file events without a systemd
# user session; vfs storage, since overlay storage is refused on the node's overlay root).
PODMAN_CONFIG = {
    "etc/containers/containers.conf": '[network]\nnetwork_backend = "cni"\n\n'
                                      '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n',
    "etc/containers/storage.conf": '[storage]\ndriver = "vfs"\nrunroot = "/run/containers/storage"\n'
                                   'graphroot = "/var/lib/containers/storage"\n',
}
BUSYBOX_APPLETS = ["sh", "ping", "ip", "nc", "sleep", "httpd", "wget", "cat", "ls", "ifconfig",
                   "hostname", "echo", "true", "printf", "grep"]


def run(*cmd, check=True, quiet=False, **kwargs):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if check and proc.returncode:
        raise SystemExit("weftlab: %s failed: %s" % (" ".join(cmd), proc.stderr.strip()))
    return proc


def node_ip(name):
    return "%s.%d" % (PREFIX, int(NODE_NAME.match(name).group(1)) + 1)


def node_ip6(name):
    return "%s%x" % (PREFIX6, int(NODE_NAME.match(name).group(1)) + 1)


def node_dir(name):
    return os.path.join(NODES_DIR, name)


def mounted(path):
    with open("/proc/mounts") as mounts:
        return any(line.split()[1] == path for line in mounts)


def link_exists(name, netns=None):
    cmd = ["ip"] + (["-n", netns] if netns else []) + ["link", "show", name]
    return run(*cmd, check=False).returncode == 0


def netns_exists(name):
    return os.path.exists("/run/netns/%s" % name)


def ssh_cmd(name):
    return ["ssh", "-i", KEY, *SSH_CHECKED, "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=3",
            "-o", "BatchMode=yes", "root@%s" % node_ip(name)]


def host_key(name, base, root):
    """The node's own ed25519 host key (made once per node, kept across its reboots; the
    keys it would otherwise share with this machine through the overlay are hidden), and
    its public half recorded in KNOWN_HOSTS under the node's addresses."""
    if not os.path.exists(os.path.join(base, "upper", "etc", "ssh", "ssh_host_ed25519_key")):
        for inherited in glob.glob(os.path.join(root, "etc", "ssh", "ssh_host_*")):
            os.unlink(inherited)
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@" + name, "-f",
            os.path.join(root, "etc", "ssh", "ssh_host_ed25519_key"))
    with open(os.path.join(root, "etc", "ssh", "ssh_host_ed25519_key.pub")) as handle:
        kind, key = handle.read().split()[:2]
    record_host_key(name, "%s,%s %s %s" % (node_ip(name), node_ip6(name), kind, key))


def record_host_key(name, line=None):
    """Replace the node's line of KNOWN_HOSTS (remove it without `line`), atomically and
    under a lock (two labs' commands at once must not lose each other's lines)."""
    own = (node_ip(name) + ",", node_ip(name) + " ")
    with open(KNOWN_HOSTS + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lines = []
        if os.path.exists(KNOWN_HOSTS):
            with open(KNOWN_HOSTS) as handle:
                lines = [entry for entry in handle.read().splitlines() if not entry.startswith(own)]
        lines += [line] if line else []
        fd, tmp = tempfile.mkstemp(dir=STATE, prefix=".known_hosts.")
        with os.fdopen(fd, "w") as handle:
            handle.write("".join(entry + "\n" for entry in lines))
        os.chmod(tmp, 0o644)
        os.replace(tmp, KNOWN_HOSTS)


# ---------------------------------------------------------------------------- up

def ensure_shared():
    os.makedirs(NODES_DIR, exist_ok=True)
    if not os.path.exists(KEY):
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "weftlab", "-f", KEY)
    if not os.path.exists(IMAGE_TAR):
        build_image_tar()
    if not link_exists(BRIDGE):
        run("ip", "link", "add", BRIDGE, "type", "bridge")
        run("ip", "addr", "add", "%s.1/24" % PREFIX, "dev", BRIDGE)
    if PREFIX6 + "1/64" not in run("ip", "-6", "addr", "show", "dev", BRIDGE).stdout:
        run("ip", "addr", "add", PREFIX6 + "1/64", "dev", BRIDGE, "nodad")
    run("ip", "link", "set", BRIDGE, "up")
    # Bridged frames between nodes must not go through this host's iptables.
    if os.path.exists("/proc/sys/net/bridge/bridge-nf-call-iptables"):
        run("sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0", check=False)


def build_image_tar():
    """A tiny container image made offline: busybox and its applets."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    with tempfile.TemporaryDirectory() as tree:
        os.makedirs(os.path.join(tree, "bin"))
        os.makedirs(os.path.join(tree, "tmp"))
        shutil.copy2(busybox, os.path.join(tree, "bin", "busybox"))
        for applet in BUSYBOX_APPLETS:
            os.symlink("busybox", os.path.join(tree, "bin", applet))
        tmp = IMAGE_TAR + ".tmp"
        run("tar", "-C", tree, "-cf", tmp, ".")
        os.replace(tmp, IMAGE_TAR)


def prepare_root(name):
    """Mount the node's copy-on-write root and make it a distinct machine."""
    base = node_dir(name)
    root = os.path.join(base, "root")
    os.makedirs(base, exist_ok=True)
    if not mounted(base):
        # The overlay's upper dir must not be on the root file system itself.
        run("mount", "-t", "tmpfs", "-o", "size=4g,mode=0755", "weftlab-%s" % name, base)
    for sub in ("upper", "work", "root"):
        os.makedirs(os.path.join(base, sub), exist_ok=True)
    if not mounted(root):
        run("mount", "-t", "overlay", "overlay", "-o",
            "lowerdir=/,upperdir=%s/upper,workdir=%s/work" % (base, base), root)

    def path(*parts):
        return os.path.join(root, *parts)

    for stale in ("etc/machine-id", "etc/docker/daemon.json"):
        if os.path.lexists(path(stale)):
            os.unlink(path(stale))
    host_key(name, base, root)
    with open(path("etc/hostname"), "w") as handle:
        handle.write(name + "\n")
    units = path("etc/systemd/system")
    for unit in MASKED_UNITS:
        target = os.path.join(units, unit)
        if os.path.lexists(target):
            os.unlink(target)
        os.symlink("/dev/null", target)
    for wants, enabled in ENABLED_UNITS.items():
        os.makedirs(os.path.join(units, wants), exist_ok=True)
        for unit in enabled:
            link = os.path.join(units, wants, unit)
            if not os.path.lexists(link):
                os.symlink("/lib/systemd/system/%s" % unit, link)
    os.makedirs(os.path.join(units, "docker.service.d"), exist_ok=True)
    with open(os.path.join(units, "docker.service.d", "weftlab-cgroups.conf"), "w") as handle:
        handle.write(DOCKER_DROPIN)
    ssh_dir = path("root/.ssh")
    os.makedirs(ssh_dir, mode=0o700, exist_ok=True)
    with open(KEY + ".pub") as pub, open(os.path.join(ssh_dir, "authorized_keys"), "w") as keys:
        keys.write(pub.read())
    os.chmod(os.path.join(ssh_dir, "authorized_keys"), 0o600)
    for relative, text in PODMAN_CONFIG.items():
        os.makedirs(os.path.dirname(path(relative)), exist_ok=True)
        with open(path(relative), "w") as handle:
            handle.write(text)
    os.makedirs(path("var/tmp"), exist_ok=True)
    shutil.copy2(IMAGE_TAR, path("var/tmp/weft-busybox.tar"))
    return root


def prepare_network(name, ip=None, ip6=None):
    """Namespace NETNS % name on the lab bridge, its eth0 at `ip` and `ip6` (default: the
    node's)."""
    ns, veth, ip = NETNS % name, VETH % name, ip or node_ip(name)
    ip6 = ip6 or node_ip6(name)
    if not netns_exists(ns):
        run("ip", "netns", "add", ns)
    if not link_exists("eth0", ns):
        if link_exists(veth):
            run("ip", "link", "del", veth)
        run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
    run("ip", "link", "set", veth, "master", BRIDGE, "up")
    run("ip", "-n", ns, "link", "set", "lo", "up")
    have = run("ip", "-n", ns, "addr", "show", "eth0").stdout
    if "%s/24" % ip not in have:
        run("ip", "-n", ns, "addr", "add", "%s/24" % ip, "dev", "eth0")
    if "%s/64" % ip6 not in have:
        run("ip", "-n", ns, "addr", "add", "%s/64" % ip6, "dev", "eth0", "nodad")
    run("ip", "-n", ns, "link", "set", "eth0", "up")


def boot(name, root):
    log = open(os.path.join(STATE, "%s.log" % name), "w")
    env = dict(os.environ, SYSTEMD_NSPAWN_API_VFS_WRITABLE="1")
    proc = subprocess.Popen(
        ["systemd-nspawn", "-D", root, "-b", "--register=no", "--keep-unit", "--link-journal=no",
         "--capability=all", "--system-call-filter=add_key keyctl bpf",
         "--network-namespace-path=/run/netns/%s" % (NETNS % name), "-M", name],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
        start_new_session=True)
    with open(pid_file(name), "w") as handle:
        handle.write(str(proc.pid))
    return proc


def pid_file(name):
    return os.path.join(STATE, "%s.pid" % name)


def nspawn_pid(name):
    """The PID of this node's systemd-nspawn, if it is still the process we started."""
    try:
        with open(pid_file(name)) as handle:
            pid = int(handle.read())
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            cmdline = handle.read().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if os.path.join(node_dir(name), "root").encode() in cmdline else None


def wait_booted(name, deadline):
    """Until sshd answers and systemd has finished booting."""
    while time.time() < deadline:
        if nspawn_pid(name) is None:
            raise SystemExit("weftlab: %s stopped while booting; see %s/%s.log"
                             % (name, STATE, name))
        try:
            socket.create_connection((node_ip(name), 22), timeout=1).close()
        except OSError:
            time.sleep(0.5)
            continue
        state = run(*ssh_cmd(name), "systemctl is-system-running --wait", check=False)
        if state.stdout.strip() in ("running", "degraded"):
            return state.stdout.strip()
        time.sleep(0.5)
    raise SystemExit("weftlab: %s did not finish booting in %ds" % (name, BOOT_TIMEOUT))


def poweroff(names):
    """Pull the plug: the node stops and its network namespace and link go; its files stay."""
    for name in names:
        if nspawn_pid(name) is None:
            raise SystemExit("weftlab: %s is not running" % name)
    for name in names:
        stop(name)
        if netns_exists(NETNS % name):
            run("ip", "netns", "del", NETNS % name)
        if link_exists(VETH % name):
            run("ip", "link", "del", VETH % name, check=False)


def poweron(names):
    """Boot nodes that were powered off, from the files they had."""
    for name in names:
        if nspawn_pid(name) is not None:
            raise SystemExit("weftlab: %s is running" % name)
        if not os.path.isdir(os.path.join(node_dir(name), "root")):
            raise SystemExit("weftlab: %s was never booted (weftlab.py up %s)" % (name, name))
    for name in names:
        prepare_network(name)
        boot(name, os.path.join(node_dir(name), "root"))
    deadline = time.time() + BOOT_TIMEOUT
    for name in names:
        print("%s %s %s" % (name, node_ip(name), wait_booted(name, deadline)))


def reboot(names):
    """A power cycle: the kernel state of the node's namespace is lost, its files are not."""
    poweroff(names)
    poweron(names)


def up(names):
    for name in names:
        if not NODE_NAME.match(name):
            raise SystemExit("weftlab: node names are node1 .. node99, not %r" % name)
    ensure_shared()
    started = []
    for name in names:
        if nspawn_pid(name):
            continue
        prepare_network(name)
        boot(name, prepare_root(name))
        started.append(name)
    deadline = time.time() + BOOT_TIMEOUT
    for name in names:
        state = wait_booted(name, deadline)
        print("%s %s %s" % (name, node_ip(name), state))


# -------------------------------------------------------------------------- down

def known_nodes():
    names = set()
    if os.path.isdir(NODES_DIR):
        names.update(n for n in os.listdir(NODES_DIR) if NODE_NAME.match(n))
    for entry in os.listdir("/run/netns") if os.path.isdir("/run/netns") else []:
        if entry.startswith(NETNS % "") and NODE_NAME.match(entry[len(NETNS % ""):]):
            names.add(entry[len(NETNS % ""):])
    return sorted(names, key=lambda n: int(NODE_NAME.match(n).group(1)))


def outsider():
    """A namespace on the lab bridge with an address no inventory names."""
    ensure_shared()
    prepare_network(OUTSIDER, OUTSIDER_IP, OUTSIDER_IP6)
    print(NETNS % OUTSIDER, OUTSIDER_IP)


def remove_outsider():
    if netns_exists(NETNS % OUTSIDER):
        run("ip", "netns", "del", NETNS % OUTSIDER)
    if link_exists(VETH % OUTSIDER):
        run("ip", "link", "del", VETH % OUTSIDER, check=False)


def nat(name, public):
    """Put node `name` behind a 1:1 NAT owning `public`: its NIC NAT_INSIDE_NIC gets
    PRIVATE.<k+1> and routes to the other nodes through the router, which maps `public`
    to that address both ways (its eth0 on the lab bridge answers ARP for `public`). The
    node's eth0 stays, for ssh from this host."""
    remove_nat()
    ensure_shared()
    prepare_network(NAT_ROUTER, public, NAT_ROUTER_IP6)
    router, node = NETNS % NAT_ROUTER, NETNS % name
    private = "%s.%d" % (PRIVATE, int(name[4:]) + 1)
    run("ip", "-n", router, "link", "add", "in0", "type", "veth", "peer", "name",
        NAT_INSIDE_NIC, "netns", node)
    run("ip", "-n", router, "addr", "add", PRIVATE + ".1/24", "dev", "in0")
    run("ip", "-n", router, "link", "set", "in0", "up")
    run("ip", "-n", node, "addr", "add", private + "/24", "dev", NAT_INSIDE_NIC)
    run("ip", "-n", node, "link", "set", NAT_INSIDE_NIC, "up")
    for other in known_nodes():
        if other != name:
            run("ip", "-n", node, "route", "add", node_ip(other) + "/32", "via", PRIVATE + ".1",
                "dev", NAT_INSIDE_NIC)
    run("ip", "netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    # As a cloud's network does, the router drops what the node sends from any address
    # but its own (a VM cannot send from its elastic address).
    rules = ("table ip weftlab-nat {\n"
             " chain in { type nat hook prerouting priority dstnat; ip daddr %s dnat to %s; }\n"
             " chain out { type nat hook postrouting priority srcnat; oifname \"eth0\" "
             "ip saddr %s snat to %s; }\n"
             " chain spoof { type filter hook prerouting priority raw; iifname \"in0\" "
             "ip saddr != %s drop; }\n}\n" % (public, private, private, public, private))
    subprocess.run(["ip", "netns", "exec", router, "nft", "-f", "-"], input=rules, text=True,
                   check=True)
    print(router, NAT_INSIDE_NIC, private)


def remove_nat():
    """The router and its links; the node's end of the private link goes with them."""
    if netns_exists(NETNS % NAT_ROUTER):
        run("ip", "netns", "del", NETNS % NAT_ROUTER)
    if link_exists(VETH % NAT_ROUTER):
        run("ip", "link", "del", VETH % NAT_ROUTER, check=False)


def stop(name, timeout=30):
    pid = nspawn_pid(name)
    if pid is None:
        return
    # nspawn turns SIGTERM into an orderly poweroff of the node's systemd.
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + timeout
    while time.time() < deadline and nspawn_pid(name) == pid:
        time.sleep(0.2)
    if nspawn_pid(name) == pid:
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)


def remove(name):
    base = node_dir(name)
    for path in (os.path.join(base, "root"), base):
        if mounted(path):
            if run("umount", path, check=False).returncode:
                run("umount", "-l", path)
    if os.path.isdir(base):
        shutil.rmtree(base)
    if netns_exists(NETNS % name):
        run("ip", "netns", "del", NETNS % name)
    if link_exists(VETH % name):
        run("ip", "link", "del", VETH % name, check=False)
    for leftover in (pid_file(name), os.path.join(STATE, "%s.log" % name)):
        if os.path.exists(leftover):
            os.unlink(leftover)
    record_host_key(name)


def down(names=None):
    names = names or known_nodes()
    for name in names:
        pid = nspawn_pid(name)
        if pid:
            os.kill(pid, signal.SIGTERM)  # all nodes power off at once
    for name in names:
        stop(name)
        remove(name)
    if not known_nodes():
        remove_outsider()
        remove_nat()
        if link_exists(BRIDGE):
            run("ip", "link", "del", BRIDGE)
        etcdserver.stop(ETCD_DIR)  # the etcd a scenario started for the lab


def status():
    for name in known_nodes():
        print("%s %s %s" % (name, node_ip(name), "running" if nspawn_pid(name) else "stopped"))


def instances(names):
    print(json.dumps([dict(instance=name, address=node_ip(name), user="root", port="22",
                           identity_file=KEY) for name in names], indent=2))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="weftlab", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="boot nodes").add_argument("nodes", nargs="+")
    sub.add_parser("down", help="remove nodes (all by default)").add_argument("nodes", nargs="*")
    sub.add_parser("status", help="list nodes")
    sub.add_parser("reboot", help="power-cycle nodes").add_argument("nodes", nargs="+")
    sub.add_parser("poweroff", help="stop nodes, keeping their files").add_argument("nodes", nargs="+")
    sub.add_parser("poweron", help="boot powered-off nodes").add_argument("nodes", nargs="+")
    sub.add_parser("instances", help="connection details as JSON").add_argument("nodes", nargs="+")
    sub.add_parser("outsider", help="a namespace on the underlay that is no node")
    behind = sub.add_parser("nat", help="put a node behind a 1:1 NAT")
    behind.add_argument("node", nargs="?")
    behind.add_argument("public", nargs="?")
    behind.add_argument("--remove", action="store_true")
    ssh = sub.add_parser("ssh", help="run a command on a node")
    ssh.add_argument("node")
    ssh.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("weftlab: run as root")
    if args.command == "up":
        up(args.nodes)
    elif args.command == "down":
        down(args.nodes)
    elif args.command == "status":
        status()
    elif args.command == "reboot":
        reboot(args.nodes)
    elif args.command == "poweroff":
        poweroff(args.nodes)
    elif args.command == "poweron":
        poweron(args.nodes)
    elif args.command == "instances":
        instances(args.nodes)
    elif args.command == "outsider":
        outsider()
    elif args.command == "nat":
        if args.remove:
            remove_nat()
        elif not (args.node and NODE_NAME.match(args.node) and args.public):
            parser.error("nat: give a node and the public address (or --remove)")
        else:
            nat(args.node, args.public)
    elif args.command == "ssh":
        os.execvp("ssh", ssh_cmd(args.node) + ([" ".join(args.cmd)] if args.cmd else []))


if __name__ == "__main__":
    sys.exit(main())
