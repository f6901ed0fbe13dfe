"""Every module documents itself, and fails clearly on a host without pyroute2."""

import os
import stat
import subprocess
import sys

import pytest
import yaml

from conftest import LIBRARY, ROOT, run_ansible_module

MODULES = sorted(f[:-3] for f in os.listdir(LIBRARY) if f.endswith(".py"))
READ_ONLY = {"weft_facts"}  # changes nothing, so it has no diff to show
# Each netlink module with arguments that pass its argument spec.
NETLINK_MODULES = {"weft_fdb": {"dev": "x"}, "weft_neighbours": {"dev": "x"},
                   "weft_routes": {"purge": False}, "weft_tun": {"name": "x"}, "weft_vxlan": {"name": "x"}}


def test_every_netlink_module_exists():
    assert set(NETLINK_MODULES) <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders(module):
    ansible_doc = os.path.join(os.path.dirname(sys.executable), "ansible-doc")
    proc = subprocess.run([ansible_doc, "-M", LIBRARY, "--json", module], cwd=ROOT,
                          capture_output=True, text=True)
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
    result = run_ansible_module("weft_facts", {"packages": ["python3-pyroute2", "weft-no-such"]},
                                python=str(python))
    facts = result["ansible_facts"]
    assert "python3-pyroute2" in facts["weft_underlay"]["error"]
    assert facts["weft_missing_packages"] == ["weft-no-such"]
