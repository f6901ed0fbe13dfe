"""A backend defined here, in this file alone, goes the whole way: its own net-conf option
and validation, lease data born on the host (weft_facts) and derived from a secret that
never leaves it, the planner, the lease file, etcd in Flannel's JSON (read back byte for
byte), the plan string, the host model and the cores on a real kernel (a sandbox host).

The backend, "static-gw", is host-gw with static ARP: every host reports its underlay MAC
(a public fact only the host knows) and a key id (the public half of a secret kept in a
root-only file on the host); every peer gets a permanent neighbour entry for it and a
route with the network's Metric.

Nothing else of the project knows this backend: that is what the test shows.
"""

import hashlib
import json
import os
import secrets
import sys

import pytest

from weft.backends import BACKENDS, Backend, Option, mtu_option, register
from weft.errors import WeftError
from weft.lease import decode_plan
from weft.module import Context, call
from weft.plan import plan as plan_core
from weft.plan import lease_migrate as migrate_core
from weft.plan.etcd import EtcdClient
from weft.plan.etcdstore import EtcdStore
from weft.plan.leasefile import FileStore
from conftest import MODULE_UTILS, sh
from sandbox import Sandbox
from test_etcd_store import stored

SECRET_FILE = "/etc/weft/static-gw.key"   # root-only, on the host: never leaves it


class StaticGw(Backend):
    name = "static-gw"
    options = (Option("Metric", "metric", int, 100, 1, 9999), mtu_option(0))
    lease_fields = (("underlay_mac", "UnderlayMAC"), ("key_id", "KeyID"))
    reported = ("underlay_mac", "key_id")

    def check_reported(self, facts, where):
        found = super().check_reported(facts, where)
        if len(str(found["key_id"])) != 16:
            raise ValueError("%s: key_id %r is not 16 hex digits" % (where, found["key_id"]))
        return found

    def host_facts(self, ctx, underlay, rotate=False):
        if not os.path.exists(SECRET_FILE):
            os.makedirs(os.path.dirname(SECRET_FILE), exist_ok=True)
            fd = os.open(SECRET_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, secrets.token_hex(32).encode())
            os.close(fd)
        with open(SECRET_FILE, "rb") as handle:
            key_id = hashlib.sha256(handle.read()).hexdigest()[:16]
        mac = ctx.kernel.link(underlay["iface"]).get_attr("IFLA_ADDRESS")
        return {"underlay_mac": mac, "key_id": key_id}

    def steps(self, view):
        return [{"core": "neighbours", "params": dict(
            dev=view.identity["iface"], purge=True,
            neighbours=[{"ip": p.public_ip, "mac": p.data["underlay_mac"]} for p in view.peers])}]

    def routes(self, view):
        return [{"dst": p.subnet, "via": p.public_ip, "dev": view.identity["iface"],
                 "metric": view.network["metric"]} for p in view.peers]


NETWORK = {"Network": "100.96.0.0/16", "Backend": {"Type": "static-gw", "Metric": 42}}
IDENTITY = {"name": "node1", "iface": "u0", "public_ip": "10.9.0.1", "underlay": "10.9.0.0/24",
            "mtu": 1500}


def host_side(action, args):
    """Run inside the sandbox host (this file is its own helper there): register the
    backend in that process, then weft_facts' or weft_host's core, as its module would."""
    register(StaticGw())
    from weft.facts import facts as facts_core
    from weft.host import host as host_core
    ctx = Context()
    try:
        print(json.dumps(call(facts_core if action == "facts" else host_core, args, ctx)))
    finally:
        ctx.close()


@pytest.fixture
def backend():
    register(StaticGw())
    yield BACKENDS["static-gw"]
    del BACKENDS["static-gw"]


@pytest.fixture
def box(netns):
    sandbox = Sandbox(netns)
    yield sandbox
    sandbox.remove()


def on_host(box, action, args):
    here = os.path.dirname(os.path.abspath(__file__))
    code = ("import sys; sys.path[:0] = %r; import test_backend_extension as t; "
            "t.host_side(%r, %r)"
            % ([MODULE_UTILS, here, os.path.join(os.path.dirname(here), "lab")], action, args))
    out = box.run(sys.executable, "-c", code).stdout
    return json.loads(out.strip().splitlines()[-1]), out


def test_option_and_reported_facts_are_validated_by_the_backend(backend, tmp_path):
    from weft.plan.subnets import PlanError, parse_hosts, parse_network_config
    with pytest.raises(PlanError, match=r"^weft_network.Backend.Metric: 0 is out of range 1..9999$"):
        parse_network_config(dict(NETWORK, Backend={"Type": "static-gw", "Metric": 0}))
    config = parse_network_config(NETWORK)
    assert config.as_flannel()["Backend"] == {"Type": "static-gw", "Metric": 42}
    with pytest.raises(PlanError, match=r"^weft\.overlay\.facts of b: key_id 'short' is not 16 hex"):
        parse_hosts([{"name": "b", "public_ip": "10.9.0.2",
                      "reported": {"underlay_mac": "02:00:00:00:00:02", "key_id": "short"}}], config)
    lease_file = str(tmp_path / "leases.yml")
    with pytest.raises(WeftError, match=r"^weft\.overlay\.facts of b: backend static-gw needs underlay_mac, "
                                        r"key_id from the host"):
        call(plan_core, dict(network=NETWORK, hosts=[{"name": "b", "public_ip": "10.9.0.2"}],
                             store="file", lease_file=lease_file), Context())
    assert not os.path.exists(lease_file)


