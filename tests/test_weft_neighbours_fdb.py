"""weft_neighbours and weft_fdb against the real kernel, with both pyroute2 versions."""

import pytest

from conftest import sh

MAC2, MAC3 = "0e:77:64:60:02:00", "0e:77:64:60:03:00"


@pytest.fixture
def vxlan(netns):
    sh("ip", "link", "add", "flannel.1", "type", "vxlan", "id", "1", "local", "10.9.0.1",
       "dev", "u0", "dstport", "8472", "nolearning", netns=netns)
    sh("ip", "link", "set", "flannel.1", "up", netns=netns)
    return "flannel.1"


def neigh(netns):
    """Permanent entries, one line each, sorted (the kernel lists them in hash order)."""
    lines = sh("ip", "neigh", "show", "dev", "flannel.1", "nud", "permanent", netns=netns)
    return "".join(sorted(lines.splitlines(keepends=True)))


def fdb(netns):
    lines = sh("bridge", "fdb", "show", "dev", "flannel.1", netns=netns).splitlines()
    return sorted(line for line in lines if " dst " in line)


def test_neighbours_create_idempotent_change_purge(netns, vxlan, run_in):
    wanted = [{"ip": "100.96.2.0", "mac": MAC2}, {"ip": "100.96.3.0", "mac": MAC3.upper()}]
    sh("ip", "neigh", "add", "100.96.9.9", "lladdr", "0e:00:00:00:00:09", "dev", "flannel.1",
       "nud", "stale", netns=netns)  # learned, not permanent: never purged
    result = run_in("weft.overlay.neighbours", {"dev": vxlan, "neighbours": wanted, "purge": True})
    assert result["changed"] and len(result["added"]) == 2, result
    assert neigh(netns) == ("100.96.2.0 lladdr %s PERMANENT \n100.96.3.0 lladdr %s PERMANENT \n"
                            % (MAC2, MAC3))
    assert not run_in("weft.overlay.neighbours", {"dev": vxlan, "neighbours": wanted, "purge": True})["changed"]

    moved = [{"ip": "100.96.2.0", "mac": "0e:77:64:60:02:99"}]
    result = run_in("weft.overlay.neighbours", {"dev": vxlan, "neighbours": moved, "purge": True}, diff=True)
    assert result["updated"] == ["100.96.2.0 lladdr 0e:77:64:60:02:99 dev flannel.1 permanent"]
    assert result["removed"] == ["100.96.3.0 lladdr %s dev flannel.1 permanent" % MAC3]
    assert "-100.96.3.0 lladdr %s" % MAC3 in result["stdout_text"]
    assert neigh(netns) == "100.96.2.0 lladdr 0e:77:64:60:02:99 PERMANENT \n"
    assert "100.96.9.9" in sh("ip", "neigh", "show", "dev", "flannel.1", netns=netns)


def test_neighbours_check_mode_changes_nothing(netns, vxlan, run_in):
    result = run_in("weft.overlay.neighbours", {"dev": vxlan, "neighbours": [{"ip": "100.96.2.0", "mac": MAC2}]},
                    check=True)
    assert result["changed"] and neigh(netns) == ""


@pytest.mark.parametrize("args, message", [
    ({"dev": "nosuch0", "neighbours": []}, "dev: no device named nosuch0"),
    ({"dev": "flannel.1", "neighbours": [{"ip": "100.96.2.0", "mac": MAC2}, {"ip": "100.96.2", "mac": MAC2}]},
     "neighbours[1].ip: '100.96.2' is not an IP address"),
    ({"dev": "flannel.1", "neighbours": [{"ip": "100.96.2.0", "mac": MAC2}, {"ip": "100.96.3.0", "mac": "0e:77:zz"}]},
     "neighbours[1].mac: '0e:77:zz' is not a MAC address"),
    ({"dev": "flannel.1", "neighbours": [{"ip": "100.96.2.0", "mac": MAC2}, {"ip": "100.96.2.0", "mac": MAC3}]},
     "neighbours[1].ip: 100.96.2.0 is listed twice"),
])
def test_neighbours_bad_input(netns, vxlan, run_in, args, message):
    result = run_in("weft.overlay.neighbours", args)
    assert result["failed"] and result["msg"].startswith(message), result["msg"]
    assert neigh(netns) == ""


