"""Fixtures for verifying a converged lab: the plan, every node, and containers on them."""

import base64
import glob
import json
import os
import subprocess

import pytest
import testinfra
import yaml

BACKEND = os.environ.get("WEFT_BACKEND", "vxlan")
# Set when the scenario keeps the leases in etcd (Flannel's layout, default prefix).
ETCD = os.environ.get("WEFT_ETCD_ENDPOINT")
PREFIX = "/coreos.com/network"


def _inventory():
    return os.environ["MOLECULE_INVENTORY_FILE"]


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
    if ETCD:
        return etcd_leases()[0]
    found = glob.glob(os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "**",
                                   "weft_leases.yml"), recursive=True)
    assert len(found) == 1, "expected one lease file, found %s" % found
    with open(found[0]) as handle:
        return yaml.safe_load(handle)["weft_leases"]


@pytest.fixture(scope="session")
def peer_leases(leases):
    """Every lease a node routes to: weft's, and with etcd the Flannel hosts' too."""
    return dict(leases, **(etcd_leases()[1] if ETCD else {}))


@pytest.fixture(scope="session")
def nodes(leases):
    """name -> testinfra host, for every node that holds a lease."""
    return {name: testinfra.get_host("ansible://%s?ansible_inventory=%s" % (name, _inventory()))
            for name in sorted(leases)}


@pytest.fixture
def me(host):
    return host.backend.get_hostname()


def ip_json(host, *args):
    return json.loads(host.check_output(" ".join(args)) or "[]")


@pytest.fixture(scope="session")
def containers(nodes):
    """A busybox container on every node, serving its client's address over HTTP."""
    ips = {}
    for name, node in nodes.items():
        node.check_output(
            "docker image inspect weft/busybox >/dev/null 2>&1 || "
            "docker import /var/tmp/weft-busybox.tar weft/busybox")
        node.run("docker rm -f weft-verify")
        node.check_output("docker run -d --name weft-verify weft/busybox sleep 600")
        node.check_output(
            "docker exec weft-verify sh -c \"mkdir -p /www/cgi-bin && "
            "printf '#!/bin/sh\\necho\\necho \\$REMOTE_ADDR\\n' > /www/cgi-bin/ip && "
            "chmod +x /www/cgi-bin/ip && httpd -p 8080 -h /www\"")
        ips[name] = node.check_output(
            "docker inspect -f '{{.NetworkSettings.IPAddress}}' weft-verify")
    yield ips
    for node in nodes.values():
        node.run("docker rm -f weft-verify")
