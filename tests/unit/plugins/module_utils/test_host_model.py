"""The host model: what each backend makes a host hold, derived from the plan in one place
(no kernel here; tests/test_weft_host.py applies it to a real one)."""

import json

import pytest

from ansible_collections.weft.overlay.plugins.module_utils.weft.backends import BACKENDS
from ansible_collections.weft.overlay.plugins.module_utils.weft.errors import WeftError
from ansible_collections.weft.overlay.plugins.module_utils.weft.host import model, units
from ansible_collections.weft.overlay.plugins.module_utils.weft.host.host import SETTINGS_SPEC
from ansible_collections.weft.overlay.tests.unit.plans import sample_plan

SETTINGS = {key: spec["default"] for key, spec in SETTINGS_SPEC.items()}
ME = {"name": "a", "iface": "eth0", "public_ip": "10.0.0.1", "underlay": "10.0.0.0/24", "mtu": 1500}


def plan(backend="vxlan", foreign=(), **backend_fields):
    hosts = [(name, ip, "100.96.%d.0/24" % i)
             for i, (name, ip) in enumerate([("a", "10.0.0.1"), ("b", "10.0.0.2"), ("c", "10.1.0.3")], 1)]
    return sample_plan(backend, hosts, foreign, **backend_fields)


def derive(backend="vxlan", settings=None, **kwargs):
    return model.derive(plan(backend, **kwargs), ME, dict(SETTINGS, **(settings or {})))


def steps(state, core):
    return [s["params"] for s in state.steps if s["core"] == core]


def test_vxlan_is_flannels_device_and_entries_per_peer():
    state = derive("vxlan")
    assert [s["core"] for s in state.steps] == \
        ["vxlan", "neighbours", "fdb", "routes"] + ["iptables"] * 4 + ["nftables"] * 2 + \
        ["ingress", "docker"]
    assert [(s["family"], s["state"]) for s in steps(state, "iptables")] == \
        [("ipv4", "present")] * 2 + [("ipv6", "absent")] * 2  # no IPv6: none left behind
    assert steps(state, "nftables") == [dict(family=f, forward=[], masquerade=[], state="absent")
                                        for f in ("ipv4", "ipv6")]  # nor nftables chains
    assert steps(state, "vxlan") == [dict(name="flannel.1", vni=1, port=8472, local="10.0.0.1",
                                          dev="eth0", mac="0e:77:64:60:01:00", mtu=1450,
                                          address="100.96.1.0/32", learning=False, gbp=False,
                                          tx_checksum=True)]
    assert steps(state, "neighbours")[0]["neighbours"] == [
        {"ip": "100.96.2.0", "mac": "0e:77:64:60:02:00"}, {"ip": "100.96.3.0", "mac": "0e:77:64:60:03:00"}]
    assert steps(state, "fdb")[0]["entries"] == [
        {"mac": "0e:77:64:60:02:00", "dst": "10.0.0.2"}, {"mac": "0e:77:64:60:03:00", "dst": "10.1.0.3"}]
    assert steps(state, "routes")[0]["routes"] == [
        {"dst": "100.96.2.0/24", "via": "100.96.2.0", "dev": "flannel.1", "onlink": True},
        {"dst": "100.96.3.0/24", "via": "100.96.3.0", "dev": "flannel.1", "onlink": True}]
    assert steps(state, "ingress") == [dict(port=8472, inner="vxlan", peers=[
        {"ip": "10.0.0.2", "subnet": "100.96.2.0/24"}, {"ip": "10.1.0.3", "subnet": "100.96.3.0/24"}])]
    assert steps(state, "docker")[0]["bip"] == "100.96.1.1/24" and steps(state, "docker")[0]["mtu"] == 1450
    assert state.devices == {("vxlan", "flannel.1")}
    assert state.files[SETTINGS["subnet_env"]][0] == ("FLANNEL_NETWORK=100.96.0.0/16\n"
                                                      "FLANNEL_SUBNET=100.96.1.1/24\n"
                                                      "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n")


