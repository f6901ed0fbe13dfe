# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Core of weft_host: this host's whole overlay from the plan every host gets.

Decodes the plan, derives the host's state (host.model), converges it (host.converge)
and records plan, identity and settings with the code that ran, for weft-restore; or,
with state=absent, removes everything weft put on the host.
"""

from __future__ import annotations

import json

from ..errors import WeftError
from ..files import exclusive_lock, require_lock
from . import bundle, model, units
from .converge import converge, uninstall
from ..net.netlink import RTPROT_WEFT
from ..validate import cni_network_name, interface_name, preshared_key

SETTINGS_SPEC = dict(
    docker=dict(type="bool", default=True),
    docker_daemon_json=dict(type="path", default="/etc/docker/daemon.json"),
    forward_accept=dict(type="bool", default=True),
    ip_masq=dict(type="bool", default=True),
    ip_masq_random_fully=dict(type="bool", default=True),
    vxlan_tx_checksum_offload=dict(type="bool", default=True),
    peer_ingress=dict(type="bool", default=True),
    route_protocol=dict(type="int", default=RTPROT_WEFT),
    subnet_env=dict(type="path", default="/run/flannel/subnet.env"),
    tun_device=dict(type="str", default="flannel0"),
    udpd_user=dict(type="str", default="weft-udpd"),
    udp_fastpath=dict(type="bool", default=True),
    heal_interval=dict(type="int", default=60),
    metrics_file=dict(type="str", default=""),
    wireguard_implementation=dict(type="str", choices=["auto", "kernel", "userspace"],
                                  default="auto"),
    cni=dict(type="bool", default=False),
    cni_name=dict(type="str", default="weft"),
    cni_bridge=dict(type="str", default="cni0"),
    cni_conf_dir=dict(type="path", default="/etc/cni/net.d"),
)
ARGUMENT_SPEC = dict(
    state=dict(type="str", choices=["present", "absent"], default="present"),
    plan=dict(type="str"),
    host=dict(type="dict", options=dict(
        name=dict(type="str", required=True),
        iface=dict(type="str", required=True),
        public_ip=dict(type="str", required=True),
        iface_ip=dict(type="str"),
        underlay=dict(type="str"),
        public_ipv6=dict(type="str"),
        iface_ipv6=dict(type="str"),
        underlay6=dict(type="str"),
        mtu=dict(type="int", required=True),
    )),
    settings=dict(type="dict", default={}, options=SETTINGS_SPEC),
    network=dict(type="str"),
    vni=dict(type="int", default=1),
    # The wireguard backend's pre-shared key: written to a root-only file, never recorded
    # (the record says only whether there is one).
    wireguard_psk=dict(type="str", no_log=True),
    keep_keys=dict(type="bool", default=False),
)
SPEC_RULES = dict(required_if=[("state", "present", ["plan", "host"])])
NOT_ECHOED = ("plan",)


def check_settings(settings):
    try:
        interface_name(settings["tun_device"], "settings.tun_device")
        interface_name(settings["cni_bridge"], "settings.cni_bridge")
        cni_network_name(settings["cni_name"], "settings.cni_name")
    except ValueError as exc:
        raise WeftError(str(exc)) from None
    if not 5 <= settings["route_protocol"] <= 255:
        raise WeftError("settings.route_protocol: %d is out of range 5..255"
                        % settings["route_protocol"])
    if settings["heal_interval"] < 0:
        raise WeftError("settings.heal_interval: %d is negative" % settings["heal_interval"])
    metrics = settings["metrics_file"]
    if metrics and not (metrics.startswith("/") and metrics.endswith(".prom") and
                        "\0" not in metrics and "/../" not in metrics + "/"):
        raise WeftError("settings.metrics_file: %r must be an absolute path ending in .prom "
                        "(the textfile collector reads only those), or empty for no metrics"
                        % metrics)


def previous():
    """What the record says this host held before, and the record (None, None without
    one). Read under the apply lock: a record read before it may be replaced meanwhile."""
    require_lock("reading the record for a converge")
    try:
        with open(units.RECORD) as handle:
            record = json.load(handle)
        return model.known(record["plan"], record["identity"], record["settings"]), record
    except (OSError, ValueError, KeyError, TypeError, WeftError):
        return None, None


def released_cni(record, settings, serving):
    """The CNI network this host served (by its record, else as `settings` say) that it
    does not serve under the settings `serving` (None: uninstalled), or None."""
    then = record["settings"] if record else settings
    if not then.get("cni"):
        return None
    if serving and serving.get("cni") and serving["cni_name"] == then["cni_name"]:
        return None
    return then["cni_name"]


def run(params, ctx):
    settings = params["settings"]
    check_settings(settings)
    if params["state"] == "absent":
        leftovers = model.leftovers(settings, {"vni": params["vni"]})
        with exclusive_lock(units.APPLY_LOCK):
            old, record = previous()
            network = params["network"] or (record["plan"]["network"]["network"] if record else None)
            return uninstall(ctx, leftovers.merge(old) if old else leftovers, settings, network,
                             keep_secrets=params["keep_keys"],
                             cni_name=released_cni(record, settings, None))
    try:
        psk = preshared_key(params["wireguard_psk"], "wireguard_psk")
    except ValueError as exc:
        raise WeftError(str(exc)) from None
    settings = dict(settings, wireguard_psk=bool(psk))
    plan = model.decode_plan(params["plan"])
    identity = params["host"]
    state = model.derive(plan, identity, settings)
    everything = model.known(plan, identity, settings)
    with exclusive_lock(units.APPLY_LOCK):
        old, record = previous()
        result = converge(ctx, state, everything.merge(old) if old else everything,
                          record=dict(plan=plan, identity=identity, settings=settings),
                          sources=bundle.sources(),
                          given_secrets={units.WIREGUARD_PSK: psk + "\n" if psk else None},
                          released_cni=released_cni(record, settings, settings))
    result["backend"] = plan["network"]["backend_type"]
    return result
