# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""weft-udpd's status file, read from outside the daemon: whether the process that wrote
it still runs (its PID, start time and command line), its counters as of now (SIGUSR1
makes it rewrite them), and `weft-udpd status`. weft.overlay.check and the metrics read
the daemon through this alone, without importing its forwarding loop."""
# `weft-udpd status` is a command run by people, not a module: it prints to stdout.
# pylint: disable=ansible-bad-function

from __future__ import annotations

import json
import os
import signal
import time

from .config import DEFAULT_STATUS_FILE

EXIT_NOT_RUNNING = 3                    # LSB: program is not running
# How the daemon's process shows in /proc/PID/cmdline: the installed launcher, the file,
# or `python3 -m weft.daemon.udpd`.
DAEMON_NAMES = {b"weft-udpd", b"udpd.py", b"weft.daemon.udpd"}


def process_start_time(pid) -> str | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks since boot): with the PID,
    it names one process for the life of the system."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError, ValueError):
        return None


def running_daemon(status):
    """The PID in a status file, if that process is the daemon that wrote it."""
    pid = status.get("pid")
    if not isinstance(pid, int) or pid <= 0 or status.get("stopped"):
        return None
    if process_start_time(pid) != status.get("started"):
        return None  # gone, or the PID now belongs to another process
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            argv = handle.read().split(b"\0")
    except OSError:
        return None
    ours = any(os.path.basename(arg) in DAEMON_NAMES for arg in argv)
    return pid if ours and b"run" in argv else None


def read_status(path):
    try:
        with open(path) as handle:
            status = json.load(handle)
        return status if isinstance(status, dict) else None
    except (OSError, ValueError):
        return None


def status_file_of(config_path):
    """The status file CONFIG names, read leniently: a config broken since the daemon
    started still tells where its status is."""
    try:
        with open(config_path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except (OSError, ValueError, RecursionError):
        raw = None
    path = raw.get("status_file") if isinstance(raw, dict) else None
    return path if isinstance(path, str) and path.startswith("/") else DEFAULT_STATUS_FILE


def running_status(path):
    """The status file's counters if the daemon that wrote them is running (it rewrites
    them every STATUS_EVERY seconds), else None."""
    status = read_status(path)
    return status if status and running_daemon(status) else None


def current_status(path, wait=3.0):
    """The running daemon's counters as of now (it rewrites its status file on SIGUSR1);
    None when it is not running."""
    status = read_status(path)
    pid = running_daemon(status) if status else None
    if pid is None:
        return None
    before = os.stat(path).st_mtime_ns
    os.kill(pid, signal.SIGUSR1)
    deadline = time.time() + wait
    while os.stat(path).st_mtime_ns == before and time.time() < deadline:
        time.sleep(0.05)
    return read_status(path)


def status_command(config_path):
    path = status_file_of(config_path)
    status = current_status(path)
    if status is None:
        status = read_status(path)
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(status["time"])) \
            if status and isinstance(status.get("time"), (int, float)) else None
        print("weft-udpd is not running%s" % (" (its last status is from %s)" % when if when else ""))
        return EXIT_NOT_RUNNING
    print(json.dumps(status, indent=2, sort_keys=True))
    return 0
