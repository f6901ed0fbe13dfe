"""Fixtures for verifying a converged lab: the plan, and the state of every node."""

import base64
import json
import os
import subprocess

import pytest

import overlay

# Set when the scenario keeps the leases in etcd (Flannel's layout, default prefix).
ETCD = os.environ.get("WEFT_ETCD_ENDPOINT")
PREFIX = "/coreos.com/network"


def etcd_keys():
    """key -> value under Flannel's prefix, read with etcdctl (not with weft's code)."""
    out = subprocess.run(["etcdctl", "--endpoints", ETCD, "get", "--prefix", PREFIX + "/",
                          "-w", "json"], env={"ETCDCTL_API": "3"}, check=True,
                         capture_output=True, text=True).stdout
    return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"]).decode()
            for kv in json.loads(out).get("kvs", [])}


def lease_from_flannel(subnet_key, value):
    """A Flannel lease in the lease file's shape."""
    attrs = json.loads(value)
    data = attrs.get("BackendData") or {}
    return {"subnet": subnet_key.replace("-", "/"), "public_ip": attrs["PublicIP"],
            "backend_type": attrs.get("BackendType") or "udp",
            "backend_data": {"vni": data["VNI"], "vtep_mac": data["VtepMAC"]} if data else {}}


def etcd_leases():
    """(weft's leases by host, every other lease by subnet key) as stored in etcd."""
    keys = etcd_keys()
    hosts = {k.rsplit("/", 1)[1]: v.replace("/", "-") for k, v in keys.items()
             if k.startswith(PREFIX + "/weft/hosts/")}
    subnets = {k.rsplit("/", 1)[1]: v for k, v in keys.items()
               if k.startswith(PREFIX + "/subnets/")}
    ours = {name: lease_from_flannel(key, subnets[key]) for name, key in hosts.items()}
    others = {key: lease_from_flannel(key, value) for key, value in subnets.items()
              if key not in hosts.values()}
    return ours, others


@pytest.fixture(scope="session")
def leases():
    """weft's leases after the converge: the expected state of every node comes from them."""
    return etcd_leases()[0] if ETCD else overlay.leases()


@pytest.fixture(scope="session")
def peer_leases(leases):
    """Every lease a node routes to: weft's, and with etcd the Flannel hosts' too."""
    return dict(leases, **(etcd_leases()[1] if ETCD else {}))


@pytest.fixture(scope="session")
def states(leases):
    """The state of every node that holds a lease, read once."""
    return overlay.on_all(overlay.state, sorted(leases))
