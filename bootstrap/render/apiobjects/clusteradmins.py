"""The kubeadm:cluster-admins ClusterRoleBinding (kubeadm phases/kubeconfig/kubeconfig.go,
EnsureAdminClusterRoleBinding, v1.29+).

Not a phase of its own: `kubeadm init` creates it the first time it builds an API client, after
wait-control-plane and before upload-config. admin.conf's user is in the kubeadm:cluster-admins
group, which this binds to cluster-admin, so that access can be revoked by deleting the binding
(super-admin.conf's system:masters cannot be). kubeadm first tries with admin.conf; when that is
forbidden (the binding is what would allow it) it creates it with super-admin.conf. --dry-run skips it.
"""

from __future__ import annotations

from bootstrap.pki.catalog import CLUSTER_ADMINS
from bootstrap.render.apiobjects.common import KubeObject, cluster_role_binding, group, minor
from bootstrap.spec.model import ClusterSpec


def cluster_admins_objects(spec: ClusterSpec) -> list[KubeObject]:
    """[] before v1.29, where admin.conf was still in system:masters."""
    if minor(spec) < 29:
        return []
    return [cluster_role_binding(CLUSTER_ADMINS, "cluster-admin", [group(CLUSTER_ADMINS)])]
