# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Ansible face of weft's module cores, and the context a core runs in.

A core is a module in net/, runtime/, facts/, plan/ or host/ with ARGUMENT_SPEC (and
optionally SPEC_RULES such as required_if) and run(params, ctx) -> result, which raises
WeftError. plugins/modules/<module>.py holds the documentation and calls run_module(core).
weft_host and weft-restore call cores in-process through call(), which validates the
arguments with ansible-core's public ArgumentSpecValidator.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from .errors import WeftError

SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Context:
    """What a core needs from whoever runs it: check and diff mode, one netlink socket
    shared by every core of a run, and commands (iptables, nft, systemctl)."""

    def __init__(self, check_mode=False, diff=False):
        self.check_mode = check_mode
        self.diff = diff
        self._kernel = None

    @property
    def kernel(self):
        if self._kernel is None:
            from .net.netlink import Kernel
            self._kernel = Kernel()
        return self._kernel

    def which(self, name):
        return shutil.which(name, path=os.environ.get("PATH", "") + ":" + SBIN_PATH)

    def run(self, argv, data=None):
        """(rc, stdout, stderr) of a command; data goes to its standard input."""
        proc = subprocess.run(argv, input=data, capture_output=True, text=True, check=False,
                              env=dict(os.environ, LC_ALL="C"))
        return proc.returncode, proc.stdout, proc.stderr

    def close(self):
        if self._kernel is not None:
            self._kernel.close()
            self._kernel = None


def call(core, args, ctx):
    """Run a core in this process: its arguments validated as its module would validate
    them, then run(params, ctx)."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    validator = ArgumentSpecValidator(core.ARGUMENT_SPEC, **getattr(core, "SPEC_RULES", {}))
    checked = validator.validate(args)
    if checked.error_messages:
        raise WeftError("; ".join(checked.error_messages))
    return core.run(checked.validated_parameters, ctx)


def run_module(core):
    """main() of a weft module: parse the arguments, run the core, exit with its result."""
    from ansible.module_utils.basic import AnsibleModule
    module = AnsibleModule(argument_spec=core.ARGUMENT_SPEC, supports_check_mode=True,
                           **getattr(core, "SPEC_RULES", {}))
    ctx = Context(check_mode=module.check_mode, diff=module._diff)
    # Arguments too large to echo back to the controller from every host (weft_host's plan).
    hidden = getattr(core, "NOT_ECHOED", ())
    invocation = dict(module_args={k: ("(%d characters)" % len(v) if k in hidden and v else v)
                                   for k, v in module.params.items()})
    try:
        result = core.run(module.params, ctx)
    except WeftError as exc:
        module.fail_json(msg=str(exc), invocation=invocation, **warned(module, exc.result))
    finally:
        ctx.close()
    module.exit_json(invocation=invocation, **warned(module, result))


def warned(module, result):
    """`result` without its warnings, each given to module.warn() (exit_json(warnings=) is
    deprecated in ansible-core 2.19)."""
    result = dict(result)
    for warning in result.pop("warnings", ()):
        module.warn(warning)
    return result
