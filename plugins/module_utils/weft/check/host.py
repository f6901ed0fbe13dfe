# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Core of weft_check: what one host sees of the overlay, changing nothing.

From the host's record (the plan, identity and settings it last converged): every path
to a peer probed at once (check/probe.py: reachability and round trip with small
echoes, then the overlay MTU with Don't Fragment set, and the largest size that passes
when that is lost); drift, as what a weft-restore pass would repair (the same converge,
in check mode); whether the underlay still holds the address the lease announces; and
the counters weft keeps (ingress drops by reason, the udp daemon's, weft-heal's).
"""

from __future__ import annotations

import hashlib
import json
import statistics

from ansible.module_utils.weft.check import probe
from ansible.module_utils.weft.daemon import udpd
from ansible.module_utils.weft.errors import WeftError
from ansible.module_utils.weft.host import model, restore, units
from ansible.module_utils.weft.module import Context
from ansible.module_utils.weft.net import ingress

ARGUMENT_SPEC = dict(
    count=dict(type="int", default=3),
    timeout=dict(type="float", default=1.0),
    record=dict(type="path", default=units.RECORD),
)


def plan_revision(plan) -> str:
    """A short digest of the plan: hosts on one revision converged the same plan."""
    text = json.dumps(plan, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def read_record(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise WeftError("%s: %s" % (path, exc)) from None


def targets(view):
    """A probe per peer and family, from this host's overlay address to the peer's."""
    backend = view.backend
    return [probe.Target("%s/%d" % (peer.name, family), family,
                         backend.probe_address(view.me.side(family)[0]),
                         backend.probe_address(peer.side(family)[0]))
            for family in view.families for peer in view.peers_of(family)]


def milliseconds(seconds):
    return round(seconds * 1000, 3)


def paths(view, count, timeout):
    """[{peer, family, ...}] for every peer: reachable (small echoes), round trip, and
    whether a packet of the overlay MTU with DF set gets through (else the largest that
    does)."""
    found = targets(view)
    small = probe.echo(found, {t.key: probe.SMALLEST[t.family] for t in found}, count, timeout)
    full = probe.echo(found, view.overlay_mtu, count, timeout)
    black_holes = [t for t in found if small[t.key].rtts and not full[t.key].rtts]
    largest = probe.largest_passing(black_holes, max(probe.SMALLEST.values()),
                                    {t.key: view.overlay_mtu for t in black_holes})
    report = []
    for target in found:
        peer, family = target.key.rsplit("/", 1)
        short, big = small[target.key], full[target.key]
        item = dict(peer=peer, family=int(family), source=target.source, address=target.address,
                    sent=short.sent, received=len(short.rtts), reachable=bool(short.rtts),
                    mtu=view.overlay_mtu, mtu_ok=bool(big.rtts))
        if short.rtts:
            item["rtt_ms"] = dict(min=milliseconds(min(short.rtts)),
                                  avg=milliseconds(statistics.mean(short.rtts)),
                                  max=milliseconds(max(short.rtts)))
        if target.key in largest:
            item["largest"] = largest[target.key]
        error = short.error or big.error
        if error:
            item["error"] = error
        report.append(item)
    return report


def drift(record):
    """What a weft-restore pass would repair now: one line per step or file."""
    ctx = Context(check_mode=True)
    try:
        result = restore.converge_record(ctx, record)
    except (WeftError, KeyError, TypeError) as exc:
        return ["the record cannot be converged: %s" % exc]
    finally:
        ctx.close()
    return [restore.describe(step) for step in result["steps"] if step.get("changed")] + \
        ["file %s" % path for path in result["files_changed"]]


def underlay(ctx, view):
    """Problems with the address the lease announces: gone from the interface (a host
    whose address changed since it converged)."""
    problems = []
    iface = view.identity.get("iface")
    index = ctx.kernel.index(iface) if iface else None
    if index is None:
        return ["the underlay interface %s is gone" % iface]
    held = {cidr.split("/")[0] for cidr in ctx.kernel.addresses(index)}
    for family in view.families:
        own = view.own_address(family)
        if own not in held:
            problems.append("%s no longer holds %s, which this host's lease announces "
                            "(it has %s): re-run site.yml" % (iface, own, ", ".join(sorted(held))
                                                              or "no address"))
    return problems


def counters(ctx, view):
    found = {}
    if view.backend.encapsulated:
        objects = ingress.Nft(ctx).table(ingress.TABLE)
        found["ingress_drops"] = ingress.read_current(objects)[3] if objects else None
    if view.backend.name == "udp":
        status = udpd.current_status(units.UDPD_STATUS)
        found["udpd"] = None if status is None else {
            key: status.get(key) for key in ("udp_rx", "udp_tx", "tun_rx", "tun_tx",
                                             "drops_in", "drops_out", "faults", "started")}
    found["heal"] = restore.read_status()
    return found


def run(params, ctx):
    if params["count"] < 1 or params["timeout"] <= 0:
        raise WeftError("count and timeout must be positive (count=%s, timeout=%s)"
                        % (params["count"], params["timeout"]))
    record = read_record(params["record"])
    if record is None:
        return dict(changed=False, converged=False,
                    problems=["%s is missing: weft has not converged this host" % params["record"]])
    try:
        view = model.HostView(record["plan"], record["identity"], record["settings"])
    except (KeyError, TypeError) as exc:
        raise WeftError("%s: not a record weft wrote (%s)" % (params["record"], exc)) from None
    return dict(changed=False, converged=True, host=view.me.name, backend=view.backend.name,
                revision=plan_revision(record["plan"]), overlay_mtu=view.overlay_mtu,
                peers=[p.name for p in view.peers], paths=paths(view, params["count"], params["timeout"]),
                drift=drift(record), underlay=underlay(ctx, view), counters=counters(ctx, view))
