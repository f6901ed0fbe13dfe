"""weft_routes against the real kernel, with both pyroute2 versions."""

import pytest

from conftest import sh

PEERS = [
    {"dst": "100.96.2.0/24", "via": "100.96.2.0", "onlink": True},
    {"dst": "100.96.3.0/24", "via": "100.96.3.0", "onlink": True},
]


def routes(netns, *extra):
    return sh("ip", "route", "show", "proto", "119", *extra, netns=netns)


def test_create_idempotent_change_purge(netns, run_in):
    result = run_in("weft.overlay.routes", {"dev": "u0", "routes": PEERS, "purge": True})
    assert result["changed"] and not result["failed"], result
    assert result["added"] == ["100.96.2.0/24 via 100.96.2.0 dev u0 onlink",
                               "100.96.3.0/24 via 100.96.3.0 dev u0 onlink"]
    assert routes(netns) == ("100.96.2.0/24 via 100.96.2.0 dev u0 onlink \n"
                             "100.96.3.0/24 via 100.96.3.0 dev u0 onlink \n")

    again = run_in("weft.overlay.routes", {"dev": "u0", "routes": PEERS, "purge": True})
    assert not again["changed"], again

    moved = [PEERS[0], {"dst": "100.96.3.0/24", "via": "10.9.0.7"}]
    changed = run_in("weft.overlay.routes", {"dev": "u0", "routes": moved, "purge": True}, diff=True)
    assert changed["changed"] and changed["updated"] == ["100.96.3.0/24 via 10.9.0.7 dev u0"]
    assert "-100.96.3.0/24 via 100.96.3.0 dev u0 onlink" in changed["stdout_text"]
    assert "+100.96.3.0/24 via 10.9.0.7 dev u0" in changed["stdout_text"]
    assert "100.96.3.0/24 via 10.9.0.7 dev u0" in routes(netns)

    purged = run_in("weft.overlay.routes", {"dev": "u0", "routes": [PEERS[0]], "purge": True})
    assert purged["removed"] == ["100.96.3.0/24 via 10.9.0.7 dev u0"]
    assert routes(netns) == "100.96.2.0/24 via 100.96.2.0 dev u0 onlink \n"


def test_check_mode_changes_nothing(netns, run_in):
    result = run_in("weft.overlay.routes", {"dev": "u0", "routes": PEERS}, check=True, diff=True)
    assert result["changed"] and len(result["added"]) == 2
    assert routes(netns) == ""
    assert "+100.96.2.0/24 via 100.96.2.0 dev u0 onlink" in result["stdout_text"]


def test_purge_never_touches_routes_it_does_not_own(netns, run_in):
    sh("ip", "route", "add", "100.96.9.0/24", "via", "10.9.0.9", "dev", "u0", netns=netns)
    sh("ip", "route", "add", "100.96.8.0/24", "via", "10.9.0.8", "proto", "119", "table", "7",
       netns=netns)
    run_in("weft.overlay.routes", {"dev": "u0", "routes": PEERS})
    result = run_in("weft.overlay.routes", {"routes": [], "purge": True})
    assert len(result["removed"]) == 2
    assert "100.96.9.0/24 via 10.9.0.9" in sh("ip", "route", netns=netns)
    assert "100.96.8.0/24" in routes(netns, "table", "7")


def test_purge_removes_a_link_scope_route(netns, run_in):
    """The udp backend's route (network dev TUN, scope link): found and removed by purge."""
    run_in("weft.overlay.routes", {"routes": [{"dst": "100.96.0.0/16", "dev": "u0"}]})
    assert routes(netns) == "100.96.0.0/16 dev u0 scope link \n"
    result = run_in("weft.overlay.routes", {"routes": [], "purge": True})
    assert result["removed"] == ["100.96.0.0/16 dev u0"] and not result["failed"], result
    assert routes(netns) == ""


def test_tables_metrics_scope_and_ipv6(netns, run_in):
    sh("ip", "-6", "addr", "add", "fd00::1/64", "dev", "u0", "nodad", netns=netns)
    spec = [{"dst": "100.96.4.0/24", "via": "10.9.0.4", "table": "100", "metric": 5},
            {"dst": "100.96.5.0/24", "dev": "u0", "table": "100"},
            {"dst": "fd01::/64", "via": "fd00::2", "dev": "u0"},
            {"dst": "fd02::/48", "dev": "u0"}]   # IPv6 has no link scope: the kernel's is global
    result = run_in("weft.overlay.routes", {"routes": spec})
    assert result["changed"], result
    assert routes(netns, "table", "100") == ("100.96.4.0/24 via 10.9.0.4 dev u0 metric 5 \n"
                                             "100.96.5.0/24 dev u0 scope link \n")
    assert "fd01::/64 via fd00::2 dev u0 metric 1024" in sh("ip", "-6", "route", "show",
                                                            "proto", "119", netns=netns)
    assert "fd02::/48 dev u0 metric 1024" in sh("ip", "-6", "route", "show", "proto", "119",
                                                netns=netns)
    assert not run_in("weft.overlay.routes", {"routes": spec})["changed"]


VALID = {"dst": "100.96.7.0/24", "via": "10.9.0.7"}


@pytest.mark.parametrize("args, message", [
    ({"routes": [VALID, {"dst": "100.96.2.5/24", "dev": "u0"}]}, "routes[1].dst: '100.96.2.5/24' is not a network"),
    ({"routes": [VALID, {"dst": "banana", "dev": "u0"}]}, "routes[1].dst: 'banana' is not a network"),
    ({"routes": [VALID, {"dst": "100.96.2.0/24", "via": "fd00::1", "dev": "u0"}]}, "routes[1]: mixes IPv4 and IPv6"),
    ({"routes": [VALID, {"dst": "100.96.2.0/24", "via": "10.9.0.300"}]}, "routes[1].via: '10.9.0.300' is not an IP"),
    ({"routes": [VALID, {"dst": "100.96.2.0/24", "dev": "nosuch0"}]}, "routes[1].dev: no device named nosuch0"),
    ({"routes": [VALID, {"dst": "100.96.2.0/24"}]}, "routes[1]: needs via or dev"),
    ({"routes": [VALID, {"dst": "100.96.2.0/24", "dev": "u0", "onlink": True}]}, "routes[1].onlink: needs both via"),
    ({"routes": [VALID, {"dst": "100.96.2.0/24", "dev": "u0", "table": "mine"}]}, "routes[1].table: 'mine' is not a table"),
    ({"routes": [VALID, {"dst": "100.96.7.0/24", "dev": "u0"}]}, "routes[1]: 100.96.7.0/24 (table 254, metric 0) is listed twice"),
    ({"routes": [VALID, {"dst": "100.96.2.0/24", "dev": "u0", "metric": -1}]}, "routes[1].metric: -1 is out of range"),
    ({"dev": "nosuch0", "routes": [VALID]}, "dev: no device named nosuch0"),
    ({"protocol": 2, "routes": [VALID]}, "protocol: 2 is out of range"),
])
def test_bad_input_is_refused_before_any_change(netns, run_in, args, message):
    # The first entry is valid: a bad later one must still leave the kernel untouched.
    result = run_in("weft.overlay.routes", args)
    assert result["failed"] and result["msg"].startswith(message), result["msg"]
    assert routes(netns) == ""
