"""net/netlink.py imports the pyroute2 modules weft uses without pyroute2's package
__init__ (which imports all of pyroute2: a quarter of a second of CPU per module call on
every host), and the package is still whole for anyone who asks it for a name; with both
pyroute2 versions a host may have, in a fresh interpreter each."""

import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE_UTILS = os.path.join(ROOT, "plugins", "module_utils")

# weft's code as weft-restore sees it on a host (the package weft), without Ansible.
FRESH_IMPORT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from weft.net import netlink
heavy = sorted(m for m in sys.modules
               if m.split(".")[:2] in (["pyroute2", "ndb"], ["pyroute2", "ipdb"],
                                       ["pyroute2", "conntrack"]))
with netlink.IPRoute() as ipr:
    links = [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()]
from pyroute2 import NDB, IPRoute
print(json.dumps(dict(heavy=heavy, links=links, same=IPRoute is netlink.IPRoute,
                      ndb=NDB.__module__)))
"""


def test_pyroute2_is_imported_lean_and_stays_whole(host_python):
    proc = subprocess.run([host_python, "-c", FRESH_IMPORT, MODULE_UTILS],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["heavy"] == []               # NDB, IPDB, conntrack: not loaded for weft
    assert "lo" in got["links"]             # IPRoute talks to the kernel
    assert got["same"]                      # the package's IPRoute is the one weft uses
    assert got["ndb"] == "pyroute2.ndb.main"    # ... and the rest is there when asked for
