# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Subnet planning: Flannel's network config rules and stable per-host leases.

Pure standard library so that the planner module, its tests and any other
controller-side tool share one implementation. Every error is a PlanError whose
message starts with the variable it is about.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from ansible.module_utils.weft.backends import BACKENDS
from ansible.module_utils.weft.lease import Lease
from ansible.module_utils.weft.validate import whole_number


class PlanError(ValueError):
    """Bad input: the message names the variable and the reason."""


@dataclass(frozen=True)
class NetworkConfig:
    network: ipaddress.IPv4Network
    subnet_len: int
    subnet_min: ipaddress.IPv4Network
    subnet_max: ipaddress.IPv4Network
    backend_type: str = "vxlan"
    options: dict = field(default_factory=dict)   # the backend's options, weft's keys

    @property
    def backend(self):
        return BACKENDS[self.backend_type]

    @property
    def overhead(self) -> int:
        return self.backend.overhead

    def option(self, key):
        return self.options.get(key)

    @property
    def _step(self) -> int:
        return 2 ** (self.network.max_prefixlen - self.subnet_len)

    def subnets(self):
        """Every subnet from SubnetMin to SubnetMax, in address order."""
        first = int(self.subnet_min.network_address)
        last = int(self.subnet_max.network_address)
        for addr in range(first, last + 1, self._step):
            yield ipaddress.ip_network((addr, self.subnet_len))

    @property
    def capacity(self) -> int:
        return (int(self.subnet_max.network_address)
                - int(self.subnet_min.network_address)) // self._step + 1

    def in_range(self, subnet) -> bool:
        return (subnet.version == self.network.version and subnet.prefixlen == self.subnet_len
                and self.subnet_min.network_address <= subnet.network_address
                <= self.subnet_max.network_address)

    def range_text(self) -> str:
        return "%s to %s" % (self.subnet_min, self.subnet_max)

    def lease(self, subnet, public_ip, reported=None) -> Lease:
        """A lease of this network's backend for `subnet`, with the host's reported data."""
        return Lease(subnet, public_ip, self.backend_type,
                     self.backend.lease_data(self.options, subnet, reported or {}))

    def as_flannel(self) -> dict:
        """The config in Flannel's JSON, every default written out."""
        backend = {"Type": self.backend_type, **self.backend.options_as_flannel(self.options)}
        return {"Network": str(self.network), "SubnetLen": self.subnet_len,
                "SubnetMin": str(self.subnet_min.network_address),
                "SubnetMax": str(self.subnet_max.network_address), "Backend": backend}

    def summary(self) -> dict:
        """The config with every default filled in, as plain values (what hosts get)."""
        return {
            "network": str(self.network), "subnet_len": self.subnet_len,
            "subnet_min": str(self.subnet_min), "subnet_max": str(self.subnet_max),
            "backend_type": self.backend_type, **self.options, "overhead": self.overhead,
        }


@dataclass(frozen=True)
class Reservation:
    """A subnet held by someone other than this inventory (a Flannel daemon, another tool).

    It is never moved or released. Like Flannel, a host whose public IP is the
    reservation's takes it over when it has no lease of its own.
    """
    subnet: ipaddress.IPv4Network
    public_ip: ipaddress.IPv4Address | None
    origin: str             # where it was found, for error messages


@dataclass(frozen=True)
class HostSpec:
    """What the inventory says about one host."""
    name: str
    public_ip: ipaddress.IPv4Address | None = None
    pin: ipaddress.IPv4Network | None = None
    underlay: ipaddress.IPv4Network | None = None
    reported: dict | None = None    # the backend's lease data this host reported (weft_facts)


@dataclass
class Plan:
    leases: dict            # host name -> Lease, including retained leases of removed hosts
    members: list           # inventory hosts that hold a lease, sorted
    retained: list          # leases kept for hosts no longer in the inventory
    released: list          # leases dropped by prune
    unplanned: list         # hosts with neither a lease nor a known public IP
    config: NetworkConfig
    adopted: list = field(default_factory=list)  # hosts that took over their reservation
    reserved: list = field(default_factory=list)  # subnets of the range held by others

    def peers_of(self, name: str) -> list:
        return [n for n in self.members if n != name]


