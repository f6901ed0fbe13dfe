# -*- coding: utf-8 -*-
# Copyright: weft contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small etcd v3 client over etcd's JSON gateway (/v3/kv/...), with ansible-core's open_url.

The lease store needs three calls (range, txn, authenticate), so a gRPC stack would be a
heavy dependency for an optional feature. The gateway ships with every etcd since 3.3
and takes the same messages as gRPC in JSON, with keys and values base64-encoded.
Endpoints are tried in order; the first that answers serves the whole session.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
from dataclasses import dataclass

from ansible.module_utils.urls import ConnectionError as UrlConnectionError, open_url


class EtcdError(RuntimeError):
    """etcd could not be reached or refused a request; the message says which and why."""


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _unb64(data: str) -> str:
    return base64.b64decode(data or "").decode("utf-8")


def prefix_end(prefix: str) -> str:
    """The range end that selects every key starting with `prefix` (etcd's convention)."""
    raw = prefix.encode("utf-8")
    return (raw[:-1] + bytes([raw[-1] + 1])).decode("utf-8")


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: str
    create_revision: int
    mod_revision: int
    lease: int


class Compare:
    """Transaction guards, as etcd's Compare messages."""

    @staticmethod
    def absent(key):
        return {"key": _b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}

    @staticmethod
    def unchanged(key, mod_revision):
        return {"key": _b64(key), "target": "MOD", "result": "EQUAL",
                "mod_revision": str(mod_revision)}

    @classmethod
    def as_read(cls, key, kv):
        """The key is still what was read: absent if it was absent, else not modified since."""
        return cls.absent(key) if kv is None else cls.unchanged(key, kv.mod_revision)


def put(key, value):
    """A put without an etcd lease: the key stays until it is deleted."""
    return {"request_put": {"key": _b64(key), "value": _b64(value)}}


def delete(key):
    return {"request_delete_range": {"key": _b64(key)}}


ENDPOINTS = "weft_etcd_endpoints"  # the variable error messages name


class EtcdClient:
    def __init__(self, endpoints, ca_file=None, cert_file=None, key_file=None,
                 username=None, password=None, timeout=5.0):
        if not endpoints:
            raise EtcdError("%s: needs at least one URL such as http://127.0.0.1:2379" % ENDPOINTS)
        self.endpoints = [e.rstrip("/") for e in endpoints]
        for url in self.endpoints:
            if not url.startswith(("http://", "https://")):
                raise EtcdError("%s: %r is not an http:// or https:// URL" % (ENDPOINTS, url))
        self.timeout = timeout
        self.username, self.password = username, password
        self._token = None
        self._ca_file, self._cert_file, self._key_file = ca_file or None, cert_file or None, key_file or None
        if any(u.startswith("https://") for u in self.endpoints):
            try:    # read them once here, to name them when they are wrong
                context = ssl.create_default_context(cafile=self._ca_file)
                if cert_file:
                    context.load_cert_chain(cert_file, key_file)
            except (OSError, ssl.SSLError) as exc:
                raise EtcdError("weft_etcd_ca_file/cert_file/key_file: cannot load (%s)" % exc) \
                    from None

    def _post_once(self, url, path, body):
        headers = {"Content-Type": "application/json"}
        if self._token:
            headers["Authorization"] = self._token
        with open_url(url + path, data=json.dumps(body).encode(), headers=headers,
                      method="POST", timeout=self.timeout, ca_path=self._ca_file,
                      client_cert=self._cert_file, client_key=self._key_file,
                      follow_redirects="none") as resp:
            return json.loads(resp.read() or b"{}")

    def _post(self, path, body):
        """POST to the first endpoint that answers; an HTTP error from etcd is final."""
        failures = []
        for url in list(self.endpoints):
            try:
                answer = self._post_once(url, path, body)
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode("utf-8", "replace")
                try:
                    detail = json.loads(detail).get("message") or detail
                except ValueError:
                    pass
                raise EtcdError("etcd at %s refused %s: %s %s" % (url, path, exc.code, detail)) \
                    from None
            except (urllib.error.URLError, UrlConnectionError, OSError, ValueError) as exc:
                failures.append("%s (%s)" % (url, getattr(exc, "reason", exc)))
                continue
            # Stick to the endpoint that answered.
            self.endpoints.remove(url)
            self.endpoints.insert(0, url)
            return answer
        raise EtcdError("%s: no etcd endpoint answered: %s" % (ENDPOINTS, "; ".join(failures)))

    def authenticate(self):
        if self.username and self._token is None:
            try:
                answer = self._post("/v3/auth/authenticate",
                                    {"name": self.username, "password": self.password or ""})
            except EtcdError as exc:
                raise EtcdError("weft_etcd_username/weft_etcd_password: %s" % exc) from None
            self._token = answer.get("token")

    def range_prefix(self, prefix):
        """Every key under `prefix`, read at one revision: {key: KeyValue}."""
        self.authenticate()
        answer = self._post("/v3/kv/range", {"key": _b64(prefix),
                                             "range_end": _b64(prefix_end(prefix))})
        kvs = {}
        for item in answer.get("kvs", []):
            key = _unb64(item["key"])
            kvs[key] = KeyValue(key, _unb64(item.get("value")),
                                int(item.get("create_revision", 0)),
                                int(item.get("mod_revision", 0)), int(item.get("lease", 0)))
        return kvs

    def txn(self, compare, success):
        """Apply `success` only if every guard in `compare` holds; True if applied."""
        self.authenticate()
        answer = self._post("/v3/kv/txn", {"compare": compare, "success": success})
        return bool(answer.get("succeeded"))
