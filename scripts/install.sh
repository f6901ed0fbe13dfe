#!/usr/bin/env bash
# Installs what weft needs on this machine (Debian 12, as root): the packages lab nodes use
# (nodes boot from a copy-on-write view of this host) and the controller's venv in .venv.
# Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  python3 python3-venv python3-pyroute2 python3-yaml   # controller venv; hosts' pyroute2
  iproute2 iptables nftables iputils-ping procps kmod    # kernel networking tools
  ethtool                                                # tests read offloads back with it
  systemd systemd-container dbus openssh-server openssh-client   # lab nodes
  docker.io busybox-static                               # containers in lab nodes
  ansible-core                                           # weft-restore on lab nodes (boot)
  iperf3 make                                            # benchmarks, convenience targets
  etcd-server etcd-client                                # the etcd lease store's tests
  wireguard-tools wireguard-go                           # the wireguard backend (no kernel module here)
  containernetworking-plugins podman                     # the CNI runtime (bridge, host-local, portmap); podman on it
  prometheus-node-exporter                               # serves weft's metrics (textfile collector) in the lab
)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "weft: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Packages must not start their services here (etcd would take port 2379 for good).
  policy=/usr/sbin/policy-rc.d
  [ -e "$policy" ] || { printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; trap 'rm -f "$policy"' EXIT; }
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The host's own services stay off: lab nodes run their own sshd, dockerd and etcd (and
# podman without its API socket or registry polling).
for unit in docker.service docker.socket containerd.service ssh.service etcd.service \
            podman.socket podman.service podman-auto-update.timer podman-auto-update.service \
            podman-restart.service prometheus-node-exporter.service; do
  systemctl disable --now "$unit" >/dev/null 2>&1 || true
done

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import ansible, pyroute2, molecule' 2>/dev/null \
   || [ requirements.txt -nt .venv/.installed ] || [ requirements-dev.txt -nt .venv/.installed ]; then
  echo "weft: preparing the controller venv (.venv)"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements-dev.txt
  touch .venv/.installed
fi

# The checkout is the collection weft.overlay: found by FQCN through ansible.cfg's
# collections_path, as an installed copy would be.
link=.cache/collections/ansible_collections/weft/overlay
if [ "$(readlink "$link" 2>/dev/null)" != "../../../.." ]; then
  mkdir -p "$(dirname "$link")"
  rm -rf "$link"
  ln -s ../../../.. "$link"
fi
