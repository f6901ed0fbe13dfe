"""weft_apply runs weft's modules in one process, writes files and links, records the state,
and weft-restore rebuilds that state from the record; weft_docker merges daemon.json."""

import json
import os
import subprocess

import pytest

from conftest import ROOT, sh

RESTORE = os.path.join(ROOT, "roles", "weft", "files", "weft-restore.py")
MAC = "0e:77:64:60:02:00"


def host_state(tmp_path, route_dst="100.96.2.0/24"):
    return dict(
        steps=[
            dict(module="weft_vxlan", args=dict(name="flannel.1", vni=1, local="10.9.0.1",
                                                dev="u0", mac="0e:77:64:60:01:00", mtu=1450,
                                                address="100.96.1.0/32", learning=False)),
            dict(module="weft_neighbours", args=dict(
                dev="flannel.1", purge=True, neighbours=[{"ip": "100.96.2.0", "mac": MAC}])),
            dict(module="weft_fdb", args=dict(
                dev="flannel.1", purge=True, entries=[{"mac": MAC, "dst": "10.9.0.2"}])),
            dict(module="weft_routes", args=dict(
                purge=True, routes=[{"dst": route_dst, "via": "100.96.2.0", "dev": "flannel.1",
                                     "onlink": True}])),
        ],
        files=[dict(path=str(tmp_path / "run" / "subnet.env"), content="FLANNEL_SUBNET=x\n"),
               dict(path=str(tmp_path / "bin" / "tool"), content="#!/bin/sh\n", mode="0755")],
        links=[dict(path=str(tmp_path / "wants" / "tool"), target=str(tmp_path / "bin" / "tool"))],
        absent=[str(tmp_path / "old.conf")],
        record=str(tmp_path / "state.json"),
        runtime=str(tmp_path / "module_utils"),
    )


def kernel_view(ns):
    routes = sh("ip", "route", "show", "proto", "119", netns=ns).strip()
    fdb = sh("bridge", "fdb", "show", "dev", "flannel.1", netns=ns).strip()
    neigh = sh("ip", "neigh", "show", "dev", "flannel.1", netns=ns).strip()
    return routes, fdb, neigh


def test_one_call_converges_records_and_is_idempotent(netns, run_in, tmp_path):
    (tmp_path / "old.conf").write_text("from another backend\n")
    args = host_state(tmp_path)
    result = run_in("weft_apply", args, diff=True)
    assert result["changed"] and not result["failed"], result
    assert [s["module"] for s in result["steps"]] == \
        ["weft_vxlan", "weft_neighbours", "weft_fdb", "weft_routes"]
    routes, fdb, neigh = kernel_view(netns)
    assert routes == "100.96.2.0/24 via 100.96.2.0 dev flannel.1 onlink"
    assert fdb.startswith(MAC + " dst 10.9.0.2 self permanent")
    assert neigh == "100.96.2.0 lladdr %s PERMANENT" % MAC
    assert (tmp_path / "run" / "subnet.env").read_text() == "FLANNEL_SUBNET=x\n"
    assert oct((tmp_path / "bin" / "tool").stat().st_mode & 0o777) == "0o755"
    assert os.readlink(tmp_path / "wants" / "tool") == str(tmp_path / "bin" / "tool")
    assert not (tmp_path / "old.conf").exists()
    record = json.loads((tmp_path / "state.json").read_text())
    assert record["steps"][3]["args"]["routes"][0]["dst"] == "100.96.2.0/24"
    assert (tmp_path / "module_utils" / "weft_routes_impl.py").read_text() == \
        open(os.path.join(ROOT, "plugins", "module_utils", "weft_routes_impl.py")).read()
    assert "+100.96.2.0/24 via 100.96.2.0 dev flannel.1 onlink" in result["stdout_text"]

    again = run_in("weft_apply", args)
    assert not again["changed"] and again["files_changed"] == [], again


def test_check_mode_changes_nothing(netns, run_in, tmp_path):
    result = run_in("weft_apply", host_state(tmp_path), check=True)
    assert result["changed"]
    assert "flannel.1" not in sh("ip", "link", netns=netns)
    assert not (tmp_path / "run").exists() and not (tmp_path / "state.json").exists()


def test_a_failing_step_names_its_module_and_writes_no_file(netns, run_in, tmp_path):
    result = run_in("weft_apply", host_state(tmp_path, route_dst="100.96.2.0/33"))
    assert result["failed"]
    assert result["msg"].startswith("weft_routes: routes[0].dst:"), result["msg"]
    assert not (tmp_path / "run").exists() and not (tmp_path / "state.json").exists()


