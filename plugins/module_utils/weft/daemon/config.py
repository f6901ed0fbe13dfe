# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""weft-udpd's config: parsed and validated whole, or refused with one line naming the key.

    {"tun": "flannel0", "listen": "10.168.0.2", "port": 8285,
     "network": "100.96.0.0/16", "subnet": "100.96.1.0/24",
     "peers": [{"subnet": "100.96.2.0/24", "ip": "10.168.0.3", "port": 8285, "weft": true}],
     "status_file": "/run/weft-udpd/status.json", "offload": true}

A peer marked "weft" completes inner checksums itself (see offload.py); any other peer (a
Flannel host) gets every packet with its checksums complete.
"""

from __future__ import annotations

import ipaddress
import json
import re

DEFAULT_PORT = 8285
DEFAULT_STATUS_FILE = "/run/weft-udpd/status.json"   # the unit's RuntimeDirectory
CONFIG_KEYS = {"tun", "listen", "port", "network", "subnet", "peers", "status_file", "offload"}
PEER_KEYS = {"subnet", "ip", "port", "weft"}
INTERFACE_NAME = re.compile(r"^[^/\s:]{1,15}$")


class ConfigError(ValueError):
    """A config that does not validate; the message starts with the key it is about."""


class Config:
    """A validated config; every address is parsed, every default filled in."""

    def __init__(self, tun, listen, port, network, subnet, peers, status_file, offload=True):
        self.tun, self.listen, self.port = tun, listen, port
        self.network, self.subnet = network, subnet
        self.peers = peers          # [Peer]
        self.status_file = status_file
        self.offload = offload      # use the TUN device's offloads (see offload.py)


class Peer:
    """One peer: its subnet, address and port, and whether it is a weft host."""

    __slots__ = ("subnet", "ip", "port", "weft")

    def __init__(self, subnet, ip, port, weft=False):
        self.subnet, self.ip, self.port, self.weft = subnet, ip, port, weft


def _port(value, key):
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ConfigError("%s: %r is not a UDP port (1-65535)" % (key, value))
    return value


def _network(value, key):
    if not isinstance(value, str) or "/" not in value:
        raise ConfigError("%s: %r is not an IPv4 network in CIDR form" % (key, value))
    try:
        return ipaddress.IPv4Network(value)
    except ValueError as exc:
        raise ConfigError("%s: %r is not an IPv4 network (%s)" % (key, value, exc)) from None


def _address(value, key, any_ok=False):
    try:
        addr = ipaddress.IPv4Address(value) if isinstance(value, str) else None
    except ValueError:
        addr = None
    if addr is None:
        raise ConfigError("%s: %r is not an IPv4 address" % (key, value))
    if addr.is_unspecified and any_ok:
        return addr
    if addr.is_unspecified or addr.is_multicast or addr.is_loopback or addr.is_reserved \
            or addr == ipaddress.IPv4Address("255.255.255.255"):
        raise ConfigError("%s: %s is not a unicast host address" % (key, addr))
    return addr


def parse_config(raw) -> Config:
    """Validate a config as loaded from JSON; raises ConfigError naming the key."""
    if not isinstance(raw, dict):
        raise ConfigError("config: must be a JSON object, not %s" % type(raw).__name__)
    unknown = sorted(str(k) for k in raw if k not in CONFIG_KEYS)
    if unknown:
        raise ConfigError("%s: unknown key (known: %s)" % (unknown[0], ", ".join(sorted(CONFIG_KEYS))))
    for key in ("tun", "network", "subnet"):
        if key not in raw:
            raise ConfigError("%s: is required" % key)
    tun = raw["tun"]
    if not isinstance(tun, str) or not INTERFACE_NAME.match(tun) or tun in (".", ".."):
        raise ConfigError("tun: %r is not an interface name" % (tun,))
    listen = _address(raw.get("listen", "0.0.0.0"), "listen", any_ok=True)
    port = _port(raw.get("port", DEFAULT_PORT), "port")
    network = _network(raw["network"], "network")
    subnet = _network(raw["subnet"], "subnet")
    if not subnet.subnet_of(network) or subnet == network:
        raise ConfigError("subnet: %s is not a subnet of network %s" % (subnet, network))
    peers_raw = raw.get("peers", [])
    if not isinstance(peers_raw, list):
        raise ConfigError("peers: must be a list, not %s" % type(peers_raw).__name__)
    peers, senders = [], {}
    for i, item in enumerate(peers_raw):
        where = "peers[%d]" % i
        if not isinstance(item, dict):
            raise ConfigError("%s: must be an object with subnet and ip" % where)
        unknown = sorted(str(k) for k in item if k not in PEER_KEYS)
        if unknown:
            raise ConfigError("%s.%s: unknown key (known: %s)"
                              % (where, unknown[0], ", ".join(sorted(PEER_KEYS))))
        for key in ("subnet", "ip"):
            if key not in item:
                raise ConfigError("%s.%s: is required" % (where, key))
        net = _network(item["subnet"], where + ".subnet")
        if not net.subnet_of(network) or net == network:
            raise ConfigError("%s.subnet: %s is not a subnet of network %s" % (where, net, network))
        if net.overlaps(subnet):
            raise ConfigError("%s.subnet: %s overlaps this host's own subnet %s" % (where, net, subnet))
        ip = _address(item["ip"], where + ".ip")
        if ip in senders:
            raise ConfigError("%s.ip: %s is also the address of peers[%d]" % (where, ip, senders[ip]))
        senders[ip] = i
        weft = item.get("weft", False)
        if not isinstance(weft, bool):
            raise ConfigError("%s.weft: %r is not true or false" % (where, weft))
        peers.append((net, str(ip), _port(item.get("port", port), where + ".port"), i, weft))
    # Sorted by first address, two peers overlap only if some neighbouring pair does.
    ordered = sorted(peers, key=lambda p: int(p[0].network_address))
    for (before, dummy, dummy, j, dummy), (net, dummy, dummy, i, dummy) in zip(ordered, ordered[1:]):
        if net.overlaps(before):
            raise ConfigError("peers[%d].subnet: %s overlaps peers[%d].subnet %s"
                              % (max(i, j), net if i > j else before, min(i, j),
                                 before if i > j else net))
    status_file = raw.get("status_file", DEFAULT_STATUS_FILE)
    if not isinstance(status_file, str) or not status_file.startswith("/") or "\0" in status_file:
        raise ConfigError("status_file: %r is not an absolute path" % (status_file,))
    offload = raw.get("offload", True)
    if not isinstance(offload, bool):
        raise ConfigError("offload: %r is not true or false" % (offload,))
    return Config(tun, str(listen), port, network, subnet,
                  [Peer(net, ip, peer_port, weft) for net, ip, peer_port, dummy, weft in peers],
                  status_file, offload)


def load_config(path) -> Config:
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except OSError as exc:
        raise ConfigError("config: cannot read %s (%s)" % (path, exc.strerror or exc)) from None
    except (ValueError, RecursionError) as exc:
        raise ConfigError("config: %s is not valid JSON (%s)" % (path, exc)) from None
    return parse_config(raw)
