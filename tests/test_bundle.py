"""The host bundle (host/bundle.py): the code weft installs for weft-restore, weft-heal and
weft-udpd is a declared set, complete for every import those paths make, and both commands
run from a freshly installed copy of it alone."""

import ast
import json
import os
import subprocess
import sys
import time

import pytest

from weft.host import bundle, units
from conftest import MODULE_UTILS, ROOT
from sandbox import Sandbox
from test_weft_host import IDENTITY, plan

PREFIX = ""          # the checkout's code is the package weft (lab/weftcode.py)


def imported(module):
    """Every weft module `module` imports, at its top or inside a function."""
    found = set()
    package = module.__name__ if hasattr(module, "__path__") else module.__name__.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(module.__loader__.get_source(module.__name__))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            names = [base] + ["%s.%s" % (base, alias.name) for alias in node.names]
        else:
            continue
        found |= {name for name in names if name.startswith(PREFIX + "weft")}
    return found


def module_exists(name):
    path = os.path.join(MODULE_UTILS, *name[len(PREFIX):].split("."))
    return os.path.isdir(path) or os.path.exists(path + ".py")


def test_the_bundle_holds_every_module_its_modules_import():
    names = {module.__name__ for module in bundle.BUNDLE}
    for module in bundle.BUNDLE:
        for name in imported(module):
            if module_exists(name):  # (from X import y: y may be a name, not a module)
                assert name in names, "%s imports %s, which the bundle lacks" % (module.__name__, name)
    # Controller-only code stays on the controller.
    assert not [n for n in names if ".plan" in n or ".facts" in n]


@pytest.fixture
def box(netns):
    sandbox = Sandbox(netns)
    yield sandbox
    sandbox.remove()


@pytest.fixture(scope="module")
def installed_collection(tmp_path_factory):
    """The collection as a user has it: built into a tarball and installed from it (its
    collections path), nothing of this checkout on the path."""
    top = tmp_path_factory.mktemp("collection")
    galaxy = os.path.join(os.path.dirname(sys.executable), "ansible-galaxy")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    for argv in ([galaxy, "collection", "build", "--output-path", str(top), ROOT],
                 [galaxy, "collection", "install", "-p", str(top / "installed"),
                  str(top / "weft-overlay-1.0.0.tar.gz")]):
        proc = subprocess.run(argv, cwd=str(top), env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return str(top / "installed")


def test_restore_and_udpd_run_from_a_fresh_bundle_alone(box, installed_collection):
    result = box.module("weft.overlay.host", {"plan": plan("udp"), "host": IDENTITY, "settings": {}},
                        collections=installed_collection, verbose=True)
    assert result["changed"] and not result["failed"], result
    # Ansible took the module from the installed collection, not from this checkout.
    assert "Using module file %s/ansible_collections/weft/overlay/plugins/modules/host.py" \
        % installed_collection in result["stdout_text"], result["stdout_text"][-2000:]
    installed = sorted(box.run("find", units.MODULE_UTILS, "-name", "*.py").stdout.split())
    assert installed == sorted(os.path.join(units.MODULE_UTILS, path) for path in bundle.sources())
    # ... byte for byte the installed collection's code (which is this checkout's).
    for path in bundle.sources():
        with open(os.path.join(installed_collection, "ansible_collections", "weft", "overlay",
                               "plugins", "module_utils", path)) as handle:
            assert box.read(os.path.join(units.MODULE_UTILS, path)) == handle.read(), path
    # Every weft module the boot path loads comes from the bundle (Debian's python and
    # ansible-core; the project's checkout is not on the path).
    probe = ("import runpy, sys; sys.argv = ['weft-restore']; "
             "code = open(%r).read().replace('sys.exit(main(sys.argv))', 'main(sys.argv)'); "
             "exec(code); import json; print(json.dumps({n: getattr(m, '__file__', None) "
             "for n, m in sys.modules.items() if n.startswith('weft')}))"
             % units.RESTORE)
    loaded = json.loads(box.run("/usr/bin/python3", "-c", probe).stdout.strip().splitlines()[-1])
    assert "weft.host.restore" in loaded
    assert all(path.startswith(units.MODULE_UTILS) for path in loaded.values() if path), loaded
    assert box.run("/usr/bin/python3", units.RESTORE).returncode == 0
    # The udp daemon starts from the bundle too, attaches to its TUN device and reports
    # (into the directory its unit's RuntimeDirectory= makes).
    box.run("mkdir", "-p", os.path.dirname(units.UDPD_STATUS))
    daemon = box.popen("/usr/bin/python3", units.UDPD, "run", units.UDPD_CONFIG)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not box.exists(units.UDPD_STATUS):
            assert daemon.poll() is None, daemon.stdout.read()
            time.sleep(0.2)
        assert box.exists(units.UDPD_STATUS), "weft-udpd wrote no status"
        status = box.run("/usr/bin/python3", units.UDPD, "status", units.UDPD_CONFIG)
        assert status.returncode == 0, status.stdout + status.stderr
        assert json.loads(status.stdout)["tun_attached"] is True
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)
