# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply a host's whole overlay state in one process: weft's modules, then its files.

A task costs Ansible a round trip and a Python start per host, which at 16 hosts on a
small controller is most of a run. weft_apply therefore takes the list of module calls
(the same modules, with the same arguments, as separate tasks would make) and runs them
here in order, each through its own AnsibleModule: the same argument checks, the same
reconcile code, the same results. weft-restore replays the recorded list at boot with
this same code, which weft_apply installs beside the state it records.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pwd
import subprocess
import sys

from ansible.module_utils import basic
from ansible.module_utils import (weft_docker_impl, weft_fdb_impl, weft_ingress_impl,
                                  weft_iptables_impl, weft_neighbours_impl, weft_routes_impl,
                                  weft_tun_impl, weft_vxlan_impl)
from ansible.module_utils.weft_files import read_text, write_atomic

STEP_MODULES = {
    "weft_vxlan": weft_vxlan_impl, "weft_tun": weft_tun_impl,
    "weft_neighbours": weft_neighbours_impl, "weft_fdb": weft_fdb_impl,
    "weft_routes": weft_routes_impl, "weft_iptables": weft_iptables_impl,
    "weft_docker": weft_docker_impl, "weft_ingress": weft_ingress_impl,
}
# What weft-restore imports at boot: this runner and everything it runs.
RUNTIME = ["weft_apply_runner", "weft_files", "weft_netlink", "weft_reconcile", "weft_device",
           "weft_validate"] + sorted(m.__name__.rsplit(".", 1)[-1] for m in STEP_MODULES.values())


def run_step(name, args, check_mode=False, diff=False) -> dict:
    """Run one weft module in this process with `args`; returns its result dict."""
    # (no_log: the step's invocation is not logged again; weft_apply's own is)
    params = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff, _ansible_no_log=True)
    basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": params}).encode()
    if hasattr(basic, "_ANSIBLE_PROFILE") and not basic._ANSIBLE_PROFILE:
        basic._ANSIBLE_PROFILE = "legacy"  # ansible-core 2.19+ needs a serialization profile
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            STEP_MODULES[name].main()
        except SystemExit:
            pass
    for line in reversed(out.getvalue().splitlines()):
        if line.startswith("{"):
            result = json.loads(line)
            result.pop("invocation", None)
            return result
    return {"failed": True, "msg": "printed no result: %s" % out.getvalue()[-500:]}


def ensure_file(path, content, mode=0o644, check_mode=False) -> tuple:
    """Give `path` this content and mode; (changed, content before). /proc is written in place."""
    before = read_text(path)
    same_mode = before is None or path.startswith("/proc/") or \
        (os.stat(path).st_mode & 0o7777) == mode
    if before == content and same_mode:
        return False, before
    if check_mode:
        return True, before
    if path.startswith("/proc/"):
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(content)
    else:
        write_atomic(path, content, mode)
    return True, before


def ensure_link(path, target, check_mode=False) -> bool:
    """Make `path` a symlink to `target` (how systemctl enable records a unit)."""
    if os.path.islink(path) and os.readlink(path) == target:
        return False
    if not check_mode:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.symlink(target, path)
    return True


def ensure_absent(path, check_mode=False) -> bool:
    """Remove a file or link weft no longer wants (never a directory)."""
    if not os.path.lexists(path):
        return False
    if not check_mode:
        os.unlink(path)
    return True


def ensure_user(name, comment, check_mode=False) -> bool:
    """A system user (and its group) with no home and no login, for a daemon."""
    try:
        pwd.getpwnam(name)
        return False
    except KeyError:
        pass
    if not check_mode:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                        "--comment", comment, name], check=True, capture_output=True)
    return True


def ensure_mode(path, mode, check_mode=False) -> bool:
    """Permission bits of an existing path weft does not own (a device node)."""
    if (os.stat(path).st_mode & 0o7777) == mode:
        return False
    if not check_mode:
        os.chmod(path, mode)
    return True


def runtime_sources() -> dict:
    """file name -> source of the code weft-restore needs, read from the running code."""
    sources = {}
    for name in RUNTIME:
        module = sys.modules["ansible.module_utils." + name]
        sources[name + ".py"] = module.__loader__.get_source(module.__name__)
    return sources


def _note_change(result, path, before=None, after=None, diff=False):
    result["changed"] = True
    result["files_changed"].append(path)
    if diff and after is not None:
        result["diff"].append(dict(before=before or "", after=after,
                                   before_header=path, after_header=path))


def write_files(items, result, check_mode=False, diff=False):
    """Give every {path, content, mode} item its content, noting each change in `result`."""
    for item in items:
        changed, before = ensure_file(item["path"], item["content"],
                                      int(str(item.get("mode") or "0644"), 8), check_mode)
        if changed:
            _note_change(result, item["path"], before, item["content"], diff)


def apply(state, check_mode=False, diff=False) -> dict:
    """Ensure state['users'] and state['modes'], run state['steps'], then write
    state['files'] and state['links'] and remove state['absent'].

    Stops at the first failing step (its message names the module); files and links are
    written only when every step succeeded.
    """
    result = {"changed": False, "steps": [], "files_changed": [], "diff": []}
    try:
        for user in state.get("users", []):
            if ensure_user(user["name"], user.get("comment") or "weft", check_mode):
                _note_change(result, "user " + user["name"])
        for item in state.get("modes", []):
            if ensure_mode(item["path"], int(str(item["mode"]), 8), check_mode):
                _note_change(result, "mode %s %s" % (item["mode"], item["path"]))
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        result.update(failed=True, msg="%s %s" % (exc, detail.decode(errors="replace").strip()))
        return result
    for step in state.get("steps", []):
        outcome = run_step(step["module"], step.get("args") or {}, check_mode, diff)
        step_diff = outcome.pop("diff", None)
        result["steps"].append(dict(outcome, module=step["module"]))
        if outcome.get("failed"):
            result.update(failed=True, msg="%s: %s" % (step["module"], outcome.get("msg")))
            return result
        if outcome.get("changed"):
            result["changed"] = True
            if step_diff:
                result["diff"].append(dict(step_diff, before_header=step["module"],
                                           after_header=step["module"]))
    write_files(state.get("files", []), result, check_mode, diff)
    for item in state.get("links", []):
        if ensure_link(item["path"], item["target"], check_mode):
            _note_change(result, item["path"])
    for path in state.get("absent", []):
        if ensure_absent(path, check_mode):
            _note_change(result, path)
    return result
