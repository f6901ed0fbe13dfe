# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""weft's figures in the Prometheus text format, for the textfile collector of
prometheus-node-exporter (no port of weft's own): written by weft-heal after each pass.

`families()` turns what a pass knows into metric families without I/O; `render()` writes
them as the exposition format; `publish()` gathers (one small echo to every peer at once,
the ingress counters, the udp daemon's last status) and replaces the file atomically.
"""

from __future__ import annotations

import os
import time

from ..check import paths
from ..files import write_atomic
from . import model
from ..lease import plan_revision

FAMILY_LABEL = {4: "ipv4", 6: "ipv6"}
PROBE_TIMEOUT = 0.5         # seconds a pass waits for the echoes of its peers


def escape(value) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(families) -> str:
    """[(name, type, help, [(labels dict, value)])] in the text exposition format."""
    lines = []
    for name, kind, text, samples in families:
        lines += ["# HELP %s %s" % (name, text), "# TYPE %s %s" % (name, kind)]
        for labels, value in samples:
            inner = ",".join('%s="%s"' % (key, escape(labels[key])) for key in sorted(labels))
            lines.append("%s%s %s" % (name, "{%s}" % inner if inner else "", format_value(value)))
    return "\n".join(lines) + "\n"


def format_value(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    return str(int(value))


def path_labels(path):
    return {"peer": path["peer"], "family": FAMILY_LABEL.get(path["family"], str(path["family"]))}


def families(view, revision, record_time, probed, last_up, counters, heal):
    """The metric families of one pass. `probed`: paths.probe()'s entries; `last_up`:
    {(peer, family): when its path last answered}; `counters`: paths.overlay_counters();
    `heal`: weft-heal's counters."""
    found = [
        ("weft_info", "gauge", "The network this host converged (value 1).",
         [({"backend": view.backend.name, "revision": revision, "host": view.me.name}, 1)]),
        ("weft_record_timestamp_seconds", "gauge",
         "When weft.overlay.host last wrote this host's record (a converge that changed something).",
         [({}, float(record_time))]),
        ("weft_peers", "gauge", "Peers of this host in the plan, by address family.",
         [({"family": FAMILY_LABEL[f]}, len(view.peers_of(f))) for f in view.families]),
        ("weft_overlay_mtu_bytes", "gauge", "The MTU the overlay promises its containers.",
         [({}, view.overlay_mtu)]),
        ("weft_path_up", "gauge",
         "Whether the peer's overlay address answered an echo in weft-heal's last pass.",
         [(path_labels(p), p["reachable"]) for p in probed]),
        ("weft_path_rtt_seconds", "gauge", "Round trip to the peer in the last pass.",
         [(path_labels(p), p["rtt_ms"]["avg"] / 1000.0) for p in probed if p.get("rtt_ms")]),
        ("weft_path_last_up_timestamp_seconds", "gauge",
         "When the path last answered (since weft-heal started; 0: not yet).",
         [(path_labels(p), float(last_up.get((p["peer"], p["family"]), 0))) for p in probed]),
    ]
    drops = counters.get("ingress_drops")
    if drops is not None:
        found.append(("weft_ingress_dropped_packets_total", "counter",
                      "Datagrams to the encapsulation port dropped by peer-only ingress, by reason.",
                      [({"reason": reason}, count) for reason, count in sorted(drops.items())]))
    udpd = counters.get("udpd")
    if udpd is not None:
        found += [
            ("weft_udpd_received_packets_total", "counter",
             "Packets the udp daemon read, by side (udp: from peers, tun: from this host).",
             [({"side": "udp"}, udpd.get("udp_rx") or 0), ({"side": "tun"}, udpd.get("tun_rx") or 0)]),
            ("weft_udpd_sent_packets_total", "counter",
             "Packets the udp daemon wrote, by side (udp: to peers, tun: to this host).",
             [({"side": "udp"}, udpd.get("udp_tx") or 0), ({"side": "tun"}, udpd.get("tun_tx") or 0)]),
            ("weft_udpd_dropped_packets_total", "counter",
             "Packets the udp daemon dropped, by direction and reason.",
             [({"direction": direction, "reason": reason}, count)
              for direction, key in (("in", "drops_in"), ("out", "drops_out"))
              for reason, count in sorted((udpd.get(key) or {}).items())]),
        ]
    fast = counters.get("udp_fastpath")
    if fast is not None:
        found.append(("weft_udp_fastpath_packets_total", "counter",
                      "Packets the udp backend's kernel fast path carried past the daemon, by "
                      "direction (out: to peers, in: from peers).",
                      [({"direction": "out"}, fast["sent"]), ({"direction": "in"}, fast["received"])]))
    found += [
        ("weft_heal_passes_total", "counter", "weft-heal's passes since it started.",
         [({}, heal.get("passes", 0))]),
        ("weft_heal_repairs_total", "counter", "weft-heal's passes that repaired something.",
         [({}, heal.get("repairs", 0))]),
        ("weft_heal_failures_total", "counter", "weft-heal's passes that failed.",
         [({}, heal.get("failures", 0))]),
        ("weft_heal_last_pass_timestamp_seconds", "gauge", "When weft-heal last passed.",
         [({}, float(heal.get("last_pass", 0)))]),
    ]
    return found


def publish(ctx, record, record_path, heal, last_up):
    """Write the metrics file the record's settings name (nothing when they name none);
    `last_up` is updated with the paths that answered."""
    settings = record["settings"]
    path = settings.get("metrics_file")
    if not path:
        return None
    view = model.HostView(record["plan"], record["identity"], settings)
    # Small echoes only: every host probes every peer each pass (N x N on the network);
    # the full-size probe, and the bisection, are check.yml's.
    probed = paths.probe(view, count=1, timeout=PROBE_TIMEOUT, full=False)
    now = time.time()
    for entry in probed:
        if entry["reachable"]:
            last_up[(entry["peer"], entry["family"])] = now
    text = render(families(view, plan_revision(record["plan"]), os.stat(record_path).st_mtime,
                           probed, last_up, paths.overlay_counters(ctx, view, refresh=False),
                           heal))
    write_atomic(path, text, mode=0o644)
    return path
