# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host's desired state, derived in one place from the plan every host gets, the host's
identity and the role's settings. weft_host derives it to converge, weft-restore to
rebuild at boot and to repair drift: the same code, from the same record.

The plan (what weft_plan hands every host, the same for all of them):
    {"network": {"network": "100.96.0.0/16", "backend_type": "vxlan", "vni": 1,
                 "port": 8472, "direct_routing": false, "mtu": null, ...},
     "hosts": {"node1": ["100.96.1.0/24", "10.168.0.2", "0e:77:64:60:01:00"], ...},
     "foreign": {"100.96.200.0-24": ["100.96.200.0/24", "10.168.0.250", "5a:..."]}}
The identity (what weft_facts found): {"name", "iface", "public_ip", "underlay", "mtu"}.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import zlib
from dataclasses import dataclass, field

from ansible.module_utils.weft.backends import BACKENDS, bridge_address, step
from ansible.module_utils.weft.errors import WeftError
from ansible.module_utils.weft.host import units

SYSCTL_FILE = "/etc/sysctl.d/60-weft.conf"
IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
DOCKER_ORIGINAL = "/etc/weft/docker-original.json"
# Files of weft versions before the host model, removed when found.
LEGACY_FILES = ["/etc/weft/state.json", units.RUNTIME + "/weft-restore.py",
                units.RUNTIME + "/weft-udpd.py"]


# ---- the plan on its way to the hosts ------------------------------------------------

def encode_plan(plan: dict) -> str:
    """The plan as every host receives it: compressed JSON in one string, so that the
    controller hands the same small value to every host instead of templating a large
    structure per host."""
    text = json.dumps(plan, separators=(",", ":"), sort_keys=True)
    return base64.b64encode(zlib.compress(text.encode(), 6)).decode()


def decode_plan(blob) -> dict:
    try:
        plan = json.loads(zlib.decompress(base64.b64decode(blob)))
    except (ValueError, TypeError, zlib.error):
        raise WeftError("plan: not a plan made by weft_plan") from None
    if not isinstance(plan, dict) or not isinstance(plan.get("network"), dict) \
            or not isinstance(plan.get("hosts"), dict):
        raise WeftError("plan: not a plan made by weft_plan")
    return plan


# ---- what derivation sees ------------------------------------------------------------

