"""With the etcd store: weft's leases are Flannel reservations, and Flannel hosts are peers."""

import json

import pytest

import overlay
from conftest import ETCD, PREFIX, etcd_keys

pytestmark = pytest.mark.skipif(not ETCD, reason="etcd lease store only")

FLANNEL_HOST = {"subnet": "100.96.200.0/24", "public_ip": "10.168.0.250",
                "vtep_mac": "5a:d4:10:00:00:fa"}  # written by the scenario's prepare step


def test_every_node_holds_a_lease_in_flannels_format(leases):
    keys = etcd_keys()
    assert sorted(leases) == ["node1", "node2", "node3"]
    for name, lease in leases.items():
        value = keys[PREFIX + "/subnets/" + lease["subnet"].replace("/", "-")]
        assert value == json.dumps(
            {"PublicIP": lease["public_ip"], "PublicIPv6": None, "BackendType": "vxlan",
             "BackendData": {"VNI": 1, "VtepMAC": lease["backend_data"]["vtep_mac"]}},
            separators=(",", ":"))
    assert json.loads(keys[PREFIX + "/config"])["Network"] == "100.96.0.0/16"


@pytest.mark.parametrize("name", overlay.NODES)
def test_the_flannel_host_keeps_its_lease_and_is_a_peer(name, states, peer_leases):
    assert peer_leases["100.96.200.0-24"]["public_ip"] == FLANNEL_HOST["public_ip"]
    st = states[name]
    assert (FLANNEL_HOST["vtep_mac"], FLANNEL_HOST["public_ip"]) in \
        {(f["mac"], f["dst"]) for f in st["fdb"] if "dst" in f}
    assert [(r["gateway"], r["dev"]) for r in overlay.weft_routes(st)
            if r["dst"] == FLANNEL_HOST["subnet"]] == [("100.96.200.0", "flannel.1")]
    assert FLANNEL_HOST["public_ip"] in overlay.nft_set(st, "peers4")  # may send to us
