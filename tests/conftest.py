"""Shared fixtures: import paths for the project's module_utils, and ansible CLI helpers."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE_UTILS = os.path.join(ROOT, "plugins", "module_utils")
LIBRARY = os.path.join(ROOT, "library")

# Pure helpers are imported directly; modules import them as ansible.module_utils.<name>,
# so extend that package's search path the way AnsiballZ does on a host.
sys.path.insert(0, MODULE_UTILS)
import ansible.module_utils  # noqa: E402

if MODULE_UTILS not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(MODULE_UTILS)


def run_ansible_module(module, args, check=False, diff=False, python=None, netns=None):
    """Run one module through the real ansible CLI (AnsiballZ, argument spec, check/diff).

    Returns the module's result dict; `failed` is set on failure.
    """
    cmd = []
    if netns:
        cmd += ["ip", "netns", "exec", netns]
    cmd += [os.path.join(os.path.dirname(sys.executable), "ansible"), "localhost",
            "-i", "localhost,", "-c", "local", "-m", module, "-a", json.dumps(args), "-e",
            "ansible_python_interpreter=%s" % (python or sys.executable)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="minimal",
               ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    # The minimal callback prints "localhost | STATUS => {json}", then any diff.
    start = proc.stdout.rfind("localhost | ")
    head, _, body = proc.stdout[start:].partition(" => ")
    try:
        result, _ = json.JSONDecoder().raw_decode(body)
    except ValueError:
        raise AssertionError("ansible printed no result:\n%s\n%s" % (proc.stdout, proc.stderr))
    result.setdefault("failed", "FAILED" in head)
    result["stdout_text"] = proc.stdout
    return result


@pytest.fixture
def ansible_module():
    return run_ansible_module
