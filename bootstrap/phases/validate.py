"""The validate phase: what `init -i` ends with, on the connections the run already holds.

netcheck (names, pings, ports every peer's role must serve) and the node checks of `kbootstrap
validate`; a cluster step each, run once on the control machine over every host of the run. Their
findings are the run's `validation` (not host failures): a host that could not be reached, or failed
earlier in the run, is a failure in both reports.
"""

from __future__ import annotations

from bootstrap.engine.phase import Phase
from bootstrap.engine.runner import RunState
from bootstrap.validate.fleet import ValidationResult, validate_fleet

NOTE = "validation"


def validate_run(run: RunState, names: list[str]) -> None:
    skipped = run.result.skipped
    netcheck, nodes = "validate/netcheck" not in skipped, "validate/nodes" not in skipped
    if run.dry_run or run.inventory is None:
        return
    contexts = {n: c for n, c in run.contexts.items() if c.live}
    if not contexts:
        run.result.skipped.setdefault("validate", "not live hosts (--rootfs): nothing runs to be validated")
        return
    result: ValidationResult = validate_fleet(
        run.inventory,
        {n: c.spec for n, c in contexts.items()},
        {n: c.target for n, c in contexts.items() if n in run.alive()},
        bundle=next((c.bundle for c in contexts.values()), None),
        skip_phases=set(run.result.skipped),
        unreachable={n: run.result.hosts[n].error or "failed earlier in this run" for n in run.nodes
                     if n not in run.alive()},
        forks=run.forks,
        netcheck=netcheck,
        nodes=nodes,
    )
    run.result.notes[NOTE] = result


PHASE = Phase(
    "validate",
    "Check what the run built: netcheck from every node, then the node checks",
    children=(
        Phase("netcheck", "DNS, ping and port matrix from every node to every node"),
        Phase("nodes", "testinfra checks of every node against the spec"),
    ),
    cluster_step=validate_run,
    fleet_only=True,
)
