"""How results look: per-phase lines and a summary for one node, a table for a fleet, `-o json`.
Only commands/ renders; the engine and workflows return RunResult values."""

from __future__ import annotations

import io
import sys
import threading
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from bootstrap.engine.result import HostReport, PhaseResult, RunResult, Status
from bootstrap.engine.runner import INTERRUPTED
from bootstrap.phases.cluster_api import OBJECTS_NOTE, objects_yaml
from bootstrap.phases.show_join import JOIN_NOTE
from bootstrap.workflow.init import ADMIN_NOTE
from bootstrap.workflow.options import Events

_WORDS = {Status.CREATED: "created", Status.UPDATED: "updated"}
_DRY = {Status.CREATED: "would create", Status.UPDATED: "would update"}
INTERRUPT_NOTE = (
    "interrupted: stopping after the step each host is in (files are written atomically); "
    "Ctrl-C again aborts at once"
)


def phase_lines(result: PhaseResult, dry_run: bool, verbose: int) -> list[str]:
    """One node's phase, as kubeadm prints it: `[certs] created /etc/kubernetes/pki/ca.crt`."""
    tag = f"[{result.name}]"
    if result.skipped_reason:
        return [f"{tag} skipped: {result.skipped_reason}"]
    if result.name == "preflight" and all(c.status == Status.SKIPPED for c in result.changes) and not verbose:
        return [
            f"{tag} skipped {len(result.changes)} checks of the live host (--rootfs): "
            + ", ".join(c.item for c in result.changes)
        ]
    out = []
    for c in result.changes:
        if c.status.changed:
            word = (_DRY if dry_run else _WORDS)[c.status]
            out.append(f"{tag} {word} {c.item}" + (f" ({c.detail})" if c.detail else ""))
        elif c.status in (Status.SKIPPED, Status.WARNING, Status.FAILED):
            out.append(f"{tag} {c.status.value}: {c.item}" + (f": {c.detail}" if c.detail else ""))
        elif verbose:
            out.append(f"{tag} unchanged {c.item}")
    return out


def node_summary(report: HostReport, dry_run: bool, result: RunResult | None = None) -> str:
    changes = [c for p in report.phases for c in p.changes]
    unchanged = sum(1 for c in changes if c.status == Status.UNCHANGED)
    lines = []
    if report.failed:
        failed = next((p for p in report.phases if p.error), None)
        lines.append(f"{report.host}: FAILED in phase {failed.name}" if failed else f"{report.host}: FAILED")
    elif report.changed == 0:
        lines.append(f"{report.host}: nothing to do, {unchanged} items already as specified")
    else:
        verb = "would change" if dry_run else "changed"
        lines.append(f"{report.host}: {report.changed} {verb}, {unchanged} unchanged")
    if result is not None and not report.failed:
        lines += cluster_lines(result)
    return "\n".join(lines)


def fleet_table(result: RunResult, title: str) -> str:
    table = Table(title=title + (" (dry run)" if result.dry_run else ""), show_lines=False)
    for col in ("host", "changed", "unchanged", "failed", "seconds", "error"):
        table.add_column(col)
    for name, r in result.hosts.items():
        changes = [c for p in r.phases for c in p.changes]
        unchanged = sum(1 for c in changes if c.status == Status.UNCHANGED)
        err = r.error or next((p.error for p in r.phases if p.error), None) or ""
        secs = sum(p.seconds for p in r.phases)
        table.add_row(name, str(r.changed), str(unchanged), "yes" if r.failed else "no", f"{secs:.1f}", err)
    console = Console(width=160, record=True, file=io.StringIO())
    console.print(table)
    return console.export_text().rstrip()


