# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where weft's code and record live on a host, and the systemd units that run them."""

from __future__ import annotations

from ..daemon.config import DEFAULT_STATUS_FILE

RUNTIME = "/usr/local/lib/weft"                 # the code weft installs on every host
MODULE_UTILS = RUNTIME + "/module_utils"        # the package weft, importable from here
RESTORE = RUNTIME + "/weft-restore"             # the command the restore and heal units run
UDPD = RUNTIME + "/weft-udpd"                   # the udp daemon's command
CONFIG = "/etc/weft"                            # weft's record, keys and daemon config
# The host's one lock: whoever reads weft's record to act on it (weft_host's converge and
# uninstall, each weft-restore and weft-heal pass, weft_check's drift, weft_facts making a
# key) reads it and acts under this lock, so nobody acts on a record a converge is replacing.
APPLY_LOCK = "/run/weft/apply.lock"
HEAL_STATUS = "/run/weft/heal.json"             # weft-heal's counters, for people and tests
SYSCTL_FILE = "/etc/sysctl.d/60-weft.conf"      # ip_forward (and IPv6 forwarding) at boot
# Files of weft versions before the host model, removed when found.
LEGACY_FILES = [CONFIG + "/state.json", RUNTIME + "/weft-restore.py", RUNTIME + "/weft-udpd.py"]
RECORD = CONFIG + "/host.json"                  # the plan, identity and settings last converged
DOCKER_ORIGINAL = CONFIG + "/docker-original.json"  # daemon.json's keys before weft set them
UDPD_CONFIG = CONFIG + "/udpd.json"             # the udp daemon's peers and socket
UDPD_STATUS = DEFAULT_STATUS_FILE               # the udp daemon's counters
# weft's figures for Debian's prometheus-node-exporter (its textfile collector's directory)
METRICS = "/var/lib/prometheus/node-exporter/weft.prom"
WIREGUARD_KEY = CONFIG + "/wireguard.key"       # this host's WireGuard private key (root, 0400)
WIREGUARD_KEY_NEXT = WIREGUARD_KEY + ".next"   # its replacement, made by a rotation (weft_facts)
WIREGUARD_PSK = CONFIG + "/wireguard.psk"       # the network's pre-shared key, if one is given
UNITS = "/etc/systemd/system"
WANTS = UNITS + "/multi-user.target.wants"
UDPD_UNIT = UNITS + "/weft-udpd.service"
HEADER = "# Written by weft (site.yml); a change here is put back by the next run.\n"


def udpd_launcher():
    """/usr/local/lib/weft/weft-udpd: the udp daemon, standard library only (no Ansible)."""
    return '''#!/usr/bin/python3
"""weft-udpd: the udp backend's forwarding daemon (see %s/weft/daemon/udpd.py)."""
import sys

sys.path.insert(0, "%s")
from weft.daemon.udpd import main  # noqa: E402

sys.exit(main(sys.argv))
''' % (MODULE_UTILS, MODULE_UTILS)


def launcher():
    """/usr/local/lib/weft/weft-restore: runs host/restore.py with the installed code (the
    package weft, found by its own name: nothing depends on how the controller found it)."""
    return '''#!/usr/bin/python3
"""weft-restore: put this host's overlay back as weft last converged it (see
%s/weft/host/restore.py)."""
import sys

sys.path.insert(0, "%s")
from weft.host.restore import main  # noqa: E402

sys.exit(main(sys.argv))
''' % (MODULE_UTILS, MODULE_UTILS)


def restore():
    return HEADER + """[Unit]
Description=weft: restore the overlay network of this host
Documentation=file://%(code)s/weft/host/restore.py
Wants=network-online.target
After=network-online.target
Before=docker.service weft-udpd.service weft-heal.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/python3 %(restore)s %(record)s

[Install]
WantedBy=multi-user.target
""" % dict(code=MODULE_UTILS, restore=RESTORE, record=RECORD)


def heal(interval):
    return HEADER + """# Keeps the overlay as weft last converged it: applies %(record)s again on kernel
# events that may mean drift and every %(interval)d s, with the code weft-restore runs at boot.
[Unit]
Description=weft: repair drift of this host's overlay between Ansible runs
Documentation=file://%(code)s/weft/host/restore.py
After=weft-restore.service
StartLimitIntervalSec=0

[Service]
ExecStart=/usr/bin/python3 %(restore)s --watch %(interval)d %(record)s
Restart=always
RestartSec=5
Nice=10
# It programs links, routes, neighbours, iptables and nftables, and rewrites weft's own
# files; it needs nothing else.
CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_DAC_OVERRIDE CAP_FOWNER CAP_CHOWN
NoNewPrivileges=yes
ProtectHome=yes
PrivateTmp=yes
ProtectClock=yes
ProtectHostname=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native

[Install]
WantedBy=multi-user.target
""" % dict(code=MODULE_UTILS, restore=RESTORE, record=RECORD, interval=interval)


def udpd(view):
    return HEADER + """# weft's udp backend. The daemon runs as %(user)s with no capabilities: it owns the
# TUN device weft created (so it may attach to it), binds an unprivileged UDP port and
# reads its config; everything else is fenced off (systemd-analyze security weft-udpd).
[Unit]
Description=weft udp backend: forwards %(tun)s <-> UDP port %(port)d
Documentation=file://%(code)s/weft/daemon/udpd.py
After=network.target weft-restore.service
Before=docker.service
# No start limit: a burst of crashes must not leave the overlay down for good.
StartLimitIntervalSec=0

[Service]
ExecStart=/usr/bin/python3 %(daemon)s run %(config)s
ExecReload=/bin/kill -HUP $MAINPID
Restart=always
RestartSec=1
User=%(user)s
Group=%(user)s
RuntimeDirectory=weft-udpd
RuntimeDirectoryMode=0750
UMask=0077
CapabilityBoundingSet=
AmbientCapabilities=
NoNewPrivileges=yes
PrivateUsers=yes
DevicePolicy=closed
DeviceAllow=/dev/net/tun rw
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateIPC=yes
ProtectHostname=yes
ProtectClock=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectProc=invisible
ProcSubset=pid
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
KeyringMode=private
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
""" % dict(user=view.settings["udpd_user"], tun=view.settings["tun_device"],
           port=view.network["port"], daemon=UDPD, code=MODULE_UTILS, config=UDPD_CONFIG)
