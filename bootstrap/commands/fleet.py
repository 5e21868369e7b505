"""`kbootstrap init -i INVENTORY`: the whole cluster over SSH, phase by phase, hosts in parallel."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from bootstrap.commands.common import emit
from bootstrap.errors import UsageError
from bootstrap.spec.inventory import Inventory, load_inventory
from bootstrap.transport.base import Target
from bootstrap.transport.cache import ReadAheadTarget
from bootstrap.validate.fleet import VALIDATE_PHASES, validate_fleet
from bootstrap.validate.zones import check_zones
from bootstrap.workflow.cluster import (
    SharedPKI,
    artifact_base_url,
    bundle_for,
    etcd_members,
    fleet_cluster_spec,
    fleet_phase_paths,
    fleet_phases,
    node_spec,
)
from bootstrap.workflow.context import RunContext
from bootstrap.workflow.fleet import FleetRun
from bootstrap.workflow.report import HostReport, PhaseResult, Status


def connect(inv: Inventory, names: list[str], forks: int, tofu: bool) -> dict[str, Any]:
    from bootstrap.transport.ssh import SSHHost, connect_all

    known = tuple(str(p) for p in (inv.known_hosts, Path.home() / ".ssh" / "known_hosts") if p is not None)
    hosts = [
        SSHHost(
            name=h.name,
            address=h.address,
            port=h.port,
            user=h.user,
            key_file=h.key_file,
            become=h.become,
            known_hosts=known,
        )
        for h in inv.hosts
        if h.name in names
    ]
    return connect_all(hosts, forks=forks, tofu=tofu)


def run_fleet_init(params: dict[str, Any], limit: list[str] | None = None, *, only: str | None = None) -> None:
    """only: a phase path (`kernel`, `binaries/kubectl`): run that phase alone (`init phase NAME -i`)."""
    inv = load_inventory(params["inventory"])
    first_cp = inv.control_planes()[0]
    skip_from_inv = inv.vars.get("kbootstrap_skip_phases") or []
    cluster = fleet_cluster_spec(params, inv)
    zones = check_zones(inv.hosts)
    bundle = bundle_for(inv, params.get("bundle"))
    base_url = artifact_base_url(inv, params.get("upstream_url"))
    pki_dir = Path(params.get("pki_dir") or Path("pki") / inv.path.parent.name)
    shared = SharedPKI(pki_dir)
    dry_run = bool(params.get("dry_run"))
    phases = fleet_phases(cluster, shared, first_cp.name, dry_run)
    known = set(fleet_phase_paths(phases)) | set(VALIDATE_PHASES)
    requested = [s for s in (params.get("skip_phases") or "").split(",") if s.strip()]
    skip = set()
    if only is not None:
        if only not in known:
            raise UsageError(f"unknown phase {only!r}", hint="valid: " + ", ".join(sorted(known)))
        phases = [fp for fp in phases if only == fp.phase.name or only.startswith(fp.phase.name + "/")]
        siblings = [p for fp in phases for p, _ in fp.phase.walk()]
        skip |= {p for p in siblings if p != only and not p.startswith(only + "/") and not only.startswith(p + "/")}
    for name in [*requested, *cluster.skip_phases, *skip_from_inv]:
        name = name.strip().removesuffix("/all")
        if name not in known:
            raise UsageError(f"--skip-phases: unknown phase {name!r}", hint="valid: " + ", ".join(sorted(known)))
        skip.add(name)

    names = [h.name for h in inv.hosts if not limit or h.name in limit]
    output = params.get("output", "text")
    progress = Progress(names, enabled=output == "text")
    started = time.monotonic()
    with progress:
        progress.note(f"connecting to {len(names)} hosts")
        conns = connect(inv, names, int(params.get("forks") or 64), bool(params.get("trust_on_first_use")))
        members = etcd_members(inv)
        reports = {n: HostReport(n) for n in names}
        targets: dict[str, Target] = {}
        contexts = {}
        for n in names:
            c = conns[n]
            if isinstance(c, Exception):
                reports[n].error = c.one_line() if hasattr(c, "one_line") else str(c)
                progress.host_failed(n, reports[n].error or "")
                continue
            targets[n] = ReadAheadTarget(c)
            host = inv.host(n)
            contexts[n] = RunContext(
                node_spec(cluster, host, members),
                targets[n],
                dry_run=dry_run,
                bundle=bundle,
                roles=host.roles,
                artifact_base_url=base_url,
            )
        run = FleetRun(
            {n: inv.host(n) for n in names},
            targets,
            contexts,
            reports,
            forks=int(params.get("forks") or 64),
            on_phase=progress.phase_done,
        )
        try:
            run.run(phases, skip)
            provisioned = time.monotonic() - started
            validation = None
            if not dry_run and only is None and "validate" not in skip:
                progress.note("validating: netcheck and node checks")
                live = {n: t for n, t in targets.items() if not reports[n].failed}
                validation = validate_fleet(
                    inv,
                    cluster,
                    live,
                    bundle=bundle,
                    output=output,
                    skip_phases=skip,
                    unreachable={n: reports[n].error or "failed earlier in this run" for n in names if n not in live},
                    forks=int(params.get("forks") or 64),
                )
        finally:
            for t in targets.values():
                close = getattr(t, "close", None)
                if close:
                    close()
    elapsed = provisioned
    inv_reason = str(inv.vars.get("kbootstrap_skip_reason") or "set in the inventory (kbootstrap_skip_phases)")
    skipped = {p: (inv_reason if p in skip_from_inv and p not in requested else "--skip-phases") for p in sorted(skip)}
    if zones.warnings and output == "text":
        for w in zones.warnings:
            click.echo(f"warning: {w}", err=True)
    data = {
        "hosts": {n: reports[n].to_json() for n in names},
        "skipped_phases": skipped,
        "dry_run": dry_run,
        "seconds": round(elapsed, 2),  # provisioning; validation reports its own
        "validation": validation.to_json() if validation is not None else None,
        "zones": {"warnings": zones.warnings, "suggestion": zones.suggestion or None},
    }

    def text() -> str:
        out = summary(reports, skipped, dry_run, elapsed)
        return out + (f"\n\n{validation.text()}\n(validation took {validation.seconds:.1f}s)" if validation else "")

    emit(output, data, text)
    if any(r.failed for r in reports.values()) or (validation is not None and validation.failed):
        raise SystemExit(1)


def summary(
    reports: dict[str, HostReport],
    skipped: dict[str, str],
    dry_run: bool,
    elapsed: float,
    title: str = "kbootstrap init",
) -> str:
    table = Table(title=title + (" (dry run)" if dry_run else ""), show_lines=False)
    for col in ("host", "changed", "unchanged", "failed", "seconds", "error"):
        table.add_column(col)
    for name, r in reports.items():
        changes = [c for p in r.phases for c in p.changes]
        unchanged = sum(1 for c in changes if c.status == Status.UNCHANGED)
        err = r.error or next((p.error for p in r.phases if p.error), None) or ""
        secs = sum(p.seconds for p in r.phases)
        table.add_row(name, str(r.changed), str(unchanged), "yes" if r.failed else "no", f"{secs:.1f}", err)
    console = Console(width=160, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(table)
    lines = [console.export_text().rstrip()]
    failed = [n for n, r in reports.items() if r.failed]
    total = sum(r.changed for r in reports.values())
    if failed:
        lines.append(f"FAILED on {', '.join(failed)}; the other hosts finished. Rerun the same command once fixed.")
    elif total == 0:
        lines.append(f"nothing to do: every host is already as specified ({elapsed:.1f}s)")
    else:
        lines.append(f"{total} changes on {len(reports)} hosts in {elapsed:.1f}s")
    by_reason: dict[str, list[str]] = {}
    for phase, reason in skipped.items():
        by_reason.setdefault(reason, []).append(phase)
    for reason, phases in by_reason.items():
        lines.append(f"skipped {', '.join(phases)}: {reason}")
    return "\n".join(lines)


class Progress:
    """Per host, per phase progress: a live table on a terminal, one line per event otherwise."""

    def __init__(self, hosts: list[str], *, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self.state: dict[str, str] = {h: "waiting" for h in hosts}
        self.lock = threading.Lock()
        self.live: Live | None = None

    def __enter__(self) -> Progress:
        if self.tty:
            self.live = Live(self._table(), console=Console(stderr=True), refresh_per_second=8, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.live.update(self._table())
            self.live.__exit__(None, None, None)

    def _table(self) -> Table:
        t = Table(show_header=True, header_style="bold")
        t.add_column("host")
        t.add_column("last phase")
        for h, s in self.state.items():
            t.add_row(h, s)
        return t

    def note(self, message: str) -> None:
        if self.enabled and not self.tty:
            click.echo(f"[kbootstrap] {message}", err=True)

    def host_failed(self, host: str, message: str) -> None:
        self._update(host, f"FAILED: {message}", f"[connect] {host}: FAILED: {message}")

    def phase_done(self, host: str, result: PhaseResult) -> None:
        if result.error:
            text = f"{result.name}: FAILED: {result.error}"
        elif result.skipped_reason:
            text = f"{result.name}: skipped"
        else:
            text = f"{result.name}: {result.changed} changed ({result.seconds:.2f}s)"
        self._update(host, text, f"[{result.name}] {host}: {text.split(': ', 1)[1]}")

    def _update(self, host: str, state: str, line: str) -> None:
        if not self.enabled:
            return
        with self.lock:
            self.state[host] = state
            if self.live:
                self.live.update(self._table())
            else:
                click.echo(line, err=True)
