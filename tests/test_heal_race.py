"""weft-heal against the controller, on the real kernel in a sandbox host with
weft-restore --watch running as weft-heal.service runs it.

Whoever reads the record to act on it reads it under the apply lock a converge holds, so a
heal pass converges the record current when it changes the kernel, the last converge from
the controller is what stays, two converges at once each start from the record the other
left, and nothing a pass does brings back what an uninstall removed.

The worst interleavings are forced, not waited for: the process holding the lock is
stopped (SIGSTOP) while the other side is made to start and wait; free-running rounds
between them take whatever timing comes.
"""

import json
import os
import signal
import subprocess
import time

import pytest

from weft.host.model import decode_plan
from weft.lease import encode_plan, plan_revision
from conftest import sh
from ansible_collections.weft.overlay.tests.unit.plans import sample_plan
from sandbox import Sandbox, kernel_view, minimal_result
from test_weft_host import IDENTITY, RESTORE, args

# Plans that each replace the overlay's device: a new VNI is a new device, a backend
# switch another kind of device, a new underlay address re-creates the VXLAN device.
SECOND_ADDRESS = "10.9.0.11"
PLANS = [
    ("vxlan VNI 1", args(), {"flannel.1": "local 10.9.0.1 "}),
    ("udp", args("udp"), {"flannel0": ""}),
    ("vxlan VNI 2", args(VNI=2), {"flannel.2": "local 10.9.0.1 "}),
    ("vxlan VNI 1 on another underlay address",
     dict(args(address="10.9.0.1%d"), host=dict(IDENTITY, public_ip=SECOND_ADDRESS)),
     {"flannel.1": "local %s " % SECOND_ADDRESS}),
]
HEAL_INTERVAL = 2       # seconds: a timer pass soon after every converge
LOCK = "/run/weft/apply.lock"
KEY = "/etc/weft/wireguard.key"


# ---- processes and the lock, seen from outside ------------------------------------------

