"""addon: CoreDNS and kube-proxy as kubeadm installs them (phases/addons), on the first control plane.

A CoreDNS ConfigMap that is already there is kept (someone may have customised the Corefile; kubeadm
rewrites only its own default). kube-proxy takes the config file's KubeProxyConfiguration, if any.
"""

from __future__ import annotations

from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import FIRST_CONTROL_PLANE, Phase
from bootstrap.phases.cluster_api import apply_objects
from bootstrap.render.apiobjects import coredns, kubeproxy


def run_coredns(ctx: RunContext) -> None:
    apply_objects(ctx, coredns.coredns_objects(ctx.spec))


def run_kube_proxy(ctx: RunContext) -> None:
    if ctx.spec.network.run_service_proxy:
        ctx.skip("kube-proxy", "kube-router runs the Services (kube_router_run_service_proxy)")
        return
    _, warnings = kubeproxy.kube_proxy_configuration(ctx.spec, ctx.spec.kube_proxy_configuration or None)
    for warning in warnings:
        ctx.warn("KubeProxyConfiguration", warning)
    apply_objects(ctx, kubeproxy.kube_proxy_objects(ctx.spec, ctx.spec.kube_proxy_configuration or None))


PHASE = Phase(
    "addon",
    "Install required addons for passing conformance tests",
    None,
    children=(
        Phase("coredns", "Install the CoreDNS addon to a Kubernetes cluster", run_coredns),
        Phase("kube-proxy", "Install the kube-proxy addon to a Kubernetes cluster", run_kube_proxy),
    ),
    hosts=FIRST_CONTROL_PLANE,
    needs_api_server=True,
)
