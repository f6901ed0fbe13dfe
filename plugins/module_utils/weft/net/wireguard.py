# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Core of weft_wireguard: a WireGuard device, its key and port, and one peer per host.

Two implementations, one configuration. The kernel's device is made over netlink; without
the kernel module, wireguard-go makes a TUN device of the same name, run by systemd as a
transient unit (weft-restore starts it again at boot, as it re-creates every device) under
an unprivileged user that holds CAP_NET_ADMIN alone. Either way wireguard-tools' `wg`
configures it (netlink for the kernel's, the UAPI socket for wireguard-go's), so all that
differs is how the device comes to exist and goes away.

The private and pre-shared keys are read from root-only files on the host by `wg` itself;
they are compared with the device's in this process and never returned, logged or put in
a diff. All changes to the peers go to the device in one `wg set`.
"""

from __future__ import annotations

import hashlib
import os
import time

from ..errors import WeftError
from .device import (COMMON_ARGUMENT_SPEC, apply_in_place,
                     desired_common, differing, read_common)
from .netlink import attr
from .reconcile import reconcile
from ..validate import int_range, ip_network, wireguard_key

KINDS = {"kernel": "wireguard", "userspace": "tun"}
UAPI_DIR = "/run/wireguard"
WIREGUARD_GO = "/usr/bin/wireguard-go"
START_TIMEOUT = 10.0

ARGUMENT_SPEC = dict(
    COMMON_ARGUMENT_SPEC,
    address=dict(type="list", elements="str"),   # one per family the device carries
    private_key=dict(type="path", no_log=False),  # a path: the key itself never passes here
    preshared_key=dict(type="path", no_log=False),  # a path, the same for every peer
    listen_port=dict(type="int"),
    peers=dict(type="list", elements="dict", default=[], options=dict(
        public_key=dict(type="str", required=True, no_log=False),
        endpoint=dict(type="str", required=True),
        allowed_ips=dict(type="list", elements="str", required=True),
        persistent_keepalive=dict(type="int", default=0),
    )),
    purge=dict(type="bool", default=True),
    implementation=dict(type="str", choices=["auto", "kernel", "userspace"], default="auto"),
    user=dict(type="str", default="weft-wireguard"),
    unit=dict(type="str"),
)
SPEC_RULES = dict(required_if=[("state", "present", ["private_key", "listen_port"])])


def unit_name(params):
    """The transient unit wireguard-go runs in."""
    return params["unit"] or "weft-wireguard-%s.service" % params["name"]


def userspace_properties(user):
    """What the wireguard-go unit may do: create its TUN device and answer on its UAPI
    socket, as an unprivileged user holding CAP_NET_ADMIN alone; nothing else."""
    return ["User=%s" % user, "Group=%s" % user, "AmbientCapabilities=CAP_NET_ADMIN",
            "CapabilityBoundingSet=CAP_NET_ADMIN", "NoNewPrivileges=yes",
            "RuntimeDirectory=wireguard", "RuntimeDirectoryPreserve=yes",
            "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
            "RestrictAddressFamilies=AF_INET AF_INET6 AF_NETLINK AF_UNIX",
            "DefaultDependencies=no", "Restart=on-failure"]


def wg(ctx, *args):
    tool = ctx.which("wg")
    if tool is None:
        raise WeftError("wg: wireguard-tools is not installed (Debian package wireguard-tools)")
    rc, out, err = ctx.run([tool] + list(args))
    if rc:
        raise WeftError("wg %s: %s" % (" ".join(args[:2]), err.strip() or out.strip()))
    return out


def choose_implementation(params, msg):
    """kernel or userspace: as asked; `auto` keeps what the device is, else the kernel's
    when this host has the module (tried at creation), else wireguard-go."""
    if params["implementation"] != "auto":
        return params["implementation"]
    if msg is not None:
        return "userspace" if read_kind(msg) == "tun" else "kernel"
    return "kernel" if kernel_has_wireguard() else "userspace"


def kernel_has_wireguard() -> bool:
    """Whether this host's kernel has WireGuard loaded (else wireguard-go carries it)."""
    return os.path.isdir("/sys/module/wireguard")


