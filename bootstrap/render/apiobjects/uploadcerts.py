"""upload-certs: the shared CA files, encrypted, in kube-system/kubeadm-certs (kubeadm
phases/copycerts/copycerts.go UploadCerts).

kubeadm first creates a bootstrap token with a 2 h TTL and no usages or groups (it authenticates
nobody), then makes that token's Secret the controller owner of kubeadm-certs: when the token
expires the token cleaner deletes its Secret and the garbage collector deletes the certificates
with it. The owner reference needs the token Secret's UID, which only the API server assigns, so
this takes two steps:

    1. create upload_certs_token(token, now)
    2. read back its metadata.uid, create kubeadm_certs_objects(files, key, owner_token=token, owner_uid=uid)

The values are AES-256-GCM under the certificate key (bootstrap.join.copycerts.encrypt: random
nonce, so two renders differ; decrypt to compare).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bootstrap.join import copycerts
from bootstrap.join.tokens import CERT_TOKEN_DESCRIPTION, CERT_TOKEN_TTL, BootstrapToken, Token
from bootstrap.render.apiobjects.common import (
    KUBE_SYSTEM,
    NODE_BOOTSTRAP_TOKEN_GROUP,
    KubeObject,
    get_role,
    group,
    role_binding,
)
from bootstrap.spec.model import ClusterSpec, EtcdMode

KUBEADM_CERTS = copycerts.SECRET_NAME
KUBEADM_CERTS_ROLE = f"kubeadm:{KUBEADM_CERTS}"


def upload_certs_token(token: Token, now: datetime) -> KubeObject:
    """The short-lived token Secret whose expiry removes kubeadm-certs (kubeadm createShortLivedBootstrapToken)."""
    return BootstrapToken(token, CERT_TOKEN_DESCRIPTION, CERT_TOKEN_TTL, usages=(), groups=()).secret(now)


def files_to_upload(spec: ClusterSpec) -> dict[str, str]:
    """Secret key -> absolute path on this control plane (kubeadm certsToTransfer): the files to read.
    etcd in host mode is an external etcd to kubeadm (kubeadm-config says so): its join then reads
    the external-etcd-* keys, so they go in as well, beside the etcd CA kbootstrap's own join uses."""
    out = {key: path for path, key in copycerts.files_to_transfer(spec).items()}
    for key, path in host_etcd_as_external(spec).items():
        out.setdefault(key, path)
    return out


def host_etcd_as_external(spec: ClusterSpec) -> dict[str, str]:
    """The external-etcd-* Secret keys and their files, for etcd in host mode ({} otherwise)."""
    if spec.etcd_mode != EtcdMode.HOST or spec.etcd_external is not None:
        return {}
    pki = spec.cert_dir.rstrip("/")
    return {"external-etcd-ca.crt": f"{pki}/etcd/ca.crt", "external-etcd.crt": f"{pki}/apiserver-etcd-client.crt",
            "external-etcd.key": f"{pki}/apiserver-etcd-client.key"}


def kubeadm_certs_secret(files: Mapping[str, bytes | None], certificate_key: bytes, *, owner_token: Token,
                         owner_uid: str) -> KubeObject:
    """files: Secret key -> file content; None or b"" for a file that is missing on disk, which kubeadm
    stores empty (it sends null; "" is the same to the API server and to every reader)."""
    data = {name: _b64(copycerts.encrypt(certificate_key, content)) if content else ""
            for name, content in files.items()}
    # metav1.NewControllerRef: controller and blockOwnerDeletion both set.
    owner: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "name": owner_token.secret_name, "uid": owner_uid,
                             "controller": True, "blockOwnerDeletion": True}
    # No type: kubeadm leaves it empty and the API server makes it Opaque.
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": KUBEADM_CERTS, "namespace": KUBE_SYSTEM, "ownerReferences": [owner]},
            "data": dict(sorted(data.items()))}


def kubeadm_certs_rbac() -> list[KubeObject]:
    """Joining control planes read kubeadm-certs with a bootstrap token of the default group."""
    return [
        get_role(KUBEADM_CERTS_ROLE, KUBE_SYSTEM, "secrets", KUBEADM_CERTS),
        role_binding(KUBEADM_CERTS_ROLE, KUBE_SYSTEM, KUBEADM_CERTS_ROLE, [group(NODE_BOOTSTRAP_TOKEN_GROUP)]),
    ]


def kubeadm_certs_objects(files: Mapping[str, bytes | None], certificate_key: bytes, *, owner_token: Token,
                          owner_uid: str) -> list[KubeObject]:
    """Step 2, in kubeadm's order: the Secret, its Role, its RoleBinding."""
    return [kubeadm_certs_secret(files, certificate_key, owner_token=owner_token, owner_uid=owner_uid),
            *kubeadm_certs_rbac()]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
