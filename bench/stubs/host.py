# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bench/controller.py's stand-in for weft_host on a simulated host: it takes what the
controller sends (the plan string, identity, settings) and returns at once, as small a
result as the real module returns when nothing changed."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(plan=dict(type="str"), host=dict(type="dict"),
                                              settings=dict(type="dict")),
                           supports_check_mode=True)
    plan = module.params["plan"] or ""
    module.exit_json(changed=False, steps=[], files_changed=[], services=[],
                     invocation=dict(module_args=dict(plan="(%d characters)" % len(plan))))


if __name__ == "__main__":
    main()
