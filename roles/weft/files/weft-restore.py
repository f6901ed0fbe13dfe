#!/usr/bin/python3
"""weft-restore: put this host's overlay back as weft last converged it, without the controller.

weft_apply records in /etc/weft/state.json the module calls that built this host's overlay
(device, neighbours, FDB entries, routes, iptables chains, peer-only ingress, Docker's
settings) with their arguments, and the files and links weft keeps, and installs the code
that ran them in /usr/local/lib/weft/module_utils. This runs the same code on the same
record with the distribution's ansible-core, so the kernel comes back exactly as the
modules left it: nothing re-implemented.

    weft-restore.py [STATE [RUNTIME]]                  once (at boot, before Docker)
    weft-restore.py --watch SECONDS [STATE [RUNTIME]]  keep it so (weft-heal.service)

With --watch it applies the record again whenever the kernel reports a deleted link,
address, route or neighbour entry, or any nftables change (iptables-nft and nft rules),
and at least every SECONDS; each pass changes only what drifted and logs what it
repaired. A converge from the controller and a pass never overlap (both hold
/run/weft/apply.lock), and each pass reads the record afresh.
"""

import json
import os
import resource
import select
import signal
import socket
import struct
import sys
import time

STATE = "/etc/weft/state.json"
RUNTIME = "/usr/local/lib/weft/module_utils"
# rtnetlink groups: links, neighbours (FDB entries too), IPv4 addresses and routes.
RTMGRP = 0x1 | 0x4 | 0x10 | 0x40
# What counts as drift: links changed or gone, addresses, routes and neighbours gone. New
# neighbour states (ARP churn on the underlay) do not.
RTM_EVENTS = {16, 17, 21, 25, 29}   # NEWLINK, DELLINK, DELADDR, DELROUTE, DELNEIGH
NETLINK_NETFILTER, NFNLGRP_NFTABLES = 12, 7
SETTLE = 1.0        # after an event, wait for the burst to end
MIN_GAP = 5.0       # at most one pass per this many seconds on events


def log(message):
    print("weft-restore: " + message, flush=True)


def load_runner(runtime):
    """weft_apply's runner and lock, from the code weft_apply installed."""
    import ansible.module_utils
    if runtime not in ansible.module_utils.__path__:
        ansible.module_utils.__path__.append(runtime)
    from ansible.module_utils.weft_apply_runner import apply
    from ansible.module_utils.weft_files import exclusive_lock
    return apply, exclusive_lock


def describe(step, args):
    """What one step changed, in a line for the journal."""
    name = args.get("chain") or args.get("name") or args.get("dev") or args.get("path") or ""
    words = []
    for key in ("added", "updated", "removed"):
        if step.get(key):
            words.append("%s %s" % (key, "; ".join(step[key])))
    if step.get("recreated"):
        words.append("re-created")
    return "%s: %s" % (" ".join(filter(None, (step["module"], name))), ", ".join(words) or "changed")


def one_pass(apply, state_path, quiet=False):
    """Apply the record once; returns (changed, failed)."""
    try:
        with open(state_path) as handle:
            state = json.load(handle)
    except FileNotFoundError:
        return False, False  # not converged yet, or uninstalled: nothing to keep
    except ValueError as exc:
        log("%s: %s" % (state_path, exc))
        return False, True
    result = apply(state)
    for step, called in zip(result["steps"], state.get("steps", [])):
        if step.get("changed"):
            log("repaired " + describe(step, called.get("args") or {}))
        elif not quiet:
            log("%s ok" % step["module"])
    for path in result["files_changed"]:
        log("repaired %s" % path)
    if result.get("failed"):
        log(result["msg"])
    return result["changed"], bool(result.get("failed"))


def event_sockets():
    """Netlink sockets that wake the watch on drift; those the kernel refuses are skipped."""
    sockets = []
    for protocol, groups in ((socket.NETLINK_ROUTE, RTMGRP),
                             (NETLINK_NETFILTER, 1 << (NFNLGRP_NFTABLES - 1))):
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK,
                                 protocol)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.bind((0, groups))
            sockets.append(sock)
        except OSError as exc:
            log("no %s events (%s); checking on the timer only"
                % ("rtnetlink" if protocol == socket.NETLINK_ROUTE else "nftables", exc))
    return sockets


def drifted(sock):
    """Drain a socket; True if any message may mean drift."""
    relevant = False
    while True:
        try:
            data = sock.recv(1 << 16)
        except BlockingIOError:
            return relevant
        except OSError:  # ENOBUFS: events were lost, so look anyway
            return True
        if sock.proto != socket.NETLINK_ROUTE:
            relevant = True
            continue
        offset = 0
        while offset + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, offset)
            relevant = relevant or kind in RTM_EVENTS
            offset += max((length + 3) & ~3, 16)


def watch(apply, lock, state_path, interval):
    stop = []
    # A signal wakes select() through this pipe (PEP 475 would otherwise resume the wait).
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    sockets = event_sockets()
    log("keeping %s: on kernel events and every %ds" % (state_path, interval))
    last = 0.0
    while not stop:
        deadline = time.monotonic() + interval
        due = False
        while not stop and not due and time.monotonic() < deadline:
            ready = select.select(sockets + [wake_read], [], [],
                                  max(0.0, deadline - time.monotonic()))[0]
            due = any([drifted(sock) for sock in ready if sock is not wake_read])
        if stop:
            break
        if due:
            # Let the burst end (a firewall reload is many events), at most one pass per
            # MIN_GAP. Events of our own repairs wake one more pass, which finds nothing.
            select.select([wake_read], [], [], max(SETTLE, last + MIN_GAP - time.monotonic()))
            if stop:
                break
            for sock in sockets:
                drifted(sock)
        last = time.monotonic()
        try:
            with lock():
                one_pass(apply, state_path, quiet=True)
        except Exception as exc:  # keep watching; the next pass may succeed
            log("pass failed: %r" % (exc,))
    log("stopped")
    return 0


def cost(apply, lock, state_path, passes):
    """CPU seconds of a pass that finds nothing to repair (the watch's price)."""
    before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(passes):
        with lock():
            one_pass(apply, state_path, quiet=True)
    after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime for a, b in zip(after, before))
    print(json.dumps({"passes": passes, "cpu_seconds_per_pass": cpu / passes}))
    return 0


def main(argv):
    args = argv[1:]
    mode, number = None, 0
    if args and args[0] in ("--watch", "--cost"):
        if len(args) < 2 or not args[1].isdigit() or int(args[1]) < 1:
            print(__doc__.split("\n\n")[2], file=sys.stderr)
            return 2
        mode, number, args = args[0], int(args[1]), args[2:]
    state_path = args[0] if args else STATE
    apply, lock = load_runner(args[1] if len(args) > 1 else RUNTIME)
    if mode == "--watch":
        return watch(apply, lock, state_path, number)
    if mode == "--cost":
        return cost(apply, lock, state_path, number)
    with lock():
        _, failed = one_pass(apply, state_path)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
