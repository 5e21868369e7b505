"""The few Kubernetes API calls joining needs, through the official `kubernetes` client.

kubeadm reads and writes these objects through client-go: bootstrap-token Secrets, the
kube-public/cluster-info ConfigMap and the kube-system/kubeadm-certs Secret. Objects go in and come
out as plain dicts (the same data the rest of bootstrap.join builds and checks), so the payloads
are testable without an API server. Every failure is one typed error naming the endpoint.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bootstrap.errors import TransportError
from bootstrap.join.tokens import NAMESPACE, SECRET_TYPE
from bootstrap.render.kubeconfig import parse_kubeconfig

DEFAULT_TIMEOUT = 10.0


class APIError(TransportError):
    """The API server answered with an error status (status kept for callers that retry on 404)."""

    def __init__(self, message: str, *, status: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class Unreachable(TransportError):
    """No API server answered at the endpoint."""


class APIClient:
    def __init__(
        self,
        server: str,
        *,
        ca_pem: bytes | None = None,
        token: str | None = None,
        client_cert_pem: bytes | None = None,
        client_key_pem: bytes | None = None,
        insecure: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.server = server.rstrip("/")
        self.ca_pem, self.token = ca_pem, token
        self.client_cert_pem, self.client_key_pem = client_cert_pem, client_key_pem
        self.insecure, self.timeout = insecure, timeout

    @classmethod
    def from_kubeconfig(cls, data: bytes, where: str = "kubeconfig", *, timeout: float = DEFAULT_TIMEOUT) -> APIClient:
        kc = parse_kubeconfig(data, where)
        return cls(
            kc.server,
            ca_pem=kc.ca_pem,
            token=kc.token,
            client_cert_pem=kc.client_cert_pem,
            client_key_pem=kc.client_key_pem,
            timeout=timeout,
        )

    # ---- plumbing ---------------------------------------------------------------------------------
    @contextmanager
    def _api(self) -> Iterator[Any]:
        from kubernetes import client  # imported here: only commands that talk to an API pay for it

        with tempfile.TemporaryDirectory(prefix="kbootstrap-api-") as tmp:
            cfg = client.Configuration()
            cfg.host = self.server
            cfg.retries = False  # callers poll themselves; fail fast and say why
            if self.insecure:
                # Deliberate (kubeadm's first cluster-info read): trust comes from the JWS and the CA pin.
                import urllib3

                urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
                cfg.verify_ssl = False
            elif self.ca_pem is not None:
                cfg.ssl_ca_cert = private_file(tmp, "ca.crt", self.ca_pem)
            if self.client_cert_pem and self.client_key_pem:
                cfg.cert_file = private_file(tmp, "client.crt", self.client_cert_pem)
                cfg.key_file = private_file(tmp, "client.key", self.client_key_pem)
            if self.token:
                cfg.api_key = {"authorization": self.token}
                cfg.api_key_prefix = {"authorization": "Bearer"}
            with client.ApiClient(cfg) as api:
                yield client.CoreV1Api(api)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        import urllib3
        from kubernetes.client.exceptions import ApiException

        try:
            resp = fn(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
            body = resp.data
            return json.loads(body) if body else {}
        except ApiException as exc:
            raise APIError(
                f"{what}: the API server at {self.server} answered {exc.status} {exc.reason}".rstrip(),
                status=int(exc.status or 0),
                hint=status_hint(int(exc.status or 0)),
            ) from None
        except urllib3.exceptions.HTTPError as exc:
            raise Unreachable(
                f"{what}: unable to reach the API server at {self.server}: {http_reason(exc)}",
                hint="check the endpoint and that kube-apiserver is running",
            ) from None
        except (ValueError, OSError) as exc:
            raise Unreachable(f"{what}: bad answer from {self.server}: {exc}") from None

    # ---- objects ----------------------------------------------------------------------------------
    def get_configmap(self, namespace: str, name: str) -> dict[str, Any]:
        with self._api() as v1:
            return self._call(f"failed to request the {name} ConfigMap", v1.read_namespaced_config_map, name, namespace)

    def get_secret(self, namespace: str, name: str) -> dict[str, Any]:
        with self._api() as v1:
            return self._call(
                f"failed to get the {namespace}/{name} Secret", v1.read_namespaced_secret, name, namespace
            )

    def create_secret(self, secret: dict[str, Any]) -> dict[str, Any]:
        ns, name = secret["metadata"]["namespace"], secret["metadata"]["name"]
        with self._api() as v1:
            return self._call(f"failed to create the {ns}/{name} Secret", v1.create_namespaced_secret, ns, secret)

    def replace_secret(self, secret: dict[str, Any]) -> dict[str, Any]:
        ns, name = secret["metadata"]["namespace"], secret["metadata"]["name"]
        with self._api() as v1:
            return self._call(
                f"failed to update the {ns}/{name} Secret", v1.replace_namespaced_secret, name, ns, secret
            )

    def create_or_update_secret(self, secret: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.create_secret(secret)
        except APIError as exc:
            if exc.status != 409:
                raise
            return self.replace_secret(secret)

    def delete_secret(self, namespace: str, name: str) -> None:
        with self._api() as v1:
            self._call(f"failed to delete the {namespace}/{name} Secret", v1.delete_namespaced_secret, name, namespace)

    def list_token_secrets(self) -> list[dict[str, Any]]:
        with self._api() as v1:
            out = self._call(
                "failed to list bootstrap tokens",
                v1.list_namespaced_secret,
                NAMESPACE,
                field_selector=f"type={SECRET_TYPE}",
            )
        return list(out.get("items") or [])

    def delete_node(self, name: str) -> None:
        with self._api() as v1:
            self._call(f"failed to delete Node {name}", v1.delete_node, name)


def private_file(directory: str, name: str, data: bytes) -> str:
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return path


def http_reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None) or exc
    text = str(reason)
    for known in (
        "Connection refused",
        "timed out",
        "Name or service not known",
        "No route to host",
        "CERTIFICATE_VERIFY_FAILED",
        "certificate verify failed",
    ):
        if known.lower() in text.lower():
            return known if "certif" not in known.lower() else "x509: certificate signed by unknown authority"
    return text.splitlines()[0][:200]


def status_hint(status: int) -> str | None:
    return {
        401: "the credentials were refused: an expired or deleted token, or a wrong client certificate",
        403: "the credentials are valid but not allowed to do this (RBAC)",
        404: "the object does not exist",
    }.get(status)
