"""The etcd lease store against a real etcd: Flannel's exact format, transactions, Flannel
hosts on the same network, config guard, prune, migration. etcdctl (Debian's etcd-client)
is the independent witness of what is stored."""

import base64
import ipaddress
import json
import multiprocessing
import subprocess

import pytest
import yaml

from weft.plan.etcd import Compare, EtcdClient, put
from weft.plan.etcdstore import EtcdStore
from weft.plan.subnets import HostSpec, parse_network_config, plan

NETWORK = {"Network": "100.96.0.0/16", "Backend": {"Type": "vxlan"}}
PREFIX = "/coreos.com/network"


def etcdctl(url, *args, stdin=None):
    proc = subprocess.run(["etcdctl", "--endpoints", url, *args], input=stdin,
                          capture_output=True, text=True, env={"ETCDCTL_API": "3"}, check=True)
    return proc.stdout


def stored(url, prefix=PREFIX):
    """key -> (value, etcd lease id) of every key under prefix, as etcdctl reads them."""
    doc = json.loads(etcdctl(url, "get", "--prefix", prefix + "/", "-w", "json"))
    return {base64.b64decode(kv["key"]).decode(): (base64.b64decode(kv["value"]).decode(),
                                                   kv.get("lease", 0))
            for kv in doc.get("kvs", [])}


def revision(url):
    return json.loads(etcdctl(url, "get", "/", "-w", "json"))["header"]["revision"]


def flannel_lease(url, subnet_key, public_ip, mac="c6:d2:32:6f:8f:44", ttl=86400):
    """What flanneld writes: a lease attached to a 24 h etcd lease."""
    value = json.dumps({"PublicIP": public_ip, "PublicIPv6": None, "BackendType": "vxlan",
                        "BackendData": {"VNI": 1, "VtepMAC": mac}}, separators=(",", ":"))
    args = ["put", "%s/subnets/%s" % (PREFIX, subnet_key), value]
    if ttl:
        lease_id = etcdctl(url, "lease", "grant", str(ttl)).split()[1]
        args.append("--lease=" + lease_id)
    etcdctl(url, *args)
    return value


def hosts(*names):
    return [{"name": n, "public_ip": "10.168.0.%d" % (int(n[4:]) + 1)} for n in names]


def plan_args(url, names, network=NETWORK, **etcd):
    return dict(network=network, hosts=hosts(*names), store="etcd",
                etcd=dict(endpoints=[url], **etcd))


def test_leases_are_written_in_flannels_exact_format(etcd, ansible_module):
    result = ansible_module("weft.overlay.plan", plan_args(etcd, ["node1", "node2"]))
    assert result["changed"] and not result["failed"], result
    keys = stored(etcd)
    assert keys["/coreos.com/network/subnets/100.96.1.0-24"] == (
        '{"PublicIP":"10.168.0.2","PublicIPv6":null,"BackendType":"vxlan",'
        '"BackendData":{"VNI":1,"VtepMAC":"0e:77:64:60:01:00"}}', 0)
    assert keys["/coreos.com/network/subnets/100.96.2.0-24"][0].startswith(
        '{"PublicIP":"10.168.0.3",')
    assert keys["/coreos.com/network/weft/hosts/node1"] == ("100.96.1.0/24", 0)
    config = json.loads(keys["/coreos.com/network/config"][0])
    assert parse_network_config(config) == parse_network_config(NETWORK)
    assert result["nodes"]["node2"]["backend_data"]["vtep_mac"] == "0e:77:64:60:02:00"

    before = revision(etcd)
    again = ansible_module("weft.overlay.plan", plan_args(etcd, ["node1", "node2"]))
    assert not again["changed"] and revision(etcd) == before


@pytest.mark.parametrize("backend, value", [
    ("host-gw", '{"PublicIP":"10.168.0.2","PublicIPv6":null,"BackendType":"host-gw"}'),
    ("udp", '{"PublicIP":"10.168.0.2","PublicIPv6":null}'),  # Flannel's udp: no BackendType
])
def test_other_backends_write_flannels_values(etcd, ansible_module, backend, value):
    network = {"Network": "100.96.0.0/16", "Backend": {"Type": backend}}
    result = ansible_module("weft.overlay.plan", plan_args(etcd, ["node1"], network=network))
    assert not result["failed"], result
    assert stored(etcd)["/coreos.com/network/subnets/100.96.1.0-24"][0] == value
    again = ansible_module("weft.overlay.plan", plan_args(etcd, ["node1"], network=network))
    assert not again["changed"] and again["nodes"]["node1"]["backend_type"] == backend


