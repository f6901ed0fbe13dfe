"""weft-udpd's status file is read apart from the daemon: the health check never imports
the forwarding loop, and a status names a running daemon only while that very process
(PID, start time, command line) lives."""

import json
import os
import subprocess
import sys

from ansible_collections.weft.overlay.plugins.module_utils.weft.daemon import status

WEFT = "ansible_collections.weft.overlay.plugins.module_utils.weft"


def test_the_health_check_reads_the_daemon_without_its_loop():
    """In a fresh interpreter (other tests here import the loop), importing weft.overlay.check's
    probing code loads the status reader and not the daemon."""
    root = status.__file__[:status.__file__.rindex(os.sep + "ansible_collections" + os.sep)]
    code = ("import sys; import %s.check.paths; "
            "print(sorted(m.rpartition('.')[2] for m in sys.modules if '.daemon.' in m))" % WEFT)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=root), check=True)
    loaded = json.loads(proc.stdout.replace("'", '"'))
    assert "status" in loaded and "udpd" not in loaded, loaded


def test_a_status_names_a_daemon_only_while_that_process_runs(tmp_path):
    me = os.getpid()
    mine = {"pid": me, "started": status.process_start_time(me)}
    assert status.running_daemon(mine) is None  # this process is no weft-udpd
    assert status.running_daemon(dict(mine, started="1")) is None  # a PID reused
    assert status.running_daemon({"pid": me, "started": mine["started"], "stopped": True}) is None
    path = tmp_path / "status.json"
    path.write_text(json.dumps(mine))
    assert status.read_status(str(path)) == mine
    assert status.running_status(str(path)) is None
    path.write_text("[1, 2]")
    assert status.read_status(str(path)) is None


def test_the_status_file_comes_from_the_config_even_a_broken_one(tmp_path):
    config = tmp_path / "udpd.json"
    config.write_text(json.dumps({"status_file": "/run/elsewhere.json", "port": "junk"}))
    assert status.status_file_of(str(config)) == "/run/elsewhere.json"
    config.write_text("{not json")
    assert status.status_file_of(str(config)) == status.DEFAULT_STATUS_FILE
