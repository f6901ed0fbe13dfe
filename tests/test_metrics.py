"""weft's metrics for prometheus-node-exporter's textfile collector: the families a heal
pass derives (no kernel), the text format held to its grammar, and the file weft-heal
writes in a sandbox host (at start and after each pass, replaced whole, removed when
turned off)."""

import re
import signal

from weft.host import metrics, model
from weft.host.host import SETTINGS_SPEC
from ansible_collections.weft.overlay.tests.unit.plans import sample_plan
from sandbox import Sandbox
from test_weft_heal import NODE2, wait_until
from test_weft_host import RESTORE, args

from conftest import sh

METRICS = "/var/lib/prometheus/node-exporter/weft.prom"
SETTINGS = {key: spec["default"] for key, spec in SETTINGS_SPEC.items()}
IDENTITY = {"name": "node1", "iface": "eth0", "public_ip": "10.9.0.1",
            "underlay": "10.9.0.0/24", "mtu": 1500}
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? '
                    r'(-?[0-9.e+-]+|NaN|[+-]Inf)$')


def view(backend="udp"):
    plan = sample_plan(backend, [("node1", "10.9.0.1", "100.96.1.0/24"),
                                 ("node2", "10.9.0.2", "100.96.2.0/24"),
                                 ("node3", "10.9.0.3", "100.96.3.0/24")])
    return model.HostView(plan, IDENTITY, SETTINGS)


def parse(text):
    """{(name, labels text): value}, holding every line to the exposition format: HELP and
    TYPE before a family's samples, counters named *_total, label values escaped."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("gauge", "counter") and name not in types, line
            assert name.endswith("_total") == (kind == "counter"), line
            types[name] = kind
        elif line.startswith("# HELP "):
            continue
        else:
            found = SAMPLE.match(line)
            assert found and found.group(1) in types, line
            samples[(found.group(1), found.group(2) or "")] = float(found.group(5))
    return samples


def test_a_pass_becomes_metric_families_in_the_text_format():
    probed = [dict(peer="node2", family=4, reachable=True, rtt_ms=dict(min=0.1, avg=0.25, max=0.4)),
              dict(peer="node3", family=4, reachable=False)]
    counters = {"ingress_drops": {"not_a_peer": 7, "inner_source": 0},
                "udpd": {"udp_rx": 10, "udp_tx": 12, "tun_rx": 13, "tun_tx": 9,
                         "drops_in": {"unknown_sender": 1}, "drops_out": {"no_route": 1}},
                "udp_fastpath": {"sent": 5, "received": 6}}
    heal = {"passes": 4, "repairs": 1, "failures": 0, "last_pass": 1700000000.5}
    text = metrics.render(metrics.families(view(), "abc123", 1690000000.0, probed,
                                           {("node2", 4): 1700000001.0}, counters, heal))
    got = parse(text)
    assert got[("weft_info", '{backend="udp",host="node1",revision="abc123"}')] == 1
    assert got[("weft_peers", '{family="ipv4"}')] == 2
    assert got[("weft_path_up", '{family="ipv4",peer="node2"}')] == 1
    assert got[("weft_path_up", '{family="ipv4",peer="node3"}')] == 0
    assert got[("weft_path_rtt_seconds", '{family="ipv4",peer="node2"}')] == 0.00025
    assert ("weft_path_rtt_seconds", '{family="ipv4",peer="node3"}') not in got
    assert got[("weft_path_last_up_timestamp_seconds", '{family="ipv4",peer="node3"}')] == 0
    assert got[("weft_ingress_dropped_packets_total", '{reason="not_a_peer"}')] == 7
    assert got[("weft_udpd_received_packets_total", '{side="udp"}')] == 10
    assert got[("weft_udpd_dropped_packets_total", '{direction="out",reason="no_route"}')] == 1
    assert got[("weft_udp_fastpath_packets_total", '{direction="out"}')] == 5
    assert got[("weft_udp_fastpath_packets_total", '{direction="in"}')] == 6
    assert got[("weft_heal_passes_total", "")] == 4
    assert got[("weft_record_timestamp_seconds", "")] == 1690000000.0
    assert got[("weft_overlay_mtu_bytes", "")] == 1472


def test_label_values_are_escaped():
    text = metrics.render([("weft_x", "gauge", "h", [({"peer": 'a"b\\c\nd'}, 1)])])
    assert 'weft_x{peer="a\\"b\\\\c\\nd"} 1' in text
    parse(text)


def test_weft_heal_writes_the_metrics_file_and_a_converge_removes_it_when_off(netns):
    box = Sandbox(netns)
    try:
        assert not box.module("weft.overlay.host", args(settings={"metrics_file": METRICS}))["failed"]
        watch = box.popen("/usr/bin/python3", RESTORE, "--watch", "60")
        try:
            assert wait_until(lambda: box.exists(METRICS), 10) is not None
            first = parse(box.read(METRICS))
            assert first[("weft_heal_passes_total", "")] == 0     # written as the watch starts
            # the peers are not there: their paths are down and never were up
            assert first[("weft_path_up", '{family="ipv4",peer="node2"}')] == 0
            assert first[("weft_path_last_up_timestamp_seconds", '{family="ipv4",peer="node2"}')] == 0
            assert ("weft_ingress_dropped_packets_total", '{reason="not_a_peer"}') in first
            sh("ip", "route", "del", NODE2["subnet"], netns=netns)      # a pass repairs it
            assert wait_until(lambda: parse(box.read(METRICS) or "").get(
                ("weft_heal_repairs_total", "")) == 1, 15) is not None
            assert box.run("stat", "-c", "%a %U", METRICS).stdout.split() == ["644", "root"]
            assert [name for name in box.listdir(METRICS.rsplit("/", 1)[0])] == ["weft.prom"]
        finally:
            watch.send_signal(signal.SIGTERM)
            watch.communicate(timeout=5)
        off = box.module("weft.overlay.host", args(settings={"metrics_file": ""}))
        assert off["changed"] and METRICS in off["files_changed"] and not box.exists(METRICS)
        bad = box.module("weft.overlay.host", args(settings={"metrics_file": "weft.txt"}))
        assert bad["failed"] and "settings.metrics_file: 'weft.txt' must be an absolute path " \
            "ending in .prom" in bad["msg"]
    finally:
        box.remove()
