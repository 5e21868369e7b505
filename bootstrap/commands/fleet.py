"""The fleet commands' shared edge: click params -> FleetOptions, a workflow run with progress,
the result rendered as text or JSON, and the exit code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from bootstrap.commands.common import emit
from bootstrap.commands.report import Progress, fleet_json, fleet_summary
from bootstrap.engine.result import RunResult
from bootstrap.phases.validate import NOTE as VALIDATION
from bootstrap.spec.inventory import load_inventory
from bootstrap.workflow.init import ZONES
from bootstrap.workflow.options import DEFAULT_FORKS, Events, FleetOptions


def split_list(text: str | None) -> tuple[str, ...]:
    return tuple(s.strip() for s in (text or "").split(",") if s.strip())


def fleet_options(params: dict[str, Any], **overrides: Any) -> FleetOptions:
    """The one place click's params become a fleet run's options."""
    values: dict[str, Any] = {
        "inventory": params["inventory"],
        "flags": dict(params),
        "forks": int(params.get("forks") or DEFAULT_FORKS),
        "tofu": bool(params.get("trust_on_first_use")),
        "dry_run": bool(params.get("dry_run")),
        "pki_dir": params.get("pki_dir"),
        "bundle": params.get("bundle"),
        "upstream_url": params.get("upstream_url"),
        "skip": split_list(params.get("skip_phases")),
        "rootfs": params.get("rootfs"),
        "token": params.get("token"),
        "upload_certs": bool(params.get("upload_certs")),
        "certificate_key": params.get("certificate_key"),
        "vault_password_file": params.get("vault_password_file"),
        "become": bool(params.get("become")),
    }
    values.update(overrides)
    return FleetOptions(**values)


def run_and_report(
    opts: FleetOptions,
    output: str,
    title: str,
    work: Callable[[FleetOptions, Events], RunResult],
    *,
    hosts: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> RunResult:
    """Run a fleet workflow with per-host progress, print its result, exit 1 if anything failed."""
    inv = load_inventory(opts.inventory, opts.vault_password_file)
    names = [h.name for h in inv.hosts if not opts.limit or h.name in opts.limit]
    progress = Progress(hosts if hosts is not None else names, enabled=output == "text")
    with progress:
        result = work(opts, progress.events())
    render(result, output, title, extra=extra)
    return result


def render(result: RunResult, output: str, title: str, *, extra: dict[str, Any] | None = None) -> None:
    validation = result.notes.get(VALIDATION)
    zones = result.notes.get(ZONES)
    if output == "text" and isinstance(zones, dict):
        for w in zones.get("warnings") or []:
            click.echo(f"warning: {w}", err=True)

    def text() -> str:
        out = fleet_summary(result, title)
        if validation is not None:
            out += f"\n\n{validation.text()}\n(validation took {validation.seconds:.1f}s)"
        return out

    data = fleet_json(result, **(extra or {}))
    emit(output, data, text)
    if result.failed or (validation is not None and validation.failed):
        raise SystemExit(1)