def test_enable_nftables_moves_every_chain_into_nftables_and_docker_off_iptables():
    """Flannel's EnableNFTables: the same forward and masquerade rules in weft's nftables
    tables, the iptables chains removed, and Docker told to leave iptables alone."""
    state = model.derive(dual_plan(nftables=True), ME6, SETTINGS)
    assert {s["state"] for s in steps(state, "iptables")} == {"absent"}
    v4, v6 = steps(state, "nftables")
    assert v4 == dict(family="ipv4", state="present",
                      forward=["ip saddr 100.96.0.0/16 accept", "ip daddr 100.96.0.0/16 accept"],
                      masquerade=["meta mark & 0x4000 == 0x4000 return",
                                  "ip saddr 100.96.1.0/24 ip daddr 100.96.0.0/16 return",
                                  "ip saddr 100.96.0.0/16 ip daddr 100.96.1.0/24 return",
                                  "ip saddr != 100.96.0.0/16 ip daddr 100.96.1.0/24 return",
                                  "ip saddr 100.96.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random",
                                  "ip saddr != 100.96.0.0/16 ip daddr 100.96.0.0/16 masquerade fully-random"])
    assert v6["forward"] == ["ip6 saddr fd00:96::/48 accept", "ip6 daddr fd00:96::/48 accept"]
    assert v6["masquerade"][4] == "ip6 saddr fd00:96::/48 ip6 daddr != ff00::/8 masquerade fully-random"
    docker, = steps(state, "docker")
    assert (docker["iptables"], docker["ip6tables"]) == (False, False)
    # Each setting still decides its chain; with neither, no table.
    plain = model.derive(dual_plan(nftables=True), ME6,
                         dict(SETTINGS, ip_masq=False, ip_masq_random_fully=False))
    assert steps(plain, "nftables")[0]["masquerade"] == []
    off = model.derive(dual_plan(nftables=True), ME6, dict(SETTINGS, ip_masq=False, forward_accept=False))
    assert {s["state"] for s in steps(off, "nftables")} == {"absent"}
    # Without it, Docker's iptables keys are not weft's.
    assert "iptables" not in steps(model.derive(dual_plan(), ME6, SETTINGS), "docker")[0]


def test_vxlan_tx_checksum_offload_is_a_host_setting_on_by_default():
    assert steps(derive("vxlan"), "vxlan")[0]["tx_checksum"] is True
    off = derive("vxlan", settings={"vxlan_tx_checksum_offload": False})
    assert steps(off, "vxlan")[0]["tx_checksum"] is False
    # A record written before the setting existed: the kernel's default, on.
    settings = {k: v for k, v in SETTINGS.items() if k != "vxlan_tx_checksum_offload"}
    assert steps(model.derive(plan("vxlan"), ME, settings), "vxlan")[0]["tx_checksum"] is True


def test_vxlan_group_policy_and_learning_are_flannels_device_options():
    device = steps(derive("vxlan", GBP=True, Learning=True), "vxlan")[0]
    assert (device["gbp"], device["learning"]) == (True, True)
    # The entries stay programmed with learning on (Flannel's too): learning only adds.
    assert len(steps(derive("vxlan", Learning=True), "fdb")[0]["entries"]) == 2


def test_direct_routing_only_for_peers_on_the_same_l2_network():
    state = derive("vxlan", DirectRouting=True)
    assert steps(state, "routes")[0]["routes"][0] == {"dst": "100.96.2.0/24", "via": "10.0.0.2", "dev": "eth0"}
    assert steps(state, "routes")[0]["routes"][1]["dev"] == "flannel.1"  # c: another network
    assert [n["ip"] for n in steps(state, "neighbours")[0]["neighbours"]] == ["100.96.3.0"]


def test_host_gw_routes_via_the_peers_and_guards_no_port():
    state = derive("host-gw")
    assert steps(state, "routes")[0]["routes"] == [
        {"dst": "100.96.2.0/24", "via": "10.0.0.2", "dev": "eth0"},
        {"dst": "100.96.3.0/24", "via": "10.1.0.3", "dev": "eth0"}]
    assert state.devices == set() and steps(state, "ingress") == [dict(state="absent")]
    assert steps(state, "docker")[0]["mtu"] == 1500


def test_udp_device_daemon_user_and_unit():
    state = derive("udp")
    assert steps(state, "tun") == [dict(name="flannel0", owner="weft-udpd", group="weft-udpd",
                                        mtu=1472, address="100.96.1.0/32")]
    assert steps(state, "routes")[0]["routes"] == [{"dst": "100.96.0.0/16", "dev": "flannel0"}]
    config = json.loads(state.files["/etc/weft/udpd.json"][0])
    assert (config["listen"], config["subnet"], config["peers"]) == ("10.0.0.1", "100.96.1.0/24", [
        {"subnet": "100.96.2.0/24", "ip": "10.0.0.2", "port": 8285, "weft": True},
        {"subnet": "100.96.3.0/24", "ip": "10.1.0.3", "port": 8285, "weft": True}])
    assert state.users == [{"name": "weft-udpd", "comment": "weft udp backend daemon"}]
    assert state.modes == [{"path": "/dev/net/tun", "mode": "0666"}]
    unit = state.files["/etc/systemd/system/weft-udpd.service"][0]
    assert "User=weft-udpd" in unit and "CapabilityBoundingSet=\n" in unit
    assert units.UDPD in unit and units.UDPD in state.files
    assert [s["name"] for s in state.services] == ["weft-udpd", "weft-heal"]
    assert steps(state, "ingress")[0]["inner"] == "none"


