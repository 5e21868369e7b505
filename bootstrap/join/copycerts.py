"""kubeadm's upload-certs bundle: the shared CA files, each encrypted with AES-256-GCM under the
certificate key, in the Secret kube-system/kubeadm-certs.

Value layout (kubeadm util/crypto): nonce (12 bytes) || ciphertext || tag (16 bytes). Key names are
the file names relative to the cert dir with `/` -> `-` (etcd/ca.crt -> etcd-ca.crt).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bootstrap.errors import PKIError, UsageError
from bootstrap.spec.model import ClusterSpec

SECRET_NAME = "kubeadm-certs"
NAMESPACE = "kube-system"
CERTIFICATE_KEY_SIZE = 32
NONCE_SIZE = 12

# Stacked etcd: relative path under the cert dir -> Secret key.
LOCAL_ETCD_FILES = {
    "ca.crt": "ca.crt",
    "ca.key": "ca.key",
    "front-proxy-ca.crt": "front-proxy-ca.crt",
    "front-proxy-ca.key": "front-proxy-ca.key",
    "sa.pub": "sa.pub",
    "sa.key": "sa.key",
    "etcd/ca.crt": "etcd-ca.crt",
    "etcd/ca.key": "etcd-ca.key",
}
_BASE_FILES = {k: v for k, v in LOCAL_ETCD_FILES.items() if not k.startswith("etcd/")}


def files_to_transfer(spec: ClusterSpec) -> dict[str, str]:
    """Absolute path on a control plane -> Secret key (kubeadm certsToTransfer)."""
    cert_dir = spec.cert_dir.rstrip("/")
    if spec.etcd_external is None:
        return {f"{cert_dir}/{rel}": key for rel, key in LOCAL_ETCD_FILES.items()}
    out = {f"{cert_dir}/{rel}": key for rel, key in _BASE_FILES.items()}
    ext = spec.etcd_external
    for path, key in (
        (ext.ca_file, "external-etcd-ca.crt"),
        (ext.cert_file, "external-etcd.crt"),
        (ext.key_file, "external-etcd.key"),
    ):
        if path:
            out[path] = key
    return out


def parse_certificate_key(text: str) -> bytes:
    try:
        key = binascii.unhexlify(text.strip())
    except (binascii.Error, ValueError):
        raise UsageError(
            "error decoding certificate key: not hex",
            hint="use the 64 hex characters printed by `kbootstrap certs certificate-key`",
        ) from None
    if len(key) != CERTIFICATE_KEY_SIZE:
        raise UsageError(
            f"the certificate key must be {CERTIFICATE_KEY_SIZE} bytes (64 hex characters), got {len(key)} bytes"
        )
    return key


def encrypt(key: bytes, data: bytes) -> bytes:
    nonce = os.urandom(NONCE_SIZE)
    return nonce + AESGCM(key).encrypt(nonce, data, None)


def decrypt(key: bytes, blob: bytes) -> bytes:
    if len(blob) < NONCE_SIZE:
        raise PKIError("data to decrypt is too small")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], None)
    except InvalidTag:
        raise PKIError(
            "error decrypting the kubeadm-certs Secret: cipher: message authentication failed",
            hint="the --certificate-key does not match the uploaded certificates; "
            "upload them again and use the key printed then",
        ) from None


def kubeadm_certs_secret(
    files: Mapping[str, bytes | None],
    key: bytes,
    *,
    owner_token_secret: str | None = None,
    owner_uid: str | None = None,
) -> dict[str, Any]:
    """files: Secret key -> content (None or b"" when the file is missing: stored empty, as kubeadm)."""
    data = {
        name: base64.b64encode(encrypt(key, content) if content else b"").decode() for name, content in files.items()
    }
    meta: dict[str, Any] = {"name": SECRET_NAME, "namespace": NAMESPACE}
    if owner_token_secret:
        # Garbage-collected with the short-lived token (kubeadm's 2 h TTL for uploaded certs).
        ref: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "name": owner_token_secret, "controller": True}
        if owner_uid:
            ref["uid"] = owner_uid
        meta["ownerReferences"] = [ref]
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": meta, "data": data}


def decrypt_secret(secret: Mapping[str, Any], key: bytes, wanted: Mapping[str, str]) -> dict[str, bytes]:
    """wanted: path -> Secret key. Returns path -> plaintext; empty values are skipped (kubeadm)."""
    data = secret.get("data") or {}
    out: dict[str, bytes] = {}
    for path, name in wanted.items():
        if name not in data:
            raise PKIError(
                f"couldn't find required certificate or key in Secret: {name}",
                hint="upload the certificates again (`kubeadm init phase upload-certs --upload-certs`)",
            )
        blob = base64.b64decode(data[name] or "")
        if blob:
            out[path] = decrypt(key, blob)
    return out
