"""The role's variables are declared once (meta/argument_specs.yml); defaults/main.yml and
the table in docs/variables.md must say the same."""

import os
import subprocess
import sys

from conftest import ROOT


def test_defaults_and_the_variables_page_match_the_argument_specs():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "variables.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
