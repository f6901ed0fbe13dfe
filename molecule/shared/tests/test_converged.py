"""Every node holds what its lease and its peers' leases imply, and containers on different
nodes reach each other keeping their source address."""

import pytest

import overlay


@pytest.mark.parametrize("name", overlay.NODES)
def test_node_holds_the_planned_state(name, states, leases, peer_leases):
    overlay.check_converged(name, states[name], "vxlan", leases, peer_leases)


def test_every_container_reaches_every_other():
    overlay.check_containers_reach_each_other(overlay.start_containers())