@dataclass(frozen=True)
class Peer:
    name: str
    subnet: str
    public_ip: str
    vtep_mac: str
    weft: bool = True   # False: a Flannel host of the network (from etcd)


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
            raise WeftError("host: %s has no lease in the plan (is it in weft_group?)" % name)
        self.me = Peer(name, *plan["hosts"][name])
        # Peers: the inventory's hosts and, with the etcd store, Flannel hosts of the network.
        others = [Peer(n, *entry) for n, entry in plan["hosts"].items() if n != name]
        others += [Peer(key, *entry, weft=False) for key, entry in (plan.get("foreign") or {}).items()]
        self.peers = sorted((p for p in others if p.public_ip), key=lambda p: p.name)
        underlay_mtu = self.network.get("mtu") or identity["mtu"]
        self.overlay_mtu = int(underlay_mtu) - self.backend.overhead
        self._underlay = ipaddress.ip_network(identity["underlay"]) if identity.get("underlay") \
            else None

    def on_link(self, peer) -> bool:
        """DirectRouting: a peer on this host's L2 network is reached without the tunnel."""
        return bool(self.network.get("direct_routing") and self._underlay is not None
                    and ipaddress.ip_address(peer.public_ip) in self._underlay)


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

    def merge(self, other):
        """Everything either state holds (for what may have to go)."""
        merged = HostState(devices=self.devices | other.devices,
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


def masquerade_rules(network, subnet):
    """Flannel's FLANNEL-POSTRTG rules: traffic inside the network keeps its source."""
    comment = '-m comment --comment "weft masq"'
    return ["-s %s -d %s %s -j RETURN" % (subnet, network, comment),
            "-s %s -d %s %s -j RETURN" % (network, subnet, comment),
            "! -s %s -d %s %s -j RETURN" % (network, subnet, comment),
            "-s %s ! -d 224.0.0.0/4 %s -j MASQUERADE --random-fully" % (network, comment),
            "! -s %s -d %s %s -j MASQUERADE --random-fully" % (network, network, comment)]


def subnet_env(view):
    """Flannel's /run/flannel/subnet.env, for tools that read it."""
    return ("FLANNEL_NETWORK=%s\nFLANNEL_SUBNET=%s\nFLANNEL_MTU=%d\nFLANNEL_IPMASQ=%s\n"
            % (view.network["network"], bridge_address(view.me.subnet), view.overlay_mtu,
               str(view.settings["ip_masq"]).lower()))


def chain_steps(view):
    network, settings = view.network["network"], view.settings
    return [step("iptables", table="filter", chain="WEFT-FWD", jump_from="FORWARD",
                 rules=forward_rules(network),
                 state="present" if settings["forward_accept"] else "absent"),
            step("iptables", table="nat", chain="WEFT-POSTRTG", jump_from="POSTROUTING",
                 rules=masquerade_rules(network, view.me.subnet),
                 state="present" if settings["ip_masq"] else "absent")]


def ingress_step(view):
    backend = view.backend
    if not (view.settings["peer_ingress"] and backend.encapsulated):
        return step("ingress", state="absent")
    return step("ingress", port=view.network["port"], inner=backend.ingress_inner(),
                peers=[{"ip": p.public_ip, "subnet": p.subnet} for p in view.peers])


def derive(plan, identity, settings) -> HostState:
    """The whole desired state of this host."""
    view = HostView(plan, identity, settings)
    backend = view.backend
    state = HostState(devices=set(backend.devices(view)), users=backend.users(view),
                      modes=backend.modes(view), services=backend.services(view))
    state.steps = backend.steps(view)
    state.steps.append(step("routes", routes=backend.routes(view), purge=True,
                            protocol=settings["route_protocol"]))
    state.steps += chain_steps(view)
    state.steps.append(ingress_step(view))
    if settings["docker"]:
        state.steps.append(step("docker", path=settings["docker_daemon_json"],
                                bip=bridge_address(view.me.subnet), mtu=view.overlay_mtu,
                                ip_masq=False, original=DOCKER_ORIGINAL))
    state.files = {
        SYSCTL_FILE: ("# weft: hosts route container traffic between the overlay and "
                      "docker0\nnet.ipv4.ip_forward = 1\n", "0644"),
        IP_FORWARD: ("1\n", "0644"),
        settings["subnet_env"]: (subnet_env(view), "0644"),
        units.RESTORE: (units.launcher(), "0755"),
        units.UNITS + "/weft-restore.service": (units.restore(), "0644"),
    }
    state.links = {units.WANTS + "/weft-restore.service": units.UNITS + "/weft-restore.service"}
    if settings["heal_interval"] > 0:
        unit = units.UNITS + "/weft-heal.service"
        state.files[unit] = (units.heal(settings["heal_interval"]), "0644")
        state.services.append({"name": "weft-heal", "unit": unit,
                               "wants": units.WANTS + "/weft-heal.service",
                               "restart_on": [unit, units.MODULE_UTILS], "reload_on": []})
    state.files.update(backend.files(view))
    for service in state.services:
        state.links[service["wants"]] = service["unit"]
    return state


def leftovers(settings, vni=1) -> HostState:
    """What weft may have left on a host it has no record of (uninstall after the record
    was lost): its devices by their default names, its files, units and users."""
    udp = BACKENDS["udp"]
    state = HostState(devices={("vxlan", "flannel.%d" % vni), ("tun", settings["tun_device"])},
                      users=[{"name": settings["udpd_user"], "comment": ""}])
    paths = [SYSCTL_FILE, settings["subnet_env"], units.RESTORE, udp.CONFIG, udp.UNIT,
             units.UNITS + "/weft-restore.service", units.UNITS + "/weft-heal.service"] + LEGACY_FILES
    state.files = {path: ("", "0644") for path in paths}
    for name in ("weft-restore", "weft-heal", "weft-udpd"):
        state.links[units.WANTS + "/%s.service" % name] = units.UNITS + "/%s.service" % name
    state.services = [{"name": name, "unit": units.UNITS + "/%s.service" % name,
                       "wants": units.WANTS + "/%s.service" % name, "restart_on": [],
                       "reload_on": []} for name in ("weft-heal", "weft-udpd")]
    return state


def known(plan, identity, settings) -> HostState:
    """Everything weft may have put on this host for this network, whichever backend and
    settings it had: what a converge removes when the new state no longer holds it."""
    everything = HostState()
    for name in BACKENDS:
        other = dict(plan, network=dict(plan["network"], backend_type=name))
        everything = everything.merge(derive(other, identity, dict(settings, heal_interval=1)))
    everything.files.update({path: ("", "0644") for path in LEGACY_FILES})
    return everything
