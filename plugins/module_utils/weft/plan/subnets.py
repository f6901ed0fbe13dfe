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

from ..backends import BACKENDS
from ..lease import FAMILIES, Lease
from ..validate import whole_number


class PlanError(ValueError):
    """Bad input: the message names the variable and the reason."""


@dataclass(frozen=True)
class SubnetRange:
    """One address family of the network: the network and the subnets hosts get from it."""
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    subnet_len: int
    subnet_min: ipaddress.IPv4Network | ipaddress.IPv6Network
    subnet_max: ipaddress.IPv4Network | ipaddress.IPv6Network

    @property
    def step(self) -> int:
        return 2 ** (self.network.max_prefixlen - self.subnet_len)

    def subnets(self):
        """Every subnet from the minimum to the maximum, in address order."""
        first = int(self.subnet_min.network_address)
        last = int(self.subnet_max.network_address)
        for addr in range(first, last + 1, self.step):
            yield ipaddress.ip_network((addr, self.subnet_len))

    @property
    def capacity(self) -> int:
        return (int(self.subnet_max.network_address)
                - int(self.subnet_min.network_address)) // self.step + 1

    def in_range(self, subnet) -> bool:
        return (subnet.version == self.network.version and subnet.prefixlen == self.subnet_len
                and self.subnet_min.network_address <= subnet.network_address
                <= self.subnet_max.network_address)

    def range_text(self) -> str:
        return "%s to %s" % (self.subnet_min, self.subnet_max)


@dataclass(frozen=True)
class NetworkConfig:
    network: ipaddress.IPv4Network | None         # None: an IPv6-only network (EnableIPv4: false)
    subnet_len: int | None
    subnet_min: ipaddress.IPv4Network | None
    subnet_max: ipaddress.IPv4Network | None
    backend_type: str = "vxlan"
    options: dict = field(default_factory=dict)   # the backend's options, weft's keys
    ipv6: SubnetRange | None = None               # EnableIPv6: the IPv6 network and range
    nftables: bool = False                        # EnableNFTables: weft's chains in nftables

    @property
    def backend(self):
        return BACKENDS[self.backend_type]

    @property
    def overhead(self) -> int:
        return self.backend.overhead

    def option(self, key):
        return self.options.get(key)

    @property
    def ipv4(self) -> SubnetRange | None:
        if self.network is None:
            return None
        return SubnetRange(self.network, self.subnet_len, self.subnet_min, self.subnet_max)

    @property
    def primary(self) -> SubnetRange:
        """The family that decides a host's lease (IPv4; IPv6 in an IPv6-only network):
        membership, takeovers and capacity go by it, the other family rides along."""
        return self.ipv4 or self.ipv6

    @property
    def family(self):
        """Where the primary family's values live (lease.FAMILIES)."""
        return FAMILIES[self.primary.network.version]

    def subnets(self):
        return self.primary.subnets()

    @property
    def capacity(self) -> int:
        return self.primary.capacity

    def in_range(self, subnet) -> bool:
        return subnet is not None and self.primary.in_range(subnet)

    def range_text(self) -> str:
        return self.primary.range_text()

    def lease(self, subnet, public_ip, reported=None, subnet6=None, public_ipv6=None) -> Lease:
        """A lease of this network's backend for `subnet` and/or `subnet6`, with the host's
        reported data."""
        reported = reported or {}
        return Lease(subnet, public_ip, self.backend_type,
                     (self.backend.lease_data(self.options, subnet, reported)
                      if subnet is not None else {}),
                     subnet6=subnet6, public_ipv6=public_ipv6,
                     backend_v6_data=(self.backend.lease_data_v6(self.options, subnet6, reported)
                                      if subnet6 is not None else None))

    def as_flannel(self) -> dict:
        """The config in Flannel's JSON, every default written out (an IPv4 network's as
        weft has always written it: the IPv6 fields only when IPv6 is on)."""
        backend = {"Type": self.backend_type, **self.backend.options_as_flannel(self.options)}
        if self.network is None:
            out = {"EnableIPv4": False}
        else:
            out = {"Network": str(self.network), "SubnetLen": self.subnet_len,
                   "SubnetMin": str(self.subnet_min.network_address),
                   "SubnetMax": str(self.subnet_max.network_address)}
        if self.ipv6 is not None:
            out.update(EnableIPv6=True, IPv6Network=str(self.ipv6.network),
                       IPv6SubnetLen=self.ipv6.subnet_len,
                       IPv6SubnetMin=str(self.ipv6.subnet_min.network_address),
                       IPv6SubnetMax=str(self.ipv6.subnet_max.network_address))
        if self.nftables:
            out["EnableNFTables"] = True
        out["Backend"] = backend
        return out

    def summary(self) -> dict:
        """The config with every default filled in, as plain values (what hosts get)."""
        ipv4 = {"network": str(self.network), "subnet_len": self.subnet_len,
                "subnet_min": str(self.subnet_min), "subnet_max": str(self.subnet_max)} \
            if self.network is not None else {"network": None}
        return {
            **ipv4, "backend_type": self.backend_type, **self.options, "overhead": self.overhead,
            **({"ipv6_network": str(self.ipv6.network), "ipv6_subnet_len": self.ipv6.subnet_len}
               if self.ipv6 is not None else {}),
            **({"nftables": True} if self.nftables else {}),
        }


