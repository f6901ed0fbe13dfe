#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: weft_underlay
short_description: Find the underlay interface and public IP that overlay peers send to
description:
  - Reads, never changes, which interface and IPv4 address of this host carry the overlay.
  - With O(public_ip), the interface holding that address. With O(iface), that interface's
    first global IPv4 address. With neither, the interface of the IPv4 default route (where
    every NAT'ed virtual machine would claim the same address, hence weft's duplicate check
    in the plan).
version_added: "0.1.0"
author: weft contributors
requirements:
  - pyroute2 0.7 or later on the managed host (Debian package C(python3-pyroute2))
options:
  iface:
    description: The underlay interface, e.g. V(eth1).
    type: str
  public_ip:
    description: The address peers send to; must be an address of this host (of O(iface)
      when both are given).
    type: str
  packages:
    description:
      - Debian packages to check for; RV(missing_packages) lists those not installed, also
        when the module fails because pyroute2 is missing.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: linux
"""

EXAMPLES = r"""
- name: Underlay by interface name
  weft_underlay:
    iface: eth1
  register: weft_underlay
"""

RETURN = r"""
missing_packages:
  description: The packages of O(packages) that dpkg does not list as installed.
  returned: always
  type: list
  elements: str
iface:
  description: The underlay interface.
  returned: success
  type: str
  sample: eth0
public_ip:
  description: The address peers send to.
  returned: success
  type: str
  sample: 10.168.0.2
network:
  description: The underlay network of that address, in CIDR form.
  returned: success
  type: str
  sample: 10.168.0.0/24
mtu:
  description: The underlay interface's MTU.
  returned: success
  type: int
  sample: 1500
"""

import ipaddress
import socket

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.weft_netlink import Kernel, require_pyroute2
from ansible.module_utils.weft_validate import ip_address

SCOPE_GLOBAL = 0


def ipv4_addresses(kernel):
    """[(index, 'a.b.c.d/len')] of every global IPv4 address."""
    return [(m["index"], "%s/%d" % (m.get_attr("IFA_LOCAL") or m.get_attr("IFA_ADDRESS"),
                                    m["prefixlen"]))
            for m in kernel.ipr.get_addr(family=socket.AF_INET) if m["scope"] == SCOPE_GLOBAL]


def default_route_index(kernel):
    for msg in kernel.ipr.get_routes(family=socket.AF_INET):
        if msg["dst_len"] == 0 and (msg.get_attr("RTA_TABLE") or msg["table"]) == 254 \
                and msg.get_attr("RTA_OIF"):
            return msg.get_attr("RTA_OIF")
    return None


def find_underlay(kernel, iface, public_ip):
    names = kernel.names()
    addresses = ipv4_addresses(kernel)
    if public_ip is not None:
        ip = str(ip_address(public_ip, "public_ip"))
        held = [(index, cidr) for index, cidr in addresses if cidr.split("/")[0] == ip]
        if not held:
            raise ValueError("public_ip: %s is not an address of this host" % ip)
        index, cidr = held[0]
        if iface is not None and names.get(index) != iface:
            raise ValueError("public_ip: %s is on %s, not on iface %s" % (ip, names[index], iface))
    else:
        if iface is not None:
            index = kernel.index(iface)
            if index is None:
                raise ValueError("iface: no device named %s" % iface)
        else:
            index = default_route_index(kernel)
            if index is None:
                raise ValueError("iface: this host has no IPv4 default route to find the "
                                 "underlay by; set weft_iface or weft_public_ip")
        held = [cidr for i, cidr in addresses if i == index]
        if not held:
            raise ValueError("iface: %s has no global IPv4 address" % names.get(index))
        cidr = held[0]
    link = kernel.ipr.get_links(index)[0]
    return dict(iface=names[index], public_ip=cidr.split("/")[0],
                network=str(ipaddress.ip_interface(cidr).network), mtu=link.get_attr("IFLA_MTU"))


def missing_packages(module, names):
    """Which of the Debian packages `names` are not installed (dpkg's view)."""
    if not names or not module.get_bin_path("dpkg-query"):
        return []
    _, out, _ = module.run_command(["dpkg-query", "-W", "-f=${Package} ${Status}\\n"] + names)
    installed = {line.split()[0] for line in out.splitlines()
                 if line.endswith(" install ok installed")}
    return [name for name in names if name not in installed]


def main():
    module = AnsibleModule(
        argument_spec=dict(iface=dict(type="str"), public_ip=dict(type="str"),
                           packages=dict(type="list", elements="str", default=[])),
        supports_check_mode=True,
    )
    missing = missing_packages(module, module.params["packages"])
    require_pyroute2(module, missing_packages=missing)
    with Kernel() as kernel:
        try:
            found = find_underlay(kernel, module.params["iface"], module.params["public_ip"])
        except ValueError as exc:
            module.fail_json(msg=str(exc), missing_packages=missing)
    module.exit_json(changed=False, missing_packages=missing, **found)


if __name__ == "__main__":
    main()
