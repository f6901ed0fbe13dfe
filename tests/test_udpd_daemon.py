"""weft-udpd running for real: two daemons in two network namespaces, unprivileged, each
owning its TUN device. Forwarding, the receive path under random and mutated datagrams,
host faults, reloads with bad configs, and the status command."""

import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from ansible_collections.weft.overlay.tests.unit.plugins.module_utils.test_udpd_offload import (
    tcp_packet)
from conftest import NETNS_PREFIX, sh
from test_udpd_logic import DAEMON, ipv4

from weft.daemon.offload import segment_tcp

NOBODY = 65534
PYTHON = "/usr/bin/python3"

# Sends datagrams from inside a namespace: SRC, DST, PORT, then hex payloads; a payload
# of the form gso:SIZE:HEX goes out as one UDP GSO send of equal SIZE segments.
SENDER = r"""
import socket, struct, sys
src, dst, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
s.bind((src, 0))
for line in sys.stdin:
    line = line.strip()
    if line.startswith("gso:"):
        _, size, data = line.split(":")
        s.sendmsg([bytes.fromhex(data)], [(17, 103, struct.pack("=H", int(size)))], 0, (dst, port))
    else:
        s.sendto(bytes.fromhex(line), (dst, port))
"""


def wait_for(condition, timeout=10, what="condition"):
    deadline = time.time() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.time() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


class Host:
    """One side: namespace, config file, daemon process."""

    def __init__(self, ns, index, workdir):
        self.ns, self.index, self.workdir = ns, index, workdir
        self.ip = "10.9.0.%d" % index
        self.subnet = "100.96.%d.0/24" % index
        self.config_path = os.path.join(workdir, "udpd-%d.json" % index)
        self.status_path = os.path.join(workdir, "status-%d.json" % index)
        self.proc = None

    def config(self, **changes):
        other = 3 - self.index
        config = {"tun": "flannel0", "listen": self.ip, "port": 8285,
                  "network": "100.96.0.0/16", "subnet": self.subnet,
                  "peers": [{"subnet": "100.96.%d.0/24" % other, "ip": "10.9.0.%d" % other}],
                  "status_file": self.status_path}
        config.update(changes)
        return config

    def write_config(self, config):
        text = config if isinstance(config, str) else json.dumps(config)
        with open(self.config_path, "w") as handle:
            handle.write(text)
        os.chmod(self.config_path, 0o644)

    def make_tun(self):
        sh("ip", "tuntap", "add", "mode", "tun", "user", str(NOBODY), "name", "flannel0", netns=self.ns)
        sh("ip", "addr", "add", "100.96.%d.0/32" % self.index, "dev", "flannel0", netns=self.ns)
        sh("ip", "link", "set", "flannel0", "up", "mtu", "1472", netns=self.ns)
        sh("ip", "route", "add", "100.96.0.0/16", "dev", "flannel0", "src",
           "100.96.%d.0" % self.index, netns=self.ns)

    def start(self, stdout=subprocess.PIPE):
        # Unprivileged, no capabilities: the TUN device's owner may attach to it.
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "setpriv", "--reuid=%d" % NOBODY,
             "--regid=%d" % NOBODY, "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
             *DAEMON, "run", self.config_path],
            stdout=stdout, stderr=subprocess.STDOUT, text=True)
        return self.proc

    def status(self):
        out = subprocess.run(["ip", "netns", "exec", self.ns, *DAEMON, "status",
                              self.config_path], capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
        return json.loads(out.stdout)

    def status_now(self):
        """The counters without the status command (which reads CONFIG): signal, then read."""
        before = os.stat(self.status_path).st_mtime_ns
        self.proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: os.stat(self.status_path).st_mtime_ns != before, what="status")
        with open(self.status_path) as handle:
            return json.load(handle)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def send(self, src, payloads, dst="10.9.0.2", port=8285):
        """Send datagrams (bytes, or ('gso', size, bytes)) from address `src` in this namespace."""
        lines = []
        for item in payloads:
            if isinstance(item, tuple):
                lines.append("gso:%d:%s" % (item[1], item[2].hex()))
            else:
                lines.append(item.hex())
        subprocess.run(["ip", "netns", "exec", self.ns, PYTHON, "-c", SENDER, src, dst, str(port)],
                       input="\n".join(lines) + "\n", text=True, check=True, timeout=60)


def adds_up(status):
    """Every packet and datagram the daemon took in was forwarded or counted as dropped."""
    return (status["tun_rx"] == status["udp_tx"] + sum(status["drops_out"].values())
            and status["udp_rx"] == status["tun_tx"] + sum(status["drops_in"].values()))