@dataclass(frozen=True)
class Reservation:
    """A subnet held by someone other than this inventory (a Flannel daemon, another tool).

    It is never moved or released. Like Flannel, a host whose public IP is the
    reservation's takes it over when it has no lease of its own.
    """
    subnet: ipaddress.IPv4Network | None
    public_ip: ipaddress.IPv4Address | None
    origin: str             # where it was found, for error messages
    subnet6: ipaddress.IPv6Network | None = None   # a dual-stack lease's IPv6 half
    public_ipv6: ipaddress.IPv6Address | None = None


@dataclass(frozen=True)
class HostSpec:
    """What the inventory says about one host."""
    name: str
    public_ip: ipaddress.IPv4Address | None = None
    pin: ipaddress.IPv4Network | None = None
    underlay: ipaddress.IPv4Network | None = None
    reported: dict | None = None    # the backend's lease data this host reported (weft_facts)
    public_ipv6: ipaddress.IPv6Address | None = None
    pin6: ipaddress.IPv6Network | None = None


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


def parse_network(value, name, version=4):
    """A CIDR of the given IP version whose host bits are clear."""
    example = "100.96.0.0/16" if version == 4 else "fd00:96::/48"
    if not isinstance(value, str):
        raise PlanError("%s: %r is not an IPv%d CIDR such as %s" % (name, value, version, example))
    try:
        net = ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as exc:
        raise PlanError("%s: %r is not a valid IPv%d CIDR (%s)" % (name, value, version, exc)) from None
    if net.version != version:
        raise PlanError("%s: %r is IPv%d; this field takes IPv%d (%s)"
                        % (name, value, net.version, version,
                           "IPv6 goes in IPv6Network" if version == 4 else "IPv4 goes in Network"))
    if "/" not in value:
        raise PlanError("%s: %r has no prefix length, write it as a CIDR" % (name, value))
    return net


def parse_address(value, name, version=4):
    try:
        addr = ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise PlanError("%s: %r is not an IPv%d address" % (name, value, version)) from None
    if addr.version != version:
        raise PlanError("%s: %r is IPv%d; this takes an IPv%d address"
                        % (name, value, addr.version, version))
    return addr


def parse_ipv4_address(value, name) -> ipaddress.IPv4Address:
    return parse_address(value, name, 4)


@dataclass(frozen=True)
class FamilyRules:
    """Flannel's rules for one family's fields of net-conf.json (pkg/subnet/config.go)."""
    version: int
    fields: tuple           # names of the network, subnet length, minimum, maximum
    max_prefix: int         # a network must be at least this large
    max_subnet_len: int
    default_len: int        # the subnet length of a large enough network ...
    default_up_to: int      # ... one whose prefix is at most this


IPV4_RULES = FamilyRules(4, ("Network", "SubnetLen", "SubnetMin", "SubnetMax"), 28, 30, 24, 22)
IPV6_RULES = FamilyRules(6, ("IPv6Network", "IPv6SubnetLen", "IPv6SubnetMin", "IPv6SubnetMax"),
                         124, 126, 64, 62)


