"""The lab as a user sees it: run the project's playbooks, read a node's whole state in one
round trip, and check it against what the plan says the node must hold.

Every check here is written from the outside (ip, bridge, iptables-save, nft, systemctl,
the files), never with weft's own code.
"""

import concurrent.futures
import ipaddress
import json
import os
import re
import struct
import subprocess
import sys
import time

import testinfra
import yaml

PROJECT = os.environ["MOLECULE_PROJECT_DIRECTORY"]
EPHEMERAL = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
LAB = os.path.join(PROJECT, "lab", "weftlab.py")
KEY = "/var/lib/weftlab/id_ed25519"
# The lab records every node's host key as it makes the node: connections check it.
KNOWN_HOSTS = "/var/lib/weftlab/known_hosts"
SSH_COMMON_ARGS = "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes" % KNOWN_HOSTS
NODES = ["node1", "node2", "node3"]
NETWORK = "100.96.0.0/16"
MTU = {"vxlan": 1450, "udp": 1472, "host-gw": 1500, "wireguard": 1420}
PORT = {"vxlan": 8472, "udp": 8285, "wireguard": 51820}
WG_KEY = "/etc/weft/wireguard.key"
WG_UNIT = "weft-wireguard-flannel-wg.service"
DOCKER_DEFAULT = "172.17.0.1/16"
NETWORK6 = "fd00:96::/48"
OUTSIDER_IP6 = "fd00:168::f0"


def node_ip(name):
    return "10.168.0.%d" % (int(name[4:]) + 1)


def node_ip6(name):
    return "fd00:168::%x" % (int(name[4:]) + 1)


# ---- playbooks ------------------------------------------------------------------------

