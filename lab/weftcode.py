"""weft's code importable the way Ansible and the hosts import it, as
ansible.module_utils.weft, from this checkout. Tests, benchmarks and lab helpers import
this module before anything of weft's."""

import os

import ansible.module_utils

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE_UTILS = os.path.join(PROJECT, "plugins", "module_utils")

# Extend that package's search path as AnsiballZ does on a host (and weft-restore with the
# installed copy).
if MODULE_UTILS not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(MODULE_UTILS)
