# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Counts, per host, the tasks that ran a module on the host and those that ran on the
controller (set_fact, assert, delegated planning...), for the control-plane benchmark.

Enabled with ANSIBLE_CALLBACKS_ENABLED=weft_count; writes JSON to $WEFT_COUNT_FILE.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: weft_count
type: aggregate
short_description: Count module invocations per host
description: Counts, per host, tasks that ran a module on the host and tasks that did not.
requirements: [WEFT_COUNT_FILE in the environment]
"""

import collections
import json
import os

from ansible.plugins.callback import CallbackBase

# Actions that run on the controller, never as a module on the host.
CONTROLLER_ACTIONS = {"set_fact", "assert", "debug", "fail", "meta", "include_tasks",
                      "import_tasks", "include_role", "import_role", "include_vars",
                      "group_by", "add_host"}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "weft_count"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.counts = collections.defaultdict(collections.Counter)

    def _count(self, result, outcome):
        task = result._task
        action = task.action.rsplit(".", 1)[-1]
        on_host = action not in CONTROLLER_ACTIONS and not task.delegate_to
        where = "host" if on_host else "controller"
        self.counts[result._host.get_name()]["%s_%s" % (where, outcome)] += 1

    def v2_runner_on_ok(self, result):
        self._count(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._count(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._count(result, "skipped")

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("WEFT_COUNT_FILE")
        if path:
            with open(path, "w") as handle:
                json.dump({h: dict(c) for h, c in self.counts.items()}, handle, indent=1)
