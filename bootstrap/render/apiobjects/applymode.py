"""How kubeadm writes each object it creates (kubeadm util/apiclient/idempotency.go and the callers).

- create-or-update: create; if it exists, replace it with ours (Update). Almost everything.
- create-or-mutate: create; if it exists, read it, change only our keys, write it back. kubeadm-config:
  `kubeadm upgrade` rewrites ClusterConfiguration and any other key survives.
- create-or-retain: create only if it is missing. The CoreDNS ConfigMap once it has been customised:
  kubeadm replaces a Corefile only when it is kubeadm's own default (corefile-migration); keeping an
  existing one is the safe half of that rule (for a fresh cluster both write the same).

The upload-certs token is the one object kubeadm refuses to overwrite (CreateNewTokens: an existing
token id is an error); it is freshly random, so create-or-update writes the same.

Node changes are patches, not objects: markcontrolplane and uploadconfig.cri_socket_annotation_patch.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from bootstrap.render.apiobjects import coredns, uploadconfig
from bootstrap.render.apiobjects.common import KUBE_SYSTEM


class ApplyMode(StrEnum):
    CREATE_OR_UPDATE = "create-or-update"
    CREATE_OR_MUTATE = "create-or-mutate"
    CREATE_OR_RETAIN = "create-or-retain"


# (kind, namespace, name) -> mode, where it is not create-or-update.
_EXCEPTIONS = {
    ("ConfigMap", KUBE_SYSTEM, uploadconfig.KUBEADM_CONFIG): ApplyMode.CREATE_OR_MUTATE,
    ("ConfigMap", KUBE_SYSTEM, coredns.COREDNS): ApplyMode.CREATE_OR_RETAIN,
}
# create-or-mutate: the keys kubeadm sets on the existing object.
MUTATED_KEYS = {
    ("ConfigMap", KUBE_SYSTEM, uploadconfig.KUBEADM_CONFIG): ("data", uploadconfig.CLUSTER_CONFIGURATION_KEY),
}


def apply_mode(obj: Mapping[str, Any]) -> ApplyMode:
    meta = obj.get("metadata") or {}
    return _EXCEPTIONS.get((obj.get("kind", ""), meta.get("namespace", ""), meta.get("name", "")),
                           ApplyMode.CREATE_OR_UPDATE)
