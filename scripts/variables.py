"""The table of the role's variables in docs/variables.md, made from
roles/weft/meta/argument_specs.yml (the one place they are declared), so the page, defaults
and specs cannot drift apart.

    python3 scripts/variables.py            print the table
    python3 scripts/variables.py --write    put it into docs/variables.md between its markers
    python3 scripts/variables.py --check    exit 1 if docs/variables.md or defaults/main.yml differ

tests/test_variables.py runs the check.
"""

from __future__ import annotations

import json
import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPECS = os.path.join(ROOT, "roles", "weft", "meta", "argument_specs.yml")
DEFAULTS = os.path.join(ROOT, "roles", "weft", "defaults", "main.yml")
PAGE = os.path.join(ROOT, "docs", "variables.md")
BEGIN = "<!-- variables: made by scripts/variables.py from meta/argument_specs.yml -->"
END = "<!-- end of variables -->"


def options():
    """{name: spec} of every variable the role takes (all entry points)."""
    with open(SPECS) as handle:
        specs = yaml.safe_load(handle)["argument_specs"]
    found = {}
    for entry in specs.values():
        found.update(entry.get("options") or {})
    return found


def markup(text):
    """Ansible's doc markup (O(), V(), C()) as Markdown code."""
    return re.sub(r"\b[OVCM]\(([^)]*)\)", r"`\1`", text)


def shown(value):
    if value is None:
        return "—"
    if isinstance(value, str):
        return "`%s`" % value if value else '`""`'
    return "`%s`" % json.dumps(value, separators=(", ", ": ")).replace('"', "")


def table():
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for name, spec in sorted(options().items()):
        description = spec.get("description", "")
        if isinstance(description, list):
            description = " ".join(description)
        default = "(required by its playbook)" if spec.get("required") else shown(spec.get("default"))
        if spec.get("choices"):
            description += " One of %s." % ", ".join("`%s`" % c for c in spec["choices"])
        lines.append("| `%s` | %s | %s |" % (name, default, markup(" ".join(description.split()))))
    return "\n".join(lines) + "\n"


def defaults_drift():
    """Variables whose defaults/main.yml value differs from the spec, or that one lacks."""
    with open(DEFAULTS) as handle:
        defaults = yaml.safe_load(handle)
    specs = {name: spec for name, spec in options().items() if not spec.get("required")}
    problems = ["%s: in defaults/main.yml, not in argument_specs.yml" % n
                for n in sorted(set(defaults) - set(specs))]
    problems += ["%s: in argument_specs.yml, not in defaults/main.yml" % n
                 for n in sorted(set(specs) - set(defaults))]
    problems += ["%s: defaults/main.yml says %r, argument_specs.yml %r"
                 % (n, defaults[n], specs[n].get("default")) for n in sorted(set(specs) & set(defaults))
                 if defaults[n] != specs[n].get("default")]
    return problems


def page_with(text):
    with open(PAGE) as handle:
        page = handle.read()
    if BEGIN not in page or END not in page:
        raise SystemExit("docs/variables.md has no %s ... %s section" % (BEGIN, END))
    head, rest = page.split(BEGIN, 1)
    return page, head + BEGIN + "\n" + text + END + rest.split(END, 1)[1]


def main(argv):
    text = table()
    if len(argv) == 1:
        sys.stdout.write(text)
        return 0
    current, wanted = page_with(text)
    if argv[1] == "--write":
        with open(PAGE, "w") as handle:
            handle.write(wanted)
        return 0
    problems = defaults_drift() + (["docs/variables.md: the variables table differs from argument_specs.yml "
                                    "(run python3 scripts/variables.py --write)"]
                                   if current != wanted else [])
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
