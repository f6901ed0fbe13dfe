# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Counts, per host, the tasks that ran a module on the host and those that ran on the
controller (set_fact, assert, delegated planning...), and times every task, for the
control-plane benchmark.

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
import time

from ansible.plugins.callback import CallbackBase

# Actions that run on the controller, never as a module on the host.
CONTROLLER_ACTIONS = {"set_fact", "assert", "debug", "fail", "meta", "include_tasks",
                      "import_tasks", "include_role", "import_role", "include_vars",
                      "group_by", "add_host", "validate_argument_spec"}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "weft_count"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.counts = collections.defaultdict(collections.Counter)
        self.task_seconds = collections.Counter()
        self._task = None

    def _task_done(self):
        if self._task is not None:
            name, started = self._task
            self.task_seconds[name] += time.monotonic() - started
            self._task = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task_done()
        self._task = (task.get_name(), time.monotonic())

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

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
        self._task_done()
        path = os.environ.get("WEFT_COUNT_FILE")
        if path:
            slowest = dict((name, round(sec, 2)) for name, sec in self.task_seconds.most_common(8))
            with open(path, "w") as handle:
                json.dump({"hosts": {h: dict(c) for h, c in self.counts.items()},
                           "slowest_tasks": slowest}, handle, indent=1)