def test_fdb_create_idempotent_move_purge_and_flood(netns, vxlan, run_in):
    wanted = [{"mac": MAC2, "dst": "10.9.0.2"}, {"mac": MAC3, "dst": "10.9.0.3"},
              {"mac": "00:00:00:00:00:00", "dst": "10.9.0.2"},
              {"mac": "00:00:00:00:00:00", "dst": "10.9.0.3"}]
    result = run_in("weft.overlay.fdb", {"dev": vxlan, "entries": wanted, "purge": True})
    assert result["changed"] and len(result["added"]) == 4, result
    assert fdb(netns) == sorted([
        "00:00:00:00:00:00 dst 10.9.0.2 self permanent",
        "00:00:00:00:00:00 dst 10.9.0.3 self permanent",
        "%s dst 10.9.0.2 self permanent" % MAC2,
        "%s dst 10.9.0.3 self permanent" % MAC3])
    assert not run_in("weft.overlay.fdb", {"dev": vxlan, "entries": wanted, "purge": True})["changed"]

    # node3 changed its public IP; the flood entries are dropped from the list.
    moved = [{"mac": MAC2, "dst": "10.9.0.2"}, {"mac": MAC3, "dst": "10.9.0.33"}]
    result = run_in("weft.overlay.fdb", {"dev": vxlan, "entries": moved, "purge": True}, diff=True)
    assert result["updated"] == ["%s dst 10.9.0.33 dev flannel.1 self permanent" % MAC3]
    assert sorted(result["removed"]) == [
        "00:00:00:00:00:00 dst 10.9.0.2 dev flannel.1 self permanent",
        "00:00:00:00:00:00 dst 10.9.0.3 dev flannel.1 self permanent"]
    assert "-%s dst 10.9.0.3 dev flannel.1" % MAC3 in result["stdout_text"]
    assert fdb(netns) == ["%s dst 10.9.0.2 self permanent" % MAC2,
                          "%s dst 10.9.0.33 self permanent" % MAC3]
    run_in("weft.overlay.fdb", {"dev": vxlan, "entries": [], "purge": True})
    assert fdb(netns) == []


def test_fdb_leaves_what_the_kernel_learned_alone(netns, vxlan, run_in):
    wanted = {"dev": vxlan, "entries": [{"mac": MAC2, "dst": "10.9.0.2"}], "purge": True}
    assert run_in("weft.overlay.fdb", wanted)["changed"]
    sh("bridge", "fdb", "add", MAC3, "dev", vxlan, "dst", "10.9.0.9", "dynamic", netns=netns)
    again = run_in("weft.overlay.fdb", wanted)   # (as with Backend.Learning: learned, not weft's)
    assert not again["changed"], again
    assert any(line.startswith("%s dst 10.9.0.9" % MAC3) for line in fdb(netns))
    # An entry someone added (bridge fdb add: permanent) is drift, purged as before.
    sh("bridge", "fdb", "replace", MAC3, "dev", vxlan, "dst", "10.9.0.9", netns=netns)
    purged = run_in("weft.overlay.fdb", wanted)
    assert purged["changed"] and not any(line.startswith(MAC3) for line in fdb(netns)), purged


def test_fdb_check_mode_changes_nothing(netns, vxlan, run_in):
    result = run_in("weft.overlay.fdb", {"dev": vxlan, "entries": [{"mac": MAC2, "dst": "10.9.0.2"}]},
                    check=True, diff=True)
    assert result["changed"] and fdb(netns) == []
    assert "+%s dst 10.9.0.2 dev flannel.1 self permanent" % MAC2 in result["stdout_text"]


@pytest.mark.parametrize("args, message", [
    ({"dev": "u0", "entries": []}, "dev: u0 is a veth device, not vxlan"),
    ({"dev": "nosuch0", "entries": []}, "dev: no device named nosuch0"),
    ({"dev": "flannel.1", "entries": [{"mac": MAC2, "dst": "10.9.0.2"}, {"mac": MAC2, "dst": "10.9.0"}]},
     "entries[1].dst: '10.9.0' is not an IP address"),
    ({"dev": "flannel.1", "entries": [{"mac": MAC2, "dst": "10.9.0.2"}, {"mac": "0e:77", "dst": "10.9.0.3"}]},
     "entries[1].mac: '0e:77' is not a MAC address"),
    ({"dev": "flannel.1", "entries": [{"mac": MAC2, "dst": "10.9.0.2"}, {"mac": MAC2, "dst": "10.9.0.2"}]},
     "entries[1]: %s is listed twice (a unicast MAC has one destination)" % MAC2),
    ({"dev": "flannel.1", "entries": [{"mac": "00:00:00:00:00:00", "dst": "10.9.0.2"},
                                      {"mac": "00:00:00:00:00:00", "dst": "10.9.0.2"}]},
     "entries[1]: 00:00:00:00:00:00 dst 10.9.0.2 is listed twice"),
])
def test_fdb_bad_input(netns, vxlan, run_in, args, message):
    result = run_in("weft.overlay.fdb", args)
    assert result["failed"] and result["msg"].startswith(message), result["msg"]
    assert fdb(netns) == []


def test_check_mode_on_a_device_an_earlier_task_would_create(netns, run_in):
    """A dry run on a fresh host: the VXLAN device does not exist yet, so every entry is
    to be added (a real run still refuses a missing device: see the bad-input tests)."""
    neigh = run_in("weft.overlay.neighbours", {"dev": "flannel.9", "purge": True,
                                               "neighbours": [{"ip": "100.96.2.0", "mac": MAC2}]}, check=True)
    assert neigh["changed"] and not neigh["failed"] and len(neigh["added"]) == 1, neigh
    entries = run_in("weft.overlay.fdb", {"dev": "flannel.9", "purge": True,
                                          "entries": [{"mac": MAC2, "dst": "10.9.0.2"}]}, check=True)
    assert entries["changed"] and not entries["failed"] and len(entries["added"]) == 1, entries
    routes = run_in("weft.overlay.routes", {"dev": "flannel.9", "purge": True, "routes": [
        {"dst": "100.96.2.0/24", "via": "100.96.2.0", "onlink": True}]}, check=True)
    assert routes["changed"] and routes["added"] == [
        "100.96.2.0/24 via 100.96.2.0 dev flannel.9 onlink"] and not routes["removed"], routes
