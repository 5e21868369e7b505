"""`init phase kubeconfig`: admin, super-admin (v1.29+), kubelet, controller-manager, scheduler.

The group run renders every file in one pass with the client keys generated in parallel; a child
run renders one. Both go through render.kubeconfig.ensure_kubeconfigs, so results are identical.
As kubeadm: super-admin.conf (system:masters) exists only on the control plane where the cluster
was initialised; control planes that join get what `kubeadm join --control-plane` writes.
"""

from __future__ import annotations

from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import CONTROL_PLANES, Phase
from bootstrap.phases.certs import pki_paths
from bootstrap.render.kubeconfig import ALL_KUBECONFIGS, GROUP_HELP, SUPER_ADMIN, ensure_kubeconfigs

JOIN_KUBECONFIGS = ("admin", "kubelet", "controller-manager", "scheduler")  # never super-admin.conf on join


def _init_node(ctx: RunContext) -> bool:
    return ctx.run is None or ctx.run.first_control_plane in ("", ctx.spec.node.name, ctx.name)


def run_all(ctx: RunContext) -> None:
    ctx.prefetch(pki_paths(ctx.spec))
    init = _init_node(ctx)
    ensure_kubeconfigs(ctx, [k.name for k in ALL_KUBECONFIGS if init or k is not SUPER_ADMIN])


def _child(name: str, help_text: str) -> Phase:
    def run(ctx: RunContext) -> None:
        if name == SUPER_ADMIN.name and not _init_node(ctx):
            ctx.skip(SUPER_ADMIN.path(), "only on the control plane where the cluster was initialised (as kubeadm)")
            return
        ensure_kubeconfigs(ctx, [name], parallel=False)

    return Phase(name, help_text, run=run)


def run_join(ctx: RunContext) -> None:
    ctx.prefetch(pki_paths(ctx.spec))
    ensure_kubeconfigs(ctx, list(JOIN_KUBECONFIGS))


PHASE = Phase(
    "kubeconfig",
    GROUP_HELP,
    run=run_all,
    children=tuple(_child(k.name, k.help) for k in ALL_KUBECONFIGS),
    hosts=CONTROL_PLANES,
)
# `join -i`: what `kubeadm join --control-plane` writes, one pass (no super-admin.conf).
JOIN = Phase("kubeconfig", GROUP_HELP, run=run_join, hosts=CONTROL_PLANES)