def test_udp_fast_path_sends_to_weft_peers_and_takes_in_every_peer():
    flannel = [("100.96.200.0/24", "10.0.0.250", {})]
    state = model.derive(plan("udp", foreign=flannel), dict(ME, public_ip="203.0.113.1",
                                                            iface_ip="10.0.0.1"), SETTINGS)
    assert [s["core"] for s in state.steps][:2] == ["tun", "udp_fastpath"]   # the device first
    assert steps(state, "udp_fastpath") == [dict(
        name="flannel0", underlay="eth0", address="10.0.0.1", subnet="100.96.1.0/24", port=8285,
        peers=[{"ip": "10.0.0.250", "subnet": "100.96.200.0/24", "send": False},
               {"ip": "10.0.0.2", "subnet": "100.96.2.0/24", "send": True},
               {"ip": "10.1.0.3", "subnet": "100.96.3.0/24", "send": True}])]
    assert state.devices == {("tun", "flannel0"), ("udp_fastpath", "flannel0")}
    # Off: not derived, and so removed as any device the state no longer holds.
    off = derive("udp", settings=dict(udp_fastpath=False))
    assert steps(off, "udp_fastpath") == [] and off.devices == {("tun", "flannel0")}


def test_flannel_hosts_of_the_network_are_peers_too():
    flannel = [("100.96.200.0/24", "10.0.0.250", {"VNI": 1, "VtepMAC": "5a:d4:10:00:00:fa"})]
    state = derive("vxlan", foreign=flannel)
    assert {"mac": "5a:d4:10:00:00:fa", "dst": "10.0.0.250"} in steps(state, "fdb")[0]["entries"]
    assert {"ip": "10.0.0.250", "subnet": "100.96.200.0/24"} in steps(state, "ingress")[0]["peers"]


def test_settings_turn_parts_on_and_off():
    state = derive("vxlan", settings=dict(docker=False, heal_interval=0, peer_ingress=False,
                                          forward_accept=False, ip_masq=False))
    assert steps(state, "docker") == [] and steps(state, "ingress") == [dict(state="absent")]
    assert [s["state"] for s in steps(state, "iptables")] == ["absent"] * 4
    assert "/etc/systemd/system/weft-heal.service" not in state.files and state.services == []
    assert "FLANNEL_IPMASQ=false" in state.files[SETTINGS["subnet_env"]][0]


def test_masquerading_leaves_kube_proxys_marks_alone_and_random_ports_can_be_turned_off():
    def masq(**settings):
        return [s for s in steps(derive("vxlan", settings=settings), "iptables")
                if s["table"] == "nat" and s["family"] == "ipv4"][0]["rules"]
    default = masq()
    assert default[0] == '-m mark --mark 0x4000/0x4000 -m comment --comment "weft masq" -j RETURN'
    assert [r.endswith("-j MASQUERADE --random-fully") for r in default] == [False] * 4 + [True] * 2
    sequential = masq(ip_masq_random_fully=False)
    assert sequential[:4] == default[:4] and [r.endswith("-j MASQUERADE") for r in sequential] \
        == [False] * 4 + [True] * 2
    # A record written before the switch existed derives Flannel's default.
    settings = {k: v for k, v in SETTINGS.items() if k != "ip_masq_random_fully"}
    old = model.derive(plan("vxlan"), ME, settings)
    assert [s for s in steps(old, "iptables") if s["table"] == "nat"][0]["rules"] == default


def test_the_network_mtu_overrides_the_underlay():
    assert steps(derive("vxlan", MTU=1400), "vxlan")[0]["mtu"] == 1350


def test_known_holds_every_backend_so_a_switch_removes_the_old_one():
    everything = model.known(plan("host-gw"), ME, SETTINGS)
    assert everything.devices == {("vxlan", "flannel.1"), ("tun", "flannel0"),
                                  ("udp_fastpath", "flannel0"), ("wireguard", "flannel-wg")}
    assert "/etc/weft/udpd.json" in everything.files and "/etc/weft/state.json" in everything.files
    assert everything.secrets == WIREGUARD_SECRETS
    assert {s["name"] for s in everything.services} == {"weft-udpd", "weft-heal"}


WIREGUARD_SECRETS = {"/etc/weft/wireguard.key", "/etc/weft/wireguard.key.next",
                     "/etc/weft/wireguard.psk"}


def test_the_plan_travels_as_one_string_and_comes_back_whole():
    original = plan("vxlan")
    assert model.decode_plan(model.encode_plan(original)) == original
    for blob in ("", "bm90IGEgcGxhbg==", model.encode_plan({"network": 1}),
                 model.encode_plan({"version": 3, "network": {}, "hosts": []})):
        with pytest.raises(WeftError, match="plan: not a plan made by weft.overlay.plan"):
            model.decode_plan(blob)


def test_a_host_missing_from_the_plan_is_named():
    with pytest.raises(WeftError, match="host: z has no lease in the plan"):
        model.derive(plan(), dict(ME, name="z"), SETTINGS)


