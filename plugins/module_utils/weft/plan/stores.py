# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lease store a module's parameters name: the lease file or etcd.

Both stores offer update(compute, config, check_mode) -> Outcome and `foreign`; the
options are documented once, in the weft_lease_store doc fragment.
"""

from __future__ import annotations

from .etcd import EtcdClient, EtcdError
from .etcdstore import EtcdStore
from .leasefile import FileStore, LeaseFileError
from .subnets import PlanError

# Everything a store or the planner raises for bad input or an unreachable store: the
# message names the variable, and a module reports it with fail_json.
STORE_ERRORS = (PlanError, LeaseFileError, EtcdError)

ETCD_OPTIONS = dict(
    endpoints=dict(type="list", elements="str", required=True),
    prefix=dict(type="str", default="/coreos.com/network"),
    ca_file=dict(type="path"),
    cert_file=dict(type="path"),
    key_file=dict(type="path", no_log=False),
    username=dict(type="str"),
    password=dict(type="str", no_log=True),
    timeout=dict(type="float", default=5.0),
    replace_config=dict(type="bool", default=False),
)

STORE_ARGUMENT_SPEC = dict(
    lease_file=dict(type="path"),
    etcd=dict(type="dict", options=ETCD_OPTIONS),
)


def file_store(params):
    return FileStore(params["lease_file"])


def etcd_store(params):
    etcd = params["etcd"]
    client = EtcdClient(etcd["endpoints"], ca_file=etcd["ca_file"], cert_file=etcd["cert_file"],
                        key_file=etcd["key_file"], username=etcd["username"],
                        password=etcd["password"], timeout=etcd["timeout"])
    return EtcdStore(client, etcd["prefix"], etcd["replace_config"])


def open_store(params, which=None):
    """The store named by params['store'] (or by `which`)."""
    return etcd_store(params) if (which or params["store"]) == "etcd" else file_store(params)
