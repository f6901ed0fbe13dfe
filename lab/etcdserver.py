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
import ssl
import subprocess
import sys
import time
import urllib.request

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def url(port, tls=None):
    return "%s://127.0.0.1:%d" % ("https" if tls else "http", port)


def tls_context(tls):
    """A client context for `tls` ({ca, cert, key}: files), or None for plain http."""
    if not tls:
        return None
    context = ssl.create_default_context(cafile=tls["ca"])
    context.load_cert_chain(tls["client_cert"], tls["client_key"])
    return context


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


def healthy(port, tls=None):
    try:
        with urllib.request.urlopen(url(port, tls) + "/health", timeout=1,
                                    context=tls_context(tls)) as resp:
            return json.loads(resp.read()).get("health") == "true"
    except (OSError, ValueError):
        return False


def start(directory, port, timeout=30, tls=None):
    """Start etcd unless the one in `directory` already runs; returns its client URL.

    tls: {cert, key, ca, client_cert, client_key} files for an https etcd that requires
    client certificates signed by `ca`.
    """
    if _pid(directory) and healthy(port, tls):
        return url(port, tls)
    stop(directory)
    os.makedirs(directory)
    peer = "http://127.0.0.1:%d" % (port + 1)
    args = [ETCD, "--name", "weft", "--data-dir", os.path.join(directory, "data"),
            "--listen-client-urls", url(port, tls), "--advertise-client-urls", url(port, tls),
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", "weft=" + peer, "--log-level", "warn"]
    if tls:
        args += ["--cert-file", tls["cert"], "--key-file", tls["key"],
                 "--trusted-ca-file", tls["ca"], "--client-cert-auth"]
    with open(os.path.join(directory, "etcd.log"), "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    with open(os.path.join(directory, "etcd.pid"), "w") as handle:
        handle.write(str(proc.pid))
    deadline = time.time() + timeout
    while not healthy(port, tls):
        if proc.poll() is not None or time.time() > deadline:
            with open(os.path.join(directory, "etcd.log"), errors="replace") as log:
                tail = log.read()[-2000:]
            stop(directory)
            raise RuntimeError("etcd on port %d did not start:\n%s" % (port, tail))
        time.sleep(0.1)
    return url(port, tls)


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
