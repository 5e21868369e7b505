"""`init phase kubeconfig`: admin, super-admin (v1.29+), kubelet, controller-manager, scheduler.

The group run renders every file in one pass with the client keys generated in parallel; a child
run renders one. Both go through render.kubeconfig.ensure_kubeconfigs, so results are identical.
"""

from __future__ import annotations

from bootstrap.phases.base import Phase
from bootstrap.render.kubeconfig import ALL_KUBECONFIGS, GROUP_HELP, ensure_kubeconfigs
from bootstrap.workflow.context import RunContext


def run_all(ctx: RunContext) -> None:
    ensure_kubeconfigs(ctx)


def _child(name: str, help_text: str) -> Phase:
    def run(ctx: RunContext) -> None:
        ensure_kubeconfigs(ctx, [name], parallel=False)

    return Phase(name, help_text, run=run)


PHASE = Phase(
    "kubeconfig",
    GROUP_HELP,
    run=run_all,
    children=tuple(_child(k.name, k.help) for k in ALL_KUBECONFIGS),
)
