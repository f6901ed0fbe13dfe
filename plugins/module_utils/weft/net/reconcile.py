# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired state versus kernel state for the cores that manage a list of entries.

A core describes each entry as a key (what identifies it to the kernel) and a value
(a dict of its attributes). Given both sides it gets back the minimal change set, and
one runner applies it with check mode, diff mode and `changed` handled the same way for
routes, neighbours and FDB entries.
"""

from __future__ import annotations

from ..errors import WeftError


def differs(current, desired):
    """True when an attribute the desired entry names has another value in the kernel.

    Attributes the desired entry leaves out (e.g. a route's device when the kernel picks
    it) are not compared.
    """
    return any(current.get(name) != value for name, value in desired.items())


def changes(current, desired, purge):
    """Keys to add, keys to update and keys to remove, each sorted for stable output."""
    add = sorted(k for k in desired if k not in current)
    update = sorted(k for k in desired if k in current and differs(current[k], desired[k]))
    remove = sorted(k for k in current if k not in desired) if purge else []
    return add, update, remove


def reconcile(ctx, current, desired, purge, apply, render):
    """Bring `current` to `desired`; the result the module returns.

    apply(action, key, value) performs one change ('add', 'update' or 'remove');
    render(value) turns an entry into one readable line for results and diffs.
    """
    add, update, remove = changes(current, desired, purge)
    result = dict(
        changed=bool(add or update or remove),
        added=[render(desired[k]) for k in add],
        updated=[render(desired[k]) for k in update],
        removed=[render(current[k]) for k in remove],
    )
    if ctx.diff and result["changed"]:
        before = [render(current[k]) for k in update + remove]
        after = [render(desired[k]) for k in add + update]
        result["diff"] = dict(before="".join(line + "\n" for line in before),
                              after="".join(line + "\n" for line in after))
    if not ctx.check_mode:
        # Add and update before removing, so a moved entry never leaves a gap.
        steps = [("add", k, desired[k]) for k in add] + \
            [("update", k, desired[k]) for k in update] + \
            [("remove", k, current[k]) for k in remove]
        for action, key, value in steps:
            try:
                apply(action, key, value)
            except Exception as exc:  # netlink errors carry the kernel's reason
                raise WeftError("%s %s: %s" % (action, render(value), exc), **result) from None
    return result
