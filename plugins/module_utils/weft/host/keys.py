# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""This host's WireGuard key pair: the private key is made here, kept in a root-only file
and never leaves the host; only its public key is reported (weft_facts) for the lease.

A rotation makes the new key beside the one in use (`<key>.next`): weft_facts reports its
public key, the plan hands it to every peer, and weft_host puts it in place
(`promote_pending`) as it converges. Until then the device keeps the key its peers know, so
a run that stops between the two (or weft-heal passing in between) cuts nobody off; the
next run reports the pending key again and finishes the change.
"""

from __future__ import annotations

import os

from ..errors import WeftError
from ..files import exclusive_lock, read_text, write_atomic
from .units import APPLY_LOCK, WIREGUARD_KEY, WIREGUARD_KEY_NEXT


def wireguard_public_key(ctx, path=WIREGUARD_KEY, pending=WIREGUARD_KEY_NEXT, rotate=False):
    """(public key, what was made) for this host's lease: the pending key's when there is
    one, else the key's in `path`; a key is made first when there is none ("new") or when
    `rotate` asks for a new one ("rotated"); None when nothing was made. In check mode an
    unsaved key stands in for a made one. (None, None) without wireguard-tools, which the
    role installs after weft_facts has reported it missing."""
    wg = ctx.which("wg")
    if wg is None:
        return None, None
    if ctx.check_mode:
        return key_pair(ctx, wg, path, pending, rotate)
    # Under the apply lock: a converge or a weft-heal pass never sees a key half-made.
    with exclusive_lock(APPLY_LOCK):
        return key_pair(ctx, wg, path, pending, rotate)


def key_pair(ctx, wg, path, pending, rotate):
    current = (read_text(path) or "").strip()
    if not current:
        made = "new"
    elif rotate:
        made = "rotated"
    else:   # a rotation started by an earlier run is still pending: its key is the lease's
        made, private = None, (read_text(pending) or "").strip() or current
    if made:
        rc, out, err = ctx.run([wg, "genkey"])
        if rc:
            raise WeftError("wg genkey: %s" % err.strip())
        private = out.strip()
        if not ctx.check_mode:
            # The first key is in use at once; a rotated one waits for weft_host.
            write_atomic(pending if made == "rotated" else path, private + "\n", mode=0o400)
    rc, out, err = ctx.run([wg, "pubkey"], data=private + "\n")
    if rc:
        raise WeftError("%s: not a WireGuard private key (wg pubkey: %s); remove it to have a "
                        "new one made" % (path, err.strip()))
    return out.strip(), made


def promote_pending(secrets, check_mode):
    """Put every pending replacement (`<path>.next`) of these secrets in its place; the
    paths replaced."""
    done = []
    for path in sorted(secrets):
        if os.path.exists(path + ".next"):
            if not check_mode:
                os.replace(path + ".next", path)
            done.append(path)
    return done