def parse_range(raw, name, rules) -> SubnetRange:
    """One family's network and subnet range, with Flannel's defaults and checks."""
    key_net, key_len, key_min, key_max = rules.fields
    network = parse_network(raw[key_net], "%s.%s" % (name, key_net), rules.version)
    prefix = network.prefixlen
    if prefix > rules.max_prefix:
        raise PlanError("%s.%s: /%d is too small, a network needs a prefix of at most /%d"
                        % (name, key_net, prefix, rules.max_prefix))
    if raw.get(key_len) is None:
        subnet_len = rules.default_len if prefix <= rules.default_up_to else prefix + 2
    else:
        subnet_len = _int(raw[key_len], "%s.%s" % (name, key_len))
        if subnet_len > rules.max_subnet_len:
            raise PlanError("%s.%s: %d is larger than %d"
                            % (name, key_len, subnet_len, rules.max_subnet_len))
        if subnet_len < prefix + 2:
            raise PlanError("%s.%s: %d leaves fewer than 4 subnets in %s (use at least %d)"
                            % (name, key_len, subnet_len, network, prefix + 2))

    step = 2 ** (network.max_prefixlen - subnet_len)
    base = int(network.network_address)
    last = int(network.broadcast_address) + 1 - step

    def bound(key, default):
        if raw.get(key) is None:
            return ipaddress.ip_network((default, subnet_len))
        addr = parse_address(str(raw[key]).split("/", 1)[0], "%s.%s" % (name, key), rules.version)
        if addr not in network:
            raise PlanError("%s.%s: %s is outside %s %s" % (name, key, addr, key_net, network))
        if (int(addr) - base) % step:
            raise PlanError("%s.%s: %s is not on a /%d subnet boundary"
                            % (name, key, addr, subnet_len))
        return ipaddress.ip_network((int(addr), subnet_len))

    subnet_min = bound(key_min, base + step)  # Flannel skips the first subnet
    subnet_max = bound(key_max, last)
    if subnet_min.network_address > subnet_max.network_address:
        raise PlanError("%s.%s: %s is above %s %s" % (name, key_min, subnet_min.network_address,
                                                      key_max, subnet_max.network_address))
    return SubnetRange(network, subnet_len, subnet_min, subnet_max)


def _flag(raw, key, name, default):
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise PlanError("%s.%s: %r is not true or false" % (name, key, value))
    return value


def _only_known(fields, known, name):
    unknown = sorted(set(fields) - known)
    if unknown:
        raise PlanError("%s: unknown field(s) %s; known: %s"
                        % (name, ", ".join(unknown), ", ".join(sorted(known))))


def parse_network_config(raw, name="weft_network") -> NetworkConfig:
    """Validate a Flannel network config (as in net-conf.json) and fill defaults."""
    if not isinstance(raw, dict):
        raise PlanError("%s: must be a mapping with at least Network" % name)
    _only_known(raw, {"Network", "SubnetLen", "SubnetMin", "SubnetMax", "Backend", "EnableIPv4",
                      "EnableIPv6", "IPv6Network", "IPv6SubnetLen", "IPv6SubnetMin",
                      "IPv6SubnetMax", "EnableNFTables"}, name)
    nftables = _flag(raw, "EnableNFTables", name, False)
    ipv4 = ipv6 = None
    # IPv6-only (EnableIPv4: false): like flanneld, the IPv4 fields are not read at all.
    if _flag(raw, "EnableIPv4", name, True):
        if "Network" not in raw:
            raise PlanError("%s.Network: is required (e.g. 100.96.0.0/16)" % name)
        ipv4 = parse_range(raw, name, IPV4_RULES)
    if _flag(raw, "EnableIPv6", name, False):
        if raw.get("IPv6Network") is None:
            raise PlanError("%s.IPv6Network: is required with EnableIPv6 (e.g. fd00:96::/48)"
                            % name)
        ipv6 = parse_range(raw, name, IPV6_RULES)
    else:
        stray = sorted(k for k in raw if k.startswith("IPv6"))
        if stray:
            raise PlanError("%s.%s: set EnableIPv6: true to use it" % (name, stray[0]))
        if ipv4 is None:
            raise PlanError("%s.EnableIPv4: false leaves no address family; an IPv6-only "
                            "network also needs EnableIPv6: true and IPv6Network" % name)

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
    if ipv6 is not None and not BACKENDS[btype].dual_stack:
        raise PlanError("%s.EnableIPv6: backend %s carries IPv4 only (as Flannel's does); "
                        "use %s" % (name, btype, " or ".join(
                            sorted(n for n, b in BACKENDS.items() if b.dual_stack))))
    try:
        BACKENDS[btype].check_network(options, [f for f, on in ((4, ipv4), (6, ipv6))
                                                if on is not None], name + ".Backend")
    except ValueError as exc:
        raise PlanError(str(exc)) from None
    if ipv4 is None:
        return NetworkConfig(None, None, None, None, btype, options, ipv6, nftables)
    return NetworkConfig(ipv4.network, ipv4.subnet_len, ipv4.subnet_min, ipv4.subnet_max, btype,
                         options, ipv6, nftables)