def test_flannel_leases_are_respected_and_become_peers(etcd, ansible_module):
    flannel_value = flannel_lease(etcd, "100.96.1.0-24", "10.168.0.50")
    result = ansible_module("weft.overlay.plan", plan_args(etcd, ["node1", "node2"]))
    assert not result["failed"], result
    assert {n: v["subnet"] for n, v in result["nodes"].items()} == \
        {"node1": "100.96.2.0/24", "node2": "100.96.3.0/24"}
    peer = result["foreign"]["100.96.1.0-24"]
    assert (peer["public_ip"], peer["backend_data"]["vtep_mac"], peer["vtep_address"]) == \
        ("10.168.0.50", "c6:d2:32:6f:8f:44", "100.96.1.0")
    assert result["capacity"]["used"] == 3
    value, lease = stored(etcd)["/coreos.com/network/subnets/100.96.1.0-24"]
    assert value == flannel_value and lease, "Flannel's lease must stay as it was, TTL included"

    # Pinning a host onto Flannel's subnet is refused before anything is written.
    before = revision(etcd)
    args = plan_args(etcd, ["node1", "node2"])
    args["hosts"][0]["subnet"] = "100.96.1.0/24"
    pinned = ansible_module("weft.overlay.plan", args)
    assert pinned["failed"] and revision(etcd) == before
    assert "weft_subnet of node1: 100.96.1.0/24 is held by a Flannel lease in etcd" in pinned["msg"]


def test_a_host_takes_over_the_reservation_with_its_public_ip(etcd, ansible_module):
    # A host moving from flanneld to weft keeps its subnet, as a restarted flanneld would.
    flannel_lease(etcd, "100.96.7.0-24", "10.168.0.2")
    result = ansible_module("weft.overlay.plan", plan_args(etcd, ["node1", "node2"]))
    assert result["adopted"] == ["node1"] and result["foreign"] == {}
    assert result["nodes"]["node1"]["subnet"] == "100.96.7.0/24"
    value, lease = stored(etcd)["/coreos.com/network/subnets/100.96.7.0-24"]
    assert lease == 0 and json.loads(value)["BackendData"]["VtepMAC"] == "0e:77:64:60:07:00"
    assert stored(etcd)["/coreos.com/network/weft/hosts/node1"][0] == "100.96.7.0/24"


def test_prune_releases_only_weft_leases(etcd, ansible_module):
    flannel_lease(etcd, "100.96.9.0-24", "10.168.0.50", ttl=0)  # a hand-made reservation
    ansible_module("weft.overlay.plan", plan_args(etcd, ["node1", "node2", "node3"]))
    kept = ansible_module("weft.overlay.plan", plan_args(etcd, ["node1", "node3"]))
    assert kept["retained"] == ["node2"] and not kept["changed"]
    pruned = ansible_module("weft.overlay.plan", dict(plan_args(etcd, ["node1", "node3"]), prune=True))
    assert pruned["released"] == ["node2"] and pruned["changed"]
    keys = stored(etcd)
    assert "/coreos.com/network/subnets/100.96.2.0-24" not in keys
    assert "/coreos.com/network/weft/hosts/node2" not in keys
    assert "/coreos.com/network/subnets/100.96.9.0-24" in keys


def test_check_mode_writes_nothing_and_diff_shows_the_leases(etcd, ansible_module):
    ansible_module("weft.overlay.plan", plan_args(etcd, ["node1"]))
    before = revision(etcd)
    result = ansible_module("weft.overlay.plan", plan_args(etcd, ["node1", "node2"]), check=True,
                            diff=True)
    assert result["changed"] and revision(etcd) == before
    assert "+    subnet: 100.96.2.0/24" in result["stdout_text"]