FLANNEL_LEASES = {  # what flanneld v0.28 writes for a lease of 100.96.1.0/24 on 10.0.0.1
    "vxlan": '{"PublicIP":"10.0.0.1","PublicIPv6":null,"BackendType":"vxlan",'
             '"BackendData":{"VNI":1,"VtepMAC":"0e:77:64:60:01:00"}}',
    "host-gw": '{"PublicIP":"10.0.0.1","PublicIPv6":null,"BackendType":"host-gw"}',
    "udp": '{"PublicIP":"10.0.0.1","PublicIPv6":null}',
}
FLANNEL_CONFIGS = {  # net-conf.json with every default written out, as weft puts it in etcd
    "vxlan": {"Type": "vxlan", "VNI": 1, "Port": 8472, "DirectRouting": False},
    "host-gw": {"Type": "host-gw"},
    "udp": {"Type": "udp", "Port": 8285},
}


@pytest.mark.parametrize("backend", sorted(FLANNEL_LEASES))
def test_every_backend_is_one_unit_from_net_conf_to_lease_to_host(backend):
    """A backend's options, lease JSON and MTU come from its class, and each goes through
    Flannel's format and back unchanged."""
    import ipaddress
    from ansible_collections.weft.overlay.plugins.module_utils.weft.plan.etcdstore import flannel_value, lease_from_flannel
    from ansible_collections.weft.overlay.plugins.module_utils.weft.plan.subnets import parse_network_config
    config = parse_network_config({"Network": "100.96.0.0/16", "Backend": {"Type": backend}})
    assert config.as_flannel()["Backend"] == FLANNEL_CONFIGS[backend]
    assert parse_network_config(config.as_flannel()) == config
    lease = config.lease(ipaddress.ip_network("100.96.1.0/24"), ipaddress.ip_address("10.0.0.1"))
    assert flannel_value(lease) == FLANNEL_LEASES[backend]
    assert lease_from_flannel(lease.subnet, None, json.loads(FLANNEL_LEASES[backend]), "k") == lease
    state = derive(backend)
    mtu = [s["mtu"] for s in steps(state, "docker")]
    assert mtu == [1500 - BACKENDS[backend].overhead] == [{"vxlan": 1450, "udp": 1472, "host-gw": 1500}[backend]]


def test_a_record_of_the_positional_plan_derives_the_same_state():
    """/etc/weft/host.json written by weft before the lease record (plan version 2)."""
    old = {"network": plan("vxlan")["network"], "foreign": {
        "100.96.200.0-24": ["100.96.200.0/24", "10.0.0.250", "5a:d4:10:00:00:fa"]},
        "hosts": {"a": ["100.96.1.0/24", "10.0.0.1", "0e:77:64:60:01:00"],
                  "b": ["100.96.2.0/24", "10.0.0.2", "0e:77:64:60:02:00"],
                  "c": ["100.96.3.0/24", "10.1.0.3", "0e:77:64:60:03:00"]}}
    flannel = [("100.96.200.0/24", "10.0.0.250", {"VNI": 1, "VtepMAC": "5a:d4:10:00:00:fa"})]
    upgraded = model.decode_plan(model.encode_plan(old))
    assert model.derive(upgraded, ME, SETTINGS).steps == \
        model.derive(plan("vxlan", foreign=flannel), ME, SETTINGS).steps


ME6 = dict(ME, public_ipv6="fd09::1", underlay6="fd09::/64")


def dual_plan(backend="vxlan", **backend_fields):
    hosts = [dict(name=name, public_ip=ip, subnet="100.96.%d.0/24" % i, public_ipv6=ip6,
                  subnet6="fd00:96:0:%d::/64" % i)
             for i, (name, ip, ip6) in enumerate([("a", "10.0.0.1", "fd09::1"), ("b", "10.0.0.2", "fd09::2"),
                                                  ("c", "10.1.0.3", "fd0a::3")], 1)]
    return sample_plan(backend, hosts, ipv6_network="fd00:96::/48", **backend_fields)


def test_behind_a_nat_the_host_binds_and_sends_from_its_interface_address():
    """The lease (what peers send to) has the NAT's address; the host's own devices and
    sockets use the interface's, which is what the NAT forwards to."""
    natted = dict(ME6, public_ip="203.0.113.1", iface_ip="10.0.0.1",
                  public_ipv6="2001:db8::1", iface_ipv6="fd09::1")
    vteps = steps(model.derive(dual_plan(), natted, SETTINGS), "vxlan")
    assert [(v["name"], v["local"]) for v in vteps] == [("flannel.1", "10.0.0.1"),
                                                        ("flannel-v6.1", "fd09::1")]
    udp = model.derive(plan("udp"), dict(ME, public_ip="203.0.113.1", iface_ip="10.0.0.1"), SETTINGS)
    assert json.loads(udp.files["/etc/weft/udpd.json"][0])["listen"] == "10.0.0.1"
    # Peers are still sent to at their public addresses.
    assert [e["dst"] for e in steps(model.derive(plan("vxlan"), natted, SETTINGS), "fdb")[0]["entries"]] \
        == ["10.0.0.2", "10.1.0.3"]


