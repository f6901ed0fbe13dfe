# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""This host's WireGuard key pair: the private key is made here, kept in a root-only file
and never leaves the host; only its public key is reported (weft_facts) for the lease."""

from __future__ import annotations

from ansible.module_utils.weft.errors import WeftError
from ansible.module_utils.weft.files import read_text, write_atomic
from ansible.module_utils.weft.host.units import WIREGUARD_KEY


def wireguard_public_key(ctx, path=WIREGUARD_KEY):
    """The public key of the private key in `path`, made first when there is none (in
    check mode an unsaved one stands in for it); None without wireguard-tools, which the
    role installs after weft_facts has reported it missing."""
    wg = ctx.which("wg")
    if wg is None:
        return None
    private = (read_text(path) or "").strip()
    if not private:
        rc, out, err = ctx.run([wg, "genkey"])
        if rc:
            raise WeftError("wg genkey: %s" % err.strip())
        private = out.strip()
        if not ctx.check_mode:
            write_atomic(path, private + "\n", mode=0o400)
    rc, out, err = ctx.run([wg, "pubkey"], data=private + "\n")
    if rc:
        raise WeftError("%s: not a WireGuard private key (wg pubkey: %s); remove it to have a "
                        "new one made" % (path, err.strip()))
    return out.strip()
