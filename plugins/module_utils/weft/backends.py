# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What each backend means, in one place: its net-conf options, its overhead, what a lease
of it records and how Flannel writes that, what each host reports for its lease, and which
entries every peer needs. The planner asks a backend for options and lease data; the lease
stores for Flannel's JSON; the host model for this host's steps.

A new backend is one more class here and one line in BACKENDS (or `register()`): nothing
else knows backend names.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .validate import whole_number

# First two octets of every VTEP MAC: locally administered (0x02), unicast (0x01 clear);
# IPv4 and IPv6 devices apart, so one host's two VTEPs never share a MAC.
VTEP_MAC_PREFIX = (0x0E, 0x77)
VTEP_MAC_PREFIX_V6 = (0x0E, 0x78)
MAX_VNI = 2 ** 24 - 1


def vtep_mac(subnet) -> str:
    """Deterministic VTEP MAC of a lease: unique per subnet, stable across re-creation.
    IPv4: the subnet's four bytes; IPv6: the 32 bits that end at the subnet's prefix (the
    bits that tell the subnets of one network apart)."""
    net = ipaddress.ip_network(subnet)
    if net.version == 4:
        octets = VTEP_MAC_PREFIX + tuple(net.network_address.packed)
    else:
        number = (int(net.network_address) >> (128 - net.prefixlen)) & 0xFFFFFFFF
        octets = VTEP_MAC_PREFIX_V6 + tuple(number.to_bytes(4, "big"))
    return ":".join("%02x" % o for o in octets)


def vtep_address(subnet) -> str:
    """The overlay device's own address: the subnet's network address."""
    return str(ipaddress.ip_network(subnet).network_address)


def bridge_address(subnet) -> str:
    """The container bridge's address: the subnet's first host with the subnet's length."""
    net = ipaddress.ip_network(subnet)
    return "%s/%d" % (net.network_address + 1, net.prefixlen)


def step(core, **params):
    """One call of a module core, in the order the host applies them."""
    return {"core": core, "params": params}


# ---- net-conf options ----------------------------------------------------------------

@dataclass(frozen=True)
class Option:
    """One option of net-conf's Backend: Flannel's field name, weft's key in the plan, its
    kind (int, bool or str), default and range (choices, for a str). Options are written
    out in declaration order, which is the order Flannel's config JSON has them; a
    `quiet` one only when it is not its default (added after networks were stored in etcd
    without it, whose config stays byte for byte what it was)."""
    flannel: str
    key: str
    kind: type = int
    default: object = None
    low: int | None = None
    high: int | None = None
    choices: tuple = ()
    quiet: bool = False

    def parse(self, raw: dict, where: str):
        value = raw.get(self.flannel)
        if value is None:
            return self.default
        name = "%s.%s" % (where, self.flannel)
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ValueError("%s: %r is not true or false" % (name, value))
            return value
        if self.kind is str:
            if value not in self.choices:
                raise ValueError("%s: %r is not one of %s" % (name, value, ", ".join(self.choices)))
            return value
        return whole_number(value, name, self.low, self.high)


def mtu_option(overhead):
    """Flannel's Backend.MTU, the underlay MTU: room for a 576-byte packet inside it."""
    return Option("MTU", "mtu", int, None, 576 + overhead, 65535)


def port_option(default):
    return Option("Port", "port", int, default, 1, 65535)


# ---- the interface ----------------------------------------------------------------------

