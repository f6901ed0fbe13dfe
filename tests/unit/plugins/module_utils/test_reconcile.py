"""The pure change computation shared by the list modules."""

from ansible_collections.weft.overlay.plugins.module_utils.weft.net.reconcile import (
    changes, differs)


def test_differs_compares_only_named_attributes():
    current = {"via": "10.0.0.1", "dev": "eth0", "metric": 0}
    assert not differs(current, {"via": "10.0.0.1"})
    assert differs(current, {"via": "10.0.0.2"})
    assert differs(current, {"via": None})  # None is a value: "no gateway"
    assert differs({}, {"dev": "eth0"})


def test_changes_without_purge_keeps_unlisted_entries():
    current = {"a": {"v": 1}, "b": {"v": 2}, "c": {"v": 3}}
    desired = {"a": {"v": 1}, "b": {"v": 9}, "d": {"v": 4}}
    assert changes(current, desired, purge=False) == (["d"], ["b"], [])
    assert changes(current, desired, purge=True) == (["d"], ["b"], ["c"])
    assert changes(current, current, purge=True) == ([], [], [])
    assert changes(current, {}, purge=True) == ([], [], ["a", "b", "c"])
