"""Every module documents itself, and fails clearly on a host without pyroute2."""

import importlib
import os
import re
import stat
import subprocess
import sys

import pytest
import yaml

from conftest import MODULES_DIR, ROOT, run_ansible_module

MODULES = sorted("weft.overlay." + f[:-3] for f in os.listdir(MODULES_DIR)
                 if f.endswith(".py") and f != "__init__.py")
READ_ONLY = {"weft.overlay.facts", "weft.overlay.check", "weft.overlay.check_report"}  # no diff
# Each netlink module with arguments that pass its argument spec.
NETLINK_MODULES = {"weft.overlay.fdb": {"dev": "x"}, "weft.overlay.neighbours": {"dev": "x"},
                   "weft.overlay.routes": {"purge": False}, "weft.overlay.tun": {"name": "x"},
                   "weft.overlay.vxlan": {"name": "x"},
                   "weft.overlay.udp_fastpath": {"name": "x", "state": "absent"}}


def test_every_netlink_module_exists():
    assert set(NETLINK_MODULES) <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders(module):
    ansible_doc = os.path.join(os.path.dirname(sys.executable), "ansible-doc")
    proc = subprocess.run([ansible_doc, "--json", module], cwd=ROOT, capture_output=True,
                          text=True, env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg")))
    assert proc.returncode == 0, proc.stderr
    doc = yaml.safe_load(proc.stdout)[module]
    assert doc["doc"]["short_description"] and doc["examples"].strip() and doc["return"]
    assert doc["doc"]["attributes"]["check_mode"]["support"] == "full"
    assert doc["doc"]["attributes"]["diff_mode"]["support"] == \
        ("none" if module in READ_ONLY else "full")


@pytest.mark.parametrize("module", sorted(NETLINK_MODULES))
def test_missing_pyroute2_is_reported(tmp_path, module):
    # The distribution's python with its site directories hidden: no pyroute2 to import.
    python = tmp_path / "python-without-pyroute2"
    python.write_text('#!/bin/sh\nexec /usr/bin/python3 -S "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    result = run_ansible_module(module, NETLINK_MODULES[module], python=str(python))
    assert result["failed"]
    assert "pyroute2" in result["msg"] and "apt-get install python3-pyroute2" in result["msg"]


def test_facts_without_pyroute2_still_report_the_missing_packages(tmp_path):
    python = tmp_path / "python-without-pyroute2"
    python.write_text('#!/bin/sh\nexec /usr/bin/python3 -S "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    result = run_ansible_module("weft.overlay.facts", {"packages": ["python3-pyroute2", "weft-no-such"]},
                                python=str(python))
    facts = result["ansible_facts"]
    assert "python3-pyroute2" in facts["weft_underlay"]["error"]
    assert facts["weft_missing_packages"] == ["weft-no-such"]


def documented_mismatches(doc, spec, path):
    """Where a module's DOCUMENTATION options and its core's ARGUMENT_SPEC differ (names,
    type, default, required, choices, elements, suboptions), as ansible-test would say."""
    doc, spec, found = doc or {}, spec or {}, []
    for name in sorted(set(doc) | set(spec)):
        where = "%s.%s" % (path, name)
        if name not in doc or name not in spec:
            found.append("%s: %s" % (where, "not documented" if name in spec else "not in the spec"))
            continue
        documented, real = doc[name], spec[name]
        for key, fallback in (("type", "str"), ("default", None), ("required", False),
                              ("choices", None), ("elements", None)):
            if documented.get(key, fallback) != real.get(key, fallback):
                found.append("%s: %s documented %r, spec %r" % (where, key, documented.get(key),
                                                                real.get(key)))
        found += documented_mismatches(documented.get("suboptions"), real.get("options"), where)
    return found


@pytest.mark.parametrize("module", MODULES)
def test_documented_options_are_the_argument_spec(module):
    ansible_doc = os.path.join(os.path.dirname(sys.executable), "ansible-doc")
    proc = subprocess.run([ansible_doc, "--json", module], cwd=ROOT, capture_output=True,
                          text=True, env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg")))
    doc = yaml.safe_load(proc.stdout)[module]["doc"]
    with open(os.path.join(MODULES_DIR, module.rsplit(".", 1)[1] + ".py")) as handle:
        core = re.search(r"^from ansible_collections\.weft\.overlay\.plugins\.module_utils\.weft\."
                         r"(\w+) import (\w+) as core$", handle.read(), re.M)
    spec = importlib.import_module("weft.%s.%s" % core.groups()).ARGUMENT_SPEC
    assert documented_mismatches(doc.get("options"), spec, module) == []


@pytest.mark.parametrize("kind, name", [("role", "weft.overlay.weft"),
                                        ("filter", "weft.overlay.plan_hosts"),
                                        ("filter", "weft.overlay.plan_table")])
def test_role_and_filters_render_in_ansible_doc(kind, name):
    ansible_doc = os.path.join(os.path.dirname(sys.executable), "ansible-doc")
    proc = subprocess.run([ansible_doc, "-t", kind, "--json", name], cwd=ROOT, capture_output=True,
                          text=True, env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg")))
    assert proc.returncode == 0, proc.stderr
    doc = yaml.safe_load(proc.stdout)[name]
    if kind == "role":
        assert doc["entry_points"]["main"]["options"]["weft_group"]["default"] == "weft_nodes"
    else:
        assert doc["doc"]["short_description"] and doc["examples"].strip() and doc["return"]