def descendants(pid):
    """`pid` and every process below it."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as handle:
                    parents[int(entry)] = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    found, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, of in parents.items():
            if of == parent and child not in found:
                found.add(child)
                frontier.append(child)
    return found


def lock_holders(lock):
    """PIDs that hold (not wait for) an flock on the file `lock` (st_dev, st_ino)."""
    dev, ino = lock
    holders = set()
    with open("/proc/locks") as handle:
        for line in handle:
            fields = line.split()   # 1: FLOCK  ADVISORY  WRITE 1234 00:2a:5678 0 EOF
            if len(fields) > 5 and fields[1] == "FLOCK":
                major, minor, inode = fields[5].split(":")
                if (int(major, 16), int(minor, 16), int(inode)) == \
                        (os.major(dev), os.minor(dev), ino):
                    holders.add(int(fields[4]))
    return holders


def opened(pids, lock):
    """Whether one of `pids` has the file `lock` (st_dev, st_ino) open: weft's processes
    open the lock only to take it, so open means waiting or holding."""
    for pid in pids:
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                found = os.stat("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if (found.st_dev, found.st_ino) == lock:
                return True
    return False


def command_line(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.002)
    raise AssertionError("gave up after %ds waiting for %s" % (timeout, what))


STOPPED = set()     # processes a test stopped: teardown lets them go on, whatever failed


def hold(proc, lock, what):
    """Stop the process below `proc` that holds the lock, as soon as it holds it: its pid."""
    def holder():
        if proc.poll() is not None:
            raise AssertionError("%s ended before it held the lock: %s" % (what, proc.stdout.read()))
        return lock_holders(lock) & descendants(proc.pid)
    return stop(min(wait_for(holder, 60, "%s to hold the lock" % what)))


def stop(pid):
    STOPPED.add(pid)
    os.kill(pid, signal.SIGSTOP)
    return pid


def go_on(pid):
    os.kill(pid, signal.SIGCONT)
    STOPPED.discard(pid)


def finish(proc):
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    result = minimal_result(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    assert not result["failed"], result
    return result


# ---- what the host shows ----------------------------------------------------------------

def overlay_devices(netns):
    """{name: `ip -d link` line} of the overlay devices weft may make."""
    found = {}
    for line in sh("ip", "-d", "-o", "link", "show", netns=netns).splitlines():
        name = line.split(":", 2)[1].strip().split("@")[0]
        if name.startswith("flannel"):
            found[name] = line
    return found


def matches(netns, expected):
    """Whether exactly the expected devices exist, each with its expected detail."""
    found = overlay_devices(netns)
    return sorted(found) == sorted(expected) and all(expected[n] in found[n] for n in expected)


def heal_passes(box):
    return json.loads(box.read("/run/weft/heal.json") or '{"passes": 0}')["passes"]


def wake_heal(netns):
    """Drift weft-heal is woken by: one of weft's routes deleted (none left: the held
    converge already deleted the device they were on, which woke it)."""
    routes = sh("ip", "route", "show", "proto", "119", netns=netns).splitlines()
    if routes:
        sh("ip", "route", "del", routes[0].split()[0], "proto", "119", netns=netns)


def stays(box, expected, label, passes=2, timeout=30):
    """The kernel keeps `expected` (None: nothing of weft) through `passes` more heal
    passes after the one under way, watched all along: a pass that converged an old
    record would put its device back meanwhile."""
    netns, start = box.netns, heal_passes(box)
    deadline = time.monotonic() + timeout
    while heal_passes(box) < start + 1 + passes:
        assert time.monotonic() < deadline, "%s: weft-heal made no passes" % label
        if expected is None:
            assert overlay_devices(netns) == {}, "%s: %s" % (label, sorted(overlay_devices(netns)))
        else:
            assert matches(netns, expected), "%s: %s" % (label, sorted(overlay_devices(netns)))
        time.sleep(0.05)


def recorded(box, arguments):
    record = json.loads(box.read("/etc/weft/host.json"))
    return record["plan"] == decode_plan(arguments["plan"]) and \
        record["identity"]["public_ip"] == arguments["host"]["public_ip"]


@pytest.fixture
def watched(netns):
    """A sandbox host with a second underlay address, converged, and weft-heal on it."""
    sh("ip", "addr", "add", SECOND_ADDRESS + "/24", "dev", "u0", netns=netns)
    box = Sandbox(netns)
    first = box.module("weft.overlay.host", PLANS[0][1])
    assert not first["failed"], first
    box.heal = box.popen("/usr/bin/python3", RESTORE, "--watch", str(HEAL_INTERVAL))
    box.heal_pids = wait_for(lambda: {p for p in descendants(box.heal.pid)
                                      if b"weft-restore" in command_line(p)}, 10, "weft-heal")
    box.lock = tuple(int(n) for n in box.run("stat", "-c", "%d %i", LOCK).stdout.split())
    wait_for(lambda: box.exists("/run/weft/heal.json"), 30, "weft-heal to watch")
    yield box
    for pid in list(STOPPED):
        try:
            go_on(pid)
        except OSError:
            STOPPED.discard(pid)
    if box.heal.poll() is None:
        box.heal.send_signal(signal.SIGTERM)
        try:
            print(box.heal.communicate(timeout=10)[0])
        except subprocess.TimeoutExpired:
            box.heal.kill()
            box.heal.wait()
    box.remove()


def test_the_last_converge_stays_however_heal_passes_fall(watched):
    """Every converge from the controller, each replacing the overlay's device, stays; in
    every other round weft-heal's pass is made to start, and wait, while the converge
    holds the lock half-way."""
    box, netns = watched, watched.netns
    for i in range(8):
        name, arguments, expected = PLANS[(i + 1) % len(PLANS)]
        label = "round %d (%s, %s)" % (i, name, "forced" if i % 2 == 0 else "free")
        proc = box.start_module("weft.overlay.host", arguments)
        if i % 2 == 0:
            held = hold(proc, box.lock, "the converge")
            wake_heal(netns)
            wait_for(lambda: opened(box.heal_pids, box.lock), 15, "weft-heal's pass to wait")
            assert not recorded(box, arguments)     # the converge has not written it yet
            go_on(held)
        result = finish(proc)
        assert result["changed"], (label, result)
        assert recorded(box, arguments), label
        assert matches(netns, expected), "%s: %s" % (label, sorted(overlay_devices(netns)))
        stays(box, expected, label)
        assert recorded(box, arguments), label


def test_two_converges_at_once_each_start_from_the_record_the_other_left(watched):
    """The second converge reads the record only once the first has written it: it
    removes the first one's device, which its own plan does not know of."""
    box, netns = watched, watched.netns
    (_, first, _), (_, second, expected) = PLANS[2], PLANS[1]     # vxlan VNI 2, then udp
    one = box.start_module("weft.overlay.host", first)
    held = hold(one, box.lock, "the first converge")
    two = box.start_module("weft.overlay.host", second)
    wait_for(lambda: opened(descendants(two.pid) - {two.pid}, box.lock), 60,
             "the second converge to wait for the lock")
    go_on(held)
    assert finish(one)["changed"]
    assert finish(two)["changed"]
    assert recorded(box, second)
    assert matches(netns, expected), sorted(overlay_devices(netns))
    stays(box, expected, "after both")


