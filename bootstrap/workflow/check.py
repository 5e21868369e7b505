"""`kbootstrap netcheck -i` and `kbootstrap validate -i`: the checks `init -i` ends with, on their own
(they connect, check, close; nothing here prints)."""

from __future__ import annotations

from bootstrap.errors import KbootstrapError
from bootstrap.phases.tree import INIT
from bootstrap.validate.fleet import ValidationResult, validate_fleet
from bootstrap.validate.netcheck import NetcheckReport, run_netcheck
from bootstrap.workflow.options import FleetOptions
from bootstrap.workflow.session import close, connect, plan_fleet


def netcheck_fleet(opts: FleetOptions) -> NetcheckReport:
    plan = plan_fleet(opts, INIT)
    conns = connect(plan.inv, [h.name for h in plan.inv.hosts], opts)
    try:
        targets = {n: c for n, c in conns.items() if not isinstance(c, KbootstrapError)}
        unreachable = {n: c.one_line() for n, c in conns.items() if isinstance(c, KbootstrapError)}
        return run_netcheck(plan.inv, plan.cluster, targets, unreachable=unreachable, forks=opts.forks)
    finally:
        close(conns)


def validate_nodes(opts: FleetOptions, *, with_netcheck: bool, output: str = "text") -> ValidationResult:
    """Every node against its spec; the skipped phases (inventory, --skip-phases) skip their checks."""
    plan = plan_fleet(opts, INIT)
    skip = set(plan.skip) | ({"validate/netcheck"} if not with_netcheck else set())
    conns = connect(plan.inv, [h.name for h in plan.inv.hosts], opts)
    try:
        targets = {n: c for n, c in conns.items() if not isinstance(c, KbootstrapError)}
        unreachable = {n: c.one_line() for n, c in conns.items() if isinstance(c, KbootstrapError)}
        result = validate_fleet(plan.inv, plan.specs, targets, bundle=plan.bundle, output=output,
                                skip_phases=skip, unreachable=unreachable, forks=opts.forks)
    finally:
        close(conns)
    if not with_netcheck:
        result.skipped.pop("netcheck", None)  # not asked for: nothing to report
    return result
