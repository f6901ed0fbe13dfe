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

import os

from . import paths
from ..errors import WeftError
from ..files import exclusive_lock
from ..host import model, restore, units
from ..lease import plan_revision
from ..module import Context

ARGUMENT_SPEC = dict(
    count=dict(type="int", default=3),
    timeout=dict(type="float", default=1.0),
    record=dict(type="path", default=units.RECORD),
    container=dict(type="str"),
)


def read_record(path):
    try:
        return restore.read_record(path)
    except ValueError as exc:
        raise WeftError("%s: %s" % (path, exc)) from None


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


def run(params, ctx):
    if params["count"] < 1 or params["timeout"] <= 0:
        raise WeftError("count and timeout must be positive (count=%s, timeout=%s)"
                        % (params["count"], params["timeout"]))
    missing = dict(changed=False, converged=False,
                   problems=["%s is missing: weft has not converged this host" % params["record"]])
    if not os.path.exists(params["record"]):
        return missing
    # The record and the drift from it under the apply lock: a converge writing a newer
    # record finishes first, so drift is never measured against a record being replaced.
    with exclusive_lock(units.APPLY_LOCK):
        record = read_record(params["record"])
        if record is None:
            return missing
        try:
            view = model.HostView(record["plan"], record["identity"], record["settings"])
        except (KeyError, TypeError) as exc:
            raise WeftError("%s: not a record weft wrote (%s)" % (params["record"], exc)) from None
        drifted = drift(record)
    return dict(changed=False, converged=True, host=view.me.name, backend=view.backend.name,
                revision=plan_revision(record["plan"]), overlay_mtu=view.overlay_mtu,
                peers=[p.name for p in view.peers],
                paths=paths.probe(view, params["count"], params["timeout"],
                                  container=params["container"], ctx=ctx),
                drift=drifted, underlay=underlay(ctx, view),
                counters=dict(paths.overlay_counters(ctx, view), heal=restore.read_status()))