def playbook(name, inventory=None, extra=None, check=True, flags=()):
    """Run one of the collection's playbooks by its FQCN (weft.overlay.site), as a user
    would; (rc, output, {host: changed})."""
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
           name, "-i", inventory or os.path.dirname(INVENTORY), *flags]
    if extra is not None:
        cmd += ["-e", json.dumps(extra)]
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(EPHEMERAL, "ansible.cfg"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    out = proc.stdout + proc.stderr
    changed = {m.group(1): int(m.group(2))
               for m in re.finditer(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", out, re.M)}
    if check and proc.returncode:
        failed = re.findall(r"^(\S+)\s+: ok=\d+\s+changed=\d+\s+unreachable=\d+\s+failed=[1-9]",
                            out, re.M)
        journals = "".join("\n--- %s: journalctl -u docker\n%s" % (name, host(name).run(
            "journalctl -u docker -n 15 --no-pager").stdout) for name in failed if name in NODES)
        raise AssertionError(out[-4000:] + journals)
    return proc.returncode, out, changed


def leases():
    with open(os.path.join(EPHEMERAL, "weft_leases.yml")) as handle:
        return yaml.safe_load(handle)["weft_leases"]


# ---- nodes ----------------------------------------------------------------------------

_HOSTS = {}


def host(name):
    """A testinfra host over plain ssh (one multiplexed connection per node)."""
    if name not in _HOSTS:
        _HOSTS[name] = testinfra.get_host(
            "ssh://root@%s" % node_ip(name), ssh_identity_file=KEY,
            ssh_extra_args=SSH_COMMON_ARGS + " "
            "-o LogLevel=ERROR")
    return _HOSTS[name]


def on_all(function, names=NODES):
    """function(name) for every node at once; {name: result}."""
    with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
        return dict(zip(names, pool.map(function, names)))


COLLECT = r'''
import json, os, pwd, subprocess
def run(*cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.stdout if p.returncode == 0 else None
def js(*cmd):
    out = run(*cmd)
    return json.loads(out) if out and out.strip() else None
def read(path):
    try:
        return open(path).read()
    except OSError:
        return None
def unit(name):
    return {k: (run("systemctl", "show", "-p", k, "--value", name) or "").strip()
            for k in ("ActiveState", "UnitFileState", "Result", "User")}
def has_user(name):
    try:
        return bool(pwd.getpwnam(name))
    except KeyError:
        return False
def wg_dump():
    # every device's line without its private key (field 2), then the peers' lines
    lines = [l.split("\t") for l in (run("wg", "show", "all", "dump") or "").splitlines()]
    return [f[:1] + f[2:] if len(f) == 5 else f for f in lines]
def key_mode(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return "%o %s" % (st.st_mode & 0o777, pwd.getpwuid(st.st_uid).pw_name)
def weft_filters():
    # (device, hook, filter name) of weft's tc filters on every device with a clsact qdisc
    found = []
    for q in js("tc", "-j", "qdisc", "show") or []:
        if q.get("kind") == "clsact":
            for hook in ("ingress", "egress"):
                for line in (run("tc", "filter", "show", "dev", q["dev"], hook) or "").splitlines():
                    for word in line.split():
                        if word.startswith("weft-udp-"):
                            found.append([q["dev"], hook, word.split("-")[2].split(":")[0]])
    return sorted(found)
user = has_user("weft-udpd")
paths = ["/etc/docker/daemon.json", "/run/flannel/subnet.env", "/etc/weft/udpd.json",
         "/etc/sysctl.d/60-weft.conf", "/etc/weft/host.json", "/etc/cni/net.d/10-weft.conflist"]
ipam = "/var/lib/cni/networks/weft"
print(json.dumps({
    "links": js("ip", "-d", "-j", "link", "show") or [],
    "addrs": js("ip", "-4", "-j", "addr", "show") or [],
    "routes": js("ip", "-j", "route", "show", "table", "all") or [],
    "neigh": js("ip", "-j", "neigh", "show", "nud", "permanent") or [],
    "fdb": js("bridge", "-j", "fdb", "show") or [],
    "iptables": run("iptables-save") or "",
    "nft": js("nft", "-j", "list", "table", "inet", "weft"),
    "files": {p: read(p) for p in paths},
    "weft_dirs": [p for p in ("/etc/weft", "/usr/local/lib/weft", "/run/weft-udpd") if os.path.exists(p)],
    "units": {u: unit(u) for u in ("weft-restore", "weft-heal", "weft-udpd")},
    "unit_files": [f for f in os.listdir("/etc/systemd/system") if f.startswith("weft-")],
    "udpd_user": user,
    "tc": weft_filters(),
    "wg": wg_dump(),
    "wg_unit": unit("weft-wireguard-flannel-wg.service"),
    "wg_user": has_user("weft-wireguard"),
    "wg_key": key_mode("/etc/weft/wireguard.key"),
    "ip_forward": read("/proc/sys/net/ipv4/ip_forward").strip(),
    "ipam": sorted(os.listdir(ipam)) if os.path.isdir(ipam) else None,
}))
'''


def state(name):
    """Everything weft manages on a node, read in one round trip."""
    return json.loads(host(name).check_output("python3 -c %s" % _quote(COLLECT)))


def _quote(text):
    return "'" + text.replace("'", "'\"'\"'") + "'"


def link(st, name):
    return next((link for link in st["links"] if link["ifname"] == name), None)


def addresses(st, name):
    for entry in st["addrs"]:
        if entry["ifname"] == name:
            return ["%s/%d" % (a["local"], a["prefixlen"]) for a in entry["addr_info"]]
    return []


def weft_routes(st):
    return [r for r in st["routes"] if r.get("protocol") == "119"]


def nft_rules(st):
    return [item["rule"] for item in st["nft"]["nftables"] if "rule" in item] if st["nft"] else []


def nft_set(st, name):
    for item in (st["nft"] or {}).get("nftables", []):
        if "set" in item and item["set"]["name"] == name:
            return item["set"].get("elem", [])
    return None


def nft_counters(st):
    return {item["counter"]["name"]: item["counter"]["packets"]
            for item in (st["nft"] or {}).get("nftables", []) if "counter" in item}


def vtep(subnet):
    return str(ipaddress.ip_network(subnet).network_address)


def bridge_address(subnet):
    net = ipaddress.ip_network(subnet)
    return "%s/%d" % (net.network_address + 1, net.prefixlen)


# ---- what a converged node holds ----------------------------------------------------

def runtime_subnets(subnet, runtime):
    """{runtime: its containers' subnet}: one runtime has the host's subnet, Docker and CNI
    together its lower and upper half."""
    net = ipaddress.ip_network(subnet)
    if runtime == "both":
        return dict(zip(("docker", "cni"), (str(half) for half in net.subnets(1))))
    return {runtime: subnet}


def check_converged(name, st, backend, plan, peers, runtime="docker"):
    """`st` is the state of node `name` converged on `backend`; `plan` holds weft's leases,
    `peers` every lease the node routes to but its own (Flannel hosts too); `runtime`: what
    the node serves (weft_runtime)."""
    lease = plan[name]
    others = {n: p for n, p in peers.items() if n != name}
    assert st["ip_forward"] == "1"

    vx = link(st, "flannel.1")
    if backend == "vxlan":
        data = vx["linkinfo"]["info_data"]
        assert (data["id"], data["local"], data["link"], data["port"], data["learning"]) == \
            (1, lease["public_ip"], "eth0", 8472, False), data
        assert (vx["address"], vx["mtu"]) == (lease["backend_data"]["vtep_mac"], 1450)
        assert "UP" in vx["flags"]
        assert addresses(st, "flannel.1") == [vtep(lease["subnet"]) + "/32"]
        assert {(n["dst"], n["lladdr"]) for n in st["neigh"] if n["dev"] == "flannel.1"} == \
            {(vtep(p["subnet"]), p["backend_data"]["vtep_mac"]) for p in others.values()}
        assert {(f["mac"], f["dst"]) for f in st["fdb"] if f.get("ifname") == "flannel.1"
                and "dst" in f} == \
            {(p["backend_data"]["vtep_mac"], p["public_ip"]) for p in others.values()}
        assert {(r["dst"], r["gateway"], r["dev"], "onlink" in r["flags"])
                for r in weft_routes(st)} == \
            {(p["subnet"], vtep(p["subnet"]), "flannel.1", True) for p in others.values()}
    else:
        assert vx is None, "a VXLAN device is left on %s" % name

    tun = link(st, "flannel0")
    if backend == "udp":
        info = tun["linkinfo"]["info_data"]
        assert (info["type"], info["pi"], info["persist"], info["user"], tun["mtu"]) == \
            ("tun", False, True, "weft-udpd", 1472), info
        assert addresses(st, "flannel0") == [vtep(lease["subnet"]) + "/32"]
        assert [(r["dst"], r["dev"]) for r in weft_routes(st)] == [(NETWORK, "flannel0")]
        assert st["units"]["weft-udpd"]["ActiveState"] == "active"
        assert st["units"]["weft-udpd"]["UnitFileState"] == "enabled"
        assert st["units"]["weft-udpd"]["User"] == "weft-udpd"
        config = json.loads(st["files"]["/etc/weft/udpd.json"])
        assert (config["listen"], config["port"], config["subnet"]) == \
            (lease["public_ip"], 8285, lease["subnet"])
        assert sorted((p["subnet"], p["ip"]) for p in config["peers"]) == \
            sorted((p["subnet"], p["public_ip"]) for p in others.values())
        assert st["udpd_user"]
        # The kernel fast path in front of the daemon: one program each way.
        assert st["tc"] == [["eth0", "ingress", "decap"], ["flannel0", "egress", "encap"]], st["tc"]
    else:
        assert tun is None, "a TUN device is left on %s" % name
        assert st["tc"] == [], "weft's tc filters are left on %s: %s" % (name, st["tc"])
        assert "weft-udpd.service" not in st["unit_files"]
        assert st["files"]["/etc/weft/udpd.json"] is None and not st["udpd_user"]

    if backend == "host-gw":
        assert {(r["dst"], r["gateway"], r["dev"]) for r in weft_routes(st)} == \
            {(p["subnet"], p["public_ip"], "eth0") for p in others.values()}

    wg = link(st, "flannel-wg")
    if backend == "wireguard":
        # wireguard-go's device here (the lab's kernel has no WireGuard), its own key.
        assert (wg["linkinfo"]["info_kind"], wg["mtu"]) == ("tun", 1420), wg
        assert addresses(st, "flannel-wg") == [vtep(lease["subnet"]) + "/32"]
        own = [f for f in st["wg"] if len(f) == 4]
        assert own == [["flannel-wg", lease["backend_data"]["public_key"], "51820", "off"]], own
        assert {f[1]: (f[3], f[4]) for f in st["wg"] if len(f) == 9} == \
            {p["backend_data"]["public_key"]: ("%s:51820" % p["public_ip"], p["subnet"])
             for p in others.values()}
        assert [(r["dst"], r["dev"]) for r in weft_routes(st)] == [(NETWORK, "flannel-wg")]
        assert (st["wg_unit"]["ActiveState"], st["wg_unit"]["User"]) == ("active", "weft-wireguard")
        assert st["wg_key"] == "400 root" and st["wg_user"]
    else:
        assert wg is None, "a WireGuard device is left on %s" % name
        assert st["wg_key"] is None and not st["wg_user"] and st["wg"] == []

    assert st["files"]["/run/flannel/subnet.env"] == (
        "FLANNEL_NETWORK=%s\nFLANNEL_SUBNET=%s\nFLANNEL_MTU=%d\nFLANNEL_IPMASQ=true\n"
        % (NETWORK, bridge_address(lease["subnet"]), MTU[backend]))
    check_runtimes(st, runtime_subnets(lease["subnet"], runtime), MTU[backend])

    rules = st["iptables"].splitlines()
    assert "-A FORWARD -j WEFT-FWD" in rules and "-A POSTROUTING -j WEFT-POSTRTG" in rules
    assert [r for r in rules if r.startswith("-A WEFT-FWD")] == [
        '-A WEFT-FWD -s %s -m comment --comment "weft forward" -j ACCEPT' % NETWORK,
        '-A WEFT-FWD -d %s -m comment --comment "weft forward" -j ACCEPT' % NETWORK]
    masq = [r for r in rules if r.startswith("-A WEFT-POSTRTG")]
    assert masq[:2] == [  # what kube-proxy marked first, then the network's own traffic
        '-A WEFT-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment "weft masq" -j RETURN',
        '-A WEFT-POSTRTG -s %s -d %s -m comment --comment "weft masq" -j RETURN'
        % (lease["subnet"], NETWORK)]
    assert '-A WEFT-POSTRTG -s %s ! -d 224.0.0.0/4 -m comment --comment "weft masq" ' \
        '-j MASQUERADE --random-fully' % NETWORK in masq

    if backend in PORT:
        assert sorted(nft_set(st, "peers4")) == sorted(p["public_ip"] for p in others.values())
        assert any('"right": %d' % PORT[backend] in json.dumps(r["expr"]) for r in nft_rules(st))
    else:
        assert st["nft"] is None, "the ingress table is left on %s" % name

    assert st["units"]["weft-restore"]["UnitFileState"] == "enabled"
    assert st["units"]["weft-heal"]["ActiveState"] == "active"


def check_runtimes(st, subnets, mtu):
    """Docker's bridge and the CNI network each on its own subnet (`subnets`), and nothing
    of the runtime the node does not serve."""
    if "docker" in subnets:
        bridge = bridge_address(subnets["docker"])
        daemon = json.loads(st["files"]["/etc/docker/daemon.json"])
        assert (daemon["bip"], daemon["mtu"], daemon["ip-masq"]) == (bridge, mtu, False)
        assert addresses(st, "docker0") == [bridge]
    else:
        assert st["files"]["/etc/docker/daemon.json"] is None
    conflist = st["files"]["/etc/cni/net.d/10-weft.conflist"]
    if "cni" in subnets:
        gateway = bridge_address(subnets["cni"])
        bridge = json.loads(conflist)["plugins"][0]
        assert (bridge["bridge"], bridge["mtu"], bridge["ipam"]["ranges"]) == \
            ("cni0", mtu, [[{"subnet": subnets["cni"], "gateway": gateway.split("/")[0]}]])
        assert addresses(st, "cni0") == [gateway]
    else:   # (and host-local's bookkeeping gone with the network: no container holds an address)
        assert conflist is None and link(st, "cni0") is None and st["ipam"] is None


def check_clean(name, st):
    """Nothing of weft is left on the node, and Docker is back on its own bridge address."""
    assert link(st, "flannel.1") is None and link(st, "flannel0") is None
    assert weft_routes(st) == []
    network = ipaddress.ip_network(NETWORK)
    overlay = [r for r in st["routes"] if "/" in r["dst"]
               and ipaddress.ip_network(r["dst"]).overlaps(network)]
    assert overlay == [], "routes into the overlay left on %s: %s" % (name, overlay)
    assert addresses(st, "docker0") == [DOCKER_DEFAULT]
    assert "WEFT" not in st["iptables"] and st["nft"] is None
    assert st["unit_files"] == [] and not st["udpd_user"] and st["weft_dirs"] == []
    assert link(st, "flannel-wg") is None and st["wg"] == [] and not st["wg_user"]
    assert st["wg_key"] is None and st["wg_unit"]["ActiveState"] in ("inactive", "")
    assert link(st, "cni0") is None and st["ipam"] is None
    for path, content in st["files"].items():
        assert content is None, "%s is left on %s" % (path, name)


# ---- containers ---------------------------------------------------------------------

# In a container: an HTTP server answering with its client's address (the receiver's view).
SERVE_CLIENT_ADDRESS = ("sh -c \"mkdir -p /www/cgi-bin && printf '#!/bin/sh\\necho\\n"
                        "echo \\$REMOTE_ADDR\\n' > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && "
                        "httpd -p 8080 -h /www\"")
DOCKER = "docker exec weft-verify"      # how a check runs a command in each kind of container
PODMAN = "podman exec weft-pod"


# A container's idle main process that ends on SIGTERM, as a real service does: a bare
# `sleep` as PID 1 ignores it, and every dockerd restart and node shutdown would wait out
# Docker's 10 s stop timeout for it.
IDLE = "sh -c 'trap \"exit 0\" TERM; sleep 3600 & wait'"


def start_container(name, container="weft-verify"):
    """A busybox container on the node, serving its client's address over HTTP; its IP."""
    h = host(name)
    h.check_output("docker image inspect weft/busybox >/dev/null 2>&1 || "
                   "docker import /var/tmp/weft-busybox.tar weft/busybox >/dev/null")
    h.run("docker rm -f %s" % container)
    h.check_output("docker run -d --name %s weft/busybox %s" % (container, IDLE))
    h.check_output("docker exec %s %s" % (container, SERVE_CLIENT_ADDRESS))
    return h.check_output("docker inspect -f '{{.NetworkSettings.IPAddress}}' %s" % container)


def start_containers(names=NODES):
    return on_all(start_container, names)


def start_pod(name, pod="weft-pod", network="weft"):
    """The same with podman (the lab sets it to its CNI backend) on the CNI network."""
    h = host(name)
    h.check_output("podman image exists weft/busybox || "
                   "podman import -q /var/tmp/weft-busybox.tar weft/busybox >/dev/null")
    h.run("podman rm -f -t 0 %s" % pod)
    # (podman leaves NET_RAW out of a container's capabilities, Docker does not: ping needs it)
    h.check_output("podman run -d --name %s --network %s --cap-add NET_RAW weft/busybox %s"
                   % (pod, network, IDLE))
    h.check_output("podman exec %s %s" % (pod, SERVE_CLIENT_ADDRESS))
    return h.check_output("podman inspect -f '{{(index .NetworkSettings.Networks \"%s\").IPAddress}}' "
                          "%s" % (network, pod))


def start_pods(names=NODES):
    return on_all(start_pod, names)


def remove_pods(names=NODES):
    on_all(lambda name: host(name).check_output("podman rm -f -t 0 weft-pod"), names)


def container_ipv6(name, container="weft-verify"):
    return host(name).check_output(
        "docker inspect -f '{{.NetworkSettings.GlobalIPv6Address}}' %s" % container)


# ---- dual-stack ---------------------------------------------------------------------

def state6(name):
    """The IPv6 side of what weft manages on a node, as ip, bridge and ip6tables show it."""
    h = host(name)

    def js(cmd):  # None when the device is not there
        out = h.run(cmd + " 2>/dev/null || true").stdout
        return json.loads(out) if out.strip() else None
    link6 = js("ip -j -d link show flannel-v6.1")
    return dict(link=link6[0] if link6 else None,
                addrs=js("ip -j -6 addr show dev flannel-v6.1 scope global") or [],
                routes=js("ip -j -6 route show proto 119") or [],
                neigh=js("ip -j -6 neigh show dev flannel-v6.1 nud permanent") or [],
                fdb=js("bridge -j fdb show dev flannel-v6.1") or [],
                ip6tables=h.check_output("ip6tables-save"),
                forwarding=h.check_output("sysctl -n net.ipv6.conf.all.forwarding"),
                daemon=json.loads(h.run("cat /etc/docker/daemon.json").stdout or "{}"),
                subnet_env=h.run("cat /run/flannel/subnet.env").stdout,
                nft_peers6=sorted(nft_set(state(name), "peers6") or []),
                # the IPv6 WireGuard device's peers (its own line, with the key, left out)
                wg6=[line.split("\t") for line in h.run(
                    "wg show flannel-wg-v6 dump 2>/dev/null | tail -n +2").stdout.splitlines()],
                wg6_link=js("ip -j -d link show flannel-wg-v6"))


def check_dual_stack(name, st, backend, plan):
    """`st` (state6) of node `name` holds the IPv6 side of `backend` for the leases `plan`."""
    lease = plan[name]
    others = {n: p for n, p in plan.items() if n != name}
    assert st["forwarding"] == "1"
    if backend == "vxlan":
        data = st["link"]["linkinfo"]["info_data"]
        assert (data["id"], data["local6"], data["link"], data["port"]) == \
            (1, lease["public_ipv6"], "eth0", 8472), data
        assert (st["link"]["address"], st["link"]["mtu"]) == \
            (lease["backend_v6_data"]["vtep_mac"], 1430)
        assert ["%s/%d" % (a["local"], a["prefixlen"]) for e in st["addrs"]
                for a in e.get("addr_info", []) if "local" in a] == [vtep(lease["subnet6"]) + "/128"]
        assert {(n["dst"], n["lladdr"]) for n in st["neigh"]} == \
            {(vtep(p["subnet6"]), p["backend_v6_data"]["vtep_mac"]) for p in others.values()}
        assert {(f["mac"], f["dst"]) for f in st["fdb"] if "dst" in f} == \
            {(p["backend_v6_data"]["vtep_mac"], p["public_ipv6"]) for p in others.values()}
        assert {(r["dst"], r["gateway"], r["dev"]) for r in st["routes"]} == \
            {(p["subnet6"], vtep(p["subnet6"]), "flannel-v6.1") for p in others.values()}
        assert st["nft_peers6"] == sorted(p["public_ipv6"] for p in others.values())
    elif backend == "wireguard":
        # Mode separate: the second device, one peer per host over IPv6 on ListenPortV6.
        assert st["link"] is None and st["wg6_link"][0]["mtu"] == 1420, st["wg6_link"]
        assert {f[0]: (f[2], f[3]) for f in st["wg6"]} == \
            {p["backend_v6_data"]["public_key"]: ("[%s]:51821" % p["public_ipv6"], p["subnet6"])
             for p in others.values()}
        assert {(r["dst"], r.get("gateway"), r["dev"]) for r in st["routes"]} == \
            {(NETWORK6, None, "flannel-wg-v6")}
        assert st["nft_peers6"] == sorted(p["public_ipv6"] for p in others.values())
    else:
        assert st["link"] is None
        assert {(r["dst"], r["gateway"], r["dev"]) for r in st["routes"]} == \
            {(p["subnet6"], p["public_ipv6"], "eth0") for p in others.values()}
    mtu = {"vxlan": 1430, "host-gw": 1500, "wireguard": 1420}[backend]
    gateway6 = "%s/%d" % (ipaddress.ip_network(lease["subnet6"]).network_address + 1, 64)
    assert (st["daemon"]["ipv6"], st["daemon"]["fixed-cidr-v6"], st["daemon"]["mtu"]) == \
        (True, lease["subnet6"], mtu)
    assert "FLANNEL_IPV6_NETWORK=%s\nFLANNEL_IPV6_SUBNET=%s\nFLANNEL_MTU=%d\n" % (
        NETWORK6, gateway6, mtu) in st["subnet_env"]
    rules6 = st["ip6tables"].splitlines()
    assert '-A WEFT-FWD -s %s -m comment --comment "weft forward" -j ACCEPT' % NETWORK6 in rules6
    assert '-A WEFT-POSTRTG -s %s ! -d ff00::/8 -m comment --comment "weft masq" ' \
        '-j MASQUERADE --random-fully' % NETWORK6 in rules6


def check_clean6(name, st):
    """Nothing of weft's IPv6 side is left on the node."""
    assert st["link"] is None and st["routes"] == [], name
    assert "WEFT" not in st["ip6tables"], name
    assert "ipv6" not in st["daemon"] and "fixed-cidr-v6" not in st["daemon"], name


def check_no_ipv4_overlay(name, st):
    """`st` (state) of a node of an IPv6-only network: nothing of weft on the IPv4 side,
    and Docker's bridge keeps an IPv4 address of Docker's own, outside the overlay."""
    assert link(st, "flannel.1") is None and link(st, "flannel0") is None, name
    assert [r for r in weft_routes(st) if ":" not in r["dst"]] == [], name
    assert "WEFT" not in st["iptables"], name
    assert nft_set(st, "peers4") in (None, []), name
    env = st["files"]["/run/flannel/subnet.env"]
    assert "FLANNEL_NETWORK" not in env and "FLANNEL_SUBNET" not in env, env
    daemon = json.loads(st["files"]["/etc/docker/daemon.json"])
    assert "ip-masq" not in daemon, daemon
    bridge = addresses(st, "docker0")
    assert bridge and not any(ipaddress.ip_interface(a).ip in ipaddress.ip_network(NETWORK)
                              for a in bridge), (name, bridge)


def check_containers_reach_each_other(ips, retries=10):
    """Every node's Docker container reaches every other's (see check_reach)."""
    check_reach({name: (name, DOCKER, ip) for name, ip in ips.items()}, retries)


def check_reach(endpoints, retries=10):
    """`endpoints`: {label: (node, how to exec in the container, its IP)}. Every container
    pings every other and sees the other's own address as the source (each tries its peers
    at the same time as the others do)."""
    def from_endpoint(a):
        node, execute, own = endpoints[a]
        for b, (_, _, ip) in sorted(endpoints.items()):
            if a == b:
                continue
            for attempt in range(retries):  # a node restarting dockerd or the daemon
                out = host(node).run("%s ping -c 1 -W 2 %s" % (execute, ip))
                if out.rc == 0:
                    break
                time.sleep(1)
            assert out.rc == 0, "%s -> %s (%s): %s" % (a, b, ip, out.stdout + out.stderr)
            url = "http://%s:8080/cgi-bin/ip" % ("[%s]" % ip if ":" in ip else ip)
            seen = host(node).check_output("%s wget -qO- %s" % (execute, url))
            assert seen.strip().replace("::ffff:", "").strip("[]") == own, (a, b, seen)
    on_all(from_endpoint, sorted(endpoints))


def container_icmp_echoes(name, container="weft-verify"):
    """How many echo requests the container's own stack has received (its /proc/net/snmp)."""
    lines = [line.split() for line in host(name).check_output(
        "docker exec %s cat /proc/net/snmp" % container).splitlines() if line.startswith("Icmp:")]
    return int(lines[1][lines[0].index("InEchos")])


# ---- the lab ------------------------------------------------------------------------

def reboot(*names, command="reboot"):
    """Power-cycle nodes, all at once (command: poweroff or poweron for half of it)."""
    subprocess.run([sys.executable, LAB, command, *names], check=True, capture_output=True)
    for name in names:
        _HOSTS.pop(name, None)


class Outsider:
    """A machine on the underlay that is in no inventory (weftlab's outsider namespace)."""

    def __init__(self):
        out = subprocess.run([sys.executable, LAB, "outsider"], check=True, capture_output=True,
                             text=True).stdout.split()
        self.netns, self.ip = out[0], out[1]

    def send(self, dst, port, payloads, src=None):
        """Send raw UDP payloads (bytes) to dst:port, from `src` (default: its own address)."""
        family = "AF_INET6" if ":" in dst else "AF_INET"
        if ":" in dst and src is None:
            src = OUTSIDER_IP6
        script = ("import socket,sys\ns=socket.socket(socket.%s,socket.SOCK_DGRAM)\n"
                  "s.setsockopt(socket.SOL_IP,19,1)\n" % family +  # IP_FREEBIND: any source
                  "s.bind((sys.argv[1],0))\n"
                  "for line in sys.stdin:\n    s.sendto(bytes.fromhex(line.strip()),(sys.argv[2],int(sys.argv[3])))\n")
        subprocess.run(["ip", "netns", "exec", self.netns, sys.executable, "-c", script,
                        src or self.ip, dst, str(port)],
                       input="".join(p.hex() + "\n" for p in payloads), text=True, check=True)

    def flood(self, dst, port, seconds):
        """Junk datagrams to dst:port for `seconds`; how many were sent."""
        script = ("import os,socket,sys,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                  "junk=os.urandom(64);end=time.time()+float(sys.argv[3]);n=0\n"
                  "while time.time()<end:\n"
                  "    for _ in range(100):\n"
                  "        try:\n            s.sendto(junk,(sys.argv[1],int(sys.argv[2])));n+=1\n"
                  "        except BlockingIOError:\n            pass\n"
                  "print(n)\n")
        out = subprocess.run(["ip", "netns", "exec", self.netns, sys.executable, "-c", script,
                              dst, str(port), str(seconds)], capture_output=True, text=True,
                             check=True, timeout=seconds + 30)
        return int(out.stdout)


def ipv4_header(src, dst, proto, payload):
    header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                                   ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed))
    struct.pack_into("!H", header, 10, ones_complement(header))
    return bytes(header) + payload


def ones_complement(data):
    total = sum(struct.unpack("!%dH" % (len(data) // 2), bytes(data)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def icmp_echo(src, dst):
    icmp = bytearray(struct.pack("!BBHHH", 8, 0, 0, 0x77, 1) + b"weft-injected!!!")
    struct.pack_into("!H", icmp, 2, ones_complement(icmp))
    return ipv4_header(src, dst, 1, bytes(icmp))


def vxlan_frame(inner_dst_mac, inner_src_mac, inner_packet, vni=1):
    """A VXLAN datagram payload: VXLAN header, then the Ethernet frame around the packet."""
    def mac(text):
        return bytes(int(part, 16) for part in text.split(":"))
    return (struct.pack("!II", 0x08000000, vni << 8) + mac(inner_dst_mac) + mac(inner_src_mac)
            + b"\x08\x00" + inner_packet)
