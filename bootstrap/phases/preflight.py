"""The preflight phase: kubeadm's checks on the node, errors stop the run unless ignored."""

from __future__ import annotations

from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import Phase
from bootstrap.engine.result import Status
from bootstrap.errors import PreflightError
from bootstrap.validate.preflight import check_names, ignored, parse_results, preflight_script


def run(ctx: RunContext) -> None:
    spec = ctx.spec
    control_plane = ctx.is_control_plane
    result = ctx.fact(preflight_script(spec, control_plane=control_plane))
    if result is None:
        for name in check_names(spec, control_plane=control_plane):
            ctx.skip(name, "not a live host (--rootfs): checks of ports, swap, sysctls and CPUs do not apply")
        return
    errors = []
    for check in parse_results(result.stdout):
        if check.severity == "ok":
            ctx.record(check.name, Status.UNCHANGED, check.message)
        elif check.severity == "warning" or ignored(check.name, spec.node.ignore_preflight_errors):
            ctx.warn(check.name, check.message)
        else:
            ctx.record(check.name, Status.FAILED, check.message)
            errors.append(f"[ERROR {check.name}]: {check.message}")
    if errors:
        names = ",".join(e.split("]")[0].removeprefix("[ERROR ") for e in errors)
        raise PreflightError(
            "preflight: " + "; ".join(errors),
            hint=f"fix them, or pass --ignore-preflight-errors={names}",
        )


PHASE = Phase("preflight", "Run pre-flight checks", run)
