# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host's desired state, derived in one place from the plan every host gets, the host's
identity and the role's settings. weft_host derives it to converge, weft-restore to
rebuild at boot and to repair drift: the same code, from the same record.

The plan is what weft_plan hands every host, the same for all of them (lease.py says its
form: the network summary and every host's lease record by name). The identity is what
weft_facts found: {"name", "iface", "public_ip", "iface_ip", "underlay", "mtu"} and the same
for IPv6 (public_ip is what peers send to, iface_ip the interface's own address: they
differ behind a 1:1 NAT; without iface_ip, as in records before it, they are the same).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from types import SimpleNamespace

from .. import lease
from ..backends import BACKENDS, bridge_address, step
from ..errors import WeftError
from . import units
from ..net.iptables import FORWARD_CHAIN, MASQUERADE_CHAIN
from ..runtime import cni

IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
IPV6_FORWARD = "/proc/sys/net/ipv6/conf/all/forwarding"
HEAL_UNIT = units.UNITS + "/weft-heal.service"
encode_plan = lease.encode_plan


def decode_plan(blob) -> dict:
    try:
        return lease.decode_plan(blob)
    except ValueError as exc:
        raise WeftError(str(exc)) from None


# ---- what derivation sees ------------------------------------------------------------

@dataclass(frozen=True)
class Peer:
    """A host of the network as this host sees it: its lease record's public part."""
    name: str
    subnet: str | None          # None: an IPv6-only lease
    public_ip: str | None
    data: dict = field(default_factory=dict)    # the backend's lease data (weft's keys)
    subnet6: str | None = None
    public_ipv6: str | None = None
    data6: dict | None = None
    weft: bool = True   # False: a Flannel host of the network (from etcd)

    def side(self, family):
        """(subnet, public address, lease data) of one family of the lease."""
        return (self.subnet, self.public_ip, self.data) if family == 4 else \
            (self.subnet6, self.public_ipv6, self.data6 or {})

    @classmethod
    def of(cls, name, entry, weft=True):
        return cls(name, entry.get("subnet"), entry.get("public_ip"), entry.get("backend_data") or {},
                   entry.get("subnet6"), entry.get("public_ipv6"), entry.get("backend_v6_data"),
                   weft)


class HostView:
    """The network, this host, its peers, its underlay and the settings."""

    def __init__(self, plan, identity, settings):
        self.network = plan["network"]
        self.identity, self.settings = identity, settings
        if self.network.get("backend_type") not in BACKENDS:
            raise WeftError("plan: unknown backend %r" % self.network.get("backend_type"))
        self.backend = BACKENDS[self.network["backend_type"]]
        name = identity["name"]
        if name not in plan["hosts"]:
            raise WeftError("host: %s has no lease in the plan (is it in the group weft_group names, weft_nodes by default?)" % name)
        self.me = Peer.of(name, plan["hosts"][name])
        # Peers: the inventory's hosts and, with the etcd store, Flannel hosts of the network.
        others = [Peer.of(n, entry) for n, entry in plan["hosts"].items() if n != name]
        others += [Peer.of(key, entry, weft=False)
                   for key, entry in (plan.get("foreign") or {}).items()]
        # Each family's peers: the hosts with that family's subnet and public address (an
        # IPv6-only network has no IPv4 side; a dual-stack peer without IPv6 gets no IPv6
        # entries). `peers`: every host this one exchanges anything with.
        self.ipv4 = self.network.get("network") is not None
        self.ipv6 = bool(self.network.get("ipv6_network"))
        for family, on, subnet, address, variable in (
                (4, self.ipv4, self.me.subnet, "public_ip", "weft_public_ip"),
                (6, self.ipv6, self.me.subnet6, "public_ipv6", "weft_public_ipv6")):
            if on and not (subnet and identity.get(address)):
                raise WeftError("host: %s has no IPv%d %s, which the network needs"
                                % (name, family, "subnet in the plan" if not subnet else
                                   "underlay address (%s)" % variable))
        self.peers4 = sorted((p for p in others if p.subnet and p.public_ip),
                             key=lambda p: p.name) if self.ipv4 else []
        self.peers6 = sorted((p for p in others if p.subnet6 and p.public_ipv6),
                             key=lambda p: p.name) if self.ipv6 else []
        self.peers = sorted({p.name: p for p in self.peers4 + self.peers6}.values(),
                            key=lambda p: p.name)
        self.families = [f for f, on in ((4, self.ipv4), (6, self.ipv6)) if on]
        underlay_mtu = self.network.get("mtu") or identity["mtu"]
        # One MTU for the containers, right for every path: the larger overhead of the
        # families the network has (an IPv6 outer header is 20 bytes more than an IPv4 one).
        overhead = max(self.backend.overhead if self.ipv4 else 0,
                       self.backend.overhead_v6 if self.ipv6 else 0)
        self.overlay_mtu = int(underlay_mtu) - overhead
        self._underlays = [ipaddress.ip_network(identity[key])
                           for key in ("underlay", "underlay6") if identity.get(key)]
        self.runtime_ranges = runtime_ranges(self)   # {runtime: {family: its containers' subnet}}

    def own_address(self, family):
        """The interface's own address of one family, which the host binds to and sends
        from (its public address unless that is a NAT's)."""
        public, own = ("public_ip", "iface_ip") if family == 4 else ("public_ipv6", "iface_ipv6")
        return self.identity.get(own) or self.identity[public]

    def peers_of(self, family):
        """The peers with a subnet and a public address of this family."""
        return self.peers4 if family == 4 else self.peers6

    def on_link(self, peer, family=4) -> bool:
        """DirectRouting: a peer on this host's L2 network is reached without the tunnel."""
        address = peer.public_ip if family == 4 else peer.public_ipv6
        return bool(self.network.get("direct_routing") and address and
                    any(ipaddress.ip_address(address) in net for net in self._underlays))


# ---- the desired state -----------------------------------------------------------------

@dataclass
class HostState:
    steps: list = field(default_factory=list)       # core calls, in order
    devices: set = field(default_factory=set)       # {(core, name)} the state keeps
    users: list = field(default_factory=list)       # [{"name", "comment"}]
    modes: list = field(default_factory=list)       # [{"path", "mode"}]
    files: dict = field(default_factory=dict)       # path -> (content, mode)
    links: dict = field(default_factory=dict)       # path -> target
    services: list = field(default_factory=list)    # [{"name", "unit", "wants", ...}]
    secrets: set = field(default_factory=set)       # paths of files made on the host (keys)
    outputs: set = field(default_factory=set)       # paths weft's daemons write (metrics)

    def merge(self, other):
        """Everything either state holds (for what may have to go)."""
        merged = HostState(devices=self.devices | other.devices,
                           secrets=self.secrets | other.secrets,
                           outputs=self.outputs | other.outputs,
                           users=self.users + [u for u in other.users if u not in self.users],
                           files={**other.files, **self.files},
                           links={**other.links, **self.links})
        names = {s["name"] for s in self.services}
        merged.services = self.services + [s for s in other.services if s["name"] not in names]
        return merged


def forward_rules(network):
    """Flannel's FLANNEL-FWD rules, as iptables -S prints them."""
    return ['-s %s -m comment --comment "weft forward" -j ACCEPT' % network,
            '-d %s -m comment --comment "weft forward" -j ACCEPT' % network]


def forward_nft(network):
    """The same in nftables (Flannel's forward chain with EnableNFTables)."""
    ip = NFT_FAMILY[ipaddress.ip_network(network).version]
    return ["%s saddr %s accept" % (ip, network), "%s daddr %s accept" % (ip, network)]


MULTICAST = {4: "224.0.0.0/4", 6: "ff00::/8"}
NFT_FAMILY = {4: "ip", 6: "ip6"}
KUBE_PROXY_MARK = "0x4000/0x4000"   # what kube-proxy marks for its own masquerading
KUBE_PROXY = "kube-proxy's mark"


def masquerade_matches(network, subnet):
    """Flannel's masquerade rules in order, as (source, destination, masquerade?): what
    kube-proxy masquerades itself is left to it (a second NAT of it breaks on some
    kernels), traffic inside the network keeps its source; "!" negates an address."""
    multicast = MULTICAST[ipaddress.ip_network(network).version]
    return [(KUBE_PROXY, None, False), (subnet, network, False), (network, subnet, False),
            ("!" + network, subnet, False), (network, "!" + multicast, True),
            ("!" + network, network, True)]


def masquerade_rules(network, subnet, random_fully=True):
    """Flannel's FLANNEL-POSTRTG rules as iptables -S prints them; `random_fully`: source
    ports picked at random (Flannel's default, off with --ip-masq-fully-random-disable)."""
    comment = '-m comment --comment "weft masq"'
    masquerade = "-j MASQUERADE --random-fully" if random_fully else "-j MASQUERADE"

    def match(flag, address):
        return "! %s %s" % (flag, address[1:]) if address.startswith("!") else \
            "%s %s" % (flag, address)
    return ["-m mark --mark %s %s -j RETURN" % (KUBE_PROXY_MARK, comment) if source is KUBE_PROXY
            else "%s %s %s %s" % (match("-s", source), match("-d", destination), comment,
                                  masquerade if masq else "-j RETURN")
            for source, destination, masq in masquerade_matches(network, subnet)]


def masquerade_nft(network, subnet, random_fully=True):
    """The same rules in nftables (Flannel's postrtg chain with EnableNFTables)."""
    ip = NFT_FAMILY[ipaddress.ip_network(network).version]
    masquerade = "masquerade fully-random" if random_fully else "masquerade"
    mark, dummy = KUBE_PROXY_MARK.split("/")

    def match(key, address):
        return "%s %s != %s" % (ip, key, address[1:]) if address.startswith("!") else \
            "%s %s %s" % (ip, key, address)
    return ["meta mark & %s == %s return" % (mark, mark) if source is KUBE_PROXY
            else "%s %s %s" % (match("saddr", source), match("daddr", destination),
                               masquerade if masq else "return")
            for source, destination, masq in masquerade_matches(network, subnet)]


def subnet_env(view):
    """Flannel's /run/flannel/subnet.env, for tools that read it (each family's lines only
    when the network has it, as flanneld writes them)."""
    text = ""
    if view.ipv4:
        text += "FLANNEL_NETWORK=%s\nFLANNEL_SUBNET=%s\n" % (view.network["network"],
                                                             bridge_address(view.me.subnet))
    if view.ipv6:
        text += "FLANNEL_IPV6_NETWORK=%s\nFLANNEL_IPV6_SUBNET=%s\n" % (
            view.network["ipv6_network"], bridge_address(view.me.subnet6))
    return text + "FLANNEL_MTU=%d\nFLANNEL_IPMASQ=%s\n" % (view.overlay_mtu,
                                                           str(view.settings["ip_masq"]).lower())


def chain_steps(view):
    """The forward and masquerade chains, in iptables and ip6tables or, with the network's
    EnableNFTables, in nftables; each family's (dual-stack or not) and each kind's, so that
    a network that drops IPv6 or switches between the two leaves nothing of the other."""
    settings, found, in_nft = view.settings, [], []
    nft = bool(view.network.get("nftables"))
    random_fully = settings.get("ip_masq_random_fully", True)
    for family, network, subnet in (("ipv4", view.network["network"], view.me.subnet),
                                    ("ipv6", view.network.get("ipv6_network"), view.me.subnet6)):
        on = network is not None
        forward, masq = on and settings["forward_accept"], on and settings["ip_masq"]
        found += [step("iptables", **FORWARD_CHAIN, family=family,
                       rules=forward_rules(network) if on and not nft else [],
                       state="present" if forward and not nft else "absent"),
                  step("iptables", **MASQUERADE_CHAIN, family=family,
                       rules=masquerade_rules(network, subnet, random_fully)
                       if on and not nft else [],
                       state="present" if masq and not nft else "absent")]
        in_nft.append(step("nftables", family=family,
                           forward=forward_nft(network) if forward and nft else [],
                           masquerade=masquerade_nft(network, subnet, random_fully)
                           if masq and nft else [],
                           state="present" if nft and (forward or masq) else "absent"))
    return found + in_nft


def ingress_step(view):
    backend = view.backend
    if not (view.settings["peer_ingress"] and backend.encapsulated):
        return step("ingress", state="absent")
    port, *more = backend.ingress_ports(view)
    return step("ingress", port=port, **(dict(ports=more) if more else {}),
                inner=backend.ingress_inner(),
                peers=[{"ip": p.public_ip, "subnet": p.subnet} for p in view.peers4] +
                [{"ip": p.public_ipv6, "subnet": p.subnet6} for p in view.peers6])


def derive(plan, identity, settings, with_steps=True) -> HostState:
    """The whole desired state of this host (without the core calls: what it keeps)."""
    view = HostView(plan, identity, settings)
    backend = view.backend
    devices = set(backend.devices(view))
    if settings.get("cni"):
        devices.add(("bridge", settings["cni_bridge"]))
    state = HostState(devices=devices, users=backend.users(view),
                      modes=backend.modes(view), services=backend.services(view),
                      secrets=set(backend.secrets(view)), outputs=outputs(settings))
    if with_steps:
        state.steps = steps(view, settings)
    files(state, view, settings)
    return state


def outputs(settings) -> set:
    """Files weft-heal writes as it runs: the metrics file, when there are metrics (they
    are refreshed by its passes, so none without weft-heal)."""
    wanted = settings.get("metrics_file") and settings.get("heal_interval", 0) > 0
    return {settings["metrics_file"]} if wanted else set()


def runtimes(settings) -> list:
    """The container runtimes this host serves, in the order they split its subnet."""
    return [r for r, on in (("docker", settings["docker"]), ("cni", settings.get("cni"))) if on]


def runtime_ranges(view) -> dict:
    """{runtime: {family: subnet}}: the containers' addresses of each runtime. One runtime
    has the host's whole subnet(s); with Docker and CNI both, Docker the lower half of each
    and CNI the upper, so the two bridges never share a gateway or a connected route."""
    wanted = runtimes(view.settings)
    found = {r: {} for r in wanted}
    for family in view.families:
        subnet = ipaddress.ip_network(view.me.side(family)[0])
        if len(wanted) == 2 and subnet.prefixlen > (28 if family == 4 else 124):
            raise WeftError("settings: Docker and CNI on one host split its subnet in two; "
                            "%s is too small for that" % subnet)
        parts = list(subnet.subnets(prefixlen_diff=1)) if len(wanted) == 2 else [subnet]
        for runtime, part in zip(wanted, parts):
            found[runtime][family] = part
    return found


def runtime_steps(view, settings) -> list:
    """What each runtime's daemon is told (Docker's daemon.json; CNI runtimes read the
    conflist, a file)."""
    found, ranges = [], view.runtime_ranges
    if settings["docker"]:
        # IPv4: docker0 on the host's subnet, masquerading left to weft's chain. IPv6-only:
        # docker0's IPv4 side stays Docker's own (bip and ip-masq as they were), local only.
        docker = ranges["docker"]
        ipv4 = dict(bip=bridge_address(docker[4]), ip_masq=False) if 4 in docker else {}
        ipv6 = dict(ipv6=True, fixed_cidr_v6=str(docker[6])) if 6 in docker else {}
        # EnableNFTables: the host needs no iptables, so Docker must not either (weft's
        # nftables chains forward and masquerade its containers' traffic instead).
        no_iptables = dict(iptables=False, ip6tables=False) if view.network.get("nftables") else {}
        found.append(step("docker", path=settings["docker_daemon_json"], mtu=view.overlay_mtu,
                          original=units.DOCKER_ORIGINAL, **ipv4, **ipv6, **no_iptables))
    return found


def cni_bridge_step(view, settings):
    """The CNI network's bridge with its gateways, made before any container needs it."""
    ranges = view.runtime_ranges["cni"]
    return step("bridge", name=settings["cni_bridge"], mtu=view.overlay_mtu,
                address=[bridge_address(ranges[f]) for f in sorted(ranges)])


def steps(view, settings) -> list:
    backend = view.backend
    found = backend.steps(view)
    if settings.get("cni"):
        found.append(cni_bridge_step(view, settings))
    found.append(step("routes", routes=backend.routes(view), purge=True,
                      protocol=settings["route_protocol"]))
    found += chain_steps(view)
    found.append(ingress_step(view))
    return found + runtime_steps(view, settings)


def heal_service():
    return {"name": "weft-heal", "unit": HEAL_UNIT, "wants": units.WANTS + "/weft-heal.service",
            "restart_on": [HEAL_UNIT, units.MODULE_UTILS], "reload_on": []}


def files(state, view, settings):
    """The files, links and services every host has, then the backend's."""
    backend = view.backend
    state.files = {
        units.SYSCTL_FILE: ("# weft: hosts route container traffic between the overlay and "
                            "docker0\nnet.ipv4.ip_forward = 1\n"
                            + ("net.ipv6.conf.all.forwarding = 1\n" if view.ipv6 else ""),
                            "0644"),
        IP_FORWARD: ("1\n", "0644"),
        settings["subnet_env"]: (subnet_env(view), "0644"),
        units.RESTORE: (units.launcher(), "0755"),
        units.UNITS + "/weft-restore.service": (units.restore(), "0644"),
    }
    if view.ipv6:
        state.files[IPV6_FORWARD] = ("1\n", "0644")
    state.links = {units.WANTS + "/weft-restore.service": units.UNITS + "/weft-restore.service"}
    if settings["heal_interval"] > 0:
        state.files[HEAL_UNIT] = (units.heal(settings["heal_interval"]), "0644")
        state.services.append(heal_service())
    state.files.update(backend.files(view))
    if settings.get("cni"):
        ranges = view.runtime_ranges["cni"]
        state.files[cni.conflist_path(settings["cni_conf_dir"], settings["cni_name"])] = (
            cni.conflist(settings["cni_name"], settings["cni_bridge"], view.overlay_mtu,
                         [ranges[f] for f in sorted(ranges)],
                         [view.network["network" if f == 4 else "ipv6_network"]
                          for f in sorted(ranges)]), "0644")
    for service in state.services:
        state.links[service["wants"]] = service["unit"]


def leftovers(settings, options=None) -> HostState:
    """What weft may have left on a host it has no record of (uninstall after the record
    was lost): every backend's devices by their default names (with `options`, e.g. the
    network's VNI, over the defaults), users and services, and weft's files and units."""
    state = HostState(services=[heal_service()],  # stopped first: it would put things back
                      outputs={settings.get("metrics_file") or units.METRICS})
    for backend in BACKENDS.values():
        network = {**{o.key: o.default for o in backend.options}, **(options or {})}
        light = SimpleNamespace(network=network, settings=settings, ipv4=True, ipv6=True,
                                families=[4, 6])
        state = state.merge(HostState(devices=set(backend.devices(light)),
                                      users=backend.users(light),
                                      services=backend.services(light),
                                      secrets=set(backend.secrets(light))))
    paths = [units.SYSCTL_FILE, settings["subnet_env"], units.RESTORE,
             units.UNITS + "/weft-restore.service"] + units.LEGACY_FILES
    if settings.get("cni"):
        state.devices.add(("bridge", settings["cni_bridge"]))
        paths.append(cni.conflist_path(settings["cni_conf_dir"], settings["cni_name"]))
    for service in state.services:
        paths += [service["unit"]] + service["reload_on"]
        state.links[service["wants"]] = service["unit"]
    state.links[units.WANTS + "/weft-restore.service"] = units.UNITS + "/weft-restore.service"
    state.files = {path: ("", "0644") for path in paths}
    return state


def known(plan, identity, settings) -> HostState:
    """Everything weft may have put on this host for this network, whichever backend and
    settings it had: what a converge removes when the new state no longer holds it."""
    everything = HostState()
    for name, backend in BACKENDS.items():
        network = {**{o.key: o.default for o in backend.options}, **plan["network"],
                   "backend_type": name}
        everything = everything.merge(derive(dict(plan, network=network), identity,
                                             dict(settings, heal_interval=1), with_steps=False))
    everything.files.update({path: ("", "0644") for path in units.LEGACY_FILES})
    return everything
