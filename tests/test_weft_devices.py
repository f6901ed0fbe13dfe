"""weft_vxlan and weft_tun against the real kernel, with both pyroute2 versions."""

import json

import pytest

from conftest import sh

VTEP = {"name": "flannel.1", "vni": 1, "local": "10.9.0.1", "dev": "u0",
        "mac": "0e:77:64:60:01:00", "mtu": 1450, "address": "100.96.1.0/32"}


def link(netns, name):
    out = sh("ip", "-d", "-j", "link", "show", name, netns=netns, check=False)
    return json.loads(out)[0] if out.strip() else None


def addresses(netns, name):
    return [a["local"] + "/" + str(a["prefixlen"])
            for a in json.loads(sh("ip", "-j", "addr", "show", name, netns=netns))[0]["addr_info"]
            if a.get("scope") != "link"]


def test_vxlan_create_idempotent_inplace_recreate_absent(netns, run_in):
    result = run_in("weft.overlay.vxlan", VTEP)
    assert result["changed"] and not result["recreated"], result
    dev = link(netns, "flannel.1")
    data = dev["linkinfo"]["info_data"]
    assert (data["id"], data["local"], data["port"], data["learning"]) == (1, "10.9.0.1", 8472, False)
    assert data["link"] == "u0"
    assert (dev["address"], dev["mtu"], "UP" in dev["flags"]) == ("0e:77:64:60:01:00", 1450, True)
    assert addresses(netns, "flannel.1") == ["100.96.1.0/32"]

    assert not run_in("weft.overlay.vxlan", VTEP)["changed"]

    inplace = dict(VTEP, mtu=1400, address="100.96.1.0/31", mac="0e:77:64:60:01:99")
    result = run_in("weft.overlay.vxlan", inplace, diff=True)
    assert result["changed"] and not result["recreated"]
    text = result["stdout_text"]
    diff = text[text.index("--- before"):text.rindex("localhost | ")]
    assert '-    "mtu": 1450' in diff and '+    "mtu": 1400' in diff
    assert "vni" not in diff and "local" not in diff  # only what differs
    assert link(netns, "flannel.1")["ifindex"] == dev["ifindex"]  # changed in place
    assert link(netns, "flannel.1")["mtu"] == 1400
    assert addresses(netns, "flannel.1") == ["100.96.1.0/31"]

    recreated = run_in("weft.overlay.vxlan", dict(inplace, vni=7, port=4789))
    assert recreated["changed"] and recreated["recreated"]
    dev2 = link(netns, "flannel.1")
    assert (dev2["linkinfo"]["info_data"]["id"], dev2["linkinfo"]["info_data"]["port"]) == (7, 4789)
    assert (dev2["mtu"], dev2["address"]) == (1400, "0e:77:64:60:01:99")
    assert addresses(netns, "flannel.1") == ["100.96.1.0/31"]

    gone = run_in("weft.overlay.vxlan", {"name": "flannel.1", "state": "absent"})
    assert gone["changed"] and link(netns, "flannel.1") is None
    assert not run_in("weft.overlay.vxlan", {"name": "flannel.1", "state": "absent"})["changed"]


def test_vxlan_group_policy_and_learning_are_set_at_creation(netns, run_in):
    result = run_in("weft.overlay.vxlan", dict(VTEP, gbp=True, learning=True))
    assert result["changed"], result
    data = link(netns, "flannel.1")["linkinfo"]["info_data"]
    assert (data.get("gbp"), data["learning"]) == (True, True), data
    assert not run_in("weft.overlay.vxlan", dict(VTEP, gbp=True, learning=True))["changed"]
    back = run_in("weft.overlay.vxlan", VTEP)   # both off again: the kernel fixes them at creation
    assert back["changed"] and back["recreated"], back
    data = link(netns, "flannel.1")["linkinfo"]["info_data"]
    assert (data.get("gbp", False), data["learning"]) == (False, False), data
    assert not run_in("weft.overlay.vxlan", VTEP)["changed"]


def tx_checksum(netns, name):
    """'on' or 'off', as ethtool -k reads it with the ethtool ioctl."""
    line = next(l for l in sh("ethtool", "-k", name, netns=netns).splitlines()
                if l.startswith("tx-checksumming:"))
    return line.split()[1]


def test_vxlan_tx_checksum_offload_is_set_in_place_and_kept_on_recreation(netns, run_in):
    run_in("weft.overlay.vxlan", VTEP)
    assert tx_checksum(netns, "flannel.1") == "on"  # the kernel's default, left alone
    off = dict(VTEP, tx_checksum=False)
    result = run_in("weft.overlay.vxlan", off, diff=True)
    assert result["changed"] and not result["recreated"], result
    assert '+    "tx_checksum": false' in result["stdout_text"]
    assert tx_checksum(netns, "flannel.1") == "off"
    assert not run_in("weft.overlay.vxlan", off)["changed"]
    # Someone turns it on again by hand: put back.
    sh("ethtool", "-K", "flannel.1", "tx", "on", netns=netns)
    assert run_in("weft.overlay.vxlan", off)["changed"] and tx_checksum(netns, "flannel.1") == "off"
    # A re-created device gets it too.
    recreated = run_in("weft.overlay.vxlan", dict(off, vni=7))
    assert recreated["recreated"] and tx_checksum(netns, "flannel.1") == "off", recreated
    assert recreated["device"]["tx_checksum"] is False
    back = run_in("weft.overlay.vxlan", dict(VTEP, vni=7, tx_checksum=True))
    assert back["changed"] and tx_checksum(netns, "flannel.1") == "on"
    assert not run_in("weft.overlay.vxlan", dict(VTEP, vni=7))["changed"]  # omitted: left alone


