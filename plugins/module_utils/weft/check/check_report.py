# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Core of weft_check_report (controller): every host's weft_check result, as one
matrix of ordered pairs with the failures explained below it, and as JSON.

A pair fails when its path does (no reply to small echoes, or a full-size packet with
Don't Fragment lost), when either host could not be checked, or when the source host
does not know the destination as a peer. A host fails on its own when its state has
drifted, its lease's address is gone, or it converged another plan than the others.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import Counter

ARGUMENT_SPEC = dict(
    results=dict(type="dict", required=True),
    json_path=dict(type="path"),
)
FAMILY_NAMES = {4: "IPv4", 6: "IPv6"}
HINTS = {
    "LOST": "the encapsulated packets are lost between them: a firewall dropping the "
            "encapsulation port on the path or on either host, or a peer that does not take "
            "them (see docs/troubleshooting.md)",
    "FWD": "the sending host does not forward its containers' packets into the overlay: a "
           "FORWARD rule or policy that drops them, or weft's WEFT-FWD chain missing "
           "(iptables -S FORWARD; iptables -S WEFT-FWD)",
    "MTU": "the underlay path carries less than the overlay MTU plus the encapsulation: "
           "lower the network's MTU or raise the underlay's",
}


def host_problem(result):
    """Why a host's result cannot be used (None: it can)."""
    if result is None:
        return "was not checked (not in the play)"
    if result.get("unreachable"):
        return "did not answer (unreachable: %s)" % " ".join(str(result.get("msg", "")).split())[:200]
    if result.get("failed"):
        return "weft.overlay.check failed: %s" % result.get("msg")
    if not result.get("converged"):
        return "; ".join(result.get("problems") or ["has no weft record"])
    return None


def host_verdict(entries):
    """(cell or None, lines) of the host's own probes of one peer."""
    cell, lines = None, []
    for entry in entries:
        family = FAMILY_NAMES.get(entry["family"], str(entry["family"]))
        route = "%s -> %s" % (entry["source"], entry["address"])
        error = ": " + entry["error"] if entry.get("error") else ""
        if not entry["reachable"] and not entry["sent"]:
            cell = "LOST"
            lines.append("%s: no echo could be sent (%s)%s" % (family, route, error))
        elif not entry["reachable"]:
            cell = "LOST"
            lines.append("%s: no reply to %d of %d echoes (%s)%s" % (
                family, entry["sent"] - entry["received"], entry["sent"], route, error))
        elif not entry["mtu_ok"]:
            cell = cell or "MTU"
            lines.append("%s: a %d-byte packet with DF set is lost (%s); the largest that "
                         "passed was %s bytes%s" % (family, entry["mtu"], route,
                                                    entry.get("largest", "?"), error))
    return cell, lines


def container_verdict(name, entries):
    """(cell or None, lines) of the probes from the host's container, where the host's own
    got through."""
    cell, lines = None, []
    for entry in entries:
        inside = entry.get("container")
        if not inside:
            continue
        family = FAMILY_NAMES.get(entry["family"], str(entry["family"]))
        where = "from %s's container %s to %s" % (name, inside["name"], entry["address"])
        if "reachable" not in inside:
            cell = "?"
            lines.append("%s: cannot probe %s: %s" % (family, where, inside.get("error")))
        elif not inside["reachable"]:
            cell = "FWD"
            lines.append("%s: no reply %s%s, though the host itself reaches it" % (
                family, where, ": " + inside["error"] if inside.get("error") else ""))
        elif not inside.get("mtu_ok"):
            cell = cell or "MTU"
            lines.append("%s: a %d-byte packet with DF set is lost %s, though the host's own "
                         "get through (the container's or its bridge's MTU)"
                         % (family, entry["mtu"], where))
    return cell, lines


def pair_verdict(name, other, results, problems):
    """(cell, [lines explaining it], path entries) for the pair name -> other."""
    mine = results.get(name) or {}
    if name in problems:
        return "?", ["%s %s" % (name, problems[name])], []
    if other not in (mine.get("peers") or []):
        return "NOPEER", ["%s does not know %s as a peer (its plan is revision %s)"
                          % (name, other, mine.get("revision"))], []
    entries = [p for p in mine.get("paths", []) if p["peer"] == other]
    cell, lines = host_verdict(entries)
    if cell is None:
        cell, lines = container_verdict(name, entries)
    if other in problems:       # the likely cause of anything the probes saw
        return "?", lines + ["%s %s" % (other, problems[other])], entries
    if cell is None:
        worst = max((p["rtt_ms"]["avg"] for p in entries if p.get("rtt_ms")), default=None)
        return ("ok" if worst is None else "%.2f" % worst), lines, entries
    for host in (name, other):
        for line in (results.get(host) or {}).get("drift") or []:
            lines.append("drift on %s: %s" % (host, line))
    if cell in HINTS:
        lines.append("usually: " + HINTS[cell])
    return cell, lines, entries


def host_problems(results):
    """{host: why it cannot be used}, and {host: [its own failures]}."""
    problems = {name: why for name, why in
                ((name, host_problem(result)) for name, result in results.items()) if why}
    usable = {n: r for n, r in results.items() if n not in problems}
    revisions = Counter(r.get("revision") for r in usable.values())
    common = revisions.most_common(1)[0][0] if revisions else None
    own = {}
    for name, result in sorted(usable.items()):
        found = ["drift: %s" % line for line in result.get("drift") or []]
        found += ["underlay: %s" % line for line in result.get("underlay") or []]
        if len(revisions) > 1 and result.get("revision") != common:
            found.append("converged plan revision %s, the others %s: re-run site.yml"
                         % (result.get("revision"), common))
        if found:
            own[name] = found
    return problems, own


def matrix_lines(names, cells):
    corner = "from \\ to"
    width = max([len(n) for n in names] + [len(corner)]) + 2
    lines = [corner.ljust(width) + "".join(n.ljust(width) for n in names)]
    for name in names:
        lines.append(name.ljust(width) + "".join(
            ("-" if name == other else cells[(name, other)]).ljust(width) for other in names))
    return [line.rstrip() for line in lines]


def build(results):
    names = sorted(results)
    problems, own = host_problems(results)
    cells, pairs, explained = {}, [], []
    for name in names:
        for other in names:
            if name == other:
                continue
            cell, lines, entries = pair_verdict(name, other, results, problems)
            cells[(name, other)] = cell
            ok = cell not in ("LOST", "MTU", "FWD", "NOPEER", "?")
            pairs.append({"from": name, "to": other, "ok": ok, "cell": cell, "paths": entries,
                          "why": lines})
            if not ok:
                explained.append("%s -> %s: %s" % (name, other, "; ".join(lines)))
    for name in sorted(own):
        explained += ["%s: %s" % (name, line) for line in own[name]]
    backends = sorted({r.get("backend") for r in results.values() if r and r.get("backend")})
    mtus = sorted({r.get("overlay_mtu") for r in results.values() if r and r.get("overlay_mtu")})
    failed = [p for p in pairs if not p["ok"]]
    head = ("weft check (read-only: nothing was changed on any host): %d hosts, backend %s, "
            "overlay MTU %s; cells: mean round trip in ms" % (
                len(names), "/".join(backends) or "?", "/".join(map(str, mtus)) or "?"))
    summary = ("%d of %d ordered pairs failed" % (len(failed), len(pairs)) if failed else
               "all %d ordered pairs work" % len(pairs))
    if own:
        summary += "; %d host%s with problems of their own" % (len(own), "s" * (len(own) != 1))
    lines = [head] + matrix_lines(names, cells) + [summary] + explained
    return dict(ok=not failed and not own and not problems, matrix=lines,
                failures=explained, pairs=pairs, hosts={n: own.get(n, []) for n in names},
                unusable=problems)


def write_json(path, report, results):
    text = json.dumps(dict(report, time=time.time(), results=results), indent=1, sort_keys=True)
    directory = os.path.dirname(os.path.abspath(path))
    handle, tmp = tempfile.mkstemp(dir=directory, prefix=".weft-check-")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def run(params, ctx):
    report = build(params["results"])
    if params["json_path"]:
        write_json(params["json_path"], report, params["results"])
    return dict(report, changed=False)