def fleet_summary(result: RunResult, title: str = "kbootstrap init") -> str:
    lines = [fleet_table(result, title)]
    failed = [n for n, r in result.hosts.items() if r.failed]
    total = sum(r.changed for r in result.hosts.values())
    if result.interrupted:
        lines.append("INTERRUPTED (Ctrl-C): the run stopped at a safe point; rerun the same command to finish.")
    if failed:
        # The table wraps long errors: each failed host's reason once more, on one line.
        errors: dict[str, list[str]] = {}
        for name in failed:
            r = result.hosts[name]
            why = r.error or next((p.error for p in r.phases if p.error), None) or "failed"
            errors.setdefault(why, []).append(name)
        lines += [f"{', '.join(names)}: {why}" for why, names in errors.items()]
        lines.append(f"FAILED on {', '.join(failed)}; the other hosts finished. Rerun the same command once fixed.")
    elif total == 0 and not result.interrupted:
        lines.append(f"nothing to do: every host is already as specified ({result.seconds:.1f}s)")
    elif not result.interrupted:
        lines.append(f"{total} changes on {len(result.hosts)} hosts in {result.seconds:.1f}s")
    by_reason: dict[str, list[str]] = {}
    for phase, reason in result.skipped.items():
        by_reason.setdefault(reason, []).append(phase)
    for reason, phases in by_reason.items():
        lines.append(f"skipped {', '.join(phases)}: {reason}")
    lines += cluster_lines(result, fleet=True)
    return "\n".join(lines)


def cluster_lines(result: RunResult, *, fleet: bool = False) -> list[str]:
    """What a user needs next: the objects a dry run would apply, the admin kubeconfig on this
    machine, kubeadm's closing join text (secrets withheld)."""
    out: list[str] = []
    objects = result.notes.get(OBJECTS_NOTE)
    if result.dry_run and objects:
        out += ["", f"API objects the run would apply ({len(objects)}; Secret values withheld):",
                objects_yaml(objects).rstrip()]
    admin = result.notes.get(ADMIN_NOTE)
    if admin:
        out += ["", f"admin kubeconfig: {admin} (0600)  e.g. kubectl --kubeconfig {admin} get nodes"]
    join = result.notes.get(JOIN_NOTE)
    if not isinstance(join, dict) or result.dry_run:
        return out
    if fleet:
        # The inventory is the fleet's join command: kubeadm's closing text would send the user to
        # install a network and copy certificates, which the run has done.
        out.append("more nodes: add them to the inventory, then `kbootstrap join -i INVENTORY --limit NEW`")
    else:
        out += [str(join["text"]).rstrip(), f"A working join command: {join['hint']}"]
    if join.get("certificate_key_file"):
        out.append(f"the certificate key for --certificate-key: {join['certificate_key_file']}")
    return out


def fleet_json(result: RunResult, **defaults: Any) -> dict[str, Any]:
    """The result as JSON; `defaults` fill keys the run did not produce (e.g. `validation: null`)."""
    data = result.to_json()
    for key, value in result.notes.items():
        data[key] = value.to_json() if hasattr(value, "to_json") else value
    for key, value in defaults.items():
        data.setdefault(key, value)
    return data


class Progress:
    """Per host, per phase progress: a live table on a terminal, one line per event otherwise. It
    is the Events a workflow reports through."""

    def __init__(self, hosts: list[str], *, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self.state: dict[str, str] = {h: "waiting" for h in hosts}
        self.lock = threading.Lock()
        self.live: Live | None = None

    def events(self) -> Events:
        return Events(
            on_note=self.note, on_phase=self.phase_done, on_host_failed=self.host_failed, on_interrupt=self.interrupted,
            on_warning=self.warning,
        )

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

    def warning(self, message: str) -> None:
        # Whatever the output format, on stderr: -o json keeps stdout to its one object.
        if self.live:
            self.live.console.print(f"warning: {message}", markup=False, highlight=False)
        else:
            click.echo(f"warning: {message}", err=True)

    def interrupted(self) -> None:
        # Said at once, whatever the output format: the run may take a while to reach a safe point.
        if self.live:
            self.live.console.print(INTERRUPT_NOTE)
        else:
            click.echo(INTERRUPT_NOTE, err=True)

    def host_failed(self, host: str, message: str) -> None:
        self._update(host, f"FAILED: {message}", f"[connect] {host}: FAILED: {message}")

    def phase_done(self, host: str, result: PhaseResult) -> None:
        if result.error:
            text = f"{result.name}: FAILED: {result.error}"
        elif result.skipped_reason == INTERRUPTED:
            text = f"{result.name}: not run (interrupted)"
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