# --------------------------------------------------------------------------
# Hosts and leases
# --------------------------------------------------------------------------

def _public_address(value, host, version, network, seen):
    variable = FAMILIES[version].public_variable
    addr = parse_address(value, "%s of %s" % (variable, host), version)
    if network is not None and addr in network:
        raise PlanError("%s of %s: %s lies inside the overlay %s %s"
                        % (variable, host, addr, FAMILIES[version].network_field, network))
    if addr in seen:
        raise PlanError("%s of %s: %s is also the public IP of %s; every host needs its own "
                        "(set %s or weft_iface)" % (variable, host, addr, seen[addr], variable))
    seen[addr] = host
    return addr


def _pin(value, host, version, subnets, seen):
    variable = FAMILIES[version].pin_variable
    if subnets is None:
        raise PlanError("%s of %s: the network has no IPv%d (%s)"
                        % (variable, host, version, "set EnableIPv6 and IPv6Network"
                           if version == 6 else "EnableIPv4 is false"))
    pin = parse_network(value, "%s of %s" % (variable, host), version)
    if not subnets.in_range(pin):
        raise PlanError("%s of %s: %s is outside the subnet range %s (/%d)"
                        % (variable, host, pin, subnets.range_text(), subnets.subnet_len))
    if pin in seen:
        raise PlanError("%s of %s: %s is also pinned by %s" % (variable, host, pin, seen[pin]))
    seen[pin] = host
    return pin