# --------------------------------------------------------------------------
# Network config (Flannel's JSON field names)
# --------------------------------------------------------------------------

def _int(value, name, low=None, high=None):
    try:
        return whole_number(value, name, low, high)
    except ValueError as exc:
        raise PlanError(str(exc)) from None


def parse_ipv4_network(value, name) -> ipaddress.IPv4Network:
    if not isinstance(value, str):
        raise PlanError("%s: %r is not an IPv4 CIDR such as 100.96.0.0/16" % (name, value))
    try:
        net = ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as exc:
        raise PlanError("%s: %r is not a valid IPv4 CIDR (%s)" % (name, value, exc)) from None
    if net.version != 4:
        raise PlanError("%s: %r is IPv6; weft networks are IPv4" % (name, value))
    if "/" not in value:
        raise PlanError("%s: %r has no prefix length, write it as a CIDR" % (name, value))
    return net


def parse_ipv4_address(value, name) -> ipaddress.IPv4Address:
    try:
        addr = ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise PlanError("%s: %r is not an IPv4 address" % (name, value)) from None
    if addr.version != 4:
        raise PlanError("%s: %r is IPv6; weft underlays are IPv4" % (name, value))
    return addr


def _only_known(fields, known, name):
    unknown = sorted(set(fields) - known)
    if unknown:
        raise PlanError("%s: unknown field(s) %s; known: %s"
                        % (name, ", ".join(unknown), ", ".join(sorted(known))))


def parse_network_config(raw, name="weft_network") -> NetworkConfig:
    """Validate a Flannel network config (as in net-conf.json) and fill defaults."""
    if not isinstance(raw, dict):
        raise PlanError("%s: must be a mapping with at least Network" % name)
    _only_known(raw, {"Network", "SubnetLen", "SubnetMin", "SubnetMax", "Backend"}, name)
    if "Network" not in raw:
        raise PlanError("%s.Network: is required (e.g. 100.96.0.0/16)" % name)
    network = parse_ipv4_network(raw["Network"], name + ".Network")
    prefix = network.prefixlen
    if prefix > 28:
        raise PlanError("%s.Network: /%d is too small, a network needs a prefix of at most /28"
                        % (name, prefix))

    if raw.get("SubnetLen") is None:
        subnet_len = 24 if prefix <= 22 else prefix + 2
    else:
        subnet_len = _int(raw["SubnetLen"], name + ".SubnetLen")
        if subnet_len > 30:
            raise PlanError("%s.SubnetLen: %d is larger than 30" % (name, subnet_len))
        if subnet_len < prefix + 2:
            raise PlanError("%s.SubnetLen: %d leaves fewer than 4 subnets in %s (use at least %d)"
                            % (name, subnet_len, network, prefix + 2))

    step = 2 ** (32 - subnet_len)
    base = int(network.network_address)
    last = int(network.broadcast_address) + 1 - step

    def bound(key, default):
        if raw.get(key) is None:
            return ipaddress.IPv4Network((default, subnet_len))
        addr = parse_ipv4_address(str(raw[key]).split("/")[0], "%s.%s" % (name, key))
        if addr not in network:
            raise PlanError("%s.%s: %s is outside Network %s" % (name, key, addr, network))
        if (int(addr) - base) % step:
            raise PlanError("%s.%s: %s is not on a /%d subnet boundary"
                            % (name, key, addr, subnet_len))
        return ipaddress.IPv4Network((int(addr), subnet_len))

    subnet_min = bound("SubnetMin", base + step)  # Flannel skips the first subnet
    subnet_max = bound("SubnetMax", last)
    if subnet_min.network_address > subnet_max.network_address:
        raise PlanError("%s.SubnetMin: %s is above SubnetMax %s"
                        % (name, subnet_min.network_address, subnet_max.network_address))

    backend = raw.get("Backend") or {}
    if not isinstance(backend, dict):
        raise PlanError("%s.Backend: must be a mapping such as {Type: vxlan}" % name)
    btype = backend.get("Type", "vxlan")
    if btype not in BACKENDS:
        raise PlanError("%s.Backend.Type: %r is not one of %s"
                        % (name, btype, ", ".join(sorted(BACKENDS))))
    try:
        options = BACKENDS[btype].parse_options(backend, name + ".Backend")
    except ValueError as exc:
        raise PlanError(str(exc)) from None
    return NetworkConfig(network, subnet_len, subnet_min, subnet_max, btype, options)


