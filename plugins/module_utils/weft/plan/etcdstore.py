# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Leases in etcd, in Flannel's registry layout, so Flannel and weft hosts share one network.

    <prefix>/config                   the network config (Flannel's JSON)
    <prefix>/subnets/100.96.1.0-24    a lease: {"PublicIP":..,"BackendType":..,"BackendData":..}
    <prefix>/weft/hosts/<name>        weft's index: which inventory host holds which subnet

Leases weft writes carry no etcd lease (no TTL). Flannel calls such keys reservations:
they last until deleted, which is what a declarative store needs, since no daemon renews
them. A subnet key that the index does not name (a Flannel daemon's lease, a hand-made
reservation) is a Reservation to the planner: never reused, never released, and taken
over only by a host with the same public IP, as Flannel itself does.

Writes are transactions guarded by the revisions that were read: a key is created only
if it is still absent and changed only if nobody changed it since. When a guard fails
(another controller got there first), the store reads again and plans again.
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
import time
from dataclasses import dataclass, field

from ..backends import BACKENDS, by_lease_type
from ..lease import Lease
from .etcd import Compare, EtcdError, delete, put
from .leasefile import Outcome, render
from .subnets import (PlanError, Reservation, leases_as_dict,
                      parse_ipv4_address, parse_network_config)

DEFAULT_PREFIX = "/coreos.com/network"
# Flannel's subnet key: IPv4 subnet, optionally '&' and the IPv6 subnet of a dual-stack lease;
# an IPv6-only lease has the empty IPv4 subnet 0.0.0.0-0 before its '&'.
NO_IPV4 = "0.0.0.0-0"
NO_PUBLIC_IP = "0.0.0.0"   # PublicIP of an IPv6-only lease (Flannel's zero IP4)
SUBNET_KEY = re.compile(r"^(\d+\.\d+\.\d+\.\d+)-(\d+)(?:&([a-f\d:]+)-(\d+))?$")
ATTEMPTS = 20
MAX_TXN_OPS = 120  # etcd's default --max-txn-ops is 128


def subnet_key_name(lease) -> str:
    """Flannel's key for a lease: its IPv4 subnet, and '&' with its IPv6 subnet if it has one."""
    name = "%s-%d" % (lease.subnet.network_address, lease.subnet.prefixlen) \
        if lease.subnet is not None else NO_IPV4
    if lease.subnet6 is not None:
        name += "&%s-%d" % (lease.subnet6.network_address, lease.subnet6.prefixlen)
    return name


def flannel_value(lease: Lease) -> str:
    """A lease as Flannel's LeaseAttrs JSON, byte for byte what flanneld writes: the
    backend says what its BackendData (and BackendV6Data) hold."""
    backend = BACKENDS.get(lease.backend_type)
    attrs = {"PublicIP": str(lease.public_ip) if lease.public_ip is not None else NO_PUBLIC_IP,
             "PublicIPv6": str(lease.public_ipv6) if lease.public_ipv6 is not None else None}
    lease_type = backend.lease_type if backend else lease.backend_type
    if lease_type:
        attrs["BackendType"] = lease_type
    if backend is not None:
        data = backend.to_flannel(lease.backend_data) if lease.subnet is not None else None
        if data is not None:  # (an IPv6-only lease has no IPv4 side to describe)
            attrs["BackendData"] = data
        if lease.backend_v6_data is not None:
            attrs["BackendV6Data"] = backend.to_flannel(lease.backend_v6_data)
    return json.dumps(attrs, separators=(",", ":"))


def parse_flannel_value(text: str, where: str) -> dict:
    try:
        attrs = json.loads(text)
    except ValueError:
        raise PlanError("%s: not Flannel lease JSON" % where) from None
    if not isinstance(attrs, dict):
        raise PlanError("%s: not Flannel lease JSON" % where)
    return attrs


def lease_from_flannel(subnet, subnet6, attrs: dict, where: str) -> Lease:
    """A lease from Flannel's JSON; a backend weft does not have keeps its type, no data."""
    backend = by_lease_type(attrs.get("BackendType"))
    v4, v6 = attrs.get("PublicIP"), attrs.get("PublicIPv6")
    try:
        public_ipv6 = ipaddress.IPv6Address(v6) if v6 else None
    except ValueError:
        raise PlanError("%s PublicIPv6: %r is not an IPv6 address" % (where, v6)) from None
    v6_data = attrs.get("BackendV6Data")
    return Lease(subnet, parse_ipv4_address(v4, where + " PublicIP")
                 if v4 and v4 != NO_PUBLIC_IP else None,
                 backend.name if backend else str(attrs.get("BackendType")),
                 backend.from_flannel(attrs.get("BackendData"))
                 if backend and (subnet is not None or attrs.get("BackendData")) else {},
                 subnet6=subnet6, public_ipv6=public_ipv6,
                 backend_v6_data=backend.from_flannel(v6_data) if backend and v6_data else None)


@dataclass
class Snapshot:
    """The store at one revision."""
    kvs: dict                                    # key -> KeyValue
    leases: dict = field(default_factory=dict)   # host name -> Lease (weft's)
    lease_keys: dict = field(default_factory=dict)  # host name -> subnet key
    reservations: dict = field(default_factory=dict)  # subnet (IPv6-only: subnet6) -> Reservation
    foreign: dict = field(default_factory=dict)  # subnet key -> Lease (not weft's, readable)


class EtcdStore:
    def __init__(self, client, prefix=DEFAULT_PREFIX, replace_config=False):
        prefix = "/" + (prefix or DEFAULT_PREFIX).strip("/")
        self.client = client
        self.prefix = prefix
        self.config_key = prefix + "/config"
        self.subnets_prefix = prefix + "/subnets/"
        self.index_prefix = prefix + "/weft/hosts/"
        self.replace_config = replace_config
        self.foreign = {}
        self.where = "etcd %s%s" % (client.endpoints[0], prefix)

    # -- reading ------------------------------------------------------------

    def read(self) -> Snapshot:
        kvs = self.client.range_prefix(self.prefix + "/")
        snap = Snapshot(kvs)
        subnets = {}
        for key in kvs:
            if not key.startswith(self.subnets_prefix):
                continue
            match = SUBNET_KEY.match(key[len(self.subnets_prefix):])
            if not match:
                continue  # not a lease; Flannel skips these too
            try:
                subnet = ipaddress.IPv4Network("%s/%s" % match.group(1, 2)) \
                    if "%s-%s" % match.group(1, 2) != NO_IPV4 else None
                subnet6 = ipaddress.IPv6Network("%s/%s" % match.group(3, 4)) \
                    if match.group(3) else None
            except ValueError:
                continue
            if subnet is not None or subnet6 is not None:
                subnets[key] = (subnet, subnet6)
        named = {}
        # The index names a lease by its IPv4 subnet (IPv6-only: its IPv6 one).
        by_subnet = {str(subnet or subnet6): key for key, (subnet, subnet6) in subnets.items()}
        for key, kv in sorted(kvs.items()):
            if not key.startswith(self.index_prefix):
                continue
            name = key[len(self.index_prefix):]
            lease_key = by_subnet.get(kv.value)
            if lease_key is None:
                continue  # its lease was deleted: the host gets a new one
            if lease_key in named:
                raise PlanError("%s: hosts %s and %s both hold %s"
                                % (self.index_prefix, named[lease_key], name, kv.value))
            named[lease_key] = name
        for key, (subnet, subnet6) in sorted(subnets.items(), key=lambda item: (
                item[1][0] is None, item[1][0] or item[1][1])):
            if key in named:
                attrs = parse_flannel_value(kvs[key].value, key)
                snap.leases[named[key]] = lease_from_flannel(subnet, subnet6, attrs, key)
                snap.lease_keys[named[key]] = key
                continue
            try:
                lease = lease_from_flannel(subnet, subnet6, parse_flannel_value(kvs[key].value, key),
                                           key)
            except PlanError:
                lease = Lease(subnet, None, "", subnet6=subnet6)  # unreadable: still nobody else's
            else:
                snap.foreign[key] = lease
            origin = "a reservation in etcd (%s)" if not kvs[key].lease \
                else "a Flannel lease in etcd (%s)"
            snap.reservations[subnet or subnet6] = Reservation(
                subnet, lease.public_ip, origin % key, lease.subnet6, lease.public_ipv6)
        return snap

    def leases(self) -> dict:
        return self.read().leases

    def check_config(self, snap, config):
        """The config key's guard and write, if any; a PlanError if it disagrees."""
        kv = snap.kvs.get(self.config_key)
        wanted = json.dumps(config.as_flannel(), separators=(",", ":"))
        if kv is None:
            return [Compare.absent(self.config_key)], [put(self.config_key, wanted)]
        try:
            stored = json.loads(kv.value)
        except ValueError:
            stored = None
        current = parse_network_config(stored, "etcd key %s" % self.config_key)
        if current == config:
            return [Compare.unchanged(self.config_key, kv.mod_revision)], []
        if not self.replace_config:
            theirs, ours = current.summary(), config.summary()
            differ = ", ".join("%s %s (etcd) != %s" % (k, theirs.get(k), ours.get(k))
                               for k in sorted(set(ours) | set(theirs))
                               if theirs.get(k) != ours.get(k))
            raise PlanError("weft_network: differs from etcd key %s: %s; make them equal, or set "
                            "weft_etcd_replace_config=true to write weft_network there"
                            % (self.config_key, differ))
        return [Compare.unchanged(self.config_key, kv.mod_revision)], [put(self.config_key, wanted)]

    # -- writing ------------------------------------------------------------

    def host_changes(self, snap, name, new):
        """(guards, operations) that take host `name` from its lease in `snap` to `new`."""
        old = snap.leases.get(name)
        old_key = snap.lease_keys.get(name)
        index_key = self.index_prefix + name
        guards, ops = [], []

        def guarded(key):
            guards.append(Compare.as_read(key, snap.kvs.get(key)))

        if new is None:
            for key in (old_key, index_key):
                guarded(key)
                ops.append(delete(key))
            return guards, ops
        key = self.subnets_prefix + subnet_key_name(new)
        stored = snap.kvs.get(key)
        if stored is None or json.loads(stored.value) != json.loads(flannel_value(new)) \
                or stored.lease:
            guarded(key)
            ops.append(put(key, flannel_value(new)))
        index = snap.kvs.get(index_key)
        held = str(new.subnet or new.subnet6)
        if index is None or index.value != held:
            guarded(index_key)
            ops.append(put(index_key, held))
        if old is not None and old_key != key:
            guarded(old_key)
            ops.append(delete(old_key))
        return guards, ops

    def batches(self, snap, config, new):
        """Guarded transactions that take the store from `snap` to `new`.

        One transaction when it fits etcd's limit on operations; otherwise several, each
        whole for the hosts in it, so a conflict never leaves one host half-written.
        """
        guards, ops = self.check_config(snap, config)
        changes = [self.host_changes(snap, name, new.get(name))
                   for name in sorted(set(snap.leases) | set(new))]
        # A subnet released by prune and handed to a new host in the same run is one put.
        written = {op["request_put"]["key"] for dummy, host_ops in changes for op in host_ops
                   if "request_put" in op}
        batches = []
        for host_guards, host_ops in changes:
            host_ops = [op for op in host_ops
                        if op.get("request_delete_range", {}).get("key") not in written]
            if not host_ops:
                continue
            if ops and len(ops) + len(host_ops) > MAX_TXN_OPS:
                batches.append((guards, ops))
                guards, ops = [], []
            guards, ops = guards + host_guards, ops + host_ops
        if ops:
            batches.append((guards, ops))
        return batches

    def update(self, compute, config, check_mode=False):
        """Replace weft's leases with compute(leases, reservations), in guarded transactions."""
        first = None
        for attempt in range(ATTEMPTS):
            snap = self.read()
            first = first or snap
            new = compute(dict(snap.leases), dict(snap.reservations))
            batches = self.batches(snap, config, new)
            self.foreign = snap.foreign
            if not batches or check_mode:
                return self.outcome(first, new, bool(batches))
            if all(self.client.txn(guards, ops) for guards, ops in batches):
                return self.outcome(first, new, True)
            # Another controller wrote first: read what it wrote and plan again, after a
            # random pause so that racing controllers fall out of step.
            time.sleep(random.uniform(0, 0.02 * (attempt + 1)))
        raise EtcdError("%s: the leases kept changing during %d attempts; try again"
                        % (self.where, ATTEMPTS))

    def outcome(self, first, new, changed):
        before = render(leases_as_dict(first.leases)) if first.leases else ""
        return Outcome(changed, before, render(leases_as_dict(new)), self.where)
