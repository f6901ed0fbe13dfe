# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Core of weft_bridge: a Linux bridge with its gateway addresses, such as the CNI
network's `cni0`. weft makes it (at converge and at boot) so that the gateway is there
before the first container; the CNI bridge plugin then finds it and adds the veths.
"""

from __future__ import annotations

from ..errors import WeftError
from .device import COMMON_ARGUMENT_SPEC, converge, desired_common

ARGUMENT_SPEC = dict(
    COMMON_ARGUMENT_SPEC,
    address=dict(type="list", elements="str"),   # one gateway per family
)


def run(params, ctx):
    try:
        inplace = desired_common(params, mac_option=False)
    except ValueError as exc:
        raise WeftError(str(exc)) from None

    def create():
        ctx.kernel.ipr.link("add", ifname=params["name"], kind="bridge")

    # A bridge has no identity fixed at creation that weft sets.
    return converge(ctx, params, "bridge", {}, inplace, lambda msg: {}, create)
