"""Detached compact JWS (HS256) over cluster-info's kubeconfig, as cluster-bootstrap/token/jws.

The bootstrap signer in kube-controller-manager adds `jws-kubeconfig-<token-id>` to the
kube-public/cluster-info ConfigMap for every signing token: header `{"alg":"HS256","kid":"<id>"}`,
payload dropped from the compact form ("header..signature"). A joining node recomputes it with its
token: only someone who knows the token secret could have made it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

JWS_KEY_PREFIX = "jws-kubeconfig-"
KUBECONFIG_KEY = "kubeconfig"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def protected_header(token_id: str) -> str:
    # go-jose writes the header with sorted keys and no spaces.
    return b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":"), sort_keys=True).encode())


def compute_detached_signature(content: str, token_id: str, token_secret: str) -> str:
    header = protected_header(token_id)
    signing_input = f"{header}.{b64url(content.encode())}".encode()
    # go-jose zero-pads the HMAC key to 32 bytes; HMAC pads short keys with zeros anyway, so the
    # raw secret gives the same MAC.
    mac = hmac.new(token_secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}..{b64url(mac)}"


def detached_token_is_valid(detached: str, content: str, token_id: str, token_secret: str) -> bool:
    expected = compute_detached_signature(content, token_id, token_secret)
    return hmac.compare_digest(detached.encode(), expected.encode())


def cluster_info_kubeconfig(server: str, ca_pem: bytes) -> str:
    """cluster-info's `kubeconfig`: one unnamed cluster copied from admin.conf (kubeadm clusterinfo)."""
    from bootstrap.render.kubeconfig import dump_kubeconfig

    doc: dict[str, object] = {
        "apiVersion": "v1",
        "clusters": [
            {"cluster": {"certificate-authority-data": base64.b64encode(ca_pem).decode(), "server": server}, "name": ""}
        ],
        "contexts": None,
        "current-context": "",
        "kind": "Config",
        "preferences": {},
        "users": None,
    }
    # Go's YAML writes the empty name as "" where PyYAML writes ''.
    return dump_kubeconfig(doc).decode().replace(": ''\n", ': ""\n')


def cluster_info_configmap(kubeconfig: str, signing_tokens: dict[str, str] | None = None) -> dict[str, object]:
    """The kube-public/cluster-info ConfigMap, signed for each (id -> secret) as the bootstrap signer does."""
    data = {KUBECONFIG_KEY: kubeconfig}
    for token_id, secret in (signing_tokens or {}).items():
        data[JWS_KEY_PREFIX + token_id] = compute_detached_signature(kubeconfig, token_id, secret)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cluster-info", "namespace": "kube-public"},
        "data": data,
    }