def test_a_different_network_config_in_etcd_is_an_error_unless_replaced(etcd, ansible_module):
    etcdctl(etcd, "put", PREFIX + "/config",
            '{"Network":"10.5.0.0/16","EnableIPv6":false,"Backend":{"Type":"vxlan"}}')
    before = revision(etcd)
    result = ansible_module("weft.overlay.plan", plan_args(etcd, ["node1"]))
    assert result["failed"] and revision(etcd) == before
    assert result["msg"].startswith("weft_network: differs from etcd key /coreos.com/network/config")
    assert "network 10.5.0.0/16 (etcd) != 100.96.0.0/16" in result["msg"]

    replaced = ansible_module("weft.overlay.plan", plan_args(etcd, ["node1"], replace_config=True))
    assert replaced["changed"] and not replaced["failed"]
    assert json.loads(stored(etcd)[PREFIX + "/config"][0])["Network"] == "100.96.0.0/16"


def test_same_config_written_by_hand_is_accepted(etcd, ansible_module):
    etcdctl(etcd, "put", "/other/prefix/config", '{"Network": "100.96.0.0/16"}')
    result = ansible_module("weft.overlay.plan", plan_args(etcd, ["node1"], prefix="/other/prefix"))
    assert not result["failed"], result
    assert stored(etcd, "/other/prefix")["/other/prefix/config"][0] == '{"Network": "100.96.0.0/16"}'
    assert "/other/prefix/subnets/100.96.1.0-24" in stored(etcd, "/other/prefix")


def test_unreachable_etcd_names_the_variable(ansible_module, tmp_path):
    result = ansible_module("weft.overlay.plan", plan_args("http://127.0.0.1:9", ["node1"], timeout=1))
    assert result["failed"]
    assert result["msg"].startswith("weft_etcd_endpoints: no etcd endpoint answered")


def test_the_next_endpoint_is_tried(etcd, ansible_module):
    result = ansible_module("weft.overlay.plan", dict(plan_args(etcd, ["node1"]),
                                                      etcd=dict(endpoints=["http://127.0.0.1:9", etcd])))
    assert not result["failed"] and result["nodes"]["node1"]["subnet"] == "100.96.1.0/24"


def test_a_guarded_write_fails_when_the_key_appeared_meanwhile(etcd):
    client = EtcdClient([etcd])
    kvs = client.range_prefix("/weft-test/")
    etcdctl(etcd, "put", "/weft-test/a", "theirs")
    assert not client.txn([Compare.as_read("/weft-test/a", kvs.get("/weft-test/a"))],
                          [put("/weft-test/a", "ours")])
    assert stored(etcd, "/weft-test")["/weft-test/a"][0] == "theirs"


def _allocate(url, name, rounds):
    """One controller: plans its own host `rounds` times, as racing pipelines would."""
    config = parse_network_config(NETWORK)
    store = EtcdStore(EtcdClient([url]))
    spec = [HostSpec(name, ipaddress.ip_address("10.200.%d.%d" % (int(name[1:]) // 250,
                                                                  int(name[1:]) % 250 + 1)))]
    for _ in range(rounds):
        store.update(lambda existing, reserved: plan(config, spec, existing,
                                                     reserved=reserved).leases, config)


