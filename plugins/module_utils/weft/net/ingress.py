# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Core of weft_ingress: peer-only ingress for the overlay's encapsulation port.

Peer-only ingress for the overlay's encapsulation port, in an nftables table that weft owns
whole (``inet weft``). A base chain on the prerouting hook at the raw priority (before
connection tracking, so a flood from strangers costs no conntrack entries) sends UDP to
the port, when addressed to this host, into a chain that drops and counts by reason:

- not_a_peer: the sender's address (IPv4 or IPv6) is not a peer's public address;
- inner_not_ipv4 / inner_not_ipv6 / inner_source: (VXLAN) the frame inside is not of the
  family its underlay carries (IPv4 over IPv4, IPv6 over IPv6, as Flannel's two devices),
  or its source lies outside the subnet of that family of the peer that sent it.

nftables base chains see every packet whatever other tables accept, and a drop is final,
so no rule elsewhere can let a stranger's datagram past this one.
"""

from __future__ import annotations

import ipaddress
import json

from ..errors import WeftError

VERSION = "weft/2"           # part of every rule comment: a new layout replaces the table
FAMILY = "inet"
TABLE = "weft"              # the table's name, unless the caller gives another
REASONS = ("not_a_peer", "inner_not_ipv4", "inner_not_ipv6", "inner_source")
# VXLAN: the UDP header (8 bytes) and VXLAN header (8), then the inner Ethernet header,
# whose EtherType is at byte 28, the inner IPv4 source at byte 28 + 2 + 12 = 42 and the
# inner IPv6 source at byte 28 + 2 + 8 = 38.
VXLAN_ETHERTYPE_BITS, VXLAN_INNER_SOURCE_BITS, VXLAN_INNER_SOURCE6_BITS = 224, 336, 304
# Per family: the peer set, the (peer, inner source) set, its element type, the bits.
FAMILIES = {4: ("peers4", "peer_subnets4", "ip saddr . @th,%d,32" % VXLAN_INNER_SOURCE_BITS, 8),
            6: ("peers6", "peer_subnets6", "ip6 saddr . @th,%d,128" % VXLAN_INNER_SOURCE6_BITS, 32)}


def desired_peers(params):
    """{ip: subnet or None}, validated; raises WeftError naming the option."""
    peers = {}
    for i, item in enumerate(params["peers"]):
        where = "peers[%d]" % i
        try:
            ip = ipaddress.ip_address(str(item["ip"]).strip())
        except ValueError:
            raise WeftError("%s.ip: %r is not an IP address" % (where, item["ip"])) from None
        if ip.is_unspecified or ip.is_multicast or ip.is_loopback:
            raise WeftError("%s.ip: %s is not a host's address" % (where, ip))
        if str(ip) in peers:
            raise WeftError("%s.ip: %s is listed twice" % (where, ip))
        subnet = None
        if item.get("subnet"):
            try:
                subnet = ipaddress.ip_network(str(item["subnet"]).strip())
            except ValueError as exc:
                raise WeftError("%s.subnet: %r is not a network (%s)"
                                % (where, item["subnet"], exc)) from None
            if subnet.version != ip.version:
                raise WeftError("%s.subnet: %s is not of the family of ip %s" % (where, subnet, ip))
        elif params["inner"] == "vxlan":
            raise WeftError("%s.subnet: is required with inner=vxlan" % where)
        peers[str(ip)] = subnet
    return peers


def ports_of(params) -> list:
    """The encapsulation ports: `port` and `ports` together, sorted."""
    return sorted(set(params.get("ports") or []) |
                  ({params["port"]} if params["port"] is not None else set()))


def layout(params) -> list:
    """The rules by chain, as (chain, comment, rule text); their comments identify them."""
    ports, inner = ports_of(params), params["inner"]
    match = str(ports[0]) if len(ports) == 1 else "{ %s }" % ", ".join(map(str, ports))
    rules = [("ingress", "%s udp %s" % (VERSION, ",".join(map(str, ports))),
              "udp dport %s fib daddr type local jump encapsulated" % match),
             ("encapsulated", "%s not_a_peer" % VERSION,
              "ip saddr != @peers4 counter name not_a_peer drop"),
             ("encapsulated", "%s not_a_peer6" % VERSION,
              "ip6 saddr != @peers6 counter name not_a_peer drop")]
    if inner == "vxlan":
        rules += [("encapsulated", "%s inner_not_ipv4" % VERSION,
                   "meta nfproto ipv4 @th,%d,16 != 0x0800 counter name inner_not_ipv4 drop"
                   % VXLAN_ETHERTYPE_BITS),
                  ("encapsulated", "%s inner_not_ipv6" % VERSION,
                   "meta nfproto ipv6 @th,%d,16 != 0x86dd counter name inner_not_ipv6 drop"
                   % VXLAN_ETHERTYPE_BITS)]
        rules += [("encapsulated", "%s inner_source%s" % (VERSION, "" if version == 4 else "6"),
                   "%s != @%s counter name inner_source drop" % (FAMILIES[version][2],
                                                                 FAMILIES[version][1]))
                  for version in (4, 6)]
    return rules


def element_text(kind, element):
    if kind in ("peers4", "peers6"):
        return element
    ip, (low, high) = element
    digits = FAMILIES[6 if kind == "peer_subnets6" else 4][3]
    return "%s . 0x%0*x-0x%0*x" % (ip, digits, low, digits, high)


def desired_elements(peers, inner):
    elements = {}
    for version, (peer_set, subnet_set, dummy, dummy) in FAMILIES.items():
        mine = {ip: net for ip, net in peers.items() if ipaddress.ip_address(ip).version == version}
        elements[peer_set] = set(mine)
        if inner == "vxlan":
            elements[subnet_set] = {(ip, (int(net.network_address), int(net.broadcast_address)))
                                    for ip, net in mine.items()}
    return elements


def render_table(params, elements) -> str:
    """The whole table, as `nft -f` reads it."""
    def listing(kind):
        items = sorted(element_text(kind, e) for e in elements[kind])
        return "elements = { %s }" % ", ".join(items) if items else ""

    lines = ["table %s %s {" % (FAMILY, params["table"])]
    lines += ["  counter %s { }" % reason for reason in REASONS]
    for version, (peer_set, subnet_set, typeof, dummy) in FAMILIES.items():
        lines.append("  set %s { type ipv%d_addr; %s }" % (peer_set, version, listing(peer_set)))
        if subnet_set in elements:
            lines.append("  set %s { typeof %s; flags interval; %s }"
                         % (subnet_set, typeof, listing(subnet_set)))
    lines.append("  chain ingress { type filter hook prerouting priority raw; policy accept; }")
    lines.append("  chain encapsulated { }")
    lines.append("}")
    for chain, comment, rule in layout(params):
        lines.append("add rule %s %s %s %s comment %s"
                     % (FAMILY, params["table"], chain, rule, json.dumps(comment)))
    return "\n".join(lines) + "\n"


class Nft:
    def __init__(self, ctx):
        self.ctx = ctx
        self.binary = ctx.which("nft")
        if self.binary is None:
            raise WeftError("nft is not installed on this host (Debian: apt-get install nftables)")

    def table(self, name, family=FAMILY):
        """The table's JSON objects, or None when it does not exist."""
        rc, out, err = self.ctx.run([self.binary, "-j", "list", "table", family, name])
        if rc:
            if "No such file or directory" in err:
                return None
            raise WeftError("nft list table %s %s failed: %s" % (family, name, err.strip()))
        return [item for item in json.loads(out)["nftables"] if "metainfo" not in item]

    def run(self, script):
        rc, dummy, err = self.ctx.run([self.binary, "-f", "-"], data=script)
        if rc:
            raise WeftError("nft -f failed: %s" % err.strip())


def read_current(objects):
    """(rule comments by chain in order, hooks of chains, elements by set, counters)."""
    comments, hooks, elements, counters = [], {}, {}, {}
    for item in objects:
        kind, body = next(iter(item.items()))
        if kind == "chain":
            hooks[body["name"]] = (body.get("hook"), body.get("prio"), body.get("policy"))
        elif kind == "rule":
            comments.append((body["chain"], body.get("comment")))
        elif kind == "counter":
            counters[body["name"]] = body.get("packets", 0)
        elif kind == "set":
            elements[body["name"]] = {parse_element(e) for e in body.get("elem", [])}
    return comments, hooks, elements, counters


def parse_element(element):
    """An element as nft -j prints it: an address, or address . integer range."""
    if isinstance(element, dict) and "elem" in element:
        element = element["elem"]["val"]
    if isinstance(element, dict) and "concat" in element:
        ip, span = element["concat"]
        if isinstance(span, dict) and "range" in span:
            return (ip, tuple(number(v) for v in span["range"]))
        return (ip, (number(span), number(span)))
    return element


def number(value):
    """An integer as nft -j prints it: a number, or (128 bits) a hex string."""
    return value if isinstance(value, int) else int(value, 0)


def converge(ctx, params):
    check_mode, diff = ctx.check_mode, ctx.diff
    nft = Nft(ctx)
    current = nft.table(params["table"])
    result = dict(changed=False, dropped={})
    if current is not None:
        result["dropped"] = {k: v for k, v in read_current(current)[3].items() if k in REASONS}
    if params["state"] == "absent":
        if current is not None:
            result["changed"] = True
            result["diff"] = dict(before="table %s %s\n" % (FAMILY, params["table"]), after="")
            if not check_mode:
                nft.run("delete table %s %s\n" % (FAMILY, params["table"]))
        return result

    peers = desired_peers(params)
    wanted = desired_elements(peers, params["inner"])
    structure = [(chain, comment) for chain, comment, dummy in layout(params)]
    hooks = {"ingress": ("prerouting", -300, "accept"), "encapsulated": (None, None, None)}
    before, after = [], []
    if current is None:
        script = render_table(params, wanted)
        after = script.splitlines()
    else:
        comments, have_hooks, have, dummy = read_current(current)
        if comments != structure or have_hooks != hooks or set(have) != set(wanted):
            # Another layout (or a hand edit): the whole table is replaced in one transaction.
            script = "delete table %s %s\n" % (FAMILY, params["table"]) + render_table(params, wanted)
            before = ["rule %s %s" % pair for pair in comments]
            after = ["rule %s %s" % pair for pair in structure]
        else:
            # Only the peers changed: elements in and out, in one transaction (counters stay).
            script = ""
            for name in sorted(wanted):
                add = sorted(element_text(name, e) for e in wanted[name] - have[name])
                remove = sorted(element_text(name, e) for e in have[name] - wanted[name])
                if remove:
                    script += "delete element %s %s %s { %s }\n" % (
                        FAMILY, params["table"], name, ", ".join(remove))
                if add:
                    script += "add element %s %s %s { %s }\n" % (
                        FAMILY, params["table"], name, ", ".join(add))
                before += ["%s %s" % (name, e) for e in remove]
                after += ["%s %s" % (name, e) for e in add]
    result["peers"] = len(peers)
    if script:
        result["changed"] = True
        if diff:
            result["diff"] = dict(before="".join(line + "\n" for line in before),
                                  after="".join(line + "\n" for line in after),
                                  before_header="%s %s" % (FAMILY, params["table"]),
                                  after_header="%s %s" % (FAMILY, params["table"]))
        if not check_mode:
            nft.run(script)
    return result


SPEC_RULES = dict(required_if=[("state", "present", ["port", "ports"], True)])
ARGUMENT_SPEC = dict(
    table=dict(type="str", default=TABLE),
    port=dict(type="int"),
    ports=dict(type="list", elements="int", default=[]),
    peers=dict(type="list", elements="dict", default=[], options=dict(
        ip=dict(type="str", required=True),
        subnet=dict(type="str"),
    )),
    inner=dict(type="str", choices=["vxlan", "none"], default="none"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
)


def run(params, ctx):
    for port in ports_of(params):
        if not 1 <= port <= 65535:
            raise WeftError("port: %d is not a UDP port (1-65535)" % port)
    if not params["table"].replace("_", "").replace("-", "").isalnum():
        raise WeftError("table: %r is not an nftables table name" % params["table"])
    return converge(ctx, params)
