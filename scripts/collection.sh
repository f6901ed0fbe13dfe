#!/usr/bin/env bash
# The collection as users get it: build the tarball, then the ecosystem's own checks on what
# it holds: ansible-test sanity (every test that needs no container), ansible-test units
# (tests/unit, the kernel-free tests, against the tarball's code), antsibull-docs' lint
# of every plugin's documentation, and the changelog's lint. The collection is unpacked
# outside the checkout (ansible-test takes a directory inside a git work tree for that tree
# and would see none of it); ansible-test's venvs are kept below .cache/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
out=$(mktemp -d "${TMPDIR:-/tmp}/weft-collection.XXXXXX")
trap 'rm -rf "$out"' EXIT
mkdir -p "$out/dist"
ansible-galaxy collection build --output-path "$out/dist" . >/dev/null
tarball=$(echo "$out"/dist/weft-overlay-*.tar.gz)
echo "built $(basename "$tarball"): $(du -k "$tarball" | cut -f1) KB, $(tar -tzf "$tarball" | grep -vc '/$') files"
root="$out/ansible_collections/weft/overlay"
mkdir -p "$root"
tar -xzf "$tarball" -C "$root"

# ansible-test puts pip into each sanity venv with a bootstrap script it downloads from a
# host this machine cannot reach; the script saved in its cache is its documented way round.
home="$PWD/.cache/ansible-test-home"
pip_version=$(python -c 'import types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version="3"))["pip"])')
mkdir -p "$home/.ansible/test/cache"
cp scripts/get_pip.py "$home/.ansible/test/cache/get_pip_${pip_version//./_}.py"
python_version=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')

echo "== ansible-test sanity (the built collection)"
(cd "$root" && HOME="$home" ansible-test sanity --requirements --python "$python_version" \
   --color no) 2>&1 | tee "$out/sanity.log"
# ansible-test passes when it finds nothing to test: that must fail here.
if grep -q "All targets skipped" "$out/sanity.log"; then
  echo "ansible-test sanity found nothing to test in $root" >&2
  exit 1
fi
echo "== ansible-test units (the kernel-free tests, on the built collection's code)"
# The tarball leaves tests out; its code is what they import, by the collection's FQCN.
mkdir -p "$root/tests"
cp -r tests/unit "$root/tests/unit"
find "$root/tests" -name __pycache__ -prune -exec rm -rf {} +
(cd "$root" && HOME="$home" ansible-test units --requirements --python "$python_version" \
   --color no) 2>&1 | tee "$out/units.log"
grep -Eq "^=+ [0-9]+ passed" "$out/units.log" || { echo "ansible-test units ran no test" >&2; exit 1; }

echo "== antsibull-docs lint-collection-docs"
(cd "$root" && antsibull-docs lint-collection-docs --plugin-docs .)
echo "== antsibull-changelog lint"
antsibull-changelog lint
