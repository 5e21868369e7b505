"""network: the pod network (kbootstrap's; kubeadm leaves it to the user), on the first control plane.
With kube-router its objects are applied; its DaemonSet installs the CNI configuration on every
node. `none` and `cni` install nothing: the user brings a network (Cilium via Helm, ...), as after
`kubeadm init`."""

from __future__ import annotations

from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import FIRST_CONTROL_PLANE, Phase
from bootstrap.phases.cluster_api import apply_objects
from bootstrap.render import kuberouter


def run(ctx: RunContext) -> None:
    plugin = ctx.spec.network.plugin
    if plugin != "kube-router":
        ctx.skip("pod network", f"kube_network_plugin: {plugin}: bring your own network (e.g. Cilium via Helm)")
        return
    if not ctx.spec.networking.pod_subnet:
        ctx.warn("pod network", "kube-router needs the controller-manager to allocate pod subnets: "
                                "set --pod-network-cidr (kube_pods_subnet)")
    apply_objects(ctx, kuberouter.kube_router_objects(ctx.spec))


PHASE = Phase("network", "Install the pod network (kube_network_plugin: kube-router, none or cni)", run,
              hosts=FIRST_CONTROL_PLANE, needs_api_server=True)