def test_dual_stack_vxlan_is_flannels_second_vtep_with_one_mtu_for_both():
    state = model.derive(dual_plan(), ME6, SETTINGS)
    vteps = steps(state, "vxlan")
    assert [(v["name"], v["local"], v["address"], v["mtu"]) for v in vteps] == [
        ("flannel.1", "10.0.0.1", "100.96.1.0/32", 1430),
        ("flannel-v6.1", "fd09::1", "fd00:96:0:1::/128", 1430)]
    assert vteps[1]["mac"] == "0e:78:00:00:00:01" and vteps[1]["port"] == 8472
    assert steps(state, "neighbours")[1] == {"dev": "flannel-v6.1", "purge": True, "neighbours": [
        {"ip": "fd00:96:0:2::", "mac": "0e:78:00:00:00:02"}, {"ip": "fd00:96:0:3::", "mac": "0e:78:00:00:00:03"}]}
    assert steps(state, "fdb")[1]["entries"] == [
        {"mac": "0e:78:00:00:00:02", "dst": "fd09::2"}, {"mac": "0e:78:00:00:00:03", "dst": "fd0a::3"}]
    assert steps(state, "routes")[0]["routes"][2:] == [
        {"dst": "fd00:96:0:2::/64", "via": "fd00:96:0:2::", "dev": "flannel-v6.1", "onlink": True},
        {"dst": "fd00:96:0:3::/64", "via": "fd00:96:0:3::", "dev": "flannel-v6.1", "onlink": True}]
    assert {"ip": "fd09::2", "subnet": "fd00:96:0:2::/64"} in steps(state, "ingress")[0]["peers"]
    docker = steps(state, "docker")[0]
    assert (docker["mtu"], docker["ipv6"], docker["fixed_cidr_v6"]) == (1430, True, "fd00:96:0:1::/64")
    masq6 = [s for s in steps(state, "iptables") if s["family"] == "ipv6" and s["table"] == "nat"][0]
    assert masq6["state"] == "present" and \
        '-s fd00:96::/48 ! -d ff00::/8 -m comment --comment "weft masq" -j MASQUERADE --random-fully' \
        in masq6["rules"]
    assert state.files[SETTINGS["subnet_env"]][0] == (
        "FLANNEL_NETWORK=100.96.0.0/16\nFLANNEL_SUBNET=100.96.1.1/24\n"
        "FLANNEL_IPV6_NETWORK=fd00:96::/48\nFLANNEL_IPV6_SUBNET=fd00:96:0:1::1/64\n"
        "FLANNEL_MTU=1430\nFLANNEL_IPMASQ=true\n")
    assert state.files[model.IPV6_FORWARD][0] == "1\n"
    assert "net.ipv6.conf.all.forwarding = 1" in state.files[units.SYSCTL_FILE][0]
    assert state.devices == {("vxlan", "flannel.1"), ("vxlan", "flannel-v6.1")}


def test_dual_stack_host_gw_and_direct_routing_route_ipv6_via_the_peers():
    routes = steps(model.derive(dual_plan("host-gw"), ME6, SETTINGS), "routes")[0]["routes"]
    assert routes[2:] == [{"dst": "fd00:96:0:2::/64", "via": "fd09::2", "dev": "eth0"},
                          {"dst": "fd00:96:0:3::/64", "via": "fd0a::3", "dev": "eth0"}]
    direct = steps(model.derive(dual_plan(DirectRouting=True), ME6, SETTINGS), "routes")[0]["routes"]
    assert direct[2] == {"dst": "fd00:96:0:2::/64", "via": "fd09::2", "dev": "eth0"}  # same L2
    assert direct[3]["dev"] == "flannel-v6.1"  # c: another IPv6 network


def test_a_dual_stack_host_without_an_ipv6_underlay_is_named():
    with pytest.raises(WeftError, match="host: a has no IPv6 underlay address"):
        model.derive(dual_plan(), ME, SETTINGS)


def test_uninstall_without_a_record_knows_the_ipv6_vtep():
    assert ("vxlan", "flannel-v6.1") in model.leftovers(SETTINGS).devices


ONLY6 = dict(ME6, public_ip=None, underlay=None)


def only6_plan(backend="vxlan", **backend_fields):
    hosts = [dict(name=name, public_ipv6=ip6, subnet6="fd00:96:0:%d::/64" % i)
             for i, (name, ip6) in enumerate([("a", "fd09::1"), ("b", "fd09::2"), ("c", "fd0a::3")], 1)]
    return sample_plan(backend, hosts, network=None, ipv6_network="fd00:96::/48", **backend_fields)