def ping(host, target="100.96.2.0", count=1, timeout=2):
    return subprocess.run(["ip", "netns", "exec", host.ns, "ping", "-c", str(count), "-i", "0.2",
                           "-W", str(timeout), target], capture_output=True, text=True)


@pytest.fixture(scope="module", autouse=True)
def tun_device_open_to_its_owners():
    """/dev/net/tun as Debian's udev leaves it (0666): anyone may open it, and only a TUN
    device's owner (or CAP_NET_ADMIN) may attach. This machine has no udev (0600)."""
    mode = os.stat("/dev/net/tun").st_mode & 0o777
    os.chmod("/dev/net/tun", 0o666)
    yield
    os.chmod("/dev/net/tun", mode)


@pytest.fixture
def pair():
    """Hosts A (10.9.0.1, 100.96.1.0/24) and B (10.9.0.2, 100.96.2.0/24) on one veth, each
    with flannel0 owned by nobody and a daemon running as nobody."""
    tag = "%s%d-udp%d" % (NETNS_PREFIX, os.getpid(), random.randrange(1 << 20))
    workdir = tempfile.mkdtemp(prefix="weft-udpd-")
    os.chown(workdir, NOBODY, NOBODY)
    os.chmod(workdir, 0o755)
    hosts = {h: Host(tag + "-" + h, i, workdir) for i, h in ((1, "A"), (2, "B"))}
    try:
        for host in hosts.values():
            sh("ip", "netns", "add", host.ns)
            sh("ip", "link", "set", "lo", "up", netns=host.ns)
        sh("ip", "link", "add", "eth0", "netns", hosts["A"].ns, "type", "veth",
           "peer", "name", "eth0", "netns", hosts["B"].ns)
        for host in hosts.values():
            sh("ip", "addr", "add", host.ip + "/24", "dev", "eth0", netns=host.ns)
            sh("ip", "link", "set", "eth0", "up", netns=host.ns)
            host.make_tun()
            host.write_config(host.config())
            host.start()
        for host in hosts.values():
            wait_for(lambda h=host: os.path.exists(h.status_path) and h.status()["tun_attached"],
                     what="daemon of %s" % host.ns)
        yield hosts
    finally:
        for host in hosts.values():
            host.stop()
            sh("ip", "netns", "del", host.ns, check=False)
        shutil.rmtree(workdir, ignore_errors=True)


# ---- forwarding ------------------------------------------------------------------------

def test_unprivileged_daemons_forward_and_drop_what_no_peer_may_send(pair):
    a, b = pair["A"], pair["B"]
    out = ping(a, count=3)
    assert "3 received" in out.stdout, out.stdout + out.stderr
    assert int(sh("stat", "-c", "%u", "/proc/%d" % b.proc.pid).strip()) == NOBODY
    sa, sb = a.status(), b.status()
    assert sa["udp_tx"] >= 3 and sb["tun_tx"] >= 3 and adds_up(sa) and adds_up(sb)

    sh("ip", "addr", "add", "10.9.0.9/24", "dev", "eth0", netns=a.ns)
    a.send("10.9.0.9", [ipv4("100.96.1.7", "100.96.2.0")])            # not a peer
    a.send("10.9.0.1", [ipv4("100.96.9.7", "100.96.2.0")])            # spoofed inner source
    bad = ipv4("100.96.1.7", "100.96.2.0")
    bad[10] ^= 0xFF
    a.send("10.9.0.1", [bad, b"", b"\x45"])                           # checksum, empty, 1 byte
    drops = wait_for(lambda: (lambda d: d if d.get("malformed") else None)(b.status()["drops_in"]))
    assert (drops["unknown_sender"], drops["spoofed_source"], drops["bad_checksum"],
            drops["empty"], drops["malformed"]) == (1, 1, 1, 1, 1)
    assert b.alive() and adds_up(b.status())


