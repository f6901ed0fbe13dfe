"""weft-restore --watch (weft-heal.service) in a namespace: drift is repaired without
Ansible, quickly when the kernel reports it, and a pass that finds nothing is cheap."""

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import sh
from test_weft_apply import RESTORE, host_state, kernel_view


def view(netns):
    try:
        return kernel_view(netns)
    except AssertionError:  # the device is gone
        return None


def wait_until(condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic() - (deadline - timeout)
        time.sleep(0.2)
    return None


@pytest.fixture
def healed(netns, tmp_path):
    """A converged namespace (vxlan, peers, forward chain) and a watch on its record."""
    args = host_state(tmp_path)
    args["steps"].append(dict(module="weft_iptables", args=dict(
        chain="WEFT-FWD", jump_from="FORWARD", rules=["-s 100.96.0.0/16 -j ACCEPT"])))
    from conftest import run_ansible_module
    result = run_ansible_module("weft_apply", args, python="/usr/bin/python3", netns=netns)
    assert not result["failed"], result
    watch = subprocess.Popen(["ip", "netns", "exec", netns, "/usr/bin/python3", RESTORE,
                              "--watch", "60", args["record"], args["runtime"]],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1)
    yield netns, args, watch
    if watch.poll() is None:
        watch.kill()
        watch.wait()


def test_drift_is_repaired_within_seconds_of_the_kernel_event(healed):
    netns, args, watch = healed
    expected = kernel_view(netns)
    sh("ip", "route", "del", "100.96.2.0/24", netns=netns)
    assert wait_until(lambda: view(netns) == expected, 10) is not None
    sh("iptables", "-F", "WEFT-FWD", netns=netns)
    assert wait_until(lambda: "-s 100.96.0.0/16" in sh("iptables", "-S", "WEFT-FWD", netns=netns), 15)
    sh("ip", "link", "del", "flannel.1", netns=netns)
    assert wait_until(lambda: view(netns) == expected, 15) is not None
    os.unlink(args["files"][0]["path"])  # a file: no kernel event, the timer finds it
    watch.send_signal(signal.SIGTERM)
    out = watch.communicate(timeout=5)[0]
    assert watch.returncode == 0 and "stopped" in out
    assert "repaired weft_routes: added 100.96.2.0/24 via 100.96.2.0 dev flannel.1 onlink" in out
    assert "repaired weft_iptables WEFT-FWD: changed" in out
    assert "repaired weft_vxlan flannel.1: changed" in out


def test_a_pass_reads_the_new_record_and_never_undoes_a_converge(healed, tmp_path):
    """After a converge removed a peer, the watch keeps the new state, not the old one."""
    netns, args, watch = healed
    from conftest import run_ansible_module
    fewer = host_state(tmp_path, route_dst="100.96.4.0/24")
    fewer["steps"].append(args["steps"][-1])
    assert not run_ansible_module("weft_apply", fewer, python="/usr/bin/python3", netns=netns)["failed"]
    sh("ip", "route", "del", "100.96.4.0/24", netns=netns)  # drift after the converge
    assert wait_until(lambda: "100.96.4.0/24" in sh("ip", "route", "show", "proto", "119",
                                                    netns=netns), 10) is not None
    assert "100.96.2.0/24" not in sh("ip", "route", "show", "proto", "119", netns=netns)


def test_a_pass_with_nothing_to_repair_costs_little(netns, tmp_path):
    from conftest import run_ansible_module
    args = host_state(tmp_path)
    assert not run_ansible_module("weft_apply", args, python="/usr/bin/python3", netns=netns)["failed"]
    out = subprocess.run(["ip", "netns", "exec", netns, "/usr/bin/python3", RESTORE, "--cost", "10",
                          args["record"], args["runtime"]], capture_output=True, text=True, check=True)
    cost = json.loads(out.stdout.strip().splitlines()[-1])
    print("CPU per no-drift pass: %.3f s" % cost["cpu_seconds_per_pass"])
    assert cost["passes"] == 10 and 0 < cost["cpu_seconds_per_pass"] < 0.5