def test_a_backend_from_this_file_alone_flows_from_host_to_plan_to_stores_to_kernel(
        backend, box, etcd, tmp_path):
    # 1. The host reports its public facts; the secret they come from stays in its file.
    facts, facts_output = on_host(box, "facts", {"iface": "u0", "backend": "static-gw"})
    reported = facts["ansible_facts"]["weft_backend_facts"]
    link = json.loads(sh("ip", "-j", "link", "show", "u0", netns=box.netns))[0]["address"]
    peer_mac = json.loads(sh("ip", "-j", "link", "show", "u1", netns=box.netns))[0]["address"]
    assert reported["underlay_mac"] == link
    secret = box.read(SECRET_FILE)
    assert secret and box.run("stat", "-c", "%a", SECRET_FILE).stdout.strip() == "600"
    assert reported["key_id"] == hashlib.sha256(secret.encode()).hexdigest()[:16]

    # 2. The planner puts it into the host's lease; peer node2 (on u1) reported its own.
    hosts = [{"name": "node1", "public_ip": "10.9.0.1", "underlay": "10.9.0.0/24",
              "reported": reported},
             {"name": "node2", "public_ip": "10.9.0.2", "underlay": "10.9.0.0/24",
              "reported": {"underlay_mac": peer_mac, "key_id": "00112233445566aa"}}]
    lease_file = str(tmp_path / "leases.yml")
    planned = call(plan_core, dict(network=NETWORK, hosts=hosts, store="file",
                                   lease_file=lease_file), Context())
    assert planned["changed"]
    lease_text = open(lease_file).read()
    assert "underlay_mac: %s" % link in lease_text and "key_id: %s" % reported["key_id"] in lease_text
    plan = decode_plan(planned["plan"])
    assert plan["network"]["metric"] == 42
    assert plan["hosts"]["node2"]["backend_data"] == {"underlay_mac": peer_mac,
                                                      "key_id": "00112233445566aa"}
    # A run in which the hosts report nothing keeps what the leases recorded: changed=0.
    quiet = [{k: v for k, v in h.items() if k != "reported"} for h in hosts]
    again = call(plan_core, dict(network=NETWORK, hosts=quiet, store="file",
                                 lease_file=lease_file), Context())
    assert not again["changed"] and again["plan"] == planned["plan"]

    # 3. etcd: the leases in Flannel's JSON, with the backend's BackendData, byte for byte.
    etcd_args = dict(endpoints=[etcd])
    copied = call(migrate_core, dict(network=NETWORK, to="etcd", lease_file=lease_file,
                                     etcd=etcd_args), Context())
    assert copied["changed"] and copied["copied"] == ["node1", "node2"]
    keys = stored(etcd)
    assert keys["/coreos.com/network/subnets/100.96.1.0-24"][0] == (
        '{"PublicIP":"10.9.0.1","PublicIPv6":null,"BackendType":"static-gw",'
        '"BackendData":{"UnderlayMAC":"%s","KeyID":"%s"}}' % (link, reported["key_id"]))
    assert json.loads(keys["/coreos.com/network/config"][0])["Backend"] == \
        {"Type": "static-gw", "Metric": 42}
    read_back = EtcdStore(EtcdClient([etcd])).read().leases
    assert read_back == FileStore(lease_file).leases()
    from_etcd = call(plan_core, dict(network=NETWORK, hosts=quiet, store="etcd", etcd=etcd_args),
                     Context())
    assert not from_etcd["changed"] and from_etcd["plan"] == planned["plan"]

    # 4. The host derives its state from the plan string and the cores put it in the kernel.
    args = {"plan": planned["plan"], "host": IDENTITY, "settings": {"docker": False}}
    converged, converge_output = on_host(box, "converge", args)
    assert converged["changed"], converged
    assert sh("ip", "neigh", "show", "dev", "u0", netns=box.netns).split("\n")[0].strip() == \
        "10.9.0.2 lladdr %s PERMANENT" % peer_mac
    assert sh("ip", "route", "show", "proto", "119", netns=box.netns).strip() == \
        "100.96.2.0/24 via 10.9.0.2 dev u0 metric 42"
    unchanged, _ = on_host(box, "converge", args)
    assert not unchanged["changed"], unchanged

    # 5. The secret is nowhere but in its file on the host.
    etcd_values = json.dumps(stored(etcd))
    record = box.read("/etc/weft/host.json")
    assert reported["key_id"] in record  # the public half travels ...
    for where, text in (("facts", facts_output), ("plan", json.dumps(plan)),
                        ("lease file", lease_text), ("etcd", etcd_values), ("record", record),
                        ("weft_host's result", converge_output), ("planner", json.dumps(planned))):
        assert secret not in text, "the secret reached the %s" % where  # ... the secret never
