# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lease file: a YAML file in the inventory that is the single source of truth.

Readers and the writer hold an exclusive lock on the file's directory for the whole
read-plan-write cycle, so two plays started at once serialize instead of
handing out one subnet twice. Writes go to a temporary file in the same
directory that is renamed over the old one: a crash leaves the old file whole.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass

try:
    import yaml
except ImportError:     # PyYAML comes with ansible-core on the controller, where this runs
    yaml = None

from ..files import read_text, write_atomic
from .subnets import leases_as_dict, parse_leases

HEADER = """\
# weft subnet leases: one per host, keyed by inventory name.
# Written by weft's planner (plan.yml, site.yml); review and commit it with the inventory.
# A subnet never moves while its host stays in the inventory. Pin a subnet with the
# host variable weft_subnet; release the leases of removed hosts with weft_prune=true.
"""
TOP_KEY = "weft_leases"


class LeaseFileError(ValueError):
    pass


@contextlib.contextmanager
def locked(path):
    """Hold an exclusive lock for the lease file at `path`: on its directory, which outlives
    the file's atomic replacement and leaves nothing behind in the user's inventory."""
    if not os.path.isabs(path):
        raise LeaseFileError("weft_lease_file: %r is not an absolute path" % path)
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def parse(text, path) -> dict:
    """The raw lease mapping (host -> dict) in `text`; {} for an empty or missing file."""
    if not text:
        return {}
    need_yaml()
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LeaseFileError("%s: not valid YAML (%s)" % (path, exc)) from None
    if doc is None:
        return {}
    if not isinstance(doc, dict) or set(doc) - {TOP_KEY}:
        raise LeaseFileError("%s: must hold only the mapping %s" % (path, TOP_KEY))
    return doc.get(TOP_KEY) or {}


def need_yaml():
    if yaml is None:
        raise LeaseFileError("the lease file needs PyYAML on the controller (python3-yaml)")


def render(leases: dict) -> str:
    need_yaml()
    body = yaml.safe_dump({TOP_KEY: leases}, default_flow_style=False, sort_keys=True,
                          explicit_start=False, width=100)
    return HEADER + body


@dataclass
class Outcome:
    """What a store update did, in the planning view both stores share (the file's YAML)."""
    changed: bool
    before: str
    after: str
    where: str

    def diff(self) -> dict:
        return dict(before=self.before, after=self.after,
                    before_header=self.where, after_header=self.where)


class FileStore:
    """Leases in the lease file: read, planned and written under one exclusive lock."""

    foreign = {}  # a file holds only this inventory's leases

    def __init__(self, path):
        self.path = path

    def _parse(self, text) -> dict:
        return parse_leases(parse(text, self.path), "lease file %s" % self.path)

    def leases(self) -> dict:
        with locked(self.path):
            return self._parse(read_text(self.path))

    def update(self, compute, config=None, check_mode=False):
        """Replace the leases with compute(leases, reservations); the file has no reservations.

        `config` is the network config, which the file does not record.
        """
        with locked(self.path):
            before = read_text(self.path)
            existing = self._parse(before)
            after = render(leases_as_dict(compute(existing, {})))
            changed = after != (before or "")
            if changed and not check_mode:
                write_atomic(self.path, after)
        return Outcome(changed, before or "", after, self.path)