def parse_hosts(raw_hosts, config: NetworkConfig, name="weft_hosts") -> list:
    """Validate the inventory's view of the hosts; returns HostSpec sorted by name."""
    if not isinstance(raw_hosts, list):
        raise PlanError("%s: must be a list of hosts" % name)
    hosts, seen = [], {key: {} for key in ("ip4", "ip6", "pin4", "pin6")}
    networks = {4: config.network, 6: config.ipv6.network if config.ipv6 else None}
    # A family the network does not have: its public address is not the host's lease's.
    uses = {4: config.ipv4 is not None, 6: config.ipv6 is not None}
    for i, raw in enumerate(raw_hosts):
        where = "%s[%d]" % (name, i)
        if not isinstance(raw, dict) or not raw.get("name"):
            raise PlanError("%s: needs a name" % where)
        host = raw["name"]
        public_ip = public_ipv6 = pin = pin6 = underlay = None
        if raw.get("public_ip") and uses[4]:
            public_ip = _public_address(raw["public_ip"], host, 4, networks[4], seen["ip4"])
        if raw.get("public_ipv6") and uses[6]:
            public_ipv6 = _public_address(raw["public_ipv6"], host, 6, networks[6], seen["ip6"])
        for key in ("underlay", "underlay6"):
            if not raw.get(key):
                continue
            try:
                found = ipaddress.ip_interface(str(raw[key])).network
            except ValueError:
                raise PlanError("underlay network of %s: %r is not a CIDR" % (host, raw[key])) from None
            overlay = networks.get(found.version)
            if overlay is not None and found.overlaps(overlay):
                raise PlanError("weft_network.%s: %s overlaps the underlay network %s of %s"
                                % (FAMILIES[found.version].network_field, overlay, found, host))
            if found.version == 4:
                underlay = found
        if raw.get("subnet"):
            pin = _pin(raw["subnet"], host, 4, config.ipv4, seen["pin4"])
        if raw.get("subnet6"):
            pin6 = _pin(raw["subnet6"], host, 6, config.ipv6, seen["pin6"])
        reported = None
        if raw.get("reported"):
            try:
                reported = config.backend.check_reported(raw["reported"], "weft.overlay.facts of %s" % host)
            except ValueError as exc:
                raise PlanError(str(exc)) from None
        hosts.append(HostSpec(host, public_ip, pin, underlay, reported, public_ipv6, pin6))
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
        for subnet in (leases[host].subnet, leases[host].subnet6):
            if subnet in holders:
                raise PlanError("%s: %s and %s both hold %s"
                                % (name, holders[subnet], host, subnet))
            if subnet is not None:
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

    These rules decide the primary family (IPv4, or IPv6 in an IPv6-only network); a
    dual-stack network's IPv6 subnets follow them in plan_ipv6().
    """
    fam = config.family
    subnet_of, public_of = fam.subnet_of, fam.public_of
    pin_of = fam.pin_of
    # Reservations by their subnet of the primary family.
    reserved = {subnet_of(r): r for r in (reserved or {}).values() if subnet_of(r) is not None}
    names = {h.name for h in hosts}
    leases, retained, released, adopted = {}, [], [], []
    taken = {}  # subnet -> holder

    def public_address_of(h):
        old = existing.get(h.name)
        return public_of(h) or (public_of(old) if old else None)

    def reported_of(h):
        """What the host reported this run, else what its lease recorded of it."""
        if not config.backend.reported or h.reported:
            return h.reported or {}
        old = existing.get(h.name)
        data = (old.backend_data or old.backend_v6_data or {}) \
            if old and old.backend_type == config.backend_type else {}
        try:
            return config.backend.check_reported(data, "weft.overlay.facts of %s" % h.name)
        except ValueError as exc:
            raise PlanError(str(exc)) from None

    def check_may_take_over(h, subnet):
        found = reserved[subnet]
        if public_of(found) is None or public_of(found) != public_address_of(h):
            raise PlanError("%s of %s: %s is held by %s (public IP %s)"
                            % (fam.pin_variable, h.name, subnet, found.origin, public_of(found)))

    # Leases of hosts gone from the inventory keep their subnet until pruned.
    for host in sorted(existing):
        if host in names:
            continue
        if prune:
            released.append(host)
        else:
            lease = existing[host]
            leases[host] = lease
            if subnet_of(lease) is not None:
                taken[subnet_of(lease)] = host
            retained.append(host)

    for h in hosts:
        pin = pin_of(h)
        if pin is not None and pin in taken:
            raise PlanError("%s of %s: %s is held by the retained lease of %s "
                            "(removed from the inventory); release it with weft_prune=true"
                            % (fam.pin_variable, h.name, pin, taken[pin]))
        if pin is not None:
            if pin in reserved:
                check_may_take_over(h, pin)
                adopted.append(h.name)
            taken[pin] = h.name
    # A host pinned elsewhere gives up its old subnet, which another host's pin may then claim.
    kept = {}
    for h in hosts:
        old = existing.get(h.name)
        if pin_of(h) is not None or old is None or not config.in_range(subnet_of(old)):
            continue
        if subnet_of(old) in taken:
            raise PlanError("%s of %s: %s is leased to %s; pin %s elsewhere first"
                            % (fam.pin_variable, taken[subnet_of(old)], subnet_of(old), h.name,
                               h.name))
        kept[h.name] = subnet_of(old)
        taken[subnet_of(old)] = h.name

    planned = {}  # host -> (spec, subnet, public address) of the primary family
    # Flannel's rule: a host with no lease takes over the reservation that has its public IP.
    claimable = {public_of(r): s for s, r in sorted(reserved.items())
                 if public_of(r) is not None and config.in_range(s) and s not in taken}
    unplanned = []
    busy = [s for s in reserved if s not in taken]
    # Reservations of the plan's length are skipped by a set lookup; only those of another
    # length (a differently configured Flannel) need an overlap test per candidate.
    busy_odd = [s for s in busy if s.prefixlen != config.primary.subnet_len]
    busy_same = set(busy) - set(busy_odd)
    free = (s for s in config.subnets()
            if s not in taken and s not in busy_same and not any(s.overlaps(b) for b in busy_odd))
    for h in hosts:
        public = public_address_of(h)
        if pin_of(h) is not None:
            subnet = pin_of(h)
        elif h.name in kept:
            subnet = kept[h.name]
        elif public is None:
            unplanned.append(h.name)
            continue
        elif public in claimable:
            subnet = claimable.pop(public)
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
                raise PlanError("out of %ssubnets: %d hosts%s, %d subnets from %s"
                                % ("IPv6 " if fam.version == 6 else "", need, extra,
                                   config.capacity, config.range_text()))
            taken[subnet] = h.name
        planned[h.name] = (h, subnet, public)
    if fam.version == 6:  # IPv6-only: the lease has no IPv4 side
        for name, (h, subnet, public) in planned.items():
            leases[name] = config.lease(None, None, reported_of(h), subnet, public)
    else:
        ipv6 = plan_ipv6(config, planned, existing, leases, reserved) if config.ipv6 else {}
        for name, (h, subnet, public) in planned.items():
            leases[name] = config.lease(subnet, public, reported_of(h),
                                        *ipv6.get(name, (None, None)))
    members = sorted(n for n in names if n in leases)
    others = sorted(s for s in reserved if config.in_range(s) and s not in taken)
    return Plan(leases, members, retained, released, unplanned, config, sorted(adopted), others)


def plan_ipv6(config, planned, existing, retained, reserved) -> dict:
    """{host: (IPv6 subnet, public IPv6)} of the planned hosts, by the IPv4 rules: a pin,
    else the host's lease's (while in range), else the IPv6 half of the Flannel lease it
    took over by its IPv4 subnet, else the lowest free; retained leases and reservations
    keep theirs. Every host needs a public IPv6 (from its facts or its lease)."""
    rng = config.ipv6
    taken = {lease.subnet6: name for name, lease in retained.items() if lease.subnet6 is not None}
    adopted = {subnet for dummy, subnet, dummy in planned.values()}
    taken.update({r.subnet6: r.origin for s, r in reserved.items()
                  if r.subnet6 is not None and s not in adopted})
    chosen = {}
    for name, (h, subnet, dummy) in sorted(planned.items()):
        if h.pin6 is not None:
            if h.pin6 in taken:
                raise PlanError("weft_subnet6 of %s: %s is held by %s" % (name, h.pin6, taken[h.pin6]))
            chosen[name] = taken[h.pin6] = h.pin6
    for name, (h, subnet, dummy) in sorted(planned.items()):
        old = existing.get(name)
        if h.pin6 is None and old is not None and old.subnet6 is not None \
                and rng.in_range(old.subnet6) and taken.get(old.subnet6, name) != name:
            raise PlanError("weft_subnet6 of %s: %s is leased to %s; pin %s elsewhere first"
                            % (taken[old.subnet6], old.subnet6, name, name))
        found = reserved.get(subnet)
        for candidate in (old.subnet6 if old else None, found.subnet6 if found else None):
            if name not in chosen and candidate is not None and rng.in_range(candidate) \
                    and candidate not in taken:
                chosen[name] = candidate
                taken[candidate] = name
    free = (s for s in rng.subnets() if s not in taken)
    for name in sorted(planned):
        if name not in chosen:
            chosen[name] = next(free, None)
            if chosen[name] is None:
                raise PlanError("out of IPv6 subnets: %d hosts, %d subnets from %s"
                                % (len(planned), rng.capacity, rng.range_text()))
    result = {}
    for name, (h, dummy, dummy) in planned.items():
        old = existing.get(name)
        public_ipv6 = h.public_ipv6 or (old.public_ipv6 if old else None)
        if public_ipv6 is None:
            raise PlanError("weft_public_ipv6 of %s: the network has IPv6 (EnableIPv6) but %s has "
                            "no public IPv6 address (give its underlay interface a global IPv6 "
                            "address, or set weft_public_ipv6)" % (name, name))
        result[name] = (chosen[name], public_ipv6)
    return result


def leases_as_dict(leases: dict) -> dict:
    return {name: leases[name].as_dict() for name in sorted(leases)}


def capacity_summary(p: Plan) -> dict:
    used = len(p.leases) + len(p.reserved)
    return {"subnets": p.config.capacity, "used": used, "free": p.config.capacity - used,
            "range": p.config.range_text(), "subnet_len": p.config.primary.subnet_len}
