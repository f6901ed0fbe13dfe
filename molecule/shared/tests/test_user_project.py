"""weft.overlay as a user uses it, last on the scenario's nodes: a project of the user's own
(an empty directory holding the built tarball, a requirements.yml, an inventory with the
user's group name, and the user's playbooks: one calling the role by FQCN, one calling two
modules), `ansible-galaxy collection install -r requirements.yml`, then ansible-playbook,
with no weft checkout on any Ansible path and every host key checked."""

import json
import os
import subprocess
import sys

import yaml

import overlay as lab

GROUP = "overlay"                   # the user's own group name
NETWORK = "100.97.0.0/16"           # not the scenario's: every node is converged anew
REQUIREMENTS = {"collections": [{"name": "./weft-overlay-1.0.0.tar.gz", "type": "file"}]}
NETWORK_PLAY = [{"name": "Our container network", "hosts": GROUP, "gather_facts": False,
                 "roles": [{"role": "weft.overlay.weft"}]}]
MODULES_PLAY = [{
    "name": "Our own checks, with weft's modules",
    "hosts": GROUP, "gather_facts": False,
    "tasks": [
        {"name": "Read the underlay", "weft.overlay.facts": {"iface": "eth0"},
         "register": "found"},
        {"name": "Probe every path", "weft.overlay.check": {"count": 2}, "register": "seen"},
        {"name": "Every path answers",
         "ansible.builtin.assert": {"that": [
             "found.ansible_facts.weft_underlay.public_ip == ansible_host",
             "seen.paths | rejectattr('reachable') | list | length == 0",
             "seen.paths | length == 2", "seen.drift == []"]}},
    ]}]


def user_env(home):
    """The user's environment: their own HOME (so ~/.ansible is theirs), no ANSIBLE_* or
    Molecule variable, the venv's ansible on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))}
    env.update(HOME=str(home), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    return env


def run(argv, cwd, env):
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (argv, proc.stdout[-4000:], proc.stderr[-3000:])
    return proc.stdout


def test_a_users_own_project_installs_the_collection_and_converges_the_nodes(tmp_path):
    tools = {name: os.path.join(os.path.dirname(sys.executable), name)
             for name in ("ansible-galaxy", "ansible-playbook", "ansible-doc", "ansible-config")}
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    env = user_env(home)
    run([tools["ansible-galaxy"], "collection", "build", "--output-path", str(project),
         lab.PROJECT], tmp_path, env)
    (project / "requirements.yml").write_text(yaml.safe_dump(REQUIREMENTS))
    (project / "inventory.yml").write_text(yaml.safe_dump({GROUP: {
        "hosts": {name: {"ansible_host": lab.node_ip(name)} for name in lab.NODES},
        "vars": {"ansible_user": "root", "ansible_ssh_private_key_file": lab.KEY,
                 "ansible_ssh_common_args": "-o UserKnownHostsFile=%s" % lab.KNOWN_HOSTS,
                 "ansible_python_interpreter": "/usr/bin/python3",
                 "weft_group": GROUP, "weft_iface": ["eth0"],
                 "weft_network": {"Network": NETWORK, "Backend": {"Type": "vxlan"}},
                 "weft_lease_file": "{{ inventory_dir }}/leases.yml"}}}))
    (project / "network.yml").write_text(yaml.safe_dump(NETWORK_PLAY, sort_keys=False))
    (project / "checks.yml").write_text(yaml.safe_dump(MODULES_PLAY, sort_keys=False))
    assert sorted(os.listdir(project)) == ["checks.yml", "inventory.yml", "network.yml",
                                           "requirements.yml", "weft-overlay-1.0.0.tar.gz"]

    run([tools["ansible-galaxy"], "collection", "install", "-r", "requirements.yml"], project, env)
    installed = home / ".ansible" / "collections" / "ansible_collections" / "weft" / "overlay"
    assert installed.is_dir() and not installed.is_symlink()
    assert not (installed / "lab").exists() and not (installed / "tests").exists()
    # Nothing of the checkout on Ansible's paths: everything resolves to the installed copy.
    config = run([tools["ansible-config"], "dump", "--only-changed"], project, env)
    assert lab.PROJECT not in config, config
    for kind, name in (("module", "weft.overlay.host"), ("module", "weft.overlay.routes"),
                       ("role", "weft.overlay.weft"), ("filter", "weft.overlay.plan_hosts"),
                       ("filter", "weft.overlay.plan_table")):
        text = run([tools["ansible-doc"], "-t", kind, "--json", name], project, env)
        assert name in json.loads(text) and lab.PROJECT not in text, (kind, name)

    run([tools["ansible-playbook"], "-i", "inventory.yml", "network.yml"], project, env)
    leases = yaml.safe_load((project / "leases.yml").read_text())["weft_leases"]
    assert sorted(leases) == lab.NODES
    for name in lab.NODES:
        record = json.loads(lab.host(name).file("/etc/weft/host.json").content_string)
        assert record["plan"]["network"]["network"] == NETWORK
        assert lab.host(name).run("systemctl is-active weft-heal").stdout.strip() == "active"
        # The code on the host came from the installed collection, and runs on its own.
        assert lab.host(name).run("/usr/local/lib/weft/weft-restore").rc == 0
    # Again, and through the collection's own playbook for the user's group: nothing to do.
    for argv in (["network.yml"], ["weft.overlay.site", "-e", "weft_group=" + GROUP]):
        again = run([tools["ansible-playbook"], "-i", "inventory.yml"] + argv, project, env)
        recap = [line for line in again.splitlines()
                 if line.startswith(tuple(lab.NODES)) and " ok=" in line]
        assert len(recap) == len(lab.NODES), again[-2000:]
        assert all(" changed=0 " in line for line in recap), recap
    run([tools["ansible-playbook"], "-i", "inventory.yml", "checks.yml"], project, env)
