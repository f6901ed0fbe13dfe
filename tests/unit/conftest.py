"""The kernel-free tests, run by `ansible-test units` on the built collection (and by
pytest from the checkout): the planner, the host model, the daemon's offload arithmetic,
the reconciler and the filters, imported by the collection's FQCN."""

from hypothesis import settings

# A shared 2-core machine: how long one example takes says nothing about the code.
settings.register_profile("weft-unit", deadline=None)
settings.load_profile("weft-unit")