def test_ipv6_only_vxlan_has_the_ipv6_vtep_alone_and_leaves_dockers_ipv4_side_alone():
    state = model.derive(only6_plan(), ONLY6, SETTINGS)
    assert state.devices == {("vxlan", "flannel-v6.1")}
    assert [(v["name"], v["local"], v["address"], v["mtu"]) for v in steps(state, "vxlan")] == [
        ("flannel-v6.1", "fd09::1", "fd00:96:0:1::/128", 1430)]
    assert [r["dst"] for r in steps(state, "routes")[0]["routes"]] == \
        ["fd00:96:0:2::/64", "fd00:96:0:3::/64"]
    assert steps(state, "ingress")[0]["peers"] == [
        {"ip": "fd09::2", "subnet": "fd00:96:0:2::/64"}, {"ip": "fd0a::3", "subnet": "fd00:96:0:3::/64"}]
    docker = steps(state, "docker")[0]
    assert "bip" not in docker and "ip_masq" not in docker  # Docker keeps its own IPv4 bridge
    assert (docker["mtu"], docker["ipv6"], docker["fixed_cidr_v6"]) == (1430, True, "fd00:96:0:1::/64")
    chains = {(s["family"], s["table"]): s["state"] for s in steps(state, "iptables")}
    assert chains == {("ipv4", "filter"): "absent", ("ipv4", "nat"): "absent",
                      ("ipv6", "filter"): "present", ("ipv6", "nat"): "present"}
    assert state.files[SETTINGS["subnet_env"]][0] == (
        "FLANNEL_IPV6_NETWORK=fd00:96::/48\nFLANNEL_IPV6_SUBNET=fd00:96:0:1::1/64\n"
        "FLANNEL_MTU=1430\nFLANNEL_IPMASQ=true\n")


def test_ipv6_only_host_gw_routes_via_the_peers_public_ipv6():
    state = model.derive(only6_plan("host-gw"), ONLY6, SETTINGS)
    assert steps(state, "routes")[0]["routes"] == [
        {"dst": "fd00:96:0:2::/64", "via": "fd09::2", "dev": "eth0"},
        {"dst": "fd00:96:0:3::/64", "via": "fd0a::3", "dev": "eth0"}]
    assert state.devices == set() and steps(state, "docker")[0]["mtu"] == 1500


def test_an_ipv6_only_host_needs_its_ipv6_underlay_not_an_ipv4_one():
    with pytest.raises(WeftError, match="host: a has no IPv6 underlay address"):
        model.derive(only6_plan(), dict(ONLY6, public_ipv6=None), SETTINGS)
    assert model.derive(only6_plan(), dict(ONLY6, public_ip="10.0.0.1"), SETTINGS).steps == \
        model.derive(only6_plan(), ONLY6, SETTINGS).steps


# ---- wireguard -----------------------------------------------------------------------

KEYS = {"a": "A" * 43 + "=", "b": "B" * 43 + "=", "c": "C" * 43 + "="}


def wireguard_plan(ipv6=False, **backend_fields):
    hosts = [dict(name=name, public_ip=ip, subnet="100.96.%d.0/24" % i, public_ipv6=ip6,
                  reported={"public_key": KEYS[name]},
                  **({"subnet6": "fd00:96:0:%d::/64" % i} if ipv6 else {}))
             for i, (name, ip, ip6) in enumerate([("a", "10.0.0.1", "fd09::1"),
                                                  ("b", "10.0.0.2", "fd09::2"),
                                                  ("c", "10.1.0.3", "fd0a::3")], 1)]
    return sample_plan("wireguard", hosts, ipv6_network="fd00:96::/48" if ipv6 else None,
                       **backend_fields)


def test_wireguard_is_flannels_device_one_peer_per_host_and_a_route_for_the_network():
    state = model.derive(wireguard_plan(PersistentKeepaliveInterval=25), ME, SETTINGS)
    assert state.devices == {("wireguard", "flannel-wg")}
    device = steps(state, "wireguard")[0]
    assert (device["name"], device["mtu"], device["address"], device["listen_port"],
            device["private_key"], device["implementation"]) == \
        ("flannel-wg", 1420, ["100.96.1.0/32"], 51820, "/etc/weft/wireguard.key", "auto")
    assert device["preshared_key"] is None
    assert device["peers"] == [
        {"public_key": KEYS["b"], "endpoint": "10.0.0.2:51820", "allowed_ips": ["100.96.2.0/24"],
         "persistent_keepalive": 25},
        {"public_key": KEYS["c"], "endpoint": "10.1.0.3:51820", "allowed_ips": ["100.96.3.0/24"],
         "persistent_keepalive": 25}]
    assert steps(state, "routes")[0]["routes"] == [{"dst": "100.96.0.0/16", "dev": "flannel-wg"}]
    assert steps(state, "ingress")[0] == {"port": 51820, "inner": "none", "peers": [
        {"ip": "10.0.0.2", "subnet": "100.96.2.0/24"}, {"ip": "10.1.0.3", "subnet": "100.96.3.0/24"}]}
    assert state.secrets == WIREGUARD_SECRETS
    assert "/etc/weft/wireguard.key" not in state.files   # made on the host, never written from here
    assert state.users == [{"name": "weft-wireguard", "comment": "weft wireguard-go"}]


