#!/usr/bin/python3
"""weft-restore: re-apply this host's last converged overlay at boot, without the controller.

site.yml writes /etc/weft/state.json: the module calls that built this host's overlay
(device, neighbours, FDB entries, routes, iptables chains) with their arguments, and the
files weft keeps under /run. At boot, before Docker and the udp daemon, this runs the same
modules with the same arguments through the distribution's ansible-core, so the kernel
comes back exactly as the modules left it: the same reconcile code, nothing re-implemented.

    weft-restore.py [STATE]     (default /etc/weft/state.json)
"""

import contextlib
import importlib.util
import io
import json
import os
import sys

LIB = "/usr/local/lib/weft"
STATE = "/etc/weft/state.json"


def run_module(name, args):
    """Run library/<name>.py's main() with `args`; returns its result dict."""
    from ansible.module_utils import basic
    basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()
    spec = importlib.util.spec_from_file_location(name, os.path.join(LIB, "library", name + ".py"))
    module = importlib.util.module_from_spec(spec)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            spec.loader.exec_module(module)
            module.main()
        except SystemExit:
            pass
    try:
        return json.loads(out.getvalue())
    except ValueError:
        return {"failed": True, "msg": "no result: %s" % out.getvalue()[-500:]}


def write_file(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".weft-tmp"
    with open(tmp, "w") as handle:
        handle.write(content)
    os.replace(tmp, path)


def main(argv):
    path = argv[1] if len(argv) > 1 else STATE
    with open(path) as handle:
        state = json.load(handle)
    import ansible.module_utils
    ansible.module_utils.__path__.append(os.path.join(LIB, "module_utils"))
    failures = 0
    for step in state["steps"]:
        result = run_module(step["module"], step["args"])
        if result.get("failed"):
            failures += 1
            print("weft-restore: %s failed: %s" % (step["module"], result.get("msg")), flush=True)
        else:
            print("weft-restore: %s %s" % (step["module"], "changed" if result.get("changed") else "ok"),
                  flush=True)
    for file_path, content in sorted(state.get("files", {}).items()):
        write_file(file_path, content)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
