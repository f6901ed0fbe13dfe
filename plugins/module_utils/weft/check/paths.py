# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host's overlay paths and counters as weft_check and weft-heal's metrics read them:
every peer probed at once (probe.py), the ingress table's drops, the udp daemon's counters."""

from __future__ import annotations

import statistics

from ansible.module_utils.weft.check import probe as icmp
from ansible.module_utils.weft.daemon import udpd
from ansible.module_utils.weft.host import units
from ansible.module_utils.weft.net import ingress


def targets(view):
    """A probe per peer and family, from this host's overlay address to the peer's."""
    backend = view.backend
    return [icmp.Target("%s/%d" % (peer.name, family), family,
                        backend.probe_address(view.me.side(family)[0]),
                        backend.probe_address(peer.side(family)[0]))
            for family in view.families for peer in view.peers_of(family)]


def milliseconds(seconds):
    return round(seconds * 1000, 3)


def probe(view, count, timeout, bisect=True):
    """[{peer, family, ...}] for every peer: reachable (small echoes), round trip, and
    whether a packet of the overlay MTU with DF set gets through (else, with `bisect`,
    the largest that does)."""
    found = targets(view)
    # Small and full-size echoes in one round: a healthy network answers in one round trip.
    sized = [t._replace(key=(t.key, size)) for t in found for size in ("small", "full")]
    answers = icmp.echo(sized, {t.key: icmp.SMALLEST[t.family] if t.key[1] == "small" else
                                view.overlay_mtu for t in sized}, count, timeout)
    small = {t.key: answers[(t.key, "small")] for t in found}
    full = {t.key: answers[(t.key, "full")] for t in found}
    black_holes = [t for t in found if small[t.key].rtts and not full[t.key].rtts] if bisect else []
    largest = icmp.largest_passing(black_holes, max(icmp.SMALLEST.values()),
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


def overlay_counters(ctx, view, refresh=True):
    """Ingress drops by reason (encapsulating backends) and the udp daemon's counters
    (None: not running); `refresh` asks the daemon for figures of this moment."""
    found = {}
    if view.backend.encapsulated:
        objects = ingress.Nft(ctx).table(ingress.TABLE)
        found["ingress_drops"] = ingress.read_current(objects)[3] if objects else None
    if view.backend.name == "udp":
        status = udpd.current_status(units.UDPD_STATUS) if refresh else \
            udpd.running_status(units.UDPD_STATUS)
        found["udpd"] = None if status is None else {
            key: status.get(key) for key in ("udp_rx", "udp_tx", "tun_rx", "tun_tx",
                                             "drops_in", "drops_out", "faults", "started")}
    return found
