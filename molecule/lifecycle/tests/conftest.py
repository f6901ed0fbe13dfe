"""The lifecycle tests use the shared helpers of molecule/shared/tests."""

import os
import sys

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "shared", "tests"))
