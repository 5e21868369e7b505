"""A running cluster's API, through the official `kubernetes` client: objects applied idempotently.

Objects are plain dicts (what the renderers build). `apply` uses server-side apply with our field
manager, which the API server turns into a no-op when nothing differs: the object's resourceVersion
before and after tells created, updated or unchanged, so a rerun reports nothing changed. Credentials
(the admin kubeconfig's client key) live in a 0700 temp dir for the client's lifetime only, never in
an argv or a log. Every failure is one typed error naming the server.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from bootstrap.errors import TransportError
from bootstrap.join.apiclient import APIError, Unreachable, http_reason, private_file, status_hint
from bootstrap.render.kubeconfig import parse_kubeconfig

FIELD_MANAGER = "kbootstrap"
DEFAULT_TIMEOUT = 15.0
T = TypeVar("T")

CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"


def describe(obj: dict[str, Any]) -> str:
    """`ConfigMap kube-system/kubeadm-config`, as the report names an object."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind')} {ns + '/' if ns else ''}{meta.get('name')}"


class ClusterAPI:
    """One API server session (use as a context manager)."""

    def __init__(self, kubeconfig: bytes, where: str = "kubeconfig", *, server: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.view = parse_kubeconfig(kubeconfig, where)
        self.server = (server or self.view.server).rstrip("/")
        self.timeout = timeout
        self._stack = contextlib.ExitStack()
        self._dynamic: Any = None
        self._api: Any = None

    def __enter__(self) -> ClusterAPI:
        try:
            self._open()
        except BaseException:
            self._stack.close()
            raise
        return self

    def _open(self) -> None:
        from kubernetes import client
        from kubernetes.dynamic import DynamicClient

        tmp = self._stack.enter_context(tempfile.TemporaryDirectory(prefix="kbootstrap-api-"))
        cfg = client.Configuration()
        cfg.host = self.server
        cfg.retries = False  # callers wait themselves, and say what they waited for
        if self.view.ca_pem is not None:
            cfg.ssl_ca_cert = private_file(tmp, "ca.crt", self.view.ca_pem)
        if self.view.client_cert_pem and self.view.client_key_pem:
            cfg.cert_file = private_file(tmp, "client.crt", self.view.client_cert_pem)
            cfg.key_file = private_file(tmp, "client.key", self.view.client_key_pem)
        if self.view.token:
            cfg.api_key = {"authorization": self.view.token}
            cfg.api_key_prefix = {"authorization": "Bearer"}
        self._api = self._stack.enter_context(client.ApiClient(cfg))
        self._probe()
        # Discovery cached per session: a lab reuses addresses, a cache shared across runs would lie.
        cache = os.path.join(tmp, "discovery.json")
        self._dynamic = self._call("reading the API's resources", lambda: DynamicClient(self._api, cache_file=cache))

    def _probe(self) -> None:
        """A TCP connect with a timeout first: the client's discovery has none of its own."""
        parsed = urllib.parse.urlsplit(self.server)
        port = parsed.port or 443
        try:
            socket.create_connection((parsed.hostname or "", port), timeout=min(self.timeout, 5.0)).close()
        except OSError as exc:
            raise Unreachable(f"unable to reach the API server at {self.server}: {exc.strerror or exc}",
                              hint="check the endpoint and that kube-apiserver is running") from None

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    # ---- plumbing ---------------------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], T]) -> T:
        import urllib3
        from kubernetes.client.exceptions import ApiException
        from kubernetes.dynamic.exceptions import DynamicApiError, ResourceNotFoundError

        try:
            return fn()
        except (ApiException, DynamicApiError) as exc:
            status = int(getattr(exc, "status", 0) or 0)
            raise APIError(f"{what}: the API server at {self.server} answered {status} "
                           f"{getattr(exc, 'reason', '')}".rstrip(), status=status, hint=status_hint(status)) from None
        except ResourceNotFoundError as exc:
            raise APIError(f"{what}: the API server at {self.server} does not serve it ({exc})", status=404) from None
        except urllib3.exceptions.HTTPError as exc:
            raise Unreachable(f"{what}: unable to reach the API server at {self.server}: {http_reason(exc)}",
                              hint="check the endpoint and that kube-apiserver is running") from None
        except (ValueError, OSError) as exc:
            raise Unreachable(f"{what}: bad answer from {self.server}: {exc}") from None

    def _resource(self, api_version: str, kind: str) -> Any:
        return self._call(f"finding {kind} in {api_version}",
                          lambda: self._dynamic.resources.get(api_version=api_version, kind=kind))

    # ---- objects ----------------------------------------------------------------------------------
    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        resource = self._resource(api_version, kind)
        try:
            got = self._call(f"reading {kind} {name}", lambda: resource.get(name=name, namespace=namespace,
                                                                            _request_timeout=self.timeout))
        except APIError as exc:
            if exc.status == 404:
                return None
            raise
        out: dict[str, Any] = got.to_dict()
        return out

    def list(self, api_version: str, kind: str, namespace: str | None = None, **selectors: str) -> list[dict[str, Any]]:
        resource = self._resource(api_version, kind)
        got = self._call(f"listing {kind}", lambda: resource.get(namespace=namespace, _request_timeout=self.timeout,
                                                                 **selectors))
        return [i for i in got.to_dict().get("items") or []]

    def apply(self, obj: dict[str, Any]) -> str:
        """Server-side apply; returns created, updated or unchanged."""
        meta = obj["metadata"]
        resource = self._resource(obj["apiVersion"], obj["kind"])
        before = self.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        after = self._call(
            f"applying {describe(obj)}",
            lambda: resource.server_side_apply(body=obj, name=meta["name"], namespace=meta.get("namespace"),
                                               field_manager=FIELD_MANAGER, force_conflicts=True,
                                               _request_timeout=self.timeout),
        ).to_dict()
        if before is None:
            return CREATED
        rv_before = (before.get("metadata") or {}).get("resourceVersion")
        return UNCHANGED if rv_before == (after.get("metadata") or {}).get("resourceVersion") else UPDATED

    def patch(self, api_version: str, kind: str, name: str, patch: dict[str, Any],
              namespace: str | None = None) -> str:
        """A strategic-merge patch (a Node's labels and taints); updated or unchanged."""
        resource = self._resource(api_version, kind)
        before = self.get(api_version, kind, name, namespace)
        if before is None:
            raise APIError(f"{kind} {name} does not exist on {self.server}", status=404)
        after = self._call(f"patching {kind} {name}", lambda: resource.patch(
            body=patch, name=name, namespace=namespace, content_type="application/strategic-merge-patch+json",
            _request_timeout=self.timeout)).to_dict()
        same = (before.get("metadata") or {}).get("resourceVersion") == (after.get("metadata") or {}).get(
            "resourceVersion")
        return UNCHANGED if same else UPDATED

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        resource = self._resource(api_version, kind)
        try:
            self._call(f"deleting {kind} {name}", lambda: resource.delete(name=name, namespace=namespace,
                                                                          _request_timeout=self.timeout))
        except APIError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def raw(self, path: str) -> str:
        """GET an API path as text (`/readyz`, a pod proxy path); a non-2xx answer is an APIError."""
        from kubernetes.client.exceptions import ApiException

        def call() -> str:
            api = self._api
            if hasattr(api, "param_serialize"):  # the client's generator since v33
                method, url, headers, _, _ = api.param_serialize("GET", path, auth_settings=["BearerToken"])
                resp = api.call_api(method, url, header_params=headers, _request_timeout=self.timeout)
                resp.read()
            else:
                resp = api.call_api(path, "GET", response_type="str", auth_settings=["BearerToken"],
                                    _return_http_data_only=True, _preload_content=False,
                                    _request_timeout=self.timeout)
            status = int(getattr(resp, "status", 200))
            if not 200 <= status < 300:
                raise ApiException(status=status, reason=getattr(resp, "reason", ""))
            data = resp.data
            return data.decode(errors="replace") if isinstance(data, bytes) else str(data)
        return self._call(f"GET {path}", call)


def wait_for(what: str, check: Callable[[], T | None], *, timeout: float, interval: float = 2.0,
             stopping: Callable[[], bool] = lambda: False) -> T:
    """Poll check() until it returns something; a TransportError naming `what` after timeout (the
    last error seen, if any, says why)."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            got = check()
            if got is not None:
                return got
        except TransportError as exc:
            last = exc.one_line()
        if time.monotonic() > deadline or stopping():
            raise TransportError(f"{what}: not after {timeout:.0f}s" + (f" ({last})" if last else ""))
        time.sleep(interval)


@contextlib.contextmanager
def session(kubeconfig: bytes, where: str, server: str | None = None) -> Iterator[ClusterAPI]:
    with ClusterAPI(kubeconfig, where, server=server) as api:
        yield api
