"""weft_plan through the real ansible CLI: the lease file, check and diff mode, locking."""

import concurrent.futures
import os

import pytest
import yaml

NETWORK = {"Network": "100.96.0.0/16", "Backend": {"Type": "vxlan"}}


def inventory(*names):
    return [{"name": n, "public_ip": "10.168.0.%d" % (int(n[-1]) + 1)} for n in names]


def plan_args(path, hosts, network=NETWORK, **extra):
    return dict(network=network, hosts=hosts, lease_file=str(path), **extra)


def subnets(path):
    doc = yaml.safe_load(path.read_text())
    return {name: lease["subnet"] for name, lease in doc["weft_leases"].items()}


def test_fresh_inventory_then_add_and_remove(tmp_path, ansible_module):
    path = tmp_path / "group_vars" / "all" / "weft_leases.yml"
    result = ansible_module("weft.overlay.plan", plan_args(path, inventory("node1", "node2", "node3")))
    assert result["changed"] and not result["failed"]
    assert subnets(path) == {"node1": "100.96.1.0/24", "node2": "100.96.2.0/24",
                             "node3": "100.96.3.0/24"}
    text = path.read_text()
    assert text.startswith("# weft subnet leases")
    lease = yaml.safe_load(text)["weft_leases"]["node1"]
    assert lease == {"subnet": "100.96.1.0/24", "public_ip": "10.168.0.2", "backend_type": "vxlan",
                     "backend_data": {"vni": 1, "vtep_mac": "0e:77:64:60:01:00"}}
    assert result["nodes"]["node1"]["bridge_address"] == "100.96.1.1/24"

    again = ansible_module("weft.overlay.plan", plan_args(path, inventory("node1", "node2", "node3")))
    assert not again["changed"] and path.read_text() == text

    grown = ansible_module("weft.overlay.plan", plan_args(path, inventory("node1", "node3", "node4")))
    assert grown["changed"]
    assert subnets(path) == {"node1": "100.96.1.0/24", "node2": "100.96.2.0/24",
                             "node3": "100.96.3.0/24", "node4": "100.96.4.0/24"}
    assert grown["retained"] == ["node2"] and sorted(grown["nodes"]) == ["node1", "node3", "node4"]
    assert grown["capacity"] == {"subnets": 255, "used": 4, "free": 251, "subnet_len": 24,
                                 "range": "100.96.1.0/24 to 100.96.255.0/24"}

    pruned = ansible_module("weft.overlay.plan", plan_args(path, inventory("node1", "node3", "node4"),
                                                           prune=True))
    assert pruned["released"] == ["node2"] and "node2" not in subnets(path)


def test_check_mode_writes_nothing_and_diff_shows_the_change(tmp_path, ansible_module):
    path = tmp_path / "weft_leases.yml"
    ansible_module("weft.overlay.plan", plan_args(path, inventory("node1")))
    before = path.read_bytes()
    result = ansible_module("weft.overlay.plan", plan_args(path, inventory("node1", "node2")),
                            check=True, diff=True)
    assert result["changed"] and "node2" in result["leases"]
    assert path.read_bytes() == before
    assert "+  node2:" in result["stdout_text"]
    assert "+    subnet: 100.96.2.0/24" in result["stdout_text"]


@pytest.mark.parametrize("network, hosts, message", [
    ({"Network": "100.96.0.0/33"}, inventory("node1"), "weft_network.Network: '100.96.0.0/33'"),
    ({"Network": "100.96.0.0/16", "SubnetLen": 31}, inventory("node1"), "weft_network.SubnetLen: 31"),
    ({"Network": "100.96.0.0/16", "SubnetMin": "100.96.9.0", "SubnetMax": "100.96.2.0"},
     inventory("node1"), "weft_network.SubnetMin: 100.96.9.0 is above SubnetMax"),
    ({"Network": "10.168.0.0/16"}, inventory("node1"), "weft_public_ip of node1: 10.168.0.2 lies inside"),
    (NETWORK, [{"name": "node1", "public_ip": "10.0.2.15"}, {"name": "node2", "public_ip": "10.0.2.15"}],
     "weft_public_ip of node2: 10.0.2.15 is also the public IP of node1"),
    (NETWORK, [{"name": "node1", "public_ip": "10.0.0.1", "subnet": "100.96.7.0/24"},
               {"name": "node2", "public_ip": "10.0.0.2", "subnet": "100.96.7.0/24"}],
     "weft_subnet of node2: 100.96.7.0/24 is also pinned by node1"),
    (NETWORK, [{"name": "node1", "public_ip": "10.0.0.1", "subnet": "100.97.0.0/24"}],
     "weft_subnet of node1: 100.97.0.0/24 is outside the subnet range"),
    ({"Network": "100.96.0.0/24", "SubnetLen": 26}, inventory("node1", "node2", "node3", "node4"),
     "out of subnets: 4 hosts, 3 subnets from 100.96.0.64/26 to 100.96.0.192/26"),
])
def test_bad_input_fails_with_its_reason_and_leaves_the_file_byte_identical(
        tmp_path, ansible_module, network, hosts, message):
    path = tmp_path / "weft_leases.yml"
    ansible_module("weft.overlay.plan", plan_args(path, inventory("node1")))
    before = path.read_bytes()
    result = ansible_module("weft.overlay.plan", plan_args(path, hosts, network=network))
    assert result["failed"]
    assert result["msg"].startswith(message), result["msg"]
    assert path.read_bytes() == before


def test_corrupt_lease_file_is_reported_not_overwritten(tmp_path, ansible_module):
    path = tmp_path / "weft_leases.yml"
    path.write_text("weft_leases: [this is: not a mapping\n")
    result = ansible_module("weft.overlay.plan", plan_args(path, inventory("node1")))
    assert result["failed"] and "not valid YAML" in result["msg"]
    assert path.read_text() == "weft_leases: [this is: not a mapping\n"


def test_concurrent_plays_never_hand_out_one_subnet_twice(tmp_path, ansible_module):
    path = tmp_path / "weft_leases.yml"
    # Six controllers at once, each adding its own host to the same file.
    jobs = [inventory("node%d" % i) for i in range(1, 7)]
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda hosts: ansible_module(
            "weft.overlay.plan", plan_args(path, hosts, prune=False)), jobs))
    assert not any(r["failed"] for r in results)
    held = subnets(path)
    assert sorted(held) == ["node%d" % i for i in range(1, 7)]
    assert len(set(held.values())) == 6
    assert sorted(os.listdir(tmp_path)) == ["weft_leases.yml"]  # no lock file left behind


def test_a_relative_lease_file_is_refused(tmp_path, ansible_module):
    result = ansible_module("weft.overlay.plan", plan_args("\\/root/weft_leases.yml", inventory("node1")))
    assert result["failed"] and "weft_lease_file: '\\\\/root/weft_leases.yml' is not an absolute path" \
        in result["msg"], result["msg"]
