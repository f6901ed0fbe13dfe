"""A CNI network run as a runtime runs it (libcni's conflist semantics, as containerd, the
kubelet and podman apply them): each plugin of the conflist executed in turn with the
network's config on stdin and the previous plugin's result as `prevResult`; CHECK and DEL
with the cached ADD result, DEL in reverse order. Used by the tests to drive the plugins
exactly as those runtimes would, without them."""

import json
import os
import subprocess

from weft.runtime.cni import PLUGINS


class Network:
    def __init__(self, conflist_text, run=None):
        """`run(argv, env, stdin) -> (rc, stdout, stderr)` runs a plugin (default: here)."""
        self.conf = json.loads(conflist_text)
        self.run = run or local_run
        self.results = {}

    def invoke(self, plugin, command, container, netns, ifname, prev=None):
        conf = dict(plugin, cniVersion=self.conf["cniVersion"], name=self.conf["name"])
        if prev is not None:
            conf["prevResult"] = prev
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": container, "CNI_NETNS": netns,
               "CNI_IFNAME": ifname, "CNI_PATH": PLUGINS, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        rc, out, err = self.run([os.path.join(PLUGINS, plugin["type"])], env, json.dumps(conf))
        if rc:
            raise RuntimeError("%s %s: %s" % (plugin["type"], command, out.strip() or err.strip()))
        return json.loads(out) if out.strip() else None

    def add(self, container, netns, ifname="eth0"):
        result = None
        for plugin in self.conf["plugins"]:
            result = self.invoke(plugin, "ADD", container, netns, ifname, result)
        self.results[container] = result
        return result

    def check(self, container, netns, ifname="eth0"):
        for plugin in self.conf["plugins"]:
            self.invoke(plugin, "CHECK", container, netns, ifname, self.results[container])

    def delete(self, container, netns, ifname="eth0"):
        for plugin in reversed(self.conf["plugins"]):
            self.invoke(plugin, "DEL", container, netns, ifname, self.results.get(container))
        self.results.pop(container, None)


def local_run(argv, env, stdin):
    proc = subprocess.run(argv, input=stdin, env=env, capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr
