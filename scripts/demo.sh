#!/usr/bin/env bash
# The main job on the local lab: install, build the collection and install it as a user
# would (not this checkout), boot two nodes, run weft.overlay.site, then start a container
# on each node and ping from one to the other across the overlay.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg"
lab="python3 lab/weftlab.py"

echo "== booting lab nodes node1 and node2 (weftlab0, 10.168.0.0/24)"
$lab up node1 node2

echo "== ansible-galaxy collection build, then install (into .cache/installed)"
rm -rf .cache/dist .cache/installed
ansible-galaxy collection build --output-path .cache/dist . >/dev/null
# Only the installed copy on Ansible's path: the checkout's own link (ansible.cfg's
# collections_path) would make galaxy find weft.overlay "already installed".
export ANSIBLE_COLLECTIONS_PATH="$PWD/.cache/installed"
ansible-galaxy collection install -p .cache/installed .cache/dist/weft-overlay-*.tar.gz >/dev/null
test -f .cache/installed/ansible_collections/weft/overlay/MANIFEST.json

echo "== ansible-playbook weft.overlay.site -i inventories/lab (the installed collection)"
ansible-playbook weft.overlay.site -i inventories/lab

start_container() {  # node name
  $lab ssh "$1" "docker image inspect weft/busybox >/dev/null 2>&1 || docker import /var/tmp/weft-busybox.tar weft/busybox >/dev/null
    docker rm -f weft-demo >/dev/null 2>&1 || true
    docker run -d --name weft-demo weft/busybox sh -c 'trap \"exit 0\" TERM; sleep 3600 & wait' >/dev/null
    docker inspect -f '{{.NetworkSettings.IPAddress}}' weft-demo"
}
ip1=$(start_container node1)
ip2=$(start_container node2)
echo "== container on node1: $ip1, container on node2: $ip2"
echo "== ping from node1's container to node2's container"
$lab ssh node1 "docker exec weft-demo ping -c 3 $ip2"
echo
echo "The lab keeps running: 'python3 lab/weftlab.py ssh node1' logs in, 'python3 lab/weftlab.py down' removes it."