# --------------------------------------------------------------------------
# Hosts and leases
# --------------------------------------------------------------------------

def parse_hosts(raw_hosts, config: NetworkConfig, name="weft_hosts") -> list:
    """Validate the inventory's view of the hosts; returns HostSpec sorted by name."""
    if not isinstance(raw_hosts, list):
        raise PlanError("%s: must be a list of hosts" % name)
    hosts, by_ip, by_pin = [], {}, {}
    for i, raw in enumerate(raw_hosts):
        where = "%s[%d]" % (name, i)
        if not isinstance(raw, dict) or not raw.get("name"):
            raise PlanError("%s: needs a name" % where)
        host = raw["name"]
        public_ip = pin = underlay = None
        if raw.get("public_ip"):
            public_ip = parse_ipv4_address(raw["public_ip"], "weft_public_ip of %s" % host)
            if public_ip in config.network:
                raise PlanError("weft_public_ip of %s: %s lies inside the overlay Network %s"
                                % (host, public_ip, config.network))
            if public_ip in by_ip:
                raise PlanError("weft_public_ip of %s: %s is also the public IP of %s; every host "
                                "needs its own (set weft_public_ip or weft_iface)"
                                % (host, public_ip, by_ip[public_ip]))
            by_ip[public_ip] = host
        if raw.get("underlay"):
            try:
                underlay = ipaddress.ip_interface(str(raw["underlay"])).network
            except ValueError:
                raise PlanError("underlay network of %s: %r is not a CIDR"
                                % (host, raw["underlay"])) from None
            if underlay.version == 4 and underlay.overlaps(config.network):
                raise PlanError("weft_network.Network: %s overlaps the underlay network %s of %s"
                                % (config.network, underlay, host))
        if raw.get("subnet"):
            pin = parse_ipv4_network(raw["subnet"], "weft_subnet of %s" % host)
            if not config.in_range(pin):
                raise PlanError("weft_subnet of %s: %s is outside the subnet range %s (/%d)"
                                % (host, pin, config.range_text(), config.subnet_len))
            if pin in by_pin:
                raise PlanError("weft_subnet of %s: %s is also pinned by %s" % (host, pin, by_pin[pin]))
            by_pin[pin] = host
        reported = None
        if raw.get("reported"):
            try:
                reported = config.backend.check_reported(raw["reported"], "weft_facts of %s" % host)
            except ValueError as exc:
                raise PlanError(str(exc)) from None
        hosts.append(HostSpec(host, public_ip, pin, underlay, reported))
    names = [h.name for h in hosts]
    if len(set(names)) != len(names):
        raise PlanError("%s: a host is listed twice" % name)
    return sorted(hosts, key=lambda h: h.name)