def test_dual_stack_wireguard_has_flannels_second_device_and_both_ports_open_to_peers():
    state = model.derive(wireguard_plan(ipv6=True), ME6, SETTINGS)
    assert state.devices == {("wireguard", "flannel-wg"), ("wireguard", "flannel-wg-v6")}
    v6 = steps(state, "wireguard")[1]
    assert (v6["name"], v6["address"], v6["listen_port"], v6["mtu"]) == \
        ("flannel-wg-v6", ["fd00:96:0:1::/128"], 51821, 1420)
    assert v6["peers"][0] == {"public_key": KEYS["b"], "endpoint": "[fd09::2]:51821",
                              "allowed_ips": ["fd00:96:0:2::/64"], "persistent_keepalive": 0}
    assert steps(state, "routes")[0]["routes"] == [{"dst": "100.96.0.0/16", "dev": "flannel-wg"},
                                                   {"dst": "fd00:96::/48", "dev": "flannel-wg-v6"}]
    ingress = steps(state, "ingress")[0]
    assert (ingress["port"], ingress["ports"]) == (51820, [51821])


def test_wireguard_options_and_secrets_are_named():
    from ansible_collections.weft.overlay.plugins.module_utils.weft.plan.subnets import PlanError, parse_network_config
    for backend, message in (
            ({"PSK": "c2VjcmV0"}, "weft_network.Backend.PSK: a pre-shared key does not belong "
                                  "in weft_network"),
            ({"Mode": "both"}, "weft_network.Backend.Mode: 'both' is not one of separate, auto"),
            ({"Mode": "ipv6"}, "weft_network.Backend.Mode: ipv6 tunnels over IPv6, which the "
                               "network does not have (EnableIPv6 is not true)"),
            ({"ListenPort": 0}, "weft_network.Backend.ListenPort: 0 is out of range"),
            ({"VNI": 1}, "weft_network.Backend: unknown field(s) VNI for backend wireguard")):
        with pytest.raises(PlanError) as err:
            parse_network_config({"Network": "100.96.0.0/16",
                                  "Backend": dict(Type="wireguard", **backend)})
        assert str(err.value).startswith(message), err.value
        assert "c2VjcmV0" not in str(err.value)


def test_a_wireguard_host_without_a_public_key_in_its_lease_is_no_peer():
    plan = wireguard_plan()
    plan["foreign"] = {"100.96.9.0-24": {"subnet": "100.96.9.0/24", "public_ip": "10.0.0.9",
                                         "backend_type": "wireguard",
                                         "backend_data": {"public_key": None, "port": 51820}}}
    peers = steps(model.derive(plan, ME, SETTINGS), "wireguard")[0]["peers"]
    assert [p["public_key"] for p in peers] == [KEYS["b"], KEYS["c"]]


def test_wireguard_one_device_modes_carry_both_families_over_the_chosen_one():
    for mode, endpoint in (("ipv4", "10.0.0.2:51820"), ("ipv6", "[fd09::2]:51820")):
        state = model.derive(wireguard_plan(ipv6=True, Mode=mode), ME6, SETTINGS)
        assert state.devices == {("wireguard", "flannel-wg")}
        (device,) = steps(state, "wireguard")
        assert (device["address"], device["listen_port"]) == \
            (["100.96.1.0/32", "fd00:96:0:1::/128"], 51820)
        assert device["peers"][0] == {"public_key": KEYS["b"], "endpoint": endpoint,
                                      "allowed_ips": ["100.96.2.0/24", "fd00:96:0:2::/64"],
                                      "persistent_keepalive": 0}
        assert steps(state, "routes")[0]["routes"] == [
            {"dst": "100.96.0.0/16", "dev": "flannel-wg"}, {"dst": "fd00:96::/48", "dev": "flannel-wg"}]
        ingress = steps(state, "ingress")[0]
        assert (ingress["port"], "ports" in ingress) == (51820, False)


def test_wireguard_one_device_leases_the_port_it_listens_on_for_both_families():
    wg = BACKENDS["wireguard"]
    options = {"port": 51820, "port6": 51821, "mode": "auto"}
    assert wg.lease_data_v6(options, None, {"public_key": KEYS["a"]})["port"] == 51820
    assert wg.lease_data_v6(dict(options, mode="separate"), None, {})["port"] == 51821


