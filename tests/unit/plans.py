"""Plans for tests and benchmarks, made by weft's own planner (never by hand), so that
what a test hands weft_host is exactly what weft_plan would hand it."""

import ipaddress

from ansible_collections.weft.overlay.plugins.module_utils.weft.lease import encode_plan, host_plan
from ansible_collections.weft.overlay.plugins.module_utils.weft.plan.etcdstore import (
    lease_from_flannel)
from ansible_collections.weft.overlay.plugins.module_utils.weft.plan.subnets import (
    parse_hosts, parse_network_config, plan)


def sample_plan(backend="vxlan", hosts=(), foreign=(), network="100.96.0.0/16",
                ipv6_network=None, nftables=False, **options):
    """The plan every host would get: `hosts` are (name, public IP, pinned subnet) or
    (name, public IP, pinned subnet, reported facts), or dicts as weft_plan takes them;
    `foreign` (subnet, public IP, Flannel's BackendData) are Flannel leases found in etcd.
    With `ipv6_network` the network is dual-stack, IPv6-only without `network`;
    `nftables`: its EnableNFTables."""
    raw = {"Network": network, "Backend": dict(Type=backend, **options)} if network else \
        {"EnableIPv4": False, "Backend": dict(Type=backend, **options)}
    if ipv6_network:
        raw.update(EnableIPv6=True, IPv6Network=ipv6_network)
    if nftables:
        raw["EnableNFTables"] = True
    config = parse_network_config(raw)
    specs = parse_hosts([h if isinstance(h, dict) else
                         dict(name=h[0], public_ip=h[1], subnet=h[2],
                              reported=h[3] if len(h) > 3 else None) for h in hosts], config)
    result = plan(config, specs, {})
    others = {}
    for subnet, public_ip, data in foreign:
        key = subnet.replace("/", "-")
        attrs = {"PublicIP": public_ip, "BackendType": config.backend.lease_type,
                 "BackendData": data}
        others[key] = lease_from_flannel(ipaddress.ip_network(subnet), None, attrs, key)
    return host_plan(config.summary(), result.leases, others)


def numbered_plan(backend="vxlan", count=3, address="10.9.0.%d", encoded=False, **options):
    """node1..nodeN with public IPs `address % i` and subnets 100.96.i.0/24."""
    made = sample_plan(backend, [("node%d" % i, address % i, "100.96.%d.0/24" % i)
                                 for i in range(1, count + 1)], **options)
    return encode_plan(made) if encoded else made
