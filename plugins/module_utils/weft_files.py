# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading and atomically replacing small text files (lease file, daemon.json, weft's own
files). Standard library only: hosts import it too, at converge and at boot."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile

# Held by weft_apply while it converges the host, and by each weft-restore pass, so that
# the two never interleave.
APPLY_LOCK = "/run/weft/apply.lock"


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


@contextlib.contextmanager
def exclusive_lock(path=APPLY_LOCK):
    """flock() on `path` (created, mode 0600) for the duration of the block."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