def test_a_check_during_a_converge_measures_drift_from_the_record_it_writes(watched):
    """weft_check reads the record under the lock too: its drift and revision are those of
    the converge it waited for, not of the record that converge replaced."""
    box = watched
    name, arguments, _ = PLANS[2]
    proc = box.start_module("weft.overlay.host", arguments)
    held = hold(proc, box.lock, "the converge")
    check = box.start_module("weft.overlay.check", {"count": 1, "timeout": 0.2})
    wait_for(lambda: opened(descendants(check.pid) - {check.pid}, box.lock), 60,
             "the check to wait for the lock")
    go_on(held)
    assert finish(proc)["changed"]
    seen = finish(check)
    assert seen["revision"] == plan_revision(decode_plan(arguments["plan"])), seen
    assert seen["drift"] == [], seen["drift"]


def gone(box):
    view = kernel_view(box.netns)
    return overlay_devices(box.netns) == {} and view["routes"] == [] and not view["nft"] and \
        view["chains"] == [] and not box.exists("/etc/weft/host.json")


def test_an_uninstall_that_a_heal_pass_waits_for_stays_done(watched):
    box = watched
    proc = box.start_module("weft.overlay.host", {"state": "absent"})
    held = hold(proc, box.lock, "the uninstall")
    wake_heal(box.netns)
    wait_for(lambda: opened(box.heal_pids, box.lock), 15, "weft-heal's pass to wait")
    go_on(held)
    assert finish(proc)["changed"]
    assert gone(box)
    stays(box, None, "after the uninstall")
    assert gone(box)


def test_an_uninstall_during_a_heal_pass_waits_for_it_and_stays_done(watched):
    box = watched
    wake_heal(box.netns)
    held = stop(min(wait_for(lambda: lock_holders(box.lock) & box.heal_pids, 15,
                             "weft-heal's pass to hold the lock")))
    proc = box.start_module("weft.overlay.host", {"state": "absent"})
    wait_for(lambda: opened(descendants(proc.pid) - {proc.pid}, box.lock), 60,
             "the uninstall to wait for the lock")
    go_on(held)
    assert finish(proc)["changed"]
    assert gone(box)
    stays(box, None, "after the uninstall")
    assert gone(box)


def test_a_pass_waiting_for_the_lock_stops_at_once_when_told(watched):
    """As an uninstall holding the lock stops weft-heal: the pass gives up its wait."""
    box = watched
    proc = box.start_module("weft.overlay.host", PLANS[2][1])
    held = hold(proc, box.lock, "the converge")
    wake_heal(box.netns)
    wait_for(lambda: opened(box.heal_pids, box.lock), 15, "weft-heal's pass to wait")
    start = time.monotonic()
    box.heal.send_signal(signal.SIGTERM)
    out = box.heal.communicate(timeout=10)[0]
    assert time.monotonic() - start < 2 and box.heal.returncode == 0 and "stopped" in out
    go_on(held)
    assert finish(proc)["changed"]
    assert matches(box.netns, PLANS[2][2])


def test_a_key_made_for_a_converge_to_come_outlives_the_passes_of_the_record_before(netns):
    """weft_facts makes this host's WireGuard key (and here a rotated one beside it) before
    the converge that switches to wireguard: a weft-restore pass of the record before (udp)
    leaves both, and the device then runs with the key the lease announces."""
    box = Sandbox(netns)
    try:
        assert not box.module("weft.overlay.host", args("udp"))["failed"]
        facts = box.module("weft.overlay.facts", {"iface": "u0", "backend": "wireguard"})
        reported = facts["ansible_facts"]["weft_backend_facts"]
        assert reported["key_made"] == "new", facts
        made = box.read(KEY)
        assert made
        # A rotation started too: the new key waits beside the first as <key>.next.
        rotated = box.module("weft.overlay.facts", {"iface": "u0", "backend": "wireguard",
                                                    "rotate_keys": True})
        reported = rotated["ansible_facts"]["weft_backend_facts"]
        assert reported["key_made"] == "rotated", rotated
        pending = box.read(KEY + ".next")
        assert pending and pending != made
        box.run("/usr/bin/python3", RESTORE)        # a pass of the udp record
        assert (box.read(KEY), box.read(KEY + ".next")) == (made, pending)
        other = subprocess.run("wg genkey | wg pubkey", shell=True, capture_output=True,
                               text=True, check=True).stdout.strip()
        plan = encode_plan(sample_plan("wireguard", [
            ("node1", "10.9.0.1", "100.96.1.0/24", {"public_key": reported["public_key"]}),
            ("node2", "10.9.0.2", "100.96.2.0/24", {"public_key": other})]))
        result = box.module("weft.overlay.host", {"plan": plan, "host": IDENTITY, "settings": {
            "docker": False, "wireguard_implementation": "userspace"}})
        assert not result["failed"], result
        assert box.run("wg", "show", "flannel-wg", "public-key").stdout.strip() == \
            reported["public_key"]
        assert box.read(KEY) == pending and not box.exists(KEY + ".next")
    finally:
        box.remove()