def test_a_failed_batch_send_is_retried_datagram_by_datagram(pair):
    """A peer whose address has no route: every packet of a burst is counted, none lost."""
    a = pair["A"]
    a.write_config(a.config(peers=[{"subnet": "100.96.2.0/24", "ip": "10.9.0.2"},
                                   {"subnet": "100.96.3.0/24", "ip": "10.77.0.1"}]))
    a.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: a.status()["peers"] == 2)
    before = a.status()
    subprocess.run(["ip", "netns", "exec", a.ns, PYTHON, "-c",
                    "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                    "for _ in range(300): s.sendto(b'x'*1000, ('100.96.3.9', 9))"], check=True)
    after = wait_for(lambda: (lambda s: s if s["tun_rx"] - before["tun_rx"] >= 300 else None)(a.status()))
    unreachable = after["drops_out"].get("send_enetunreach", 0) - \
        before["drops_out"].get("send_enetunreach", 0)
    assert unreachable == 300 and adds_up(after)
    assert "1 received" in ping(a).stdout  # the good peer still works


TCP_SINK = r"""
import hashlib, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 7000))
s.listen(1)
s.settimeout(60)
c, _ = s.accept()
h, n = hashlib.sha256(), 0
while True:
    d = c.recv(1 << 16)
    if not d:
        break
    h.update(d)
    n += len(d)
print(n, h.hexdigest())
"""
TCP_SOURCE = r"""
import hashlib, os, socket, sys
data = os.urandom(int(sys.argv[2]))
c = socket.create_connection((sys.argv[1], 7000), timeout=60)
c.sendall(data)
c.close()
print(len(data), hashlib.sha256(data).hexdigest())
"""


@pytest.mark.parametrize("a_offload, b_offload, weft", [
    (True, True, True), (True, True, False), (True, False, False), (False, True, False),
    (False, False, False)],
    ids=["weft-pair", "weft-pair-as-flannel-peers", "to-a-flannel-like-receiver",
         "from-a-flannel-like-sender", "no-offload"])
def test_a_tcp_stream_crosses_whole(pair, a_offload, b_offload, weft):
    """8 MB over TCP from A to B. With the TUN offloads, super-packets are cut into
    segments (checksums finished by the sender for a Flannel peer, left to a weft one) and
    joined again; a side without them reads and writes one plain packet per datagram, as
    Flannel's proxy does, so a weft sender and a Flannel-like receiver (and the other way)
    interoperate. Either way the bytes arrive as they left and the counters add up."""
    a, b = pair["A"], pair["B"]
    for host, offload in ((a, a_offload), (b, b_offload)):
        config = host.config(offload=offload)
        config["peers"][0]["weft"] = weft
        host.write_config(config)
        host.proc.send_signal(signal.SIGHUP)
    for host, offload in ((a, a_offload), (b, b_offload)):
        wait_for(lambda h=host, o=offload: h.status()["offload"] == o and h.status()["tun_attached"],
                 what="reload")
    sink = subprocess.Popen(["ip", "netns", "exec", b.ns, PYTHON, "-c", TCP_SINK, "100.96.2.0"],
                            stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    sent = subprocess.run(["ip", "netns", "exec", a.ns, PYTHON, "-c", TCP_SOURCE, "100.96.2.0",
                           "8000000"], capture_output=True, text=True, timeout=120)
    assert sent.returncode == 0, sent.stderr
    assert sink.communicate(timeout=60)[0] == sent.stdout
    sa, sb = a.status(), b.status()
    assert adds_up(sa) and adds_up(sb)
    if a_offload:
        assert sa["tso_rx"] > 0, sa
        assert sa["udp_tx"] > 5 * sa["tso_rx"]  # each super-packet stood for many datagrams
        # ...sent in UDP GSO batches of at most 64 KiB, never datagram by datagram.
        assert sa["gso_sends"] >= sa["tso_rx"], sa
    else:
        assert sa["tso_rx"] == 0
    if b_offload:
        assert sb["gro_tx"] > 0, sb
    else:
        assert sb["gro_tx"] == 0


def test_a_run_spans_reads_from_one_peer_but_never_two(pair):
    """Segments of one TCP flow that arrive in two GSO batches from the same peer are
    written into the TUN device as one super-packet; a third batch continuing the same flow
    from another peer's address is checked on its own and dropped as spoofed (the fast path
    takes a run's later segments unchecked, so a run must not cross senders)."""
    a, b = pair["A"], pair["B"]
    config = b.config()
    config["peers"].append({"subnet": "100.96.3.0/24", "ip": "10.9.0.3"})
    b.write_config(config)
    b.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: b.status()["peers"] == 2, what="reload")
    sh("ip", "addr", "add", "10.9.0.3/24", "dev", "eth0", netns=a.ns)
    big = tcp_packet(bytes(range(200)) * 70, seq=1, flags=0x10, src="100.96.1.7",
                     dst="100.96.2.0")                                   # 14000 bytes
    pieces, size, count = segment_tcp(big, 1400, complete=True)
    segments = [bytes(pieces[i]) + bytes(pieces[i + 1]) for i in range(0, len(pieces), 2)]
    assert count == 10
    before = b.status()
    b.proc.send_signal(signal.SIGSTOP)  # all three batches wait in the socket for one read
    try:
        a.send("10.9.0.1", [("gso", size, b"".join(segments[0:4]))])
        a.send("10.9.0.1", [("gso", size, b"".join(segments[4:8]))])
        a.send("10.9.0.3", [("gso", size, b"".join(segments[8:10]))])
    finally:
        b.proc.send_signal(signal.SIGCONT)
    wait_for(lambda: b.status()["udp_rx"] == before["udp_rx"] + 10, what="the batches")
    after = b.status()
    assert after["tun_tx"] - before["tun_tx"] == 8
    assert after["gro_tx"] - before["gro_tx"] == 1, (before, after)     # one write of 8
    assert after["drops_in"].get("spoofed_source", 0) \
        - before["drops_in"].get("spoofed_source", 0) == 2
    assert adds_up(after)


# ---- the real receive path under junk -----------------------------------------------------

def junk(rng, n):
    """Random and mutated datagrams: empty, 1 byte, the largest, mutated valid packets, and
    GSO batches that arrive with GRO ancillary data."""
    valid = bytes(ipv4("100.96.1.7", "100.96.2.0", proto=17, payload=b"p" * 100))
    items = [b"", b"\x45", bytes(rng.randrange(256) for _ in range(200)), b"\x45" * 65507]
    for _ in range(n):
        choice = rng.random()
        if choice < 0.4:
            items.append(bytes(rng.randrange(256) for _ in range(rng.randrange(0, 1500))))
        elif choice < 0.8:
            packet = bytearray(valid)
            for _ in range(rng.randrange(1, 6)):
                packet[rng.randrange(len(packet))] = rng.randrange(256)
            items.append(bytes(packet[:rng.randrange(1, len(packet) + 1)]))
        else:
            size = rng.randrange(1, 1400)
            count = rng.randrange(2, 30)
            data = bytes(rng.randrange(256) for _ in range(size * count - rng.randrange(0, size)))
            items.append(("gso", size, data))
    return items


@pytest.mark.parametrize("source", ["peer", "stranger"])
def test_random_and_mutated_datagrams_never_stop_the_daemon(pair, source):
    a, b = pair["A"], pair["B"]
    src = "10.9.0.1"
    if source == "stranger":
        sh("ip", "addr", "add", "10.9.0.9/24", "dev", "eth0", netns=a.ns)
        src = "10.9.0.9"
    rng = random.Random(20261126)
    deadline = time.time() + 20
    for _ in range(4):
        if time.time() > deadline:
            break
        a.send(src, junk(rng, 200))
    assert "1 received" in ping(a).stdout
    status = wait_for(lambda: (lambda s: s if adds_up(s) else None)(b.status()), what="counters")
    # (under load the kernel may drop some at the socket before the daemon sees them)
    assert b.alive() and status["udp_rx"] > 400
    if source == "stranger":
        assert status["drops_in"]["unknown_sender"] >= 800
    else:
        assert status["drops_in"]["empty"] >= 4 and status["drops_in"]["malformed"] > 0
    assert status["faults"].get("internal", 0) == 0


# ---- host faults -------------------------------------------------------------------------

def test_the_tun_device_deleted_and_recreated(pair):
    a, b = pair["A"], pair["B"]
    sh("ip", "link", "del", "flannel0", netns=b.ns)
    wait_for(lambda: not b.status()["tun_attached"], what="detach")
    assert b.alive()
    time.sleep(1.5)
    assert "flannel0" not in sh("ip", "link", netns=b.ns)  # never created by the daemon
    ping(a)  # arrives at B while it has no device: counted
    wait_for(lambda: b.status()["drops_in"].get("tun_detached"), what="tun_detached")
    b.make_tun()
    wait_for(lambda: b.status()["tun_attached"], what="re-attach")
    assert "1 received" in ping(a).stdout
    assert b.status()["faults"].get("tun_read_ebadfd", 0) + \
        b.status()["faults"].get("tun_gone", 0) >= 1


def test_a_missing_tun_device_at_start_is_waited_for(pair):
    b = pair["B"]
    b.stop()
    sh("ip", "link", "del", "flannel0", netns=b.ns)
    os.unlink(b.status_path)
    b.start()
    wait_for(lambda: os.path.exists(b.status_path), what="status")
    time.sleep(1.5)
    assert b.alive() and not b.status()["tun_attached"]
    assert "flannel0" not in sh("ip", "link", netns=b.ns)
    b.make_tun()
    wait_for(lambda: b.status()["tun_attached"], what="attach")
    assert "1 received" in ping(pair["A"]).stdout


def test_status_and_log_failures_are_counted_not_fatal(pair):
    a, b = pair["A"], pair["B"]
    b.stop()
    os.unlink(b.status_path)
    b.write_config(b.config(status_file="/nonexistent/dir/status.json"))
    proc = b.start()
    time.sleep(1)
    proc.stdout.close()  # the journal goes away: every log line now fails
    proc.send_signal(signal.SIGUSR1)
    wait_for(lambda: "1 received" in ping(a).stdout, what="forwarding (the daemon is starting)")
    b.write_config(b.config())
    proc.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    proc.send_signal(signal.SIGUSR1)
    wait_for(lambda: os.path.exists(b.status_path), what="status after the reload")
    status = b.status()
    assert status["faults"]["status_write"] >= 2 and status["faults"]["log"] >= 1
    assert b.alive()


# ---- config reloads and the status command ----------------------------------------------

@pytest.mark.parametrize("bad", [
    '{"tun": "flannel0", "network": "100.96.0.0/16", "subnet": "100.96.2.0/24", "peers": null}',
    json.dumps({"tun": "flannel0", "network": "100.96.0.0/16", "subnet": "100.96.2.0/24",
                "peers": [{"subnet": "100.96.1.0/24", "ip": "10.9.0.1", "port": 70000}]}),
    '{"tun": ', "[1, 2]", "",
])
def test_sighup_with_a_bad_config_keeps_the_running_one(pair, bad):
    a, b = pair["A"], pair["B"]
    b.write_config(bad)
    b.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: b.status_now()["faults"].get("reload_refused"), what="refusal")
    assert b.alive() and b.status_now()["peers"] == 1
    assert "1 received" in ping(a).stdout


def test_random_configs_through_sighup(pair):
    a, b = pair["A"], pair["B"]
    rng = random.Random(7)
    values = [None, True, 0, -1, 70000, 8285, "", "x", "flannel0", "100.96.0.0/16", "100.96.2.0/24",
              "0.0.0.0/0", "10.9.0.1", [], {}, [{}], [{"subnet": "100.96.1.0/24"}],
              [{"subnet": "100.96.1.0/24", "ip": "10.9.0.1", "port": "x"}], 1e308, "/tmp"]
    keys = ["tun", "listen", "port", "network", "subnet", "peers", "status_file", "junk"]
    good = b.config()
    for _ in range(25):
        config = dict(good)
        for key in rng.sample(keys, rng.randrange(1, 4)):
            config[key] = rng.choice(values)
        b.write_config(config)
        b.proc.send_signal(signal.SIGHUP)
        time.sleep(0.05)
    assert b.alive()
    b.write_config(good)
    b.proc.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    assert b.alive() and b.status()["peers"] == 1
    assert "1 received" in ping(a).stdout


def test_a_bad_config_at_start_is_one_line_naming_the_key(pair, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"tun": "flannel0", "network": "100.96.0.0/16",
                                "subnet": "100.96.2.0/24", "peers": [{"subnet": "0.0.0.0/0",
                                                                      "ip": "10.9.0.1"}]}))
    out = subprocess.run([*DAEMON, "run", str(path)], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr
    assert "peers[0].subnet: 0.0.0.0/0 is not a subnet of network" in out.stderr


def test_status_never_signals_a_process_that_is_not_the_daemon(pair):
    b = pair["B"]
    b.stop()
    out = subprocess.run([*DAEMON, "status", b.config_path], capture_output=True, text=True)
    assert out.returncode == 3 and "weft-udpd is not running" in out.stdout
    # A stale status file naming a live process that is not the daemon (PID reuse).
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        status = json.load(open(b.status_path))
        status.update(pid=bystander.pid, stopped=False)
        with open(b.status_path, "w") as handle:
            json.dump(status, handle)
        out = subprocess.run([*DAEMON, "status", b.config_path], capture_output=True, text=True)
        assert out.returncode == 3 and "not running" in out.stdout
        time.sleep(0.2)
        assert bystander.poll() is None  # SIGUSR1 would have killed it
    finally:
        bystander.kill()
        bystander.wait()


def test_sigterm_ends_it_cleanly(pair):
    b = pair["B"]
    b.proc.send_signal(signal.SIGTERM)
    assert b.proc.wait(5) == 0
    assert "stopped" in b.proc.stdout.read()
    assert json.load(open(b.status_path))["stopped"] is True
