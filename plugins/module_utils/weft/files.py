# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small files, written whole: read, replace atomically, and the host's converge lock.
Standard library only: the controller (lease file) and hosts (at boot too) import it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time

LOCK_POLL = 0.05    # seconds between tries of a wait that may be abandoned
_held = []          # the lock's descriptor while this process holds it


def read_text(path) -> str | None:
    """The file's text, or None when it does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def write_atomic(path, text, mode=0o644):
    """Replace `path` by a file written beside it and renamed: a crash leaves the old file
    whole. Missing parent directories are created."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class LockAbandoned(Exception):
    """The wait for the lock was given up (the process is asked to stop)."""


@contextlib.contextmanager
def exclusive_lock(path, abandon=None):
    """flock() on `path` (created, mode 0600) for the duration of the block. With
    `abandon`, a callable asked while waiting: when it says True the wait ends with
    LockAbandoned (a watch told to stop must not wait for a converge that is stopping it)."""
    if _held:
        raise RuntimeError("the apply lock is already held by this process")
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if abandon is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if abandon():
                        raise LockAbandoned(path) from None
                    time.sleep(LOCK_POLL)
        _held.append(fd)
        try:
            yield
        finally:
            _held.remove(fd)
    finally:
        os.close(fd)


def require_lock(what):
    """Refuse to `what` (change the host from its record) without the apply lock."""
    if not _held:
        raise RuntimeError("%s without the apply lock (files.exclusive_lock)" % what)


def ensure_file(path, content, mode=0o644, check_mode=False):
    """Give `path` this content and mode; (changed, content before). Files under /proc
    are written in place."""
    before = read_text(path)
    in_proc = path.startswith("/proc/")
    same_mode = before is None or in_proc or (os.stat(path).st_mode & 0o7777) == mode
    if before == content and same_mode:
        return False, before
    if not check_mode:
        if in_proc:
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
    """Remove a file, link or directory tree weft no longer wants."""
    if not os.path.lexists(path):
        return False
    if not check_mode:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    return True


def ensure_mode(path, mode, check_mode=False) -> bool:
    """Permission bits of an existing path weft does not own (a device node)."""
    if (os.stat(path).st_mode & 0o7777) == mode:
        return False
    if not check_mode:
        os.chmod(path, mode)
    return True
