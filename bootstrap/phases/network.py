"""network: the pod network (kbootstrap's; kubeadm leaves it to the user). With kube-router, every
node gets the CNI configuration (when it has none: kube-router fills in the node's subnet and owns
the file from then on) and the first control plane applies kube-router's objects. `none` and `cni`
install nothing: the user brings a network (Cilium via Helm, ...), as after `kubeadm init`."""

from __future__ import annotations

from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import Phase
from bootstrap.engine.result import Status
from bootstrap.phases.cluster_api import apply_objects
from bootstrap.render import kuberouter

CNI_DIR_MODE = 0o755
CNI_CONF_MODE = 0o644


def run(ctx: RunContext) -> None:
    plugin = ctx.spec.network.plugin
    if plugin != "kube-router":
        ctx.skip("pod network", f"kube_network_plugin: {plugin}: bring your own network (e.g. Cilium via Helm)")
        return
    if not ctx.spec.networking.pod_subnet:
        ctx.warn("pod network", "kube-router needs the controller-manager to allocate pod subnets: "
                                "set --pod-network-cidr (kube_pods_subnet)")
    ctx.ensure_dir(kuberouter.CNI_CONF_DIR, CNI_DIR_MODE)
    if ctx.state(kuberouter.CNI_CONF_FILE) is None:
        ctx.ensure_file(kuberouter.CNI_CONF_FILE, kuberouter.cni_conflist(ctx.spec), CNI_CONF_MODE,
                        detail="bridge kube-bridge, host-local; kube-router adds the node's pod subnet")
    else:
        ctx.record(kuberouter.CNI_CONF_FILE, Status.UNCHANGED, "present (kube-router keeps the node's subnet in it)")
    assert ctx.run is not None
    if ctx.name == ctx.run.first_control_plane:
        apply_objects(ctx, kuberouter.kube_router_objects(ctx.spec))


PHASE = Phase("network", "Install the pod network (kube_network_plugin: kube-router, none or cni)", run)
