"""Shared fixtures: import paths for the project's module_utils, and ansible CLI helpers."""

import functools
import glob
import json
import os
import socket
import subprocess
import sys
import urllib.request

import pytest
from hypothesis import settings

# A shared 2-core machine: how long one example takes says nothing about the code.
settings.register_profile("weft", deadline=None)
settings.load_profile("weft")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES_DIR = os.path.join(ROOT, "plugins", "modules")

sys.path.insert(0, os.path.join(ROOT, "lab"))
from weftcode import MODULE_UTILS  # noqa: E402  (weft's code, as the package weft)
from sandbox import minimal_result  # noqa: E402


def run_ansible_module(module, args, check=False, diff=False, python=None, netns=None):
    """Run one module through the real ansible CLI (AnsiballZ, argument spec, check/diff).

    Returns the module's result dict; `failed` is set on failure.
    """
    cmd = []
    if netns:
        cmd += ["ip", "netns", "exec", netns]
    cmd += [os.path.join(os.path.dirname(sys.executable), "ansible"), "localhost",
            "-i", "localhost,", "-c", "local", "-m", module, "-a", json.dumps(args), "-e",
            "ansible_python_interpreter=%s" % (python or sys.executable)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="minimal",
               ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    return minimal_result(proc)


@pytest.fixture
def ansible_module():
    return run_ansible_module


# ---- network namespaces for real-kernel tests -------------------------------------

NETNS_PREFIX = "weft-t-"
PYTHONS = {
    # The pyroute2 a host gets from its distribution (Debian 12: 0.7.2) ...
    "distro": "/usr/bin/python3",
    # ... and the current PyPI release, in the project venv.
    "pypi": sys.executable,
}


def sh(*cmd, netns=None, check=True):
    if netns:
        cmd = ("ip", "-n", netns) + cmd[1:] if cmd[0] == "ip" else ("ip", "netns", "exec", netns) + cmd
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode:
        raise AssertionError("%s failed: %s" % (" ".join(cmd), proc.stderr))
    return proc.stdout


def remove_stale_namespaces(own=False):
    """Namespaces left by a test run that was killed half-way: ours by their prefix, whose
    creating process is gone (parallel workers keep theirs). own=True: this process's too."""
    for line in sh("ip", "netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        if not name.startswith(NETNS_PREFIX):
            continue
        pid = name[len(NETNS_PREFIX):].split("-")[0]
        if (own and pid == str(os.getpid())) or not os.path.exists("/proc/%s" % pid):
            sh("ip", "netns", "del", name, check=False)


@pytest.fixture(scope="session", autouse=True)
def _clean_namespaces():
    from sandbox import remove_stale_sandboxes
    remove_stale_sandboxes()
    remove_stale_namespaces()
    yield
    remove_stale_namespaces(own=True)


_counter = iter(range(1, 1 << 30))


@pytest.fixture
def netns():
    """A fresh namespace with loopback up and a veth pair u0 (10.9.0.1/24) <-> u1, both up."""
    name = "%s%d-%d" % (NETNS_PREFIX, os.getpid(), next(_counter))
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "link", "set", "lo", "up", netns=name)
        sh("ip", "link", "add", "u0", "type", "veth", "peer", "name", "u1", netns=name)
        sh("ip", "addr", "add", "10.9.0.1/24", "dev", "u0", netns=name)
        sh("ip", "link", "set", "u0", "up", netns=name)
        sh("ip", "link", "set", "u1", "up", netns=name)
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


@pytest.fixture(params=sorted(PYTHONS), ids=lambda p: "pyroute2-" + p)
def host_python(request):
    """Run each module test with both pyroute2 versions a host may have."""
    python = PYTHONS[request.param]
    probe = subprocess.run([python, "-c", "import pyroute2"], capture_output=True)
    if probe.returncode:
        pytest.fail("%s cannot import pyroute2: install python3-pyroute2" % python)
    return python


@pytest.fixture
def run_in(netns, host_python):
    """run_in(module, args, check=False, diff=False) inside the test namespace."""
    def run(module, args, **kwargs):
        return run_ansible_module(module, args, python=host_python, netns=netns, **kwargs)
    return run


# ---- a real etcd on loopback, one per test process --------------------------------

import etcdserver  # noqa: E402

ETCD_DIR_PREFIX = "/tmp/weft-etcd-"


def free_port_pair():
    """A loopback port whose successor is free too (etcd's client and peer ports)."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with socket.socket() as peer:
            try:
                peer.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


@pytest.fixture(scope="session")
def etcd_server():
    """Start etcd for this test process; stop those of test runs that were killed."""
    for stale in glob.glob(ETCD_DIR_PREFIX + "*"):
        owner = stale[len(ETCD_DIR_PREFIX):].split("-")[0]
        if not os.path.exists("/proc/%s" % owner):
            etcdserver.stop(stale)
    directory = ETCD_DIR_PREFIX + str(os.getpid())
    url = etcdserver.start(directory, free_port_pair())
    yield url
    etcdserver.stop(directory)


@pytest.fixture
def etcd(etcd_server):
    """The etcd URL, emptied for this test."""
    request = urllib.request.Request(etcd_server + "/v3/kv/deleterange",
                                     data=b'{"key": "AA==", "range_end": "AA=="}', method="POST")
    urllib.request.urlopen(request, timeout=5).read()
    return etcd_server


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(directory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it."""
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=weft-test-ca", cwd=directory)
    # etcd's JSON gateway dials its own gRPC port with the server certificate: clientAuth too.
    for name, usage in (("server", "serverAuth,clientAuth"), ("client", "clientAuth")):
        openssl("req", *key, "-keyout", name + ".key", "-out", name + ".csr",
                "-subj", "/CN=weft-" + name, cwd=directory)
        with open(os.path.join(directory, name + ".ext"), "w") as handle:
            handle.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=%s\n" % usage)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", name + ".pem", "-days", "2",
                "-extfile", name + ".ext", cwd=directory)
    path = functools.partial(os.path.join, directory)
    return dict(ca=path("ca.pem"), cert=path("server.pem"), key=path("server.key"),
                client_cert=path("client.pem"), client_key=path("client.key"))


@pytest.fixture(scope="module")
def etcd_tls(tmp_path_factory):
    """An https etcd that requires client certificates: (url, certificate files)."""
    tls = make_certificates(str(tmp_path_factory.mktemp("etcd-tls")))
    directory = "%s%d-tls" % (ETCD_DIR_PREFIX, os.getpid())
    yield etcdserver.start(directory, free_port_pair(), tls=tls), tls
    etcdserver.stop(directory)


@pytest.fixture(scope="module")
def etcd_auth():
    """An etcd with authentication on, user root with password 'weft-secret': its url."""
    directory = "%s%d-auth" % (ETCD_DIR_PREFIX, os.getpid())
    url = etcdserver.start(directory, free_port_pair())
    for args in (["user", "add", "root:weft-secret", "--interactive=false"], ["auth", "enable"]):
        subprocess.run(["etcdctl", "--endpoints", url, *args], env={"ETCDCTL_API": "3"},
                       check=True, capture_output=True)
    yield url
    etcdserver.stop(directory)
