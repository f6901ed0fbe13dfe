# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lease record, and the plan that carries every host's lease to every host.

A lease is Flannel's LeaseAttrs with weft's names: per address family a subnet, a public
address and the backend's own data (what backends.py says a lease of that backend holds,
some of it reported by the host itself). The lease file stores `Lease.as_dict()`; etcd
stores Flannel's JSON (plan/etcdstore.py); the plan hands the same dicts to every host:

    {"version": 3,
     "network": {"network": "100.96.0.0/16", "backend_type": "vxlan", "vni": 1, ...},
     "hosts": {"node1": {"subnet": "100.96.1.0/24", "public_ip": "10.168.0.2",
                         "backend_type": "vxlan",
                         "backend_data": {"vni": 1, "vtep_mac": "0e:77:64:60:01:00"}}, ...},
     "foreign": {"100.96.200.0-24": {...}}}     (Flannel hosts of the network, from etcd)

IPv6 fields (subnet6, public_ipv6, backend_v6_data) are written only when a lease has them,
so a lease file of an IPv4 network reads and writes exactly as before. A lease of an
IPv6-only network (EnableIPv4: false) has no IPv4 side: subnet and public_ip are null.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import zlib
from dataclasses import dataclass, field

PLAN_VERSION = 3   # 2 and before: positional host entries [subnet, public_ip, vtep_mac]


@dataclass(frozen=True)
class Family:
    """Where one address family's values live: the attributes of a Lease (and of the
    planner's host specs and reservations), and the inventory variables they come from."""
    version: int
    subnet: str             # Lease/Reservation attribute
    public: str             # Lease/HostSpec/Reservation attribute
    pin: str                # HostSpec attribute
    public_variable: str
    pin_variable: str
    network_field: str      # net-conf.json's field of this family's network

    def subnet_of(self, item):
        return getattr(item, self.subnet)

    def public_of(self, item):
        return getattr(item, self.public)

    def pin_of(self, spec):
        return getattr(spec, self.pin)


FAMILIES = {4: Family(4, "subnet", "public_ip", "pin", "weft_public_ip", "weft_subnet", "Network"),
            6: Family(6, "subnet6", "public_ipv6", "pin6", "weft_public_ipv6", "weft_subnet6",
                      "IPv6Network")}


@dataclass
class Lease:
    subnet: ipaddress.IPv4Network | None
    public_ip: ipaddress.IPv4Address | None
    backend_type: str
    backend_data: dict = field(default_factory=dict)
    subnet6: ipaddress.IPv6Network | None = None
    public_ipv6: ipaddress.IPv6Address | None = None
    backend_v6_data: dict | None = None

    def as_dict(self) -> dict:
        """The lease as the lease file and the plan hold it."""
        out = {"subnet": _text(self.subnet), "public_ip": _text(self.public_ip),
               "backend_type": self.backend_type, "backend_data": dict(self.backend_data)}
        if self.subnet6 is not None:
            out["subnet6"] = str(self.subnet6)
        if self.public_ipv6 is not None:
            out["public_ipv6"] = str(self.public_ipv6)
        if self.backend_v6_data is not None:
            out["backend_v6_data"] = dict(self.backend_v6_data)
        return out

    @classmethod
    def from_dict(cls, item, where) -> "Lease":
        """A lease from as_dict()'s form; ValueError naming the field."""
        if not isinstance(item, dict) or not (item.get("subnet") or item.get("subnet6")):
            raise ValueError("%s: needs at least a subnet (or, IPv6-only, a subnet6)" % where)
        for key in ("backend_data", "backend_v6_data"):
            if item.get(key) is not None and not isinstance(item[key], dict):
                raise ValueError("%s.%s: must be a mapping" % (where, key))
        return cls(subnet=_parse(item.get("subnet"), 4, "network", where + ".subnet"),
                   public_ip=_parse(item.get("public_ip"), 4, "address", where + ".public_ip"),
                   backend_type=str(item.get("backend_type") or ""),
                   backend_data=dict(item.get("backend_data") or {}),
                   subnet6=_parse(item.get("subnet6"), 6, "network", where + ".subnet6"),
                   public_ipv6=_parse(item.get("public_ipv6"), 6, "address",
                                      where + ".public_ipv6"),
                   backend_v6_data=(dict(item["backend_v6_data"])
                                    if item.get("backend_v6_data") is not None else None))


def _text(value):
    return str(value) if value is not None else None


def _parse(value, version, kind, where):
    if value in (None, ""):
        return None
    try:
        parsed = (ipaddress.ip_network(str(value).strip(), strict=True) if kind == "network"
                  else ipaddress.ip_address(str(value).strip()))
    except ValueError:
        raise ValueError("%s: %r is not an IPv%d %s" % (where, value, version,
                                                        "CIDR" if kind == "network" else kind)) from None
    if parsed.version != version:
        raise ValueError("%s: %r is not an IPv%d %s" % (where, value, version, kind))
    return parsed


# ---- the plan on its way to the hosts ------------------------------------------------

def host_plan(network: dict, leases: dict, foreign: dict) -> dict:
    """What every host receives: the network summary and each lease record by name."""
    return {"version": PLAN_VERSION, "network": network,
            "hosts": {name: lease.as_dict() for name, lease in sorted(leases.items())},
            "foreign": {key: lease.as_dict() for key, lease in sorted(foreign.items())}}


def encode_plan(plan: dict) -> str:
    """The plan as every host receives it: compressed JSON in one string, so that the
    controller hands the same small value to every host instead of templating a large
    structure per host."""
    text = json.dumps(plan, separators=(",", ":"), sort_keys=True)
    return base64.b64encode(zlib.compress(text.encode(), 6)).decode()


def plan_revision(plan: dict) -> str:
    """A short digest of a plan: hosts that show one revision converged the same plan."""
    text = json.dumps(plan, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def decode_plan(blob) -> dict:
    """The plan from encode_plan(); older positional plans (a record written by an earlier
    weft) come back in today's form. Raises ValueError for anything else."""
    try:
        plan = json.loads(zlib.decompress(base64.b64decode(blob)))
    except (ValueError, TypeError, zlib.error):
        raise ValueError("plan: not a plan made by weft.overlay.plan") from None
    return upgrade(plan)


def upgrade(plan) -> dict:
    """A plan of any version in today's form (ValueError if it is not a plan)."""
    if not isinstance(plan, dict) or not isinstance(plan.get("network"), dict) \
            or not isinstance(plan.get("hosts"), dict):
        raise ValueError("plan: not a plan made by weft.overlay.plan")
    if plan.get("version", 2) >= PLAN_VERSION:
        return plan
    btype = plan["network"].get("backend_type")

    def entry(old):
        subnet, public_ip, mac = (list(old) + [None, None, None])[:3]
        data = {"vni": plan["network"].get("vni"), "vtep_mac": mac} if btype == "vxlan" else {}
        return {"subnet": subnet, "public_ip": public_ip, "backend_type": btype,
                "backend_data": data}
    return dict(plan, version=PLAN_VERSION,
                hosts={name: entry(e) for name, e in plan["hosts"].items()},
                foreign={key: entry(e) for key, e in (plan.get("foreign") or {}).items()})
