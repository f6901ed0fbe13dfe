"""A stand-in for PyPA's get-pip.py, which ansible-test downloads from a host this machine
cannot reach to put pip into each of its sanity venvs (its documented workaround: a script
saved at ~/.ansible/test/cache/get_pip_<version>.py). Same interface: pip's bundled wheel
from the standard library's ensurepip, then `pip install` with the given arguments."""

import ensurepip
import os
import runpy
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}    # get-pip.py's own options

environment = dict(os.environ)
ensurepip.bootstrap(upgrade=True)
# ensurepip drops every PIP_* variable and the pip config (the index, certificates) for its
# own offline install: the real install needs them back.
os.environ.clear()
os.environ.update(environment)
sys.argv = ["pip", "install"] + [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
runpy.run_module("pip", run_name="__main__", alter_sys=True)
