"""Fixtures for verifying a converged lab: the plan, every node, and containers on them."""

import glob
import json
import os

import pytest
import testinfra
import yaml

BACKEND = os.environ.get("WEFT_BACKEND", "vxlan")


def _inventory():
    return os.environ["MOLECULE_INVENTORY_FILE"]


@pytest.fixture(scope="session")
def leases():
    """The lease file the converge wrote: the expected state of every node comes from it."""
    found = glob.glob(os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "**",
                                   "weft_leases.yml"), recursive=True)
    assert len(found) == 1, "expected one lease file, found %s" % found
    with open(found[0]) as handle:
        return yaml.safe_load(handle)["weft_leases"]


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
