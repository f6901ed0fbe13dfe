"""Every node holds the kernel state, files and rules its lease and its peers' leases imply."""

import ipaddress
import json

import pytest

from conftest import BACKEND, ip_json

NETWORK = "100.96.0.0/16"


def peers_of(leases, me):
    return {name: lease for name, lease in leases.items() if name != me}


def test_ip_forwarding_is_on(host):
    assert host.sysctl("net.ipv4.ip_forward") == 1


@pytest.mark.skipif(BACKEND != "vxlan", reason="vxlan backend only")
def test_vxlan_device(host, me, leases):
    lease = leases[me]
    dev = ip_json(host, "ip -d -j link show flannel.1")[0]
    data = dev["linkinfo"]["info_data"]
    assert (data["id"], data["local"], data["link"], data["port"], data["learning"]) == \
        (1, lease["public_ip"], "eth0", 8472, False)
    assert dev["address"] == lease["backend_data"]["vtep_mac"]
    assert dev["mtu"] == 1450 and "UP" in dev["flags"]
    addrs = [a["local"] + "/" + str(a["prefixlen"])
             for a in ip_json(host, "ip -j addr show flannel.1")[0]["addr_info"] if a["family"] == "inet"]
    assert addrs == [str(ipaddress.ip_network(lease["subnet"]).network_address) + "/32"]


@pytest.mark.skipif(BACKEND != "vxlan", reason="vxlan backend only")
def test_vxlan_neighbours_fdb_and_routes_per_peer(host, me, peer_leases):
    peers = peers_of(peer_leases, me)
    vtep = {name: str(ipaddress.ip_network(p["subnet"]).network_address) for name, p in peers.items()}
    neigh = {(n["dst"], n["lladdr"]) for n in ip_json(host, "ip -j neigh show dev flannel.1 nud permanent")}
    assert neigh == {(vtep[n], p["backend_data"]["vtep_mac"]) for n, p in peers.items()}
    fdb = {(f["mac"], f["dst"]) for f in ip_json(host, "bridge -j fdb show dev flannel.1") if "dst" in f}
    assert fdb == {(p["backend_data"]["vtep_mac"], p["public_ip"]) for p in peers.values()}
    routes = {(r["dst"], r["gateway"], r["dev"], "onlink" in r["flags"])
              for r in ip_json(host, "ip -j route show proto 119")}
    assert routes == {(p["subnet"], vtep[n], "flannel.1", True) for n, p in peers.items()}


@pytest.mark.skipif(BACKEND != "host-gw", reason="host-gw backend only")
def test_host_gw_routes_per_peer(host, me, peer_leases):
    routes = {(r["dst"], r["gateway"], r["dev"]) for r in ip_json(host, "ip -j route show proto 119")}
    assert routes == {(p["subnet"], p["public_ip"], "eth0") for p in peers_of(peer_leases, me).values()}
    assert not host.interface("flannel.1").exists


def test_docker_bridge_from_the_plan(host, me, leases):
    subnet = ipaddress.ip_network(leases[me]["subnet"])
    bridge = "%s/%d" % (subnet.network_address + 1, subnet.prefixlen)
    mtu = {"vxlan": 1450, "udp": 1472, "host-gw": 1500}[BACKEND]
    daemon = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert (daemon["bip"], daemon["mtu"], daemon["ip-masq"]) == (bridge, mtu, False)
    assert host.file("/run/flannel/subnet.env").content_string == (
        "FLANNEL_NETWORK=%s\nFLANNEL_SUBNET=%s\nFLANNEL_MTU=%d\nFLANNEL_IPMASQ=true\n"
        % (NETWORK, bridge, mtu))
    docker0 = [a["local"] + "/" + str(a["prefixlen"])
               for a in ip_json(host, "ip -j addr show docker0")[0]["addr_info"] if a["family"] == "inet"]
    assert docker0 == [bridge]


def test_forwarding_and_masquerade_rules(host, me, leases):
    subnet = leases[me]["subnet"]
    assert "-A FORWARD -j WEFT-FWD" in host.check_output("iptables -S FORWARD").splitlines()
    assert host.check_output("iptables -S WEFT-FWD").splitlines()[1:] == [
        '-A WEFT-FWD -s %s -m comment --comment "weft forward" -j ACCEPT' % NETWORK,
        '-A WEFT-FWD -d %s -m comment --comment "weft forward" -j ACCEPT' % NETWORK]
    nat = host.check_output("iptables -t nat -S WEFT-POSTRTG").splitlines()[1:]
    assert nat[0] == '-A WEFT-POSTRTG -s %s -d %s -m comment --comment "weft masq" -j RETURN' \
        % (subnet, NETWORK)
    assert '-A WEFT-POSTRTG -s %s ! -d 224.0.0.0/4 -m comment --comment "weft masq" ' \
        '-j MASQUERADE --random-fully' % NETWORK in nat
    assert "-A POSTROUTING -j WEFT-POSTRTG" in host.check_output("iptables -t nat -S POSTROUTING")


@pytest.mark.skipif(BACKEND != "udp", reason="udp backend only")
def test_udp_tun_device_route_and_daemon(host, me, leases, peer_leases):
    lease = leases[me]
    dev = ip_json(host, "ip -d -j link show flannel0")[0]
    info = dev["linkinfo"]["info_data"]
    assert (info["type"], info["pi"], info["persist"], dev["mtu"]) == ("tun", False, True, 1472)
    addrs = [a["local"] + "/" + str(a["prefixlen"])
             for a in ip_json(host, "ip -j addr show flannel0")[0]["addr_info"] if a["family"] == "inet"]
    assert addrs == [str(ipaddress.ip_network(lease["subnet"]).network_address) + "/32"]
    routes = [(r["dst"], r["dev"]) for r in ip_json(host, "ip -j route show proto 119")]
    assert routes == [(NETWORK, "flannel0")]
    assert host.service("weft-udpd").is_running and host.service("weft-udpd").is_enabled
    config = json.loads(host.file("/etc/weft/udpd.json").content_string)
    assert (config["listen"], config["port"], config["subnet"]) == (lease["public_ip"], 8285, lease["subnet"])
    assert sorted((p["subnet"], p["ip"]) for p in config["peers"]) == \
        sorted((p["subnet"], p["public_ip"]) for p in peers_of(peer_leases, me).values())