def read_kind(msg):
    return attr(msg, "IFLA_LINKINFO", "IFLA_INFO_KIND")


def create(ctx, params, implementation):
    kernel, name = ctx.kernel, params["name"]
    if implementation == "kernel":
        try:
            kernel.ipr.link("add", ifname=name, kind="wireguard")
        except Exception as exc:  # no module: the kernel says "not supported"
            raise WeftError("name: cannot create the kernel WireGuard device %s (%s); "
                            "use implementation=userspace (wireguard-go)" % (name, exc)) from None
        return
    if not os.path.exists(WIREGUARD_GO):
        raise WeftError("implementation: userspace needs wireguard-go (Debian package "
                        "wireguard-go), not found at %s" % WIREGUARD_GO)
    unit = unit_name(params)
    systemctl = ctx.which("systemctl") or "systemctl"
    ctx.run([systemctl, "stop", unit])          # a failed run of it may still be loaded
    ctx.run([systemctl, "reset-failed", unit])
    argv = [ctx.which("systemd-run") or "systemd-run", "--unit=" + unit, "--collect",
            "--description=weft: wireguard-go for %s" % name]
    for prop in userspace_properties(params["user"]):
        argv.append("--property=" + prop)
    argv += ["--setenv=WG_PROCESS_FOREGROUND=1", WIREGUARD_GO, name]
    rc, out, err = ctx.run(argv)
    if rc:
        raise WeftError("implementation: starting wireguard-go for %s failed: %s"
                        % (name, err.strip() or out.strip()))
    deadline = time.monotonic() + START_TIMEOUT
    socket = os.path.join(UAPI_DIR, name + ".sock")
    while not (kernel.link(name) is not None and os.path.exists(socket)):
        if time.monotonic() > deadline:
            raise WeftError("implementation: wireguard-go did not make %s within %d s (see "
                            "journalctl -u %s)" % (name, START_TIMEOUT, unit))
        time.sleep(0.05)


def remove(ctx, params, msg):
    if read_kind(msg) == "tun":
        # wireguard-go's device goes with its unit (deleting the device would restart it).
        ctx.run([ctx.which("systemctl") or "systemctl", "stop", unit_name(params)])
    msg = ctx.kernel.link(params["name"])
    if msg is not None:
        ctx.kernel.ipr.link("del", index=msg["index"])


def fingerprint(secret):
    """What a pre-shared key is compared by: a digest, so that the key itself never sits
    in the entries that results and diffs are rendered from."""
    return hashlib.sha256(secret.encode()).hexdigest() if secret else None


def read_device(ctx, name):
    """(private key, listen port, {public key: peer}) as `wg show dump` prints them."""
    lines = wg(ctx, "show", name, "dump").splitlines()
    private, dummy, port = lines[0].split("\t")[:3]
    peers = {}
    for line in lines[1:]:
        key, psk, endpoint, allowed, dummy, dummy, dummy, keepalive = line.split("\t")[:8]
        peers[key] = dict(endpoint=None if endpoint == "(none)" else endpoint,
                          allowed_ips=",".join(sorted(a for a in allowed.split(",")
                                                      if a and a != "(none)")),
                          persistent_keepalive=0 if keepalive == "off" else int(keepalive),
                          psk=fingerprint(None if psk == "(none)" else psk))
    return private, int(port), peers


def read_secret(path, option, check_mode):
    """A key file's content; None when it does not exist yet in a dry run."""
    try:
        with open(path) as handle:
            return handle.read().strip()
    except FileNotFoundError:
        if not check_mode:
            raise WeftError("%s: %s does not exist (%s)" % (option, path, "weft.overlay.facts makes it"
                            if option == "private_key" else "weft.overlay.host writes it")) from None
        return None
    except OSError as exc:
        raise WeftError("%s: %s cannot be read (%s)" % (option, path, exc.strerror)) from None