def test_weft_restore_rebuilds_the_recorded_state(netns, run_in, tmp_path):
    args = host_state(tmp_path)
    run_in("weft_apply", args)
    expected = kernel_view(netns)
    # A reboot: the kernel state and the files under /run are gone.
    sh("ip", "link", "del", "flannel.1", netns=netns)
    (tmp_path / "run" / "subnet.env").unlink()
    # The distribution's python and ansible-core, as the boot unit runs it.
    proc = subprocess.run(["ip", "netns", "exec", netns, "/usr/bin/python3", RESTORE,
                           args["record"], args["runtime"]], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "weft-restore: repaired weft_vxlan" in proc.stdout
    assert kernel_view(netns) == expected
    assert (tmp_path / "run" / "subnet.env").read_text() == "FLANNEL_SUBNET=x\n"


def docker_args(path, **extra):
    return dict(path=str(path / "daemon.json"), original=str(path / "original.json"), **extra)


def test_weft_docker_sets_and_puts_back_only_its_keys(tmp_path, ansible_module):
    daemon = tmp_path / "daemon.json"
    daemon.write_text('{"log-driver": "journald", "mtu": 1500}')
    set_args = docker_args(tmp_path, bip="100.96.1.1/24", mtu=1450)
    result = ansible_module("weft_docker", set_args)
    assert result["changed"] and result["daemon_json_changed"]
    assert json.loads(daemon.read_text()) == {"log-driver": "journald", "bip": "100.96.1.1/24",
                                             "mtu": 1450, "ip-masq": False}
    assert json.loads((tmp_path / "original.json").read_text()) == \
        {"bip": None, "ip-masq": None, "mtu": 1500, "weft:file-existed": True,
         "weft:bridge-address": None}
    assert not ansible_module("weft_docker", set_args)["changed"]

    moved = ansible_module("weft_docker", dict(set_args, bip="100.96.7.1/24"))
    assert moved["daemon_json_changed"]
    assert json.loads((tmp_path / "original.json").read_text())["mtu"] == 1500  # first values

    removed = ansible_module("weft_docker", docker_args(tmp_path, state="absent"))
    assert removed["changed"] and removed["daemon_json_changed"]
    assert json.loads(daemon.read_text()) == {"log-driver": "journald", "mtu": 1500}
    assert not (tmp_path / "original.json").exists()
    assert not ansible_module("weft_docker", docker_args(tmp_path, state="absent"))["changed"]


def test_weft_docker_removes_the_daemon_json_it_created(tmp_path, ansible_module):
    created = ansible_module("weft_docker", docker_args(tmp_path, bip="100.96.1.1/24", mtu=1450))
    assert created["daemon_json_changed"] and (tmp_path / "daemon.json").exists()
    removed = ansible_module("weft_docker", docker_args(tmp_path, state="absent"))
    assert removed["changed"] and removed["daemon_json_changed"]
    assert not (tmp_path / "daemon.json").exists() and not (tmp_path / "original.json").exists()


@pytest.mark.parametrize("content, message", [
    ("[1, 2]", "must hold a JSON object"),
    ("{not json", "not valid JSON"),
])
def test_weft_docker_refuses_a_broken_daemon_json(tmp_path, ansible_module, content, message):
    (tmp_path / "daemon.json").write_text(content)
    result = ansible_module("weft_docker", docker_args(tmp_path, bip="100.96.1.1/24", mtu=1450))
    assert result["failed"] and message in result["msg"]
    assert (tmp_path / "daemon.json").read_text() == content


def test_weft_docker_puts_the_bridge_back_on_its_own_address(netns, run_in, tmp_path):
    """dockerd reuses its bridge's address when no bip is set: the address before weft
    comes back, or Docker's default where the bridge had none."""
    sh("ip", "link", "add", "docker0", "type", "bridge", netns=netns)
    sh("ip", "addr", "add", "172.18.0.1/16", "dev", "docker0", netns=netns)
    assert run_in("weft_docker", docker_args(tmp_path, bip="100.96.3.1/24", mtu=1450))["changed"]
    assert json.loads((tmp_path / "original.json").read_text())["weft:bridge-address"] == \
        "172.18.0.1/16"
    # dockerd restarted with the bip: the bridge moves onto the overlay.
    sh("ip", "addr", "flush", "dev", "docker0", netns=netns)
    sh("ip", "addr", "add", "100.96.3.1/24", "dev", "docker0", netns=netns)
    args = docker_args(tmp_path, state="absent", network="100.96.0.0/16")
    assert run_in("weft_docker", args, check=True)["bridge_readdressed"] == "172.18.0.1/16"
    assert "100.96.3.1/24" in sh("ip", "addr", "show", "docker0", netns=netns)
    result = run_in("weft_docker", args)
    assert result["changed"] and result["bridge_readdressed"] == "172.18.0.1/16", result
    shown = sh("ip", "-4", "-br", "addr", "show", "docker0", netns=netns).split()[2:]
    assert shown == ["172.18.0.1/16"]
    assert not run_in("weft_docker", args)["changed"]
    # Converged by an older weft (no address recorded): Docker's own default.
    sh("ip", "addr", "flush", "dev", "docker0", netns=netns)
    sh("ip", "addr", "add", "100.96.3.1/24", "dev", "docker0", netns=netns)
    assert run_in("weft_docker", args)["bridge_readdressed"] == "172.17.0.1/16"
