"""mark-control-plane: each control plane's Node gets kubeadm's control-plane labels and taints
(phases/markcontrolplane), once its kubelet has registered it. A Node already marked is left as is."""

from __future__ import annotations

from typing import Any

from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import CONTROL_PLANES, Phase
from bootstrap.engine.result import Status
from bootstrap.kube.api import UNCHANGED, wait_for
from bootstrap.phases.cluster_api import cluster_api, offline
from bootstrap.render.apiobjects import markcontrolplane as mark

NODE_REGISTER_TIMEOUT = 240.0  # kubeadm waits as long for the kubelet's own registration


def wait_for_node(ctx: RunContext, timeout: float = NODE_REGISTER_TIMEOUT) -> dict[str, Any]:
    """The Node object once the kubelet has registered it (with its hostname label)."""
    api = cluster_api(ctx)
    name = ctx.spec.node.name

    def registered() -> dict[str, Any] | None:
        node = api.get("v1", "Node", name)
        return node if node is not None and mark.node_ready_to_mark(node) else None

    return wait_for(f"the kubelet on {ctx.name} registering Node {name}", registered, timeout=timeout,
                    stopping=lambda: ctx.stopping)


def run(ctx: RunContext) -> None:
    item = f"Node {ctx.spec.node.name}"
    taints = mark.control_plane_taints(ctx.spec)
    why = offline(ctx)
    if why is not None:
        what = f"labels {', '.join(mark.CONTROL_PLANE_LABELS)}" + (
            f"; taints {', '.join(mark.taint_text(t) for t in taints)}" if taints else "")
        ctx.record(item, Status.UPDATED if ctx.dry_run else Status.SKIPPED, f"{why}: {what}" if ctx.dry_run else why)
        return
    node = wait_for_node(ctx)
    patch = mark.mark_control_plane_patch(node, taints)
    if not patch:
        ctx.record(item, Status.UNCHANGED, "control-plane labels and taints in place")
        return
    status = cluster_api(ctx).patch("v1", "Node", ctx.spec.node.name, patch)
    parts = [k for k in ("metadata", "spec") if k in patch]
    ctx.record(item, Status.UNCHANGED if status == UNCHANGED else Status.UPDATED,
               " and ".join({"metadata": "control-plane labels", "spec": "taints"}[k] for k in parts))


PHASE = Phase("mark-control-plane", "Mark a node as a control-plane", run, hosts=CONTROL_PLANES,
              needs_api_server=True)