def parse_leases(raw, name="weft_leases") -> dict:
    """Read the leases as stored in the lease file."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PlanError("%s: must be a mapping of host name to lease" % name)
    leases = {}
    for host, item in raw.items():
        try:
            leases[str(host)] = Lease.from_dict(item, "%s.%s" % (name, host))
        except ValueError as exc:
            raise PlanError(str(exc)) from None
    holders = {}
    for host in sorted(leases):
        subnet = leases[host].subnet
        if subnet in holders:
            raise PlanError("%s: %s and %s both hold %s" % (name, holders[subnet], host, subnet))
        holders[subnet] = host
    return leases


def plan(config: NetworkConfig, hosts: list, existing: dict, prune: bool = False,
         reserved: dict | None = None) -> Plan:
    """Give every host a subnet without moving any host that already holds a valid one.

    Order of precedence: a host's pin, then its existing lease (if still in the
    subnet range), then a reservation with its public IP, then the lowest free
    subnet. Allocation is lowest-free rather than Flannel's random pick so that the
    plan is reproducible and reviewable. `reserved` (subnet -> Reservation) are
    subnets held outside the inventory: never handed to anyone else.
    """
    reserved = reserved or {}
    names = {h.name for h in hosts}
    leases, retained, released, adopted = {}, [], [], []
    taken = {}  # subnet -> holder

    def public_ip_of(h):
        old = existing.get(h.name)
        return h.public_ip or (old.public_ip if old else None)

    def reported_of(h):
        """What the host reported this run, else what its lease recorded of it."""
        if not config.backend.reported or h.reported:
            return h.reported or {}
        old = existing.get(h.name)
        data = old.backend_data if old and old.backend_type == config.backend_type else {}
        try:
            return config.backend.check_reported(data, "weft_facts of %s" % h.name)
        except ValueError as exc:
            raise PlanError(str(exc)) from None

    def check_may_take_over(h, subnet):
        found = reserved[subnet]
        if found.public_ip is None or found.public_ip != public_ip_of(h):
            raise PlanError("weft_subnet of %s: %s is held by %s (public IP %s)"
                            % (h.name, subnet, found.origin, found.public_ip))

    # Leases of hosts gone from the inventory keep their subnet until pruned.
    for host in sorted(existing):
        if host in names:
            continue
        if prune:
            released.append(host)
        else:
            lease = existing[host]
            leases[host] = lease
            taken[lease.subnet] = host
            retained.append(host)

    for h in hosts:
        if h.pin is not None and h.pin in taken:
            raise PlanError("weft_subnet of %s: %s is held by the retained lease of %s "
                            "(removed from the inventory); release it with weft_prune=true"
                            % (h.name, h.pin, taken[h.pin]))
        if h.pin is not None:
            if h.pin in reserved:
                check_may_take_over(h, h.pin)
                adopted.append(h.name)
            taken[h.pin] = h.name
    # A host pinned elsewhere gives up its old subnet, which another host's pin may then claim.
    kept = {}
    for h in hosts:
        old = existing.get(h.name)
        if h.pin is not None or old is None or not config.in_range(old.subnet):
            continue
        if old.subnet in taken:
            raise PlanError("weft_subnet of %s: %s is leased to %s; pin %s elsewhere first"
                            % (taken[old.subnet], old.subnet, h.name, h.name))
        kept[h.name] = old
        taken[old.subnet] = h.name

    # Flannel's rule: a host with no lease takes over the reservation that has its public IP.
    claimable = {r.public_ip: s for s, r in sorted(reserved.items())
                 if r.public_ip is not None and config.in_range(s) and s not in taken}
    unplanned = []
    busy = [s for s in reserved if s not in taken]
    # Reservations of the plan's length are skipped by a set lookup; only those of another
    # length (a differently configured Flannel) need an overlap test per candidate.
    busy_odd = [s for s in busy if s.prefixlen != config.subnet_len]
    busy_same = set(busy) - set(busy_odd)
    free = (s for s in config.subnets()
            if s not in taken and s not in busy_same and not any(s.overlaps(b) for b in busy_odd))
    for h in hosts:
        public_ip = public_ip_of(h)
        if h.pin is not None:
            subnet = h.pin
        elif h.name in kept:
            subnet = kept[h.name].subnet
        elif public_ip is None:
            unplanned.append(h.name)
            continue
        elif public_ip in claimable:
            subnet = claimable.pop(public_ip)
            taken[subnet] = h.name
            adopted.append(h.name)
        else:
            subnet = next(free, None)
            if subnet is None:
                need = len([x for x in hosts if x.name not in unplanned])
                extra = " and %d retained lease(s) of removed hosts (prune to release)" \
                    % len(retained) if retained else ""
                if busy:
                    extra += " and %d subnet(s) held outside the inventory" % len(busy)
                raise PlanError("out of subnets: %d hosts%s, %d subnets from %s"
                                % (need, extra, config.capacity, config.range_text()))
            taken[subnet] = h.name
        leases[h.name] = config.lease(subnet, public_ip, reported_of(h))
    members = sorted(n for n in names if n in leases)
    others = sorted(s for s in reserved if config.in_range(s) and s not in taken)
    return Plan(leases, members, retained, released, unplanned, config, sorted(adopted), others)


def leases_as_dict(leases: dict) -> dict:
    return {name: leases[name].as_dict() for name in sorted(leases)}


def capacity_summary(p: Plan) -> dict:
    used = len(p.leases) + len(p.reserved)
    return {"subnets": p.config.capacity, "used": used, "free": p.config.capacity - used,
            "range": p.config.range_text(), "subnet_len": p.config.subnet_len}
