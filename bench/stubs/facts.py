# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bench/controller.py's stand-in for weft_facts on a simulated host: the same arguments,
the facts a host with its weft_public_ip would report, no work on the host."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(iface=dict(type="str"), public_ip=dict(type="str"),
                                              packages=dict(type="list", elements="str", default=[])),
                           supports_check_mode=True)
    public_ip = module.params["public_ip"] or "10.0.0.1"
    module.exit_json(changed=False, ansible_facts=dict(
        weft_missing_packages=[],
        weft_underlay=dict(iface="eth0", public_ip=public_ip, network="10.0.0.0/8", mtu=1500)))


if __name__ == "__main__":
    main()
