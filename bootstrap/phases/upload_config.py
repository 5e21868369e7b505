"""upload-config: kubeadm-config and kubelet-config in kube-system, with the Roles that let joining
nodes read them (kubeadm phases/uploadconfig), on the first control plane.

Before them, the kubeadm:cluster-admins binding (kubeadm makes it the first time it builds a client,
after wait-control-plane): admin.conf's group is bound to cluster-admin, so admin.conf works from here on.
"""

from __future__ import annotations

from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import FIRST_CONTROL_PLANE, Phase
from bootstrap.engine.result import Status
from bootstrap.kube.api import UNCHANGED
from bootstrap.phases import kubelet
from bootstrap.phases.cluster_api import apply_objects, cluster_api, offline
from bootstrap.render.apiobjects import clusteradmins, uploadconfig
from bootstrap.render.kubelet import kubelet_config


def run_kubeadm(ctx: RunContext) -> None:
    apply_objects(ctx, clusteradmins.cluster_admins_objects(ctx.spec) + uploadconfig.kubeadm_config_objects(ctx.spec))


def run_kubelet(ctx: RunContext) -> None:
    # The configuration kubelet-start wrote on this node, as kubeadm uploads its in-memory copy.
    node_config, _ = kubelet_config(ctx.spec, systemd_resolved=kubelet.systemd_resolved_active(ctx))
    apply_objects(ctx, uploadconfig.kubelet_config_objects(ctx.spec, node_config))
    patch = uploadconfig.cri_socket_annotation_patch(ctx.spec)
    if patch is None:
        return
    item = f"Node {ctx.spec.node.name} annotation {uploadconfig.CRI_SOCKET_ANNOTATION}"
    why = offline(ctx)
    if why is not None:
        ctx.record(item, Status.SKIPPED, why)
        return
    status = cluster_api(ctx).patch("v1", "Node", ctx.spec.node.name, patch)
    ctx.record(item, Status.UNCHANGED if status == UNCHANGED else Status.UPDATED)


def run(ctx: RunContext) -> None:
    run_kubeadm(ctx)
    run_kubelet(ctx)


PHASE = Phase(
    "upload-config",
    "Upload the kubeadm and kubelet configuration to a ConfigMap",
    run,
    children=(
        Phase("kubeadm", "Upload the kubeadm ClusterConfiguration to a ConfigMap", run_kubeadm),
        Phase("kubelet", "Upload the kubelet component config to a ConfigMap", run_kubelet),
    ),
    hosts=FIRST_CONTROL_PLANE,
    needs_api_server=True,
)
