"""Containers on different nodes reach each other by IP, keeping their source address."""

import itertools


def test_every_container_pings_every_other(nodes, containers):
    for a, b in itertools.permutations(sorted(nodes), 2):
        out = nodes[a].run("docker exec weft-verify ping -c 2 -W 2 %s" % containers[b])
        assert out.rc == 0, "%s -> %s (%s): %s" % (a, b, containers[b], out.stdout + out.stderr)
        assert "2 packets received" in out.stdout


def test_receiver_sees_the_sending_container_address(nodes, containers):
    for a, b in itertools.permutations(sorted(nodes), 2):
        seen = nodes[a].check_output(
            "docker exec weft-verify wget -qO- http://%s:8080/cgi-bin/ip" % containers[b])  # busybox wget -T crashes
        assert seen.strip().replace("::ffff:", "").strip("[]") == containers[a], (a, b, seen)
