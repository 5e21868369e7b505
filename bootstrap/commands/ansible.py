"""`init|join|reset -i INV --transport ansible`: playbooks/ through ansible-runner, reported as the
SSH transport reports (same table, same `-o json`, plus `"transport": "ansible"`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bootstrap.ansible.playbook import PlaybookRun, run_playbook
from bootstrap.ansible.steps import SPEC_PARAMS
from bootstrap.commands.fleet import fleet_options, render
from bootstrap.commands.report import Progress
from bootstrap.engine.result import RunResult
from bootstrap.errors import UsageError
from bootstrap.phases.tree import INIT, JOIN
from bootstrap.phases.validate import NOTE as VALIDATION
from bootstrap.validate.fleet import ValidationResult
from bootstrap.validate.netcheck import assemble_report
from bootstrap.validate.nodes import CheckResult, NodeCheck, NodeReport
from bootstrap.validate.zones import check_zones
from bootstrap.workflow.init import ZONES
from bootstrap.workflow.join import JOINED_THROUGH
from bootstrap.workflow.session import FleetPlan, check_limit, plan_fleet


def init_ansible(params: dict[str, Any], limit: list[str] | None = None) -> None:
    """playbooks/cluster.yml; same params and report as `init -i` (dry_run -> --check)."""
    _fleet_command(params, "cluster.yml", limit=limit, title="kbootstrap init (ansible)")


def join_ansible(params: dict[str, Any], limit: list[str]) -> None:
    """playbooks/scale.yml on the new hosts."""
    if not limit:
        raise UsageError("join -i needs --limit with the new hosts")
    extra = {"kbootstrap_token": params["token"]} if params.get("token") else None
    _fleet_command(params, "scale.yml", limit=limit, title="kbootstrap join (ansible)", extra=extra)


def reset_ansible(params: dict[str, Any], limit: list[str] | None = None) -> None:
    """Reset every host of the inventory (or --limit): playbooks/reset.yml."""
    _fleet_command(params, "reset.yml", limit=limit, title="kbootstrap reset (ansible)")


def _extravars(params: Mapping[str, Any], plan: FleetPlan) -> dict[str, Any]:
    spec = {k: v for k, v in params.items() if k in SPEC_PARAMS and v not in (None, "", ())}
    if spec.get("config"):
        spec["config"] = str(Path(str(spec["config"])).resolve())
    extra: dict[str, Any] = {
        "kbootstrap_params": json.loads(json.dumps(spec, default=str)),
        "kbootstrap_pki_dir": str(Path(plan.pki_dir).resolve()),
        "kbootstrap_validate": False,
    }
    if params.get("bundle"):
        extra["kbootstrap_bundle_override"] = str(Path(str(params["bundle"])).resolve())
    return extra


def _fleet_command(
    params: dict[str, Any],
    playbook: str,
    *,
    limit: list[str] | None,
    title: str,
    extra: Mapping[str, Any] | None = None,
) -> None:
    # Same validation as the SSH path, before Ansible starts: bad flags are one line, nothing runs.
    opts = fleet_options(params, limit=tuple(limit or ()))
    plan = plan_fleet(opts, JOIN if playbook == "scale.yml" else INIT)
    if limit:
        check_limit(plan.inv, limit)
    names = [h.name for h in plan.inv.hosts if not limit or h.name in limit]
    output = params.get("output", "text")
    validate = playbook == "cluster.yml" and not opts.dry_run and "validate" not in plan.skip
    progress = Progress(names, enabled=output == "text")
    with progress:
        for w in plan.inv.warnings:
            progress.warning(w)
        progress.note(f"ansible-playbook {playbook} on {len(names)} hosts")
        run = run_playbook(
            plan.inv.path,
            playbook,
            hosts=names,
            limit=limit,
            extravars={**_extravars(params, plan), **(extra or {}), "kbootstrap_validate": validate},
            forks=opts.forks,
            check=opts.dry_run,
            tofu=opts.tofu,
            become=opts.become,
            vault_password_file=opts.vault_password_file,
            on_phase=progress.phase_done,
            on_host_failed=progress.host_failed,
        )
    result = RunResult({n: run.collector.report(n) for n in names}, dry_run=opts.dry_run, seconds=run.seconds)
    result.skipped = {p: plan.reasons.get(p, "--skip-phases") for p in sorted(plan.skip)}
    if validate:
        result.notes[VALIDATION] = validation_result(run, plan, names, output)
    if playbook == "scale.yml":  # as `join -i` shapes it
        result.notes[JOINED_THROUGH] = next(iter(run.collector.etcd_sources.values()), None)
    if playbook == "cluster.yml":
        result.notes.update(run.collector.notes)
        zones = check_zones(plan.inv.hosts)
        result.notes[ZONES] = {"warnings": zones.warnings, "suggestion": zones.suggestion or None}
    extra_json: dict[str, Any] = {"transport": "ansible"}
    if playbook == "cluster.yml" and VALIDATION not in result.notes:
        extra_json[VALIDATION] = None
    render(result, output, title, extra=extra_json)  # exits 1 when a host or the validation failed
    if run.rc != 0:
        raise SystemExit(1)


def validation_result(run: PlaybookRun, plan: FleetPlan, names: list[str], output: str) -> ValidationResult:
    """The validate role's netcheck and node checks, as `init -i` reports its validation."""
    collector = run.collector

    def why_not(n: str) -> str:
        return collector.report(n).error or "not validated: failed earlier in this run"

    skipped: dict[str, str] = {}
    net = None
    if "validate/netcheck" in plan.skip:
        skipped["netcheck"] = "--skip-phases"
    else:
        seconds = max((t.seconds for t in collector.timings if t.task.startswith("Netcheck")), default=0.0)
        net = assemble_report(plan.inv, plan.cluster, collector.netcheck_facts, collector.netcheck_outputs,
                              {n: why_not(n) for n in names}, names, seconds)
    nodes = None
    if "validate/nodes" in plan.skip:
        skipped["validate"] = "--skip-phases"
    else:
        nodes = []
        for n in names:
            got = collector.validation.get(n)
            if got is None:
                nodes.append(NodeReport(n, error=why_not(n)))
                continue
            checks = [
                CheckResult(
                    NodeCheck(str(c.get("id")), str(c.get("kind")), str(c.get("subject")), why=str(c.get("why") or "")),
                    str(c.get("status")),
                    str(c.get("message") or ""),
                )
                for c in got.get("checks") or []
            ]
            nodes.append(NodeReport(n, checks))
    return ValidationResult(net, nodes, output=output, skipped=skipped)
