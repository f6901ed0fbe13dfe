# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CNI network a host's lease gives its CNI runtimes (podman, containerd and nerdctl,
a kubelet): one conflist in the CNI 1.0 format, read by the runtime at every container
start, so no daemon of weft's is in the path. Its shape is what Flannel's CNI plugin
delegates to (the standard `bridge` plugin as the gateway, `host-local` addresses from the
host's subnet(s), a route for each overlay network, the overlay MTU) and what kube-flannel
ships around it (`hairpinMode`, `isDefaultGateway`, `portmap` chained); masquerading stays
with weft's chain, so traffic inside the network keeps its source address.
"""

from __future__ import annotations

import glob
import json
import os
import re

from ..backends import bridge_address

CNI_VERSION = "1.0.0"
PLUGINS = "/usr/lib/cni"        # Debian's containernetworking-plugins (lab/cni.py runs them)
IPAM_STATE = "/var/lib/cni/networks"  # host-local's reservations, a directory per network
BOOKKEEPING = re.compile(r"^(lock|last_reserved_ip\.\d+)$")  # host-local's, not reservations


def conflist_path(conf_dir, name):
    return os.path.join(conf_dir, "10-%s.conflist" % name)


def conflist(name, bridge, mtu, ranges, networks) -> str:
    """The conflist text: `ranges` are the containers' subnets (one per family), `networks`
    the overlay networks (the same families, in the same order) routed through the bridge's
    gateway. The routes name their gateway: the bridge plugin's CHECK compares a route
    without one against the kernel's, which always has one."""
    gateways = [bridge_address(r).split("/")[0] for r in ranges]
    ipam = {"type": "host-local",
            "ranges": [[{"subnet": str(r), "gateway": gw}] for r, gw in zip(ranges, gateways)],
            "routes": [{"dst": str(n), "gw": gw} for n, gw in zip(networks, gateways)]}
    doc = {"cniVersion": CNI_VERSION, "name": name, "plugins": [
        {"type": "bridge", "bridge": bridge, "isGateway": True, "isDefaultGateway": True,
         "hairpinMode": True, "ipMasq": False, "mtu": mtu, "ipam": ipam},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ]}
    return json.dumps(doc, indent=2) + "\n"   # JSON has no comments: no header


def unused_ipam_state(name):
    """host-local's directory for network `name` when it holds no reservation (its lock
    and last-reserved marks only), else None: a container that still holds an address
    needs the directory for its DEL, so it stays."""
    path = os.path.join(IPAM_STATE, name)
    try:
        entries = os.listdir(path)
    except OSError:
        return None
    return path if all(BOOKKEEPING.match(entry) for entry in entries) else None


def networks_in(conf_dir, skip=None) -> dict:
    """{network name: file} of the CNI networks configured in conf_dir (other than the
    file `skip`); files that are not CNI configurations are left out."""
    found = {}
    for path in sorted(glob.glob(os.path.join(conf_dir, "*.conf*"))):
        if path == skip:
            continue
        try:
            with open(path) as handle:
                doc = json.load(handle)
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and isinstance(doc.get("name"), str):
            found.setdefault(doc["name"], path)
    return found
