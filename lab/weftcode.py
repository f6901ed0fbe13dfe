"""weft's code importable from this checkout as the package `weft`, the way weft-restore,
weft-heal and weft-udpd import the copy installed on a host (its modules import each other
relatively, so the name the package is found by does not matter), and the checkout as the
collection `ansible_collections.weft.overlay` (scripts/install.sh links it below .cache), the
way `ansible-test units` imports it. Tests, benchmarks and lab helpers import this module
before anything of weft's."""

import os
import sys

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE_UTILS = os.path.join(PROJECT, "plugins", "module_utils")

COLLECTIONS = os.path.join(PROJECT, ".cache", "collections")

for path in (MODULE_UTILS, COLLECTIONS):
    if path not in sys.path:
        sys.path.insert(0, path)