class Backend:
    """The interface every backend implements; `view` is a host.model.HostView and
    `options` the network's parsed Backend options (weft's keys, defaults filled in)."""

    name = ""
    overhead = 0            # bytes the encapsulation adds: overlay MTU = underlay MTU - this
    overhead_v6 = 0         # the same over an IPv6 underlay (dual-stack)
    encapsulated = False    # whether peers send encapsulated datagrams (peer-only ingress)
    dual_stack = False      # whether it carries IPv6 beside IPv4 (EnableIPv6)
    nat_refusal = None      # why a host cannot advertise a 1:1 NAT address (None: it can)
    options = ()            # Option, in Flannel's order (Type is not one)
    lease_fields = ()       # (weft key, Flannel key) of the lease's BackendData, in order
    reported = ()           # weft keys of lease data that each host reports (weft_facts)

    def packages(self) -> list:
        """Debian packages a host of this backend needs besides weft's own (weft_facts
        reports the missing ones, the role installs them)."""
        return []

    @property
    def lease_type(self) -> str:
        """BackendType in Flannel's lease JSON."""
        return self.name

    # -- the network config (controller) --

    def parse_options(self, raw: dict, where: str) -> dict:
        """{key: value} of the Backend options in `raw` (Flannel's names); ValueError naming
        the field for a bad value or one this backend does not have."""
        known = {option.flannel for option in self.options} | {"Type"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError("%s: unknown field(s) %s for backend %s; known: %s"
                             % (where, ", ".join(unknown), self.name, ", ".join(sorted(known))))
        return {option.key: option.parse(raw, where) for option in self.options}

    def options_as_flannel(self, options: dict) -> dict:
        """The options in Flannel's JSON (None left out), after Type."""
        return {option.flannel: options[option.key] for option in self.options
                if options.get(option.key) is not None
                and not (option.quiet and options[option.key] == option.default)}

    # -- leases (controller) --

    def check_reported(self, facts: dict, where: str) -> dict:
        """The reported lease data of one host, validated: {key: value} of `reported`."""
        missing = [key for key in self.reported if facts.get(key) in (None, "")]
        if missing:
            raise ValueError("%s: backend %s needs %s from the host (weft.overlay.facts reports it; "
                             "run the play with the host in it)"
                             % (where, self.name, ", ".join(missing)))
        return {key: facts[key] for key in self.reported}

    def check_network(self, options: dict, families: list, where: str):
        """Refuse options that the network's address families (4, 6) cannot have."""

    def lease_data(self, options: dict, subnet, reported: dict) -> dict:
        """What a lease of this backend records besides subnets and public IPs (weft's keys);
        `reported` holds the host's validated `reported` facts."""
        return dict(reported)

    def lease_data_v6(self, options: dict, subnet6, reported: dict):
        """A dual-stack lease's IPv6 data (Flannel's BackendV6Data); None: it has none."""
        return None

    def to_flannel(self, data: dict):
        """BackendData as Flannel writes it; None when this backend writes none."""
        if not self.lease_fields:
            return None
        return {flannel: data.get(key) for key, flannel in self.lease_fields}

    def from_flannel(self, raw) -> dict:
        """Lease data (weft's keys) from Flannel's BackendData."""
        raw = raw if isinstance(raw, dict) else {}
        return {key: raw.get(flannel) for key, flannel in self.lease_fields}

    # -- the host --

    def host_facts(self, ctx, underlay: dict, rotate=False) -> dict:
        """Public facts this host reports for its lease (weft_facts, on the host). Anything
        secret they are derived from stays on the host: only the return value travels.
        rotate: make new secrets (weft_facts' rotate_keys)."""
        return {}

    def devices(self, view) -> list:
        """[(core, name)] of the devices this backend keeps on the host."""
        return []

    def steps(self, view) -> list:
        """The device and per-peer entries, before the routes."""
        return []

    def routes(self, view) -> list:
        return []

    def probe_address(self, subnet) -> str:
        """The address in a host's subnet that weft_check sends to and from: the overlay
        device's own (vxlan, udp, wireguard), on every host of the backend."""
        return vtep_address(subnet)

    def ingress_inner(self) -> str:
        """What weft_ingress checks inside a peer's datagrams ('vxlan' or 'none')."""
        return "none"

    def ingress_ports(self, view) -> list:
        """The UDP ports peers send to (encapsulated backends)."""
        return [view.network["port"]]

    def secrets(self, view) -> list:
        """Paths of secret files this backend keeps on the host (made on the host, never
        written from the plan, never in a diff or the record; removed at uninstall)."""
        return []

    def files(self, view) -> dict:
        return {}

    def users(self, view) -> list:
        return []

    def modes(self, view) -> list:
        return []

    def services(self, view) -> list:
        return []


def direct_route(peer, view, family=4):
    """A plain route to a peer's subnet via its public IP on the underlay (host-gw)."""
    if family == 6:
        return {"dst": peer.subnet6, "via": peer.public_ipv6, "dev": view.identity["iface"]}
    return {"dst": peer.subnet, "via": peer.public_ip, "dev": view.identity["iface"]}


class HostGw(Backend):
    """No encapsulation: a route per peer via its public IP; hosts share an L2 segment."""

    name = "host-gw"
    dual_stack = True
    nat_refusal = ("the host-gw backend routes to each peer through its public address as a "
                   "next hop on the shared link, where a NAT's address is not (Flannel refuses "
                   "it too); use vxlan, udp or wireguard behind a NAT")
    options = (mtu_option(0),)

    def probe_address(self, subnet):
        # No device of its own: the container bridge's address (Flannel's FLANNEL_SUBNET
        # in subnet.env, Docker's bip), which a host serving containers holds.
        return bridge_address(subnet).split("/")[0]

    def routes(self, view):
        return [direct_route(peer, view) for peer in view.peers4] + \
            [direct_route(peer, view, 6) for peer in view.peers6]


class Vxlan(Backend):
    """Kernel VXLAN: device flannel.<VNI>; per peer a neighbour, an FDB entry and a route
    via its VTEP address (DirectRouting: a host-gw route to peers on the same L2)."""

    name = "vxlan"
    overhead = 50
    overhead_v6 = 70
    encapsulated = True
    dual_stack = True
    options = (Option("VNI", "vni", int, 1, 1, MAX_VNI), port_option(8472),
               Option("GBP", "gbp", bool, False, quiet=True),
               Option("Learning", "learning", bool, False, quiet=True),
               Option("DirectRouting", "direct_routing", bool, False), mtu_option(50))
    lease_fields = (("vni", "VNI"), ("vtep_mac", "VtepMAC"))

    @staticmethod
    def device(network, family=4):
        return ("flannel.%d" if family == 4 else "flannel-v6.%d") % network["vni"]

    def lease_data(self, options, subnet, reported):
        return {"vni": options["vni"], "vtep_mac": vtep_mac(subnet)}

    lease_data_v6 = lease_data  # the IPv6 VTEP's own MAC, from the IPv6 subnet

    def devices(self, view):
        return [("vxlan", self.device(view.network, family)) for family in view.families]

    def steps(self, view):
        return [s for family in view.families for s in self.family_steps(view, family)]

    def family_steps(self, view, family):
        """Flannel's VTEP of one family: device, then per peer a neighbour and FDB entry."""
        dev = self.device(view.network, family)
        subnet, dummy, data = view.me.side(family)
        tunnelled = [p.side(family) for p in view.peers_of(family) if not view.on_link(p, family)]
        local = view.own_address(family)
        return [
            step("vxlan", name=dev, vni=view.network["vni"], port=view.network["port"],
                 local=local, dev=view.identity["iface"], mac=data["vtep_mac"],
                 mtu=view.overlay_mtu, learning=bool(view.network.get("learning")),
                 gbp=bool(view.network.get("gbp")),
                 # A host setting (a workaround for its NIC), not a net-conf option;
                 # records older than it have the kernel's default, on.
                 tx_checksum=view.settings.get("vxlan_tx_checksum_offload", True),
                 address="%s/%d" % (vtep_address(subnet), 32 if family == 4 else 128)),
            step("neighbours", dev=dev, purge=True,
                 neighbours=[{"ip": vtep_address(peer_subnet), "mac": peer_data["vtep_mac"]}
                             for peer_subnet, dummy, peer_data in tunnelled]),
            step("fdb", dev=dev, purge=True,
                 entries=[{"mac": peer_data["vtep_mac"], "dst": address}
                          for dummy, address, peer_data in tunnelled]),
        ]

    def routes(self, view):
        found = []
        for family in view.families:
            dev = self.device(view.network, family)
            for p in view.peers_of(family):
                subnet = p.side(family)[0]
                found.append(direct_route(p, view, family) if view.on_link(p, family) else
                             {"dst": subnet, "via": vtep_address(subnet), "dev": dev,
                              "onlink": True})
        return found

    def ingress_inner(self):
        return "vxlan"


class Udp(Backend):
    """Flannel's udp backend: TUN device, one route for the network through it, and the
    weft-udpd daemon (unprivileged, owning the device) forwarding to the peers."""

    name = "udp"
    overhead = 28
    encapsulated = True
    options = (port_option(8285), mtu_option(28))

    @property
    def lease_type(self):
        return ""  # Flannel's udp backend leaves BackendType empty

    def devices(self, view):
        tun = view.settings["tun_device"]
        return [("tun", tun)] + ([("udp_fastpath", tun)] if self.fast_path(view) else [])

    @staticmethod
    def fast_path(view):
        return view.settings.get("udp_fastpath", True)

    def steps(self, view):
        user, tun = view.settings["udpd_user"], view.settings["tun_device"]
        found = [step("tun", name=tun, owner=user, group=user, mtu=view.overlay_mtu,
                      address=vtep_address(view.me.subnet) + "/32")]
        if self.fast_path(view):
            # Lone packets in the kernel, in front of the daemon; weft peers only are sent
            # to from there: a Flannel peer needs the complete inner checksums the daemon
            # writes (see daemon_config).
            found.append(step("udp_fastpath", name=tun, underlay=view.identity["iface"],
                              address=view.own_address(4), subnet=view.me.subnet,
                              port=view.network["port"],
                              peers=[{"ip": p.public_ip, "subnet": p.subnet, "send": p.weft}
                                     for p in view.peers4]))
        return found

    def routes(self, view):
        return [{"dst": view.network["network"], "dev": view.settings["tun_device"]}]

    def daemon_config(self, view) -> dict:
        from .host import units
        return {"tun": view.settings["tun_device"], "listen": view.own_address(4),
                "port": view.network["port"], "network": view.network["network"],
                "subnet": view.me.subnet,
                # weft peers finish inner checksums themselves; Flannel hosts do not.
                "peers": [{"subnet": p.subnet, "ip": p.public_ip, "port": view.network["port"],
                           "weft": p.weft} for p in view.peers4],
                "status_file": units.UDPD_STATUS}

    def files(self, view):
        import json
        from .host import units
        return {units.UDPD_CONFIG: (json.dumps(self.daemon_config(view), indent=2,
                                               sort_keys=True) + "\n", "0644"),
                units.UDPD_UNIT: (units.udpd(view), "0644"),
                units.UDPD: (units.udpd_launcher(), "0755")}

    def users(self, view):
        return [{"name": view.settings["udpd_user"], "comment": "weft udp backend daemon"}]

    def modes(self, view):
        # The daemon runs unprivileged: it may attach to the TUN device it owns, once it
        # can open /dev/net/tun at all (0666, as Debian's udev leaves it).
        return [{"path": "/dev/net/tun", "mode": "0666"}]

    def services(self, view):
        from .host import units
        return [{"name": "weft-udpd", "unit": units.UDPD_UNIT,
                 "wants": units.WANTS + "/weft-udpd.service",
                 "restart_on": [units.UDPD_UNIT, units.UDPD, units.MODULE_UTILS + "/weft/daemon"],
                 "reload_on": [units.UDPD_CONFIG]}]


def private_address(address) -> bool:
    """Flannel's IsPrivate: RFC 1918 for IPv4, RFC 4193 (fc00::/7) for IPv6."""
    ip = ipaddress.ip_address(address)
    nets = PRIVATE_V4 if ip.version == 4 else PRIVATE_V6
    return any(ip in net for net in nets)


PRIVATE_V4 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
PRIVATE_V6 = (ipaddress.ip_network("fc00::/7"),)


class Wireguard(Backend):
    """Flannel's wireguard backend: WireGuard devices, one peer per host (its public key,
    endpoint and subnets) and a route for each network through the device. Mode separate
    has a device per family (flannel-wg, flannel-wg-v6); auto, ipv4 and ipv6 one device,
    flannel-wg, carrying both families through tunnels over one of them. Each host's key
    pair is born on the host: only the public key is reported, leased and sent to peers."""

    name = "wireguard"
    overhead = overhead_v6 = 80
    encapsulated = True     # its ports accept only the peers (the ingress table)
    dual_stack = True
    MODES = ("separate", "auto", "ipv4", "ipv6")
    options = (Option("ListenPort", "port", int, 51820, 1, 65535),
               Option("ListenPortV6", "port6", int, 51821, 1, 65535),
               Option("PersistentKeepaliveInterval", "keepalive", int, 0, 0, 65535),
               mtu_option(80), Option("Mode", "mode", str, "separate", choices=MODES))
    lease_fields = (("public_key", "PublicKey"), ("port", "Port"))
    reported = ("public_key",)
    DEVICES = {4: "flannel-wg", 6: "flannel-wg-v6"}
    USER = "weft-wireguard"     # wireguard-go's user, where the kernel has no WireGuard

    def parse_options(self, raw, where):
        if raw.get("PSK") is not None:
            # In net-conf the key would reach etcd, the plan and every host's record.
            raise ValueError("%s.PSK: a pre-shared key does not belong in weft_network, which "
                             "every host and etcd receive; set weft_wireguard_psk (Ansible "
                             "Vault) instead" % where)
        return super().parse_options({k: v for k, v in raw.items() if k != "PSK"}, where)

    def check_network(self, options, families, where):
        mode = options["mode"]
        if mode in ("ipv4", "ipv6") and int(mode[-1]) not in families:
            raise ValueError("%s.Mode: %s tunnels over IPv%s, which the network does not "
                             "have (%s)" % (where, mode, mode[-1], "EnableIPv4 is false"
                                            if mode == "ipv4" else "EnableIPv6 is not true"))

    def check_reported(self, facts, where):
        from .validate import wireguard_key
        found = super().check_reported(facts, where)
        wireguard_key(found["public_key"], where + ".public_key")
        return found

    def packages(self):
        from .net.wireguard import kernel_has_wireguard
        return ["wireguard-tools"] + ([] if kernel_has_wireguard() else ["wireguard-go"])

    def lease_data(self, options, subnet, reported):
        return {"public_key": reported.get("public_key"), "port": options["port"]}

    def lease_data_v6(self, options, subnet6, reported):
        # One device listens on ListenPort for both families: that is the port to lease
        # (Flannel leases ListenPortV6, where nothing listens unless the two are equal).
        port = options["port6"] if options["mode"] == "separate" else options["port"]
        return {"public_key": reported.get("public_key"), "port": port}

    def host_facts(self, ctx, underlay, rotate=False):
        """The public key (leased), and which implementation `auto` picks here (shown only)."""
        from .host.keys import wireguard_public_key
        from .net.wireguard import kernel_has_wireguard
        public, made = wireguard_public_key(ctx, rotate=rotate)
        found = {"implementation": "kernel" if kernel_has_wireguard() else "userspace"}
        if made:
            found["key_made"] = made    # "new" or "rotated": weft_facts reports a change
        return dict(found, public_key=public) if public else found

    # ---- the host's devices ----

    @staticmethod
    def mode(view):
        return view.network.get("mode") or "separate"

    def tunnels(self, view):
        """(device, listen port, families it carries) of each of this host's devices."""
        if self.mode(view) == "separate":
            return [(self.DEVICES[f], view.network["port" if f == 4 else "port6"], [f])
                    for f in view.families]
        return [(self.DEVICES[4], view.network["port"], view.families)]

    def endpoint_family(self, view, peer, families):
        """Which of the peer's public addresses its tunnel runs over: the device's family
        (separate), the one asked (ipv4, ipv6), or Flannel's auto choice: IPv4 unless the
        peer has IPv6 and only the IPv6 addresses on both ends are public."""
        mode = self.mode(view)
        if mode == "separate":
            return families[0]
        if mode != "auto":
            return int(mode[-1])
        if not view.ipv4:
            return 6
        if not (view.ipv6 and peer.public_ipv6) or not private_address(peer.public_ip):
            return 4
        if not private_address(peer.public_ipv6) and \
                not private_address(view.identity["public_ipv6"]):
            return 6
        return 4

    def devices(self, view):
        return [("wireguard", device) for device, dummy, dummy in self.tunnels(view)]

    def steps(self, view):
        from .host import units
        found = []
        for device, port, families in self.tunnels(view):
            peers = [self.peer(view, p, families) for p in view.peers]
            found.append(step(
                "wireguard", name=device, mtu=view.overlay_mtu,
                address=["%s/%d" % (vtep_address(view.me.side(f)[0]), 32 if f == 4 else 128)
                         for f in families],
                private_key=units.WIREGUARD_KEY, listen_port=port,
                preshared_key=units.WIREGUARD_PSK if view.settings.get("wireguard_psk") else None,
                implementation=view.settings.get("wireguard_implementation") or "auto",
                user=self.USER, purge=True, peers=[p for p in peers if p]))
        return found

    def peer(self, view, p, families):
        """The WireGuard peer of host p on a device carrying `families`; None when p has no
        public address of the tunnel's family or no public key (a broken Flannel lease)."""
        family = self.endpoint_family(view, p, families)
        dummy, address, data = p.side(family)
        if not address or not data.get("public_key"):
            return None
        return {"public_key": data["public_key"],
                "endpoint": "%s:%s" % (address if family == 4 else "[%s]" % address,
                                       data.get("port")),
                "allowed_ips": [p.side(f)[0] for f in families if p.side(f)[0]],
                "persistent_keepalive": view.network.get("keepalive") or 0}

    def routes(self, view):
        # Flannel's one route for each whole network through the device carrying it.
        return [{"dst": view.network["network" if f == 4 else "ipv6_network"], "dev": device}
                for device, dummy, families in self.tunnels(view) for f in families]

    def ingress_ports(self, view):
        return [port for dummy, port, dummy in self.tunnels(view)]

    def users(self, view):
        return [{"name": self.USER, "comment": "weft wireguard-go"}]

    def modes(self, view):
        # wireguard-go, unprivileged but for CAP_NET_ADMIN, opens /dev/net/tun.
        return [{"path": "/dev/net/tun", "mode": "0666"}]

    def secrets(self, view):
        # Every secret it may keep (the PSK's file is written only when one is given).
        from .host import units
        return [units.WIREGUARD_KEY, units.WIREGUARD_KEY_NEXT, units.WIREGUARD_PSK]


BACKENDS = {backend.name: backend for backend in (Vxlan(), HostGw(), Udp(), Wireguard())}


def register(backend):
    """Add a backend (an instance of a Backend subclass) to those every part of weft knows."""
    BACKENDS[backend.name] = backend
    return backend


def by_lease_type(lease_type):
    """The backend whose Flannel leases carry this BackendType (None: not one weft has)."""
    for backend in BACKENDS.values():
        if backend.lease_type == (lease_type or ""):
            return backend
    return None
