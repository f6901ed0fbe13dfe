#!/usr/bin/env python3
"""A throwaway single-member etcd on loopback, for the lab and the tests.

    etcdserver.py start DIR PORT   start etcd (data, pid and log in DIR); prints its URL
    etcdserver.py stop DIR         stop the etcd started in DIR and remove DIR

Uses Debian's etcd-server binary. Peer traffic stays on 127.0.0.1 too (PORT + 1).
Standard library only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def url(port):
    return "http://127.0.0.1:%d" % port


def _pid(directory):
    try:
        with open(os.path.join(directory, "etcd.pid")) as handle:
            pid = int(handle.read().strip())
    except (OSError, ValueError):
        return None
    # Only a process that is still our etcd (the pid may have been reused).
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            cmdline = handle.read().split(b"\0")
    except OSError:
        return None
    return pid if os.path.join(directory, "data").encode() in cmdline else None


def healthy(port):
    try:
        with urllib.request.urlopen(url(port) + "/health", timeout=1) as resp:
            return json.loads(resp.read()).get("health") == "true"
    except (OSError, ValueError):
        return False


def start(directory, port, timeout=30):
    """Start etcd unless the one in `directory` already runs; returns its client URL."""
    if _pid(directory) and healthy(port):
        return url(port)
    stop(directory)
    os.makedirs(directory)
    peer = "http://127.0.0.1:%d" % (port + 1)
    with open(os.path.join(directory, "etcd.log"), "wb") as log:
        proc = subprocess.Popen(
            [ETCD, "--name", "weft", "--data-dir", os.path.join(directory, "data"),
             "--listen-client-urls", url(port), "--advertise-client-urls", url(port),
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", "weft=" + peer, "--log-level", "warn"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    with open(os.path.join(directory, "etcd.pid"), "w") as handle:
        handle.write(str(proc.pid))
    deadline = time.time() + timeout
    while not healthy(port):
        if proc.poll() is not None or time.time() > deadline:
            with open(os.path.join(directory, "etcd.log"), errors="replace") as log:
                tail = log.read()[-2000:]
            stop(directory)
            raise RuntimeError("etcd on port %d did not start:\n%s" % (port, tail))
        time.sleep(0.1)
    return url(port)


def stop(directory):
    pid = _pid(directory)
    if pid:
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if _pid(directory) is None:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(directory, ignore_errors=True)


def main(argv):
    if len(argv) == 3 and argv[0] == "start":
        print(start(argv[1], int(argv[2])))
    elif len(argv) == 2 and argv[0] == "stop":
        stop(argv[1])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
