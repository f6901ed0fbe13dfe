# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which of the distribution packages weft needs are missing on a host (dpkg's view)."""

from __future__ import annotations


def missing_packages(ctx, names) -> list:
    """The Debian packages of `names` that dpkg does not list as installed; [] on a host
    without dpkg (weft then relies on what the host has)."""
    query = ctx.which("dpkg-query")
    if not names or query is None:
        return []
    dummy, out, dummy = ctx.run([query, "-W", "-f=${Package} ${Status}\\n"] + list(names))
    installed = {line.split()[0] for line in out.splitlines()
                 if line.endswith(" install ok installed")}
    return [name for name in names if name not in installed]
