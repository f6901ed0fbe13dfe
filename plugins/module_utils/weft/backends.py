# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What each backend means, in one place: its device, its overhead, its port, what a
lease of it records, and which entries every peer needs. The planner asks a backend for
overhead, port and lease data; the host model asks it for this host's steps.

A new backend (wireguard, say) is one more class here and one line in BACKENDS.
"""

from __future__ import annotations

import ipaddress

# First two octets of every VTEP MAC: locally administered (0x02), unicast (0x01 clear).
VTEP_MAC_PREFIX = (0x0E, 0x77)
MAX_VNI = 2 ** 24 - 1


def vtep_mac(subnet) -> str:
    """Deterministic VTEP MAC of a lease: unique per subnet, stable across re-creation."""
    octets = VTEP_MAC_PREFIX + tuple(ipaddress.IPv4Network(subnet).network_address.packed)
    return ":".join("%02x" % o for o in octets)


def vtep_address(subnet) -> str:
    """The overlay device's own address: the subnet's network address."""
    return str(ipaddress.IPv4Network(subnet).network_address)


def bridge_address(subnet) -> str:
    """The container bridge's address: the subnet's first host with the subnet's length."""
    net = ipaddress.IPv4Network(subnet)
    return "%s/%d" % (net.network_address + 1, net.prefixlen)


def step(core, **params):
    """One call of a module core, in the order the host applies them."""
    return {"core": core, "params": params}


class Backend:
    """The interface every backend implements; `view` is a host.model.HostView."""

    name = ""
    overhead = 0            # bytes the encapsulation adds: overlay MTU = underlay MTU - this
    default_port = None     # UDP port of the encapsulation, None without one
    encapsulated = False    # whether peers send encapsulated datagrams (peer-only ingress)

    def lease_data(self, subnet, vni) -> dict:
        """What a lease of this backend records besides subnet and public IP."""
        return {}

    def devices(self, view) -> list:
        """[(core, name)] of the devices this backend keeps on the host."""
        return []

    def steps(self, view) -> list:
        """The device and per-peer entries, before the routes."""
        return []

    def routes(self, view) -> list:
        return []

    def ingress_inner(self) -> str:
        """What weft_ingress checks inside a peer's datagrams ('vxlan' or 'none')."""
        return "none"

    def files(self, view) -> dict:
        return {}

    def users(self, view) -> list:
        return []

    def modes(self, view) -> list:
        return []

    def services(self, view) -> list:
        return []


def direct_route(peer, view):
    """A plain route to a peer's subnet via its public IP on the underlay (host-gw)."""
    return {"dst": peer.subnet, "via": peer.public_ip, "dev": view.identity["iface"]}


class HostGw(Backend):
    """No encapsulation: a route per peer via its public IP; hosts share an L2 segment."""

    name = "host-gw"

    def routes(self, view):
        return [direct_route(peer, view) for peer in view.peers]


class Vxlan(Backend):
    """Kernel VXLAN: device flannel.<VNI>; per peer a neighbour, an FDB entry and a route
    via its VTEP address (DirectRouting: a host-gw route to peers on the same L2)."""

    name = "vxlan"
    overhead = 50
    default_port = 8472
    encapsulated = True

    @staticmethod
    def device(network):
        return "flannel.%d" % network["vni"]

    def lease_data(self, subnet, vni):
        return {"vni": vni, "vtep_mac": vtep_mac(subnet)}

    def devices(self, view):
        return [("vxlan", self.device(view.network))]

    def _tunnelled(self, view):
        return [p for p in view.peers if not view.on_link(p)]

    def steps(self, view):
        dev, me = self.device(view.network), view.me
        peers = self._tunnelled(view)
        return [
            step("vxlan", name=dev, vni=view.network["vni"], port=view.network["port"],
                 local=view.identity["public_ip"], dev=view.identity["iface"],
                 mac=me.vtep_mac, mtu=view.overlay_mtu, address=vtep_address(me.subnet) + "/32",
                 learning=False),
            step("neighbours", dev=dev, purge=True,
                 neighbours=[{"ip": vtep_address(p.subnet), "mac": p.vtep_mac} for p in peers]),
            step("fdb", dev=dev, purge=True,
                 entries=[{"mac": p.vtep_mac, "dst": p.public_ip} for p in peers]),
        ]

    def routes(self, view):
        dev = self.device(view.network)
        return [direct_route(p, view) if view.on_link(p) else
                {"dst": p.subnet, "via": vtep_address(p.subnet), "dev": dev, "onlink": True}
                for p in view.peers]

    def ingress_inner(self):
        return "vxlan"


class Udp(Backend):
    """Flannel's udp backend: TUN device, one route for the network through it, and the
    weft-udpd daemon (unprivileged, owning the device) forwarding to the peers."""

    name = "udp"
    overhead = 28
    default_port = 8285
    encapsulated = True
    CONFIG = "/etc/weft/udpd.json"
    UNIT = "/etc/systemd/system/weft-udpd.service"
    WANTS = "/etc/systemd/system/multi-user.target.wants/weft-udpd.service"

    def devices(self, view):
        return [("tun", view.settings["tun_device"])]

    def steps(self, view):
        user = view.settings["udpd_user"]
        return [step("tun", name=view.settings["tun_device"], owner=user, group=user,
                     mtu=view.overlay_mtu, address=vtep_address(view.me.subnet) + "/32")]

    def routes(self, view):
        return [{"dst": view.network["network"], "dev": view.settings["tun_device"]}]

    def daemon_config(self, view) -> dict:
        return {"tun": view.settings["tun_device"], "listen": view.identity["public_ip"],
                "port": view.network["port"], "network": view.network["network"],
                "subnet": view.me.subnet,
                # weft peers finish inner checksums themselves; Flannel hosts do not.
                "peers": [{"subnet": p.subnet, "ip": p.public_ip, "port": view.network["port"],
                           "weft": p.weft} for p in view.peers],
                "status_file": "/run/weft-udpd/status.json"}

    def files(self, view):
        import json
        from ansible.module_utils.weft.host import units
        return {self.CONFIG: (json.dumps(self.daemon_config(view), indent=2, sort_keys=True) + "\n",
                              "0644"),
                self.UNIT: (units.udpd(view), "0644"),
                units.UDPD: (units.udpd_launcher(), "0755")}

    def users(self, view):
        return [{"name": view.settings["udpd_user"], "comment": "weft udp backend daemon"}]

    def modes(self, view):
        # The daemon runs unprivileged: it may attach to the TUN device it owns, once it
        # can open /dev/net/tun at all (0666, as Debian's udev leaves it).
        return [{"path": "/dev/net/tun", "mode": "0666"}]

    def services(self, view):
        from ansible.module_utils.weft.host import units
        return [{"name": "weft-udpd", "unit": self.UNIT, "wants": self.WANTS,
                 "restart_on": [self.UNIT, units.UDPD, units.MODULE_UTILS + "/weft/daemon"],
                 "reload_on": [self.CONFIG]}]


BACKENDS = {backend.name: backend for backend in (Vxlan(), HostGw(), Udp())}
