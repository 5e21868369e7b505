"""Shared pieces: the spec's Kubernetes minor, object builders kubeadm uses again and again, Go's
duration text and Go's YAML.

The minor is read from spec.kubernetes_version here rather than through spec.version, so these
renderers follow kubeadm's behaviour for every minor we know of, whatever bootstrap/versions.py
already lists.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from bootstrap.render.podspec import to_yaml
from bootstrap.spec.model import ClusterSpec

KubeObject = dict[str, Any]

KUBE_SYSTEM = "kube-system"
KUBE_PUBLIC = "kube-public"
RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_V1 = f"{RBAC_GROUP}/v1"

# kubeadm constants.go
NODES_GROUP = "system:nodes"
NODE_BOOTSTRAP_TOKEN_GROUP = "system:bootstrappers:kubeadm:default-node-token"
COMPONENT_CONFIG_HASH_ANNOTATION = "kubeadm.kubernetes.io/component-config.hash"
DEFAULT_IMAGE_REPOSITORY = "registry.k8s.io"

_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")


def version_parts(spec: ClusterSpec) -> tuple[int, int, int]:
    m = _VERSION_RE.match(spec.kubernetes_version.strip())
    if not m:
        raise ValueError(f"{spec.kubernetes_version!r} is not a Kubernetes version (vMAJOR.MINOR.PATCH)")
    return int(m[1]), int(m[2]), int(m[3])


def minor(spec: ClusterSpec) -> int:
    return version_parts(spec)[1]


def kubernetes_version(spec: ClusterSpec) -> str:
    """vX.Y.Z, as kubeadm normalises it (also the tag of the images built from kubernetes/kubernetes)."""
    major, mnr, patch = version_parts(spec)
    return f"v{major}.{mnr}.{patch}"


def configmap(name: str, namespace: str, data: Mapping[str, str], *, labels: Mapping[str, str] | None = None,
              annotations: Mapping[str, str] | None = None) -> KubeObject:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": dict(data)}


def get_role(name: str, namespace: str, resource: str, resource_name: str) -> KubeObject:
    """A Role granting `get` on one named object: kubeadm's shape for every config it shares."""
    return {
        "apiVersion": RBAC_V1,
        "kind": "Role",
        "metadata": {"name": name, "namespace": namespace},
        "rules": [{"apiGroups": [""], "resources": [resource], "resourceNames": [resource_name], "verbs": ["get"]}],
    }


# kubeadm leaves a User or Group subject's apiGroup empty; the API server defaults it to RBAC's.
def group(name: str) -> dict[str, str]:
    return {"kind": "Group", "name": name}


def user(name: str) -> dict[str, str]:
    return {"kind": "User", "name": name}


def service_account(name: str, namespace: str) -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def role_binding(name: str, namespace: str, role: str, subjects: Sequence[Mapping[str, str]]) -> KubeObject:
    return {
        "apiVersion": RBAC_V1,
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": role},
        "subjects": [dict(s) for s in subjects],
    }


def cluster_role_binding(name: str, cluster_role: str, subjects: Sequence[Mapping[str, str]]) -> KubeObject:
    return {
        "apiVersion": RBAC_V1,
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": cluster_role},
        "subjects": [dict(s) for s in subjects],
    }


def go_yaml(doc: Mapping[str, Any]) -> str:
    """The YAML sigs.k8s.io/yaml writes for a config document: sorted keys, Go's quoting."""
    return to_yaml(dict(doc), creation_timestamp=False).decode()


def component_config_hash(data: Mapping[str, str]) -> str:
    """kubeadm componentconfigs.ChecksumForConfigMap: sha256 over the values in key order."""
    digest = hashlib.sha256()
    for key in sorted(data):
        digest.update(data[key].encode())
    return f"sha256:{digest.hexdigest()}"


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` wins; nested mappings merge (how a user's config document lands on kubeadm's struct)."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