def test_vxlan_check_mode_changes_nothing(netns, run_in):
    result = run_in("weft.overlay.vxlan", VTEP, check=True, diff=True)
    assert result["changed"] and link(netns, "flannel.1") is None
    run_in("weft.overlay.vxlan", VTEP)
    result = run_in("weft.overlay.vxlan", dict(VTEP, vni=9), check=True)
    assert result["changed"] and result["recreated"]
    assert link(netns, "flannel.1")["linkinfo"]["info_data"]["id"] == 1
    result = run_in("weft.overlay.vxlan", {"name": "flannel.1", "state": "absent"}, check=True)
    assert result["changed"] and link(netns, "flannel.1") is not None


def test_vxlan_never_touches_a_device_of_another_kind(netns, run_in):
    result = run_in("weft.overlay.vxlan", dict(VTEP, name="u1"))
    assert result["failed"] and result["msg"] == \
        "name: u1 exists as a veth device, not vxlan; refusing to touch it"
    result = run_in("weft.overlay.vxlan", {"name": "u1", "state": "absent"})
    assert result["failed"] and link(netns, "u1") is not None


@pytest.mark.parametrize("change, message", [
    ({"vni": 0}, "vni: 0 is out of range 1..16777215"),
    ({"vni": 2 ** 24}, "vni: 16777216 is out of range"),
    ({"vni": None}, "vni: is required when state is present"),
    ({"local": None}, "local: is required when state is present"),
    ({"local": "10.9.0.999"}, "local: '10.9.0.999' is not an IP address"),
    ({"local": "10.9.0.5"}, "local: 10.9.0.5 is not an address of u0 (it has 10.9.0.1)"),
    ({"local": "10.9.0.5", "dev": None}, "local: 10.9.0.5 is not an address of this host"),
    ({"dev": "eth9"}, "dev: no underlay device named eth9"),
    ({"port": 0}, "port: 0 is out of range 1..65535"),
    ({"port": 65536}, "port: 65536 is out of range"),
    ({"mac": "01:00:5e:00:00:01"}, "mac: 01:00:5e:00:00:01 is a multicast MAC"),
    ({"mac": "0e:77:64"}, "mac: '0e:77:64' is not a MAC address"),
    ({"mtu": 20}, "mtu: 20 is out of range 68..65535"),
    ({"address": "100.96.1.0"}, "address: '100.96.1.0' needs a prefix length"),
    ({"address": "100.96.1.0/40"}, "address: '100.96.1.0/40' is not an address in CIDR form"),
    ({"name": "a-name-that-is-too-long"}, "name: 'a-name-that-is-too-long' is not a valid interface name"),
])
def test_vxlan_bad_input_changes_nothing(netns, run_in, change, message):
    result = run_in("weft.overlay.vxlan", {k: v for k, v in dict(VTEP, **change).items() if v is not None})
    assert result["failed"] and result["msg"].startswith(message), result["msg"]
    assert link(netns, "flannel.1") is None


def test_tun_create_idempotent_inplace_recreate_absent(netns, run_in):
    spec = {"name": "flannel0", "mtu": 1472, "address": "100.96.1.0/32"}
    result = run_in("weft.overlay.tun", spec)
    assert result["changed"], result
    dev = link(netns, "flannel0")
    info = dev["linkinfo"]["info_data"]
    assert (info["type"], info["pi"], info["persist"], info.get("multi_queue", False)) == \
        ("tun", False, True, False)
    assert "user" not in info and dev["mtu"] == 1472
    assert addresses(netns, "flannel0") == ["100.96.1.0/32"]
    assert not run_in("weft.overlay.tun", spec)["changed"]

    result = run_in("weft.overlay.tun", dict(spec, mtu=1400, up=False))
    assert result["changed"] and not result["recreated"]
    assert link(netns, "flannel0")["mtu"] == 1400 and "UP" not in link(netns, "flannel0")["flags"]

    result = run_in("weft.overlay.tun", dict(spec, owner=65534, group=65534, multi_queue=True))
    assert result["recreated"]
    info = link(netns, "flannel0")["linkinfo"]["info_data"]
    assert (info["user"], info["group"], info["multi_queue"]) == ("nobody", "nogroup", True)
    assert not run_in("weft.overlay.tun", dict(spec, owner=65534, group=65534, multi_queue=True))["changed"]
    # By name: the same IDs, looked up on the host.
    assert not run_in("weft.overlay.tun", dict(spec, owner="nobody", group="nogroup", multi_queue=True))["changed"]

    assert run_in("weft.overlay.tun", {"name": "flannel0", "state": "absent"})["changed"]
    assert link(netns, "flannel0") is None


def test_tun_check_mode_and_bad_input(netns, run_in):
    result = run_in("weft.overlay.tun", {"name": "flannel0", "mtu": 1472}, check=True)
    assert result["changed"] and link(netns, "flannel0") is None
    # A user that an earlier step of the same run would create: check mode only.
    result = run_in("weft.overlay.tun", {"name": "flannel0", "owner": "weft-not-yet"}, check=True)
    assert result["changed"] and not result["failed"], result
    for args, message in [
        ({"name": "flannel0", "owner": -1}, "owner: -1 is out of range"),
        ({"name": "flannel0", "owner": "no-such-user"}, "owner: no user named no-such-user"),
        ({"name": "flannel0", "mtu": 10}, "mtu: 10 is out of range"),
        ({"name": "flannel0", "address": "x/32"}, "address: 'x/32' is not an address"),
        ({"name": "u0"}, "name: u0 exists as a veth device, not tun"),
    ]:
        result = run_in("weft.overlay.tun", args)
        assert result["failed"] and result["msg"].startswith(message), result["msg"]
    assert link(netns, "flannel0") is None
