# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host bundle: the code weft installs below /usr/local/lib/weft/module_utils, which is
what weft-restore, weft-heal and weft-udpd run without the controller.

The bundle is declared here, module by module, and imported here: Ansible packs into a
module's payload only what is imported somewhere, so naming a module in BUNDLE is also what
puts it into weft_host's payload. tests/test_bundle.py holds the list to every import (at
module level or inside a function) that the bundle's modules make, and starts weft-restore
and weft-udpd from a freshly installed bundle.
"""

from __future__ import annotations

import sys

from .. import backends, errors, files, lease, module, validate
from .. import check as check_package
from .. import daemon as daemon_package
from .. import host as host_package
from .. import net as net_package
from .. import runtime as runtime_package
from ..check import paths, probe
from ..daemon import config, offload, packets, status, udpd
from . import converge, keys, metrics, model, restore, units
from ..net import (bpf, bridge, device, ethtool, fdb, ingress, iptables, neighbours, netlink,
                   nftables, reconcile, routes, tc, tun, udp_fastpath, vxlan, wireguard)
from ..runtime import cni, docker

# weft's package, whatever it is called where this runs (the collection's
# ansible_collections.weft.overlay.plugins.module_utils.weft, or weft on a host).
package = sys.modules[__name__.rsplit(".", 2)[0]]
PREFIX = package.__name__.rpartition(".")[0] + "." if "." in package.__name__ else ""
# The boot and repair paths (weft-restore, weft-heal) and the udp daemon, with all they import.
BUNDLE = (package, backends, errors, files, lease, module, validate,
          check_package, paths, probe,
          daemon_package, config, offload, packets, status, udpd,
          host_package, converge, keys, metrics, model, restore, units, sys.modules[__name__],
          net_package, bpf, bridge, device, ethtool, fdb, ingress, iptables, neighbours, netlink,
          nftables, reconcile, routes, tc, tun, udp_fastpath, vxlan, wireguard,
          runtime_package, cni, docker)


def relative_path(name: str) -> str:
    """weft/net/routes.py for <PREFIX>weft.net.routes (a package: __init__.py)."""
    return name[len(PREFIX):].replace(".", "/")


def sources() -> dict:
    """path below units.MODULE_UTILS -> source of every module of the bundle, read from the
    payload this process runs (what weft_host installs, byte for byte)."""
    found = {}
    for item in BUNDLE:
        path = relative_path(item.__name__)
        path += "/__init__.py" if hasattr(item, "__path__") else ".py"
        found[path] = item.__loader__.get_source(item.__name__)
    return found
