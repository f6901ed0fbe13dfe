#!/usr/bin/python3
"""weft-restore: re-apply this host's last converged overlay at boot, without the controller.

weft_apply records in /etc/weft/state.json the module calls that built this host's overlay
(device, neighbours, FDB entries, routes, iptables chains, Docker's settings) with their
arguments, and the files and links weft keeps, and installs the code that ran them in
/usr/local/lib/weft/module_utils. At boot, before Docker and the udp daemon, this runs the
same code on the same state with the distribution's ansible-core, so the kernel comes back
exactly as the modules left it: nothing re-implemented.

    weft-restore.py [STATE [RUNTIME]]
"""

import json
import sys

STATE = "/etc/weft/state.json"
RUNTIME = "/usr/local/lib/weft/module_utils"


def main(argv):
    state_path = argv[1] if len(argv) > 1 else STATE
    runtime = argv[2] if len(argv) > 2 else RUNTIME
    with open(state_path) as handle:
        state = json.load(handle)
    import ansible.module_utils
    ansible.module_utils.__path__.append(runtime)
    from ansible.module_utils.weft_apply_runner import apply

    result = apply(state)
    for step in result["steps"]:
        print("weft-restore: %s %s" % (step["module"], "changed" if step.get("changed") else "ok"),
              flush=True)
    for path in result["files_changed"]:
        print("weft-restore: wrote %s" % path, flush=True)
    if result.get("failed"):
        print("weft-restore: %s" % result["msg"], flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