def test_wireguard_auto_tunnels_over_ipv6_only_where_both_ends_are_public_there():
    # Flannel's rule: IPv4, unless the peer's IPv4 is private and both IPv6 ends are public.
    hosts = [dict(name=n, public_ip=ip, subnet="100.96.%d.0/24" % i, public_ipv6=ip6,
                  subnet6="fd00:96:0:%d::/64" % i, reported={"public_key": KEYS[n]})
             for i, (n, ip, ip6) in enumerate([("a", "10.0.0.1", "2001:db8::1"),
                                               ("b", "10.0.0.2", "2001:db8::2"),
                                               ("c", "198.51.100.3", "2001:db8::3")], 1)]
    auto = sample_plan("wireguard", hosts, ipv6_network="fd00:96::/48", Mode="auto")
    me = dict(ME, public_ipv6="2001:db8::1", underlay6="2001:db8::/64")
    peers = steps(model.derive(auto, me, SETTINGS), "wireguard")[0]["peers"]
    assert [p["endpoint"] for p in peers] == ["[2001:db8::2]:51820", "198.51.100.3:51820"]
    # This host's own IPv6 private (ULA): IPv4 to every peer.
    me_ula = dict(ME, public_ipv6="fd09::1", underlay6="fd09::/64")
    peers = steps(model.derive(auto, me_ula, SETTINGS), "wireguard")[0]["peers"]
    assert [p["endpoint"] for p in peers] == ["10.0.0.2:51820", "198.51.100.3:51820"]


def test_a_pre_shared_key_is_named_by_its_file_never_carried():
    state = model.derive(wireguard_plan(), ME, dict(SETTINGS, wireguard_psk=True))
    assert steps(state, "wireguard")[0]["preshared_key"] == "/etc/weft/wireguard.psk"
    assert "/etc/weft/wireguard.psk" not in state.files


def test_a_reported_public_key_that_is_no_wireguard_key_is_refused_by_name():
    from ansible_collections.weft.overlay.plugins.module_utils.weft.plan.subnets import PlanError
    for bad in ("x", "A" * 44, "A" * 42 + "=="):    # not base64 of 32 bytes
        with pytest.raises(PlanError, match=r"a.*public_key: '%s' is not a WireGuard key" % bad):
            sample_plan("wireguard", [("a", "10.0.0.1", "100.96.1.0/24", {"public_key": bad})])


# ---- container runtimes: Docker, CNI, both --------------------------------------------

def test_a_cni_host_gets_a_conflist_and_a_bridge_on_its_whole_subnet():
    state = model.derive(dual_plan(), ME6, dict(SETTINGS, docker=False, cni=True))
    assert ("bridge", "cni0") in state.devices and not steps(state, "docker")
    assert steps(state, "bridge") == [{"name": "cni0", "mtu": 1430,
                                       "address": ["100.96.1.1/24", "fd00:96:0:1::1/64"]}]
    conf = json.loads(state.files["/etc/cni/net.d/10-weft.conflist"][0])
    ipam = conf["plugins"][0]["ipam"]
    assert ipam["ranges"] == [[{"subnet": "100.96.1.0/24", "gateway": "100.96.1.1"}],
                              [{"subnet": "fd00:96:0:1::/64", "gateway": "fd00:96:0:1::1"}]]
    assert ipam["routes"] == [{"dst": "100.96.0.0/16", "gw": "100.96.1.1"},
                              {"dst": "fd00:96::/48", "gw": "fd00:96:0:1::1"}]


def test_docker_and_cni_on_one_host_each_get_their_half_of_each_subnet():
    state = model.derive(dual_plan(), ME6, dict(SETTINGS, docker=True, cni=True))
    docker = steps(state, "docker")[0]
    assert (docker["bip"], docker["fixed_cidr_v6"]) == ("100.96.1.1/25", "fd00:96:0:1::/65")
    assert steps(state, "bridge")[0]["address"] == ["100.96.1.129/25", "fd00:96:0:1:8000::1/65"]
    ranges = json.loads(state.files["/etc/cni/net.d/10-weft.conflist"][0])["plugins"][0]["ipam"]["ranges"]
    assert [r[0]["subnet"] for r in ranges] == ["100.96.1.128/25", "fd00:96:0:1:8000::/65"]


def test_docker_alone_is_as_before_and_a_switch_removes_the_cni_network():
    docker_only = model.derive(plan(), ME, SETTINGS)
    assert steps(docker_only, "docker")[0]["bip"] == "100.96.1.1/24"
    assert not [p for p in docker_only.files if "cni" in p] and not steps(docker_only, "bridge")
    was_cni = model.known(plan(), ME, dict(SETTINGS, cni=True))
    assert ("bridge", "cni0") in was_cni.devices - docker_only.devices
    assert "/etc/cni/net.d/10-weft.conflist" in set(was_cni.files) - set(docker_only.files)
