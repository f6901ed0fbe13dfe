# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bring a host to a desired state (host.model.HostState): the module cores in order, in
this process, then weft's files, links and users, and, at a converge, the record, the
code weft-restore runs and the services. What an earlier state held and the new one does
not (another backend's device, unit, user...) is removed.

weft_host calls this to converge (and, with an empty state, to uninstall); weft-restore
calls it at boot and between runs without the record, code and services.
"""

from __future__ import annotations

import json
import os
import time

from ..errors import WeftError
from ..files import (ensure_absent, ensure_file, ensure_link, ensure_mode,
                     read_text, require_lock, write_atomic)
from . import units
from .keys import promote_pending
from ..module import call
from ..net import (bridge, fdb, ingress, iptables, neighbours, nftables,
                   routes, tun, udp_fastpath, vxlan, wireguard)
from ..runtime import cni, docker

CORES = {"vxlan": vxlan, "tun": tun, "neighbours": neighbours, "fdb": fdb, "routes": routes,
         "iptables": iptables, "nftables": nftables, "ingress": ingress, "docker": docker,
         "wireguard": wireguard, "bridge": bridge, "udp_fastpath": udp_fastpath}
RECORD_VERSION = 2
# How long a failed dockerd restart may take to come up again through systemd's own restarts
# (RestartSec= 100 ms by default, and dockerd's start of a few seconds each).
DOCKER_RESTART_TIMEOUT = 60


class Run:
    """The result of one converge, gathered as it goes."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.result = dict(changed=False, steps=[], files_changed=[], services=[])
        self.diffs = []

    def changed_file(self, path, before=None, after=None):
        self.result["changed"] = True
        self.result["files_changed"].append(path)
        if self.ctx.diff and after is not None:
            self.diffs.append(dict(before=before or "", after=after,
                                   before_header=path, after_header=path))

    def step(self, core, params):
        """Run one core; its result, summarised (a list of thousands of peers is counted,
        not returned)."""
        try:
            outcome = call(CORES[core], params, self.ctx)
        except WeftError as exc:
            self.result["steps"].append(dict(core=core, failed=True, msg=str(exc)))
            raise WeftError("%s: %s" % (core, exc), **self.summary()) from None
        summary = dict(core=core, changed=outcome.get("changed", False))
        for key in ("added", "updated", "removed"):
            if outcome.get(key):
                summary[key] = len(outcome[key])
                summary["first_" + key] = outcome[key][:3]
        if outcome.get("recreated"):
            summary["recreated"] = True
        self.result["steps"].append(summary)
        for warning in outcome.get("warnings", ()):
            self.result.setdefault("warnings", []).append("%s: %s" % (core, warning))
        if outcome.get("changed"):
            self.result["changed"] = True
            if outcome.get("diff"):
                self.diffs.append(dict(outcome["diff"], before_header=core, after_header=core))
        return outcome

    def service(self, action):
        self.result["changed"] = True
        self.result["services"].append(action)

    def summary(self):
        return dict(self.result, diff=self.diffs) if self.ctx.diff else dict(self.result)


def systemctl(ctx, *args, allowed=(0,)):
    binary = ctx.which("systemctl")
    if binary is None:
        raise WeftError("systemctl: not found; weft's units need systemd")
    rc, out, err = ctx.run([binary] + list(args))
    if rc not in allowed:
        raise WeftError("systemctl %s: %s" % (" ".join(args), (err or out).strip()))
    return rc, out.strip()


def is_active(ctx, name):
    return systemctl(ctx, "is-active", name, allowed=range(256))[1] == "active"


def touched(paths, changed):
    """Whether any of `paths` (files, or directories standing for what lies below) changed."""
    return any(c == p or c.startswith(p.rstrip("/") + "/") for p in paths for c in changed)


def stop_services(run, services):
    for service in services:
        if run.ctx.check_mode:
            if os.path.exists(service["unit"]):
                run.service("stop " + service["name"])
        elif is_active(run.ctx, service["name"]):
            systemctl(run.ctx, "stop", service["name"])
            run.service("stop " + service["name"])


def start_services(run, state, units_changed):
    ctx, changed = run.ctx, run.result["files_changed"]
    if units_changed:
        if not ctx.check_mode:
            systemctl(ctx, "daemon-reload")
        run.service("daemon-reload")
    for service in state.services:
        name = service["name"]
        if ctx.check_mode and not os.path.exists(service["unit"]):
            run.service("start " + name)
            continue
        if not is_active(ctx, name):
            action = "start"
        elif touched(service["restart_on"], changed):
            action = "restart"
        elif touched(service["reload_on"], changed):
            action = "reload"
        else:
            continue
        if not ctx.check_mode:
            systemctl(ctx, action, name)
        run.service("%s %s" % (action, name))


def restart_docker(run):
    """dockerd takes its bridge settings only at start: restart it if it runs. systemd's
    start limit counts deliberate restarts as it counts crashes (Docker's unit: 3 starts in
    60 s, which a network switch and an uninstall within a minute reach), so it is reset
    first, when dockerd runs (a failed dockerd keeps its state for the operator)."""
    if not run.ctx.check_mode:
        if is_active(run.ctx, "docker.service"):
            systemctl(run.ctx, "reset-failed", "docker.service", allowed=range(256))
        started = time.time()
        try:
            systemctl(run.ctx, "try-restart", "docker.service")
        except WeftError as exc:
            await_docker_restart(run, started, str(exc).splitlines()[0])
    run.service("restart docker")


def docker_unit_state(ctx):
    out = systemctl(ctx, "show", "-p", "ActiveState", "-p", "SubState", "docker.service",
                    allowed=range(256))[1]
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return props.get("ActiveState", ""), props.get("SubState", "")


def docker_start_errors(ctx, since):
    """What dockerd and systemd said went wrong since `since` (dockerd logs every line at
    the journal's info priority, so its own level= decides)."""
    journalctl = ctx.which("journalctl")
    if journalctl is None:
        return "journalctl not found"
    rc, out, err = ctx.run([journalctl, "-u", "docker.service", "--since", "@%d" % int(since),
                            "--no-pager", "-o", "cat"])
    wanted = ("level=fatal", "level=error", "failed to start daemon", "Failed with result",
              "process exited")
    lines = [line.strip() for line in out.splitlines() if any(w in line for w in wanted)]
    # dockerd's storage probing (overlay2, aufs...) logs errors on every healthy start too
    lines = [line for line in lines if "storage-driver=" not in line]
    lines = list(dict.fromkeys(lines))  # each restart repeats systemd's lines
    return "; ".join(lines[-4:]) or (err or "nothing in the journal").strip()


def await_docker_restart(run, started, said, timeout=DOCKER_RESTART_TIMEOUT):
    """A restart whose first start failed: Docker's unit restarts dockerd itself
    (Restart=on-failure), and a transient failure passes on the next start. Wait for the
    unit to settle: active is a success with a warning that names the failure; failed (or
    still not up after `timeout` seconds) is an error naming it."""
    deadline = time.time() + timeout
    state = docker_unit_state(run.ctx)
    while state[0] in ("activating", "deactivating", "reloading") and time.time() < deadline:
        time.sleep(0.5)
        state = docker_unit_state(run.ctx)
    reason = docker_start_errors(run.ctx, started)
    if state[0] != "active":
        raise WeftError("%s; docker.service is %s (%s); dockerd said: %s"
                        % (said, state[0] or "unknown", state[1], reason),
                        **run.summary())
    run.result.setdefault("warnings", []).append(
        "docker.service: dockerd failed its first start after the restart and systemd "
        "started it again; dockerd said: %s" % reason)


def install_runtime(run, sources):
    """The code weft-restore runs at boot, below units.MODULE_UTILS; nothing else stays."""
    wanted = {os.path.join(units.MODULE_UTILS, path): text for path, text in sources.items()}
    for path, text in sorted(wanted.items()):
        changed, before = ensure_file(path, text, 0o644, run.ctx.check_mode)
        if changed:
            run.changed_file(path)
    for top, dirs, files in os.walk(units.MODULE_UTILS, topdown=False):
        if os.path.basename(top) == "__pycache__":
            continue  # Python's caches of the code above, made by weft-restore
        for name in files:
            path = os.path.join(top, name)
            if path not in wanted and ensure_absent(path, run.ctx.check_mode):
                run.changed_file(path)


def owned(paths):
    """Files weft may remove: not kernel settings under /proc (ip_forward stays as it is)."""
    return [path for path in paths if not path.startswith("/proc/")]


def converge(ctx, state, old, record=None, sources=None, services=True, given_secrets=None,
             released_cni=None):
    """Bring the host to `state`, removing what `old` (everything weft may have put here)
    holds and `state` does not. The caller holds the apply lock and read `old`'s record
    under it. With `record` (plan, identity, settings) and `sources` (the code), write both
    for weft-restore; with `services`, start, restart and reload weft's units and dockerd
    as their files changed. `given_secrets` ({path: content, or None for none}) marks
    weft_host's converge: those are written first, and the secrets' pending replacements
    put in place, so the devices start from the keys the plan announced; only such a
    converge removes the secrets a state no longer keeps (a weft-restore pass never does:
    weft_facts may have made a key for a converge still to come, which the pass's record
    predates). `released_cni`: the CNI network the host served before and no longer does."""
    require_lock("converge")
    run = Run(ctx)
    gone_devices = sorted(old.devices - state.devices)
    gone_files = owned(sorted(set(old.files) - set(state.files)))
    gone_links = sorted(set(old.links) - set(state.links))
    gone_secrets = sorted(old.secrets - state.secrets) if given_secrets is not None else []
    gone_outputs = sorted(old.outputs - state.outputs)
    gone_users = [u for u in old.users if u["name"] not in {n["name"] for n in state.users}]
    wanted = {s["name"] for s in state.services}
    gone_services = [s for s in old.services if s["name"] not in wanted]
    if services:
        stop_services(run, gone_services)
    for user in state.users:
        ensure_user(run, user)
    for item in state.modes:
        if ensure_mode(item["path"], int(item["mode"], 8), ctx.check_mode):
            run.changed_file("mode %s %s" % (item["mode"], item["path"]))
    for core, name in gone_devices:
        run.step(core, dict(name=name, state="absent"))
    if given_secrets is not None:
        ensure_secrets(run, state.secrets, given_secrets)
    restart_docker_wanted = False
    for item in state.steps:
        outcome = run.step(item["core"], item["params"])
        restart_docker_wanted |= bool(outcome.get("daemon_json_changed"))
    for path, (content, mode) in sorted(state.files.items()):
        changed, before = ensure_file(path, content, int(mode, 8), ctx.check_mode)
        if changed:
            run.changed_file(path, before, content)
    for path, target in sorted(state.links.items()):
        if ensure_link(path, target, ctx.check_mode):
            run.changed_file(path)
    for path in gone_links + gone_files + gone_secrets + gone_outputs:
        if ensure_absent(path, ctx.check_mode):
            run.changed_file(path)
    for user in gone_users:
        remove_user(run, user["name"])
    release_ipam(run, released_cni)
    if record is not None:
        text = json.dumps(dict(record, version=RECORD_VERSION), indent=1, sort_keys=True) + "\n"
        changed, before = ensure_file(units.RECORD, text, 0o644, ctx.check_mode)
        if changed:
            run.changed_file(units.RECORD)
    if sources is not None:
        install_runtime(run, sources)
    if services:
        unit_paths = [p for p in run.result["files_changed"] if p.endswith(".service")]
        start_services(run, state, bool(unit_paths))
        if restart_docker_wanted:
            restart_docker(run)
    return run.summary()


def ensure_secrets(run, kept, given):
    """Secret files: the given ones this state keeps, written root-only (compared in
    memory, never diffed), absent when None; then the pending replacements promoted."""
    for path, content in sorted(given.items()):
        if path not in kept:
            continue    # gone with the backend: removed below with the other secrets
        if content is None:
            changed = ensure_absent(path, run.ctx.check_mode)
        else:
            changed = (read_text(path) or None) != content
            if changed and not run.ctx.check_mode:
                write_atomic(path, content, mode=0o400)
        if changed:
            run.changed_file(path)      # the path only: the content stays unsaid
    for path in promote_pending(kept, run.ctx.check_mode):
        run.changed_file(path)


def ensure_user(run, user):
    """A system user (and its group) with no home and no login shell, for a daemon."""
    import pwd
    try:
        pwd.getpwnam(user["name"])
        return
    except KeyError:
        pass
    if not run.ctx.check_mode:
        rc, dummy, err = run.ctx.run([run.ctx.which("useradd") or "useradd", "--system", "--user-group",
                                      "--no-create-home", "--home-dir", "/nonexistent",
                                      "--shell", "/usr/sbin/nologin", "--comment",
                                      user.get("comment") or "weft", user["name"]])
        if rc:
            raise WeftError("user %s: useradd failed: %s" % (user["name"], err.strip()))
    run.changed_file("user " + user["name"])


def remove_user(run, name):
    import pwd
    try:
        pwd.getpwnam(name)
    except KeyError:
        return
    if not run.ctx.check_mode:
        rc, dummy, err = run.ctx.run([run.ctx.which("userdel") or "userdel", name])
        if rc:
            raise WeftError("user %s: userdel failed: %s" % (name, err.strip()))
    run.changed_file("user %s (removed)" % name)


def uninstall(ctx, old, settings, network=None, keep_secrets=False, cni_name=None):
    """Remove everything weft put on this host (`old`: what the record and weft's defaults
    say that is), and put Docker back as it was before weft's first run. `keep_secrets`:
    leave the secret files (keys), so that a reinstall keeps the host's identity.
    `cni_name`: the CNI network weft served (see release_ipam). The caller holds the apply
    lock and read the record under it."""
    require_lock("uninstall")
    run = Run(ctx)
    # weft-heal first: a pass waiting for this lock abandons its wait when told to stop.
    stop_services(run, old.services)
    for core, name in sorted(old.devices):
        run.step(core, dict(name=name, state="absent"))
    run.step("routes", dict(routes=[], purge=True, protocol=settings["route_protocol"]))
    for chain in iptables.CHAINS:
        for family in sorted(iptables.COMMANDS):
            run.step("iptables", dict(chain, family=family, state="absent"))
    for family in sorted(nftables.TABLES):
        run.step("nftables", dict(family=family, state="absent"))
    run.step("ingress", dict(state="absent"))
    for path in sorted(old.links) + owned(sorted(old.files)) + sorted(old.outputs):
        if ensure_absent(path, ctx.check_mode):
            run.changed_file(path)
    for user in old.users:
        remove_user(run, user["name"])
    release_ipam(run, cni_name)
    if settings["docker"]:
        put_docker_back(run, settings, network)
    kept = set(old.secrets) if keep_secrets else set()
    for path in remove_tree_except(units.CONFIG, kept) + [units.RUNTIME]:
        if ensure_absent(path, ctx.check_mode):
            run.changed_file(path)
    if any(p.endswith(".service") for p in run.result["files_changed"]):
        if not ctx.check_mode:
            systemctl(ctx, "daemon-reload")
        run.service("daemon-reload")
    return run.summary()


def release_ipam(run, cni_name):
    """host-local's bookkeeping of the CNI network `cni_name` (one weft no longer serves)
    goes once no container holds an address in it."""
    path = cni.unused_ipam_state(cni_name) if cni_name else None
    if path and ensure_absent(path, run.ctx.check_mode):
        run.changed_file(path)


def remove_tree_except(top, kept):
    """What to remove of the directory `top` so that only the paths in `kept` stay: the
    whole directory when none of them is there, else everything else in it."""
    if not any(os.path.lexists(path) for path in kept if path.startswith(top + "/")):
        return [top]
    return sorted(os.path.join(top, name) for name in os.listdir(top)
                  if os.path.join(top, name) not in kept)


def put_docker_back(run, settings, network):
    params = dict(path=settings["docker_daemon_json"], original=units.DOCKER_ORIGINAL,
                  state="absent", network=network)
    first = run.step("docker", params)
    if first.get("bridge_moving_to"):
        # dockerd must start once on its old bridge address to forget the overlay's.
        restart_docker(run)
        if run.ctx.check_mode:
            run.service("restart docker (again, without weft's bip)")
            return
        first = run.step("docker", params)
    if first.get("daemon_json_changed"):
        restart_docker(run)