def desired_peers(params, psk=None):
    peers = {}
    for i, peer in enumerate(params["peers"]):
        where = "peers[%d]" % i
        key = wireguard_key(peer["public_key"], where + ".public_key")
        if key in peers:
            raise ValueError("%s.public_key: %s is given twice" % (where, key))
        allowed = [str(ip_network(a, "%s.allowed_ips" % where)) for a in peer["allowed_ips"]]
        peers[key] = dict(key=key, endpoint=peer["endpoint"].strip(),
                          allowed_ips=",".join(sorted(allowed)),
                          persistent_keepalive=int_range(peer["persistent_keepalive"],
                                                         where + ".persistent_keepalive", 0, 65535),
                          psk=fingerprint(psk))
    return peers


def render(peer):
    """One line per peer (public values only) for results and diffs."""
    return "%s %s allowed %s%s" % (peer["key"], peer["endpoint"], peer["allowed_ips"],
                                   " keepalive %d" % peer["persistent_keepalive"]
                                   if peer["persistent_keepalive"] else "")


def run(params, ctx):
    kernel, name = ctx.kernel, params["name"]
    msg = kernel.link(name)
    if params["state"] == "absent":
        if msg is None or read_kind(msg) not in KINDS.values():
            return dict(changed=False)
        if not ctx.check_mode:
            remove(ctx, params, msg)
        return dict(changed=True)
    key_file, psk_file = params["private_key"], params["preshared_key"]
    # None in a dry run before weft_facts has made the key: it will be set.
    private = read_secret(key_file, "private_key", ctx.check_mode)
    psk = read_secret(psk_file, "preshared_key", ctx.check_mode) if psk_file else None
    try:
        inplace = desired_common(params, mac_option=False)
        if psk:
            wireguard_key(psk, "preshared_key (%s)" % psk_file, secret=True)
        peers = desired_peers(params, psk)
        port = int_range(params["listen_port"], "listen_port", 1, 65535)
    except ValueError as exc:
        raise WeftError(str(exc)) from None
    implementation = choose_implementation(params, msg)
    if msg is not None and read_kind(msg) != KINDS[implementation]:
        raise WeftError("name: %s exists as a %s device, not %s's %s; refusing to touch it"
                        % (name, read_kind(msg), implementation, KINDS[implementation]))
    result = dict(changed=False, implementation=implementation)
    if msg is None:
        result["changed"] = True
        if ctx.check_mode:
            result["added"] = [render(peers[k]) for k in sorted(peers)]
            return result
        create(ctx, params, implementation)
        msg = kernel.link(name)
        current_inplace = dict(kind=KINDS[implementation])
    else:
        current_inplace = read_common(kernel, msg)
    dummy, after = differing(current_inplace, inplace)
    if after:
        result["changed"] = True
        if not ctx.check_mode:
            apply_in_place(kernel, msg["index"], after)
    current_key, current_port, current_peers = read_device(ctx, name)
    if current_key != private or current_port != port:
        result["changed"] = True
        result["key_or_port_changed"] = True   # which one is not said: the key stays unsaid
        if not ctx.check_mode:
            wg(ctx, "set", name, "private-key", key_file, "listen-port", str(port))

    changes = []

    def apply(action, key, value):
        if action == "remove":
            changes.extend(["peer", key, "remove"])
            return
        # `wg set` replaces a peer's allowed IPs with the ones named; /dev/null: no PSK.
        changes.extend(["peer", key, "endpoint", value["endpoint"],
                        "allowed-ips", value["allowed_ips"],
                        "persistent-keepalive", str(value["persistent_keepalive"] or "off"),
                        "preshared-key", psk_file if psk else "/dev/null"])

    current = {k: dict(v, key=k) for k, v in current_peers.items()}
    outcome = reconcile(ctx, current, peers, params["purge"], apply, render)
    if changes:
        wg(ctx, "set", name, *changes)
    result.update({k: outcome[k] for k in ("added", "updated", "removed")})
    if outcome.get("diff"):
        result["diff"] = outcome["diff"]
    result["changed"] = result["changed"] or outcome["changed"]
    return result
