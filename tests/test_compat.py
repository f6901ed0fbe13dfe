"""Leases written by the weft before the lease record (744266f, positional plans) read back
unchanged and re-plan with changed=0, in the lease file and in etcd: the bytes below are
what that weft wrote for two hosts of each backend."""

import pytest

from test_etcd_store import PREFIX, etcdctl, stored

HEADER = ("# weft subnet leases: one per host, keyed by inventory name.\n"
          "# Written by weft's planner (plan.yml, site.yml); review and commit it with the inventory.\n"
          "# A subnet never moves while its host stays in the inventory. Pin a subnet with the\n"
          "# host variable weft_subnet; release the leases of removed hosts with weft_prune=true.\n")


def old_lease_file(backend):
    def lease(n):
        data = ("    backend_data:\n      vni: 1\n      vtep_mac: 0e:77:64:60:0%d:00\n" % n
                if backend == "vxlan" else "    backend_data: {}\n")
        return ("  node%d:\n%s    backend_type: %s\n    public_ip: 10.168.0.%d\n"
                "    subnet: 100.96.%d.0/24\n" % (n, data, backend, n + 1, n))
    return HEADER + "weft_leases:\n" + lease(1) + lease(2)


OLD_ETCD = {
    "vxlan": ('{"Network":"100.96.0.0/16","SubnetLen":24,"SubnetMin":"100.96.1.0",'
              '"SubnetMax":"100.96.255.0","Backend":{"Type":"vxlan","VNI":1,"Port":8472,'
              '"DirectRouting":false}}',
              ['{"PublicIP":"10.168.0.%d","PublicIPv6":null,"BackendType":"vxlan",'
               '"BackendData":{"VNI":1,"VtepMAC":"0e:77:64:60:0%d:00"}}' % (n + 1, n)
               for n in (1, 2)]),
    "host-gw": ('{"Network":"100.96.0.0/16","SubnetLen":24,"SubnetMin":"100.96.1.0",'
                '"SubnetMax":"100.96.255.0","Backend":{"Type":"host-gw"}}',
                ['{"PublicIP":"10.168.0.%d","PublicIPv6":null,"BackendType":"host-gw"}' % (n + 1)
                 for n in (1, 2)]),
    "udp": ('{"Network":"100.96.0.0/16","SubnetLen":24,"SubnetMin":"100.96.1.0",'
            '"SubnetMax":"100.96.255.0","Backend":{"Type":"udp","Port":8285}}',
            ['{"PublicIP":"10.168.0.%d","PublicIPv6":null}' % (n + 1) for n in (1, 2)]),
}
HOSTS = [{"name": "node1", "public_ip": "10.168.0.2"}, {"name": "node2", "public_ip": "10.168.0.3"}]


def network(backend):
    return {"Network": "100.96.0.0/16", "Backend": {"Type": backend}}


@pytest.mark.parametrize("backend", sorted(OLD_ETCD))
def test_an_old_lease_file_replans_unchanged(backend, ansible_module, tmp_path):
    path = tmp_path / "weft_leases.yml"
    path.write_text(old_lease_file(backend))
    result = ansible_module("weft.overlay.plan", dict(network=network(backend), hosts=HOSTS,
                                                      lease_file=str(path)))
    assert not result["failed"] and not result["changed"], result
    assert path.read_text() == old_lease_file(backend)
    assert result["nodes"]["node2"]["subnet"] == "100.96.2.0/24"


@pytest.mark.parametrize("backend", sorted(OLD_ETCD))
def test_old_etcd_values_replan_unchanged(backend, etcd, ansible_module):
    config, values = OLD_ETCD[backend]
    etcdctl(etcd, "put", PREFIX + "/config", config)
    for n, value in enumerate(values, 1):
        etcdctl(etcd, "put", "%s/subnets/100.96.%d.0-24" % (PREFIX, n), value)
        etcdctl(etcd, "put", "%s/weft/hosts/node%d" % (PREFIX, n), "100.96.%d.0/24" % n)
    before = stored(etcd)
    result = ansible_module("weft.overlay.plan", dict(network=network(backend), hosts=HOSTS, store="etcd",
                                                      etcd=dict(endpoints=[etcd])))
    assert not result["failed"] and not result["changed"], result
    assert stored(etcd) == before
    assert result["leases"]["node1"]["public_ip"] == "10.168.0.2"
