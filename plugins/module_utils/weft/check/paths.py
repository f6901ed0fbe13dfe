# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host's overlay paths and counters as weft_check and weft-heal's metrics read them:
every peer probed at once (probe.py), the ingress table's drops, the udp daemon's counters."""

from __future__ import annotations

import ctypes
import json
import os
import statistics

from . import probe as icmp
from ..daemon import status as udpd_status
from ..host import units
from ..net import ingress, udp_fastpath


def targets(view):
    """A probe per peer and family, from this host's overlay address to the peer's."""
    backend = view.backend
    return [icmp.Target("%s/%d" % (peer.name, family), family,
                        backend.probe_address(view.me.side(family)[0]),
                        backend.probe_address(peer.side(family)[0]))
            for family in view.families for peer in view.peers_of(family)]


def milliseconds(seconds):
    return round(seconds * 1000, 3)


def small_and_full(view, found, full=True):
    """Each target twice, small and at the overlay MTU (without `full`: small only), and
    the sizes: one round for both (a healthy network answers in one round trip)."""
    sized = [t._replace(key=(t.key, size)) for t in found
             for size in (("small", "full") if full else ("small",))]
    return sized, {t.key: icmp.SMALLEST[t.family] if t.key[1] == "small" else view.overlay_mtu
                   for t in sized}


def summary(outcome_small, outcome_full):
    item = dict(reachable=bool(outcome_small.rtts))
    if outcome_full is not None:
        item["mtu_ok"] = bool(outcome_full.rtts)
    if outcome_small.rtts:
        item["rtt_ms"] = dict(min=milliseconds(min(outcome_small.rtts)),
                              avg=milliseconds(statistics.mean(outcome_small.rtts)),
                              max=milliseconds(max(outcome_small.rtts)))
    error = outcome_small.error or (outcome_full.error if outcome_full else None)
    if error:
        item["error"] = error
    return item


def probe(view, count, timeout, full=True, container=None, ctx=None):
    """[{peer, family, ...}] for every peer: reachable (small echoes), round trip, and
    with `full` whether a packet of the overlay MTU with DF set gets through (else the
    largest that does). With `container` (a Docker or podman container's name), the
    same from inside it, to the same addresses: the containers' path, through forwarding."""
    found = targets(view)
    sized, sizes = small_and_full(view, found, full)
    answers = icmp.echo(sized, sizes, count, timeout)
    small = {t.key: answers[(t.key, "small")] for t in found}
    big = {t.key: answers.get((t.key, "full")) for t in found}
    inside = from_container(ctx, view, container, found, count, timeout) if container else None
    black_holes = [t for t in found if small[t.key].rtts and not big[t.key].rtts] if full else []
    largest = icmp.largest_passing(black_holes, max(icmp.SMALLEST.values()),
                                   {t.key: view.overlay_mtu for t in black_holes})
    report = []
    for target in found:
        peer, family = target.key.rsplit("/", 1)
        item = dict(peer=peer, family=int(family), source=target.source, address=target.address,
                    sent=small[target.key].sent, received=len(small[target.key].rtts),
                    mtu=view.overlay_mtu, **summary(small[target.key], big[target.key]))
        if target.key in largest:
            item["largest"] = largest[target.key]
        if inside is not None:
            item["container"] = dict(inside["error"] if "error" in inside else
                                     summary(inside[(target.key, "small")],
                                             inside[(target.key, "full")]), name=container)
        report.append(item)
    return report


CLONE_NEWNET = 0x40000000
RUNTIMES = ("docker", "podman")


def container_pid(ctx, name):
    """The PID of a running container of that name (Docker's, else podman's), or None."""
    for tool in RUNTIMES:
        binary = ctx.which(tool)
        if binary is None:
            continue
        rc, out, dummy = ctx.run([binary, "inspect", "--format", "{{.State.Pid}}", name])
        if rc == 0 and out.strip().isdigit() and int(out.strip()) > 0:
            return int(out.strip())
    return None


def from_container(ctx, view, name, found, count, timeout):
    """{(key, size): Outcome} of the probes sent from the container's network namespace
    (a forked child joins it: the module itself stays where it is), or {"error": why}."""
    pid = container_pid(ctx, name)
    if pid is None:
        return {"error": {"error": "no running container %r on this host (tried %s)"
                                   % (name, ", ".join(RUNTIMES))}}
    sized, sizes = small_and_full(view, [t._replace(source=None) for t in found])
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:      # pragma: no cover (the child's report is what the tests read)
        code = 0
        try:
            os.close(read_end)
            libc = ctypes.CDLL(None, use_errno=True)
            netns = os.open("/proc/%d/ns/net" % pid, os.O_RDONLY)
            if libc.setns(netns, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns into %s's network namespace" % name)
            answers = icmp.echo(sized, sizes, count, timeout)
            text = json.dumps([[list(key), o.sent, list(o.rtts), o.error]
                               for key, o in answers.items()])
        except BaseException as exc:     # anything: the parent reports it
            text, code = json.dumps({"error": str(exc)}), 1
        with os.fdopen(write_end, "w") as out:
            out.write(text)
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        text = pipe.read()
    os.waitpid(child, 0)
    got = json.loads(text or '{"error": "the probe from the container died"}')
    if isinstance(got, dict):
        return {"error": {"error": "from container %s: %s" % (name, got["error"])}}
    return {tuple(key): icmp.Outcome(sent, tuple(rtts), error) for key, sent, rtts, error in got}


def overlay_counters(ctx, view, refresh=True):
    """Ingress drops by reason (encapsulating backends) and the udp daemon's counters
    (None: not running); `refresh` asks the daemon for figures of this moment."""
    found = {}
    if view.backend.encapsulated:
        objects = ingress.Nft(ctx).table(ingress.TABLE)
        found["ingress_drops"] = ingress.read_current(objects)[3] if objects else None
    if view.backend.name == "udp":
        status = udpd_status.current_status(units.UDPD_STATUS) if refresh else \
            udpd_status.running_status(units.UDPD_STATUS)
        found["udpd"] = None if status is None else {
            key: status.get(key) for key in ("udp_rx", "udp_tx", "tun_rx", "tun_tx",
                                             "drops_in", "drops_out", "faults", "started")}
        # What the kernel fast path carried past the daemon (None: not attached).
        try:
            found["udp_fastpath"] = udp_fastpath.counters(ctx.kernel)
        except OSError:     # a host that forbids reading BPF maps
            found["udp_fastpath"] = None
    return found