def test_parallel_controllers_never_hand_out_one_subnet_twice(etcd):
    names = ["h%d" % i for i in range(24)]
    with multiprocessing.get_context("fork").Pool(8) as pool:
        pool.starmap(_allocate, [(etcd, name, 2) for name in names])
    keys = stored(etcd)
    index = {k.rsplit("/", 1)[1]: v for k, (v, _) in keys.items() if "/weft/hosts/" in k}
    assert sorted(index) == sorted(names)
    assert len(set(index.values())) == len(names), "a subnet was handed out twice"
    leases = {k for k in keys if "/subnets/" in k}
    assert leases == {PREFIX + "/subnets/" + s.replace("/", "-") for s in index.values()}
    for name, subnet in index.items():
        value = json.loads(keys[PREFIX + "/subnets/" + subnet.replace("/", "-")][0])
        assert value["PublicIP"] == "10.200.%d.%d" % (int(name[1:]) // 250, int(name[1:]) % 250 + 1)


def test_leases_migrate_from_the_file_to_etcd_and_back(etcd, ansible_module, tmp_path):
    lease_file = tmp_path / "weft_leases.yml"
    ansible_module("weft.overlay.plan", dict(network=NETWORK, hosts=hosts("node1", "node2", "node3"),
                                             lease_file=str(lease_file)))
    ansible_module("weft.overlay.plan", dict(network=NETWORK, hosts=hosts("node1", "node3"),
                                             lease_file=str(lease_file)))  # node2 retained
    file_leases = yaml.safe_load(lease_file.read_text())["weft_leases"]
    flannel_lease(etcd, "100.96.2.0-24", "10.168.0.50")  # a Flannel host holds node2's subnet

    args = dict(network=NETWORK, lease_file=str(lease_file), to="etcd",
                etcd=dict(endpoints=[etcd]))
    clash = ansible_module("weft.overlay.lease_migrate", args)
    assert clash["failed"] and "node2" in clash["msg"] and "100.96.2.0/24" in clash["msg"]
    assert not any("/weft/hosts/" in k for k in stored(etcd))

    etcdctl(etcd, "del", PREFIX + "/subnets/100.96.2.0-24")
    moved = ansible_module("weft.overlay.lease_migrate", args)
    assert moved["changed"] and not moved["failed"], moved
    assert moved["copied"] == ["node1", "node2", "node3"]
    planned = ansible_module("weft.overlay.plan", plan_args(etcd, ["node1", "node3"]))
    assert not planned["changed"] and planned["retained"] == ["node2"]
    assert planned["leases"] == file_leases
    assert not ansible_module("weft.overlay.lease_migrate", args)["changed"]

    back = tmp_path / "back.yml"
    returned = ansible_module("weft.overlay.lease_migrate", dict(args, to="file", lease_file=str(back)))
    assert returned["changed"] and not returned["failed"], returned
    assert yaml.safe_load(back.read_text())["weft_leases"] == file_leases


def test_https_with_client_certificates(etcd_tls, ansible_module):
    url, tls = etcd_tls
    args = plan_args(url, ["node1"], ca_file=tls["ca"], cert_file=tls["client_cert"],
                     key_file=tls["client_key"])
    result = ansible_module("weft.overlay.plan", args)
    assert not result["failed"] and result["nodes"]["node1"]["subnet"] == "100.96.1.0/24", result
    assert not ansible_module("weft.overlay.plan", args)["changed"]

    anonymous = ansible_module("weft.overlay.plan", plan_args(url, ["node1"], ca_file=tls["ca"]))
    assert anonymous["failed"] and anonymous["msg"].startswith("weft_etcd_endpoints: ")
    missing = ansible_module("weft.overlay.plan", dict(args, etcd=dict(args["etcd"], ca_file="/nonexistent")))
    assert missing["failed"] and "weft_etcd_ca_file" in missing["msg"]


def test_etcd_users(etcd_auth, ansible_module):
    result = ansible_module("weft.overlay.plan", plan_args(etcd_auth, ["node1"], username="root",
                                                           password="weft-secret"))
    assert not result["failed"] and result["nodes"]["node1"]["subnet"] == "100.96.1.0/24", result
    wrong = ansible_module("weft.overlay.plan", plan_args(etcd_auth, ["node1"], username="root",
                                                          password="wrong"))
    assert wrong["failed"]
    assert wrong["msg"].startswith("weft_etcd_username/weft_etcd_password: etcd at ")
    assert "weft-secret" not in wrong["stdout_text"]


DUAL_NETWORK = dict(NETWORK, EnableIPv6=True, IPv6Network="fd00:96::/48")


def test_dual_stack_leases_are_flannels_keys_and_values(etcd, ansible_module):
    hosts6 = [dict(h, public_ipv6="fd09::%d" % (i + 2)) for i, h in enumerate(hosts("node1", "node2"))]
    args = dict(network=DUAL_NETWORK, hosts=hosts6, store="etcd", etcd=dict(endpoints=[etcd]))
    result = ansible_module("weft.overlay.plan", args)
    assert result["changed"] and not result["failed"], result
    keys = stored(etcd)
    assert keys["/coreos.com/network/subnets/100.96.1.0-24&fd00:96:0:1::-64"] == (
        '{"PublicIP":"10.168.0.2","PublicIPv6":"fd09::2","BackendType":"vxlan",'
        '"BackendData":{"VNI":1,"VtepMAC":"0e:77:64:60:01:00"},'
        '"BackendV6Data":{"VNI":1,"VtepMAC":"0e:78:00:00:00:01"}}', 0)
    config = json.loads(keys["/coreos.com/network/config"][0])
    assert (config["EnableIPv6"], config["IPv6Network"], config["IPv6SubnetLen"]) == \
        (True, "fd00:96::/48", 64)
    again = ansible_module("weft.overlay.plan", args)
    assert not again["changed"] and stored(etcd) == keys, again
    assert again["nodes"]["node2"]["subnet6"] == "fd00:96:0:2::/64"


def test_a_flannel_dual_stack_lease_is_a_peer_and_its_subnets_are_kept(etcd, ansible_module):
    value = ('{"PublicIP":"10.168.0.50","PublicIPv6":"fd09::50","BackendType":"vxlan",'
             '"BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"},'
             '"BackendV6Data":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:46"}}')
    key = PREFIX + "/subnets/100.96.1.0-24&fd00:96:0:1::-64"
    lease_id = etcdctl(etcd, "lease", "grant", "86400").split()[1]
    etcdctl(etcd, "put", key, value, "--lease=" + lease_id)
    hosts6 = [dict(h, public_ipv6="fd09::%d" % (i + 2)) for i, h in enumerate(hosts("node1"))]
    result = ansible_module("weft.overlay.plan", dict(network=DUAL_NETWORK, hosts=hosts6, store="etcd",
                                                      etcd=dict(endpoints=[etcd])))
    assert not result["failed"], result
    assert (result["nodes"]["node1"]["subnet"], result["nodes"]["node1"]["subnet6"]) == \
        ("100.96.2.0/24", "fd00:96:0:2::/64")   # neither half of Flannel's lease is taken
    peer = result["foreign"]["100.96.1.0-24&fd00:96:0:1::-64"]
    assert (peer["public_ipv6"], peer["subnet6"], peer["backend_v6_data"]["vtep_mac"]) == \
        ("fd09::50", "fd00:96:0:1::/64", "c6:d2:32:6f:8f:46")
    assert stored(etcd)[key][0] == value


ONLY6_NETWORK = {"EnableIPv4": False, "EnableIPv6": True, "IPv6Network": "fd00:96::/48",
                 "Backend": {"Type": "vxlan"}}


def test_ipv6_only_leases_are_flannels_keys_and_values(etcd, ansible_module):
    hosts6 = [dict(name=n, public_ipv6="fd09::%d" % i) for i, n in enumerate(["node1", "node2"], 2)]
    args = dict(network=ONLY6_NETWORK, hosts=hosts6, store="etcd", etcd=dict(endpoints=[etcd]))
    result = ansible_module("weft.overlay.plan", args)
    assert result["changed"] and not result["failed"], result
    keys = stored(etcd)
    # Flannel's key of an IPv6-only lease has the empty IPv4 subnet, its value the zero PublicIP.
    assert keys[PREFIX + "/subnets/0.0.0.0-0&fd00:96:0:1::-64"] == (
        '{"PublicIP":"0.0.0.0","PublicIPv6":"fd09::2","BackendType":"vxlan",'
        '"BackendV6Data":{"VNI":1,"VtepMAC":"0e:78:00:00:00:01"}}', 0)
    assert keys[PREFIX + "/weft/hosts/node2"][0] == "fd00:96:0:2::/64"
    config = json.loads(keys[PREFIX + "/config"][0])
    assert (config["EnableIPv4"], config["IPv6Network"], "Network" in config) == \
        (False, "fd00:96::/48", False)
    again = ansible_module("weft.overlay.plan", args)
    assert not again["changed"] and stored(etcd) == keys, again
    assert (again["nodes"]["node2"]["subnet"], again["nodes"]["node2"]["subnet6"]) == \
        (None, "fd00:96:0:2::/64")


def test_a_flannel_ipv6_only_lease_is_a_peer_and_its_subnet_is_kept(etcd, ansible_module):
    value = ('{"PublicIP":"0.0.0.0","PublicIPv6":"fd09::50","BackendType":"vxlan",'
             '"BackendV6Data":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:46"}}')
    key = PREFIX + "/subnets/0.0.0.0-0&fd00:96:0:1::-64"
    lease_id = etcdctl(etcd, "lease", "grant", "86400").split()[1]
    etcdctl(etcd, "put", key, value, "--lease=" + lease_id)
    result = ansible_module("weft.overlay.plan", dict(network=ONLY6_NETWORK, store="etcd",
                                                      hosts=[dict(name="node1", public_ipv6="fd09::2")],
                                                      etcd=dict(endpoints=[etcd])))
    assert not result["failed"], result
    assert result["nodes"]["node1"]["subnet6"] == "fd00:96:0:2::/64"  # Flannel's is not taken
    peer = result["foreign"]["0.0.0.0-0&fd00:96:0:1::-64"]
    assert (peer["subnet"], peer["public_ip"], peer["public_ipv6"],
            peer["backend_v6_data"]["vtep_mac"]) == (None, None, "fd09::50", "c6:d2:32:6f:8f:46")
    assert stored(etcd)[key][0] == value
    # The Flannel host's own weft run (same public IPv6, no lease yet) takes its lease over.
    taken = ansible_module("weft.overlay.plan", dict(network=ONLY6_NETWORK, store="etcd",
                                                     hosts=[dict(name="node1", public_ipv6="fd09::2"),
                                                            dict(name="node9", public_ipv6="fd09::50")],
                                                     etcd=dict(endpoints=[etcd])))
    assert taken["nodes"]["node9"]["subnet6"] == "fd00:96:0:1::/64", taken
    assert taken["adopted"] == ["node9"]


def test_wireguard_leases_are_flannels_with_the_public_key_the_host_reported(etcd, ansible_module):
    keys = {"node1": "A" * 43 + "=", "node2": "B" * 43 + "="}
    network = dict(DUAL_NETWORK, Backend={"Type": "wireguard"})
    hosts6 = [dict(h, public_ipv6="fd09::%d" % (i + 2), reported={"public_key": keys[h["name"]]})
              for i, h in enumerate(hosts("node1", "node2"))]
    args = dict(network=network, hosts=hosts6, store="etcd", etcd=dict(endpoints=[etcd]))
    result = ansible_module("weft.overlay.plan", args)
    assert result["changed"] and not result["failed"], result
    keys_in_etcd = stored(etcd)
    # As flanneld's wireguard backend writes it: one public key, the port of each family.
    assert keys_in_etcd[PREFIX + "/subnets/100.96.2.0-24&fd00:96:0:2::-64"] == (
        '{"PublicIP":"10.168.0.3","PublicIPv6":"fd09::3","BackendType":"wireguard",'
        '"BackendData":{"PublicKey":"%s","Port":51820},'
        '"BackendV6Data":{"PublicKey":"%s","Port":51821}}' % (keys["node2"], keys["node2"]), 0)
    config = json.loads(keys_in_etcd[PREFIX + "/config"][0])
    assert config["Backend"] == {"Type": "wireguard", "ListenPort": 51820, "ListenPortV6": 51821,
                                 "PersistentKeepaliveInterval": 0, "Mode": "separate"}
    # A run where the hosts report nothing (not in the play) keeps the leased keys.
    quiet = ansible_module("weft.overlay.plan", dict(args, hosts=[{"name": n} for n in keys]))
    assert not quiet["changed"] and stored(etcd) == keys_in_etcd, quiet
    assert quiet["nodes"]["node1"]["backend_data"] == {"public_key": keys["node1"], "port": 51820}


def test_a_flannel_wireguard_lease_is_a_peer_with_its_public_key(etcd, ansible_module):
    # What flanneld's wireguard backend writes for its own host (key and port in BackendData).
    key = "F" * 43 + "="
    value = ('{"PublicIP":"10.168.0.50","PublicIPv6":null,"BackendType":"wireguard",'
             '"BackendData":{"PublicKey":"%s","Port":51820}}' % key)
    lease_id = etcdctl(etcd, "lease", "grant", "86400").split()[1]
    etcdctl(etcd, "put", PREFIX + "/subnets/100.96.1.0-24", value, "--lease=" + lease_id)
    network = dict(NETWORK, Backend={"Type": "wireguard"})
    args = plan_args(etcd, ["node1"], network=network)
    args["hosts"][0]["reported"] = {"public_key": "A" * 43 + "="}
    result = ansible_module("weft.overlay.plan", args)
    assert not result["failed"], result
    assert result["nodes"]["node1"]["subnet"] == "100.96.2.0/24"
    peer = result["foreign"]["100.96.1.0-24"]
    assert (peer["public_ip"], peer["backend_data"]) == \
        ("10.168.0.50", {"public_key": key, "port": 51820})
    assert stored(etcd)[PREFIX + "/subnets/100.96.1.0-24"][0] == value
