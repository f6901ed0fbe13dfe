#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: weft_fdb
short_description: Manage the forwarding database (FDB) of a VXLAN device over netlink
description:
  - Makes the remote entries of a VXLAN device's FDB exactly the listed MAC to underlay IP
    pairs, in one call for any number of entries, through pyroute2. Entries are written as
    C(self permanent), like C(bridge fdb append ... dst IP self permanent).
  - A unicast MAC has one remote destination, as in the kernel; when a peer moves to another
    underlay IP its entry is replaced in place, so traffic never finds no entry. The all-zero
    and multicast MACs may have several destinations, so for them MAC and destination
    together identify an entry.
  - With O(purge=true), entries on O(dev) that have a remote destination and that the list
    does not name are removed. Entries without a destination (the kernel's own multicast
    entries, or local bridge entries) are never touched.
  - The all-zero MAC C(00:00:00:00:00:00) is the flood (BUM) entry; list it once per
    destination that should receive broadcast, unknown-unicast and multicast frames. It is
    managed like any other entry, so O(purge) removes flood destinations that are not listed.
    weft's own overlay uses no flood entries (learning is off and every peer has a static
    entry), so a purge on a weft device also clears flood entries left by other tools.
version_added: "0.1.0"
author: weft contributors
requirements:
  - pyroute2 0.7 or later on the managed host (Debian package C(python3-pyroute2))
options:
  dev:
    description: The VXLAN device, e.g. C(flannel.1).
    type: str
    required: true
  entries:
    description: The FDB entries that must exist on O(dev).
    type: list
    elements: dict
    default: []
    suboptions:
      mac:
        description: The remote VTEP's MAC, or the all-zero MAC for a flood entry.
        type: str
        required: true
      dst:
        description: The remote VTEP's underlay IP (IPv4 or IPv6).
        type: str
        required: true
  purge:
    description: Remove entries with a destination on O(dev) that the list does not name.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: One line per entry that is added or removed.
  platform:
    platforms: linux
"""

EXAMPLES = r"""
- name: Frames for each peer's VTEP MAC go to that peer's underlay address
  weft_fdb:
    dev: flannel.1
    purge: true
    entries:
      - {mac: "0e:77:64:60:02:00", dst: 10.168.0.3}
      - {mac: "0e:77:64:60:03:00", dst: 10.168.0.4}
"""

RETURN = r"""
added:
  description: Entries that were (or in check mode would be) added.
  returned: always
  type: list
  elements: str
  sample: ["0e:77:64:60:02:00 dst 10.168.0.3 dev flannel.1 self permanent"]
updated:
  description: Unicast entries whose destination was replaced.
  returned: always
  type: list
  elements: str
removed:
  description: Entries that O(purge) removed.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.weft_netlink import (NTF_SELF, NUD_PERMANENT, Kernel, attr,
                                               require_pyroute2)
from ansible.module_utils.weft_reconcile import run_list
from ansible.module_utils.weft_validate import ip_address, mac_address

ZERO_MAC = "00:00:00:00:00:00"


def is_group(mac):
    """The all-zero (flood) MAC and multicast MACs may have several destinations."""
    return mac == ZERO_MAC or int(mac[:2], 16) & 1


def entry_key(mac, dst):
    return (mac, dst) if is_group(mac) else (mac, None)


def desired_entries(params):
    desired = {}
    for i, item in enumerate(params["entries"]):
        where = "entries[%d]" % i
        mac = mac_address(item["mac"], where + ".mac")
        dst = str(ip_address(item["dst"], where + ".dst"))
        key = entry_key(mac, dst)
        if key in desired:
            raise ValueError("%s: %s is listed twice (a unicast MAC has one destination)"
                             % (where, mac) if key[1] is None else
                             "%s: %s dst %s is listed twice" % (where, mac, dst))
        desired[key] = dict(mac=mac, dst=dst, dev=params["dev"])
    return desired


def current_entries(kernel, index, dev):
    current = {}
    for msg in kernel.fdb(index):
        dst = msg.get_attr("NDA_DST")
        if dst is None:  # the kernel's multicast and local entries are not ours
            continue
        mac = msg.get_attr("NDA_LLADDR")
        current[entry_key(mac, dst)] = dict(mac=mac, dst=dst, dev=dev)
    return current


def render(entry):
    return "%s dst %s dev %s self permanent" % (entry["mac"], entry["dst"], entry["dev"])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dev=dict(type="str", required=True),
            entries=dict(type="list", elements="dict", default=[], options=dict(
                mac=dict(type="str", required=True),
                dst=dict(type="str", required=True),
            )),
            purge=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    require_pyroute2(module)
    params = module.params
    with Kernel() as kernel:
        link = kernel.link(params["dev"])
        try:
            if link is None:
                raise ValueError("dev: no device named %s" % params["dev"])
            kind = attr(link, "IFLA_LINKINFO", "IFLA_INFO_KIND")
            if kind != "vxlan":
                raise ValueError("dev: %s is a %s device, not vxlan" % (params["dev"], kind))
            desired = desired_entries(params)
        except ValueError as exc:
            module.fail_json(msg=str(exc))
        index = link["index"]
        current = current_entries(kernel, index, params["dev"])

        def apply(action, key, entry):
            if action == "remove":
                kernel.ipr.fdb("del", ifindex=index, lladdr=entry["mac"], dst=entry["dst"])
                return
            # The kernel appends a destination only for group MACs; a unicast MAC's
            # one destination is replaced. pyroute2 0.9 sets neither flag by itself.
            kernel.ipr.fdb("append" if is_group(entry["mac"]) else "replace", ifindex=index,
                           lladdr=entry["mac"], dst=entry["dst"], state=NUD_PERMANENT,
                           flags=NTF_SELF)

        run_list(module, current, desired, apply, render)


if __name__ == "__main__":
    main()
