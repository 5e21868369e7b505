"""Reports a person can act on: the netcheck matrix and the node checks as rich tables, or JSON.

The matrix has one row per source node and one column per target (plus the control-plane endpoint);
a cell is `ok`, or names what failed (`name`, `ping`, port numbers). Below it, one line per failed
probe with the exact pair, port and error, then the skipped ports grouped by reason.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from bootstrap.validate.netcheck import ENDPOINT, FAIL, NOT_RUN, SKIPPED, NetcheckReport, ProbeResult
from bootstrap.validate.nodes import NodeReport

WIDTH = 200


def render(*renderables: object, color: bool = False) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=WIDTH, force_terminal=color, color_system="standard" if color else None,
                      highlight=False)
    for r in renderables:
        console.print(r)
    return buf.getvalue().rstrip()


def _cell(results: Sequence[ProbeResult], source_down: bool, diagonal: bool, target_down: bool = False) -> Text:
    failed = [r.probe.label for r in results if r.failed]
    if failed:
        return Text("✗ " + " ".join(dict.fromkeys(failed)), style="bold red")
    if source_down:
        return Text("not checked", style="dim")
    if diagonal:
        return Text("self", style="dim")
    if target_down:  # it answered what we could ask without facts (name, ping); its ports are unknown
        return Text("name+ping only", style="yellow")
    if not results or all(r.status == SKIPPED for r in results):
        return Text("-", style="dim")
    return Text("ok", style="green")


def matrix_table(report: NetcheckReport) -> Table:
    by_pair = report.by_pair()
    columns = [*report.nodes, ENDPOINT]
    table = Table(title="netcheck: rows reach columns (name, ping, ports)", show_lines=False)
    table.add_column("from \\ to", style="bold")
    for c in columns:
        table.add_column(c)
    for src in report.nodes:
        down = src in report.unreachable
        label = Text(src + (" (unreachable)" if down else ""), style="bold red" if down else "bold")
        table.add_row(label, *(_cell(by_pair.get((src, t), []), down, t == src, t in report.unreachable)
                               for t in columns))
    return table


def failure_lines(report: NetcheckReport) -> list[str]:
    lines = []
    for src, why in report.unreachable.items():
        lines.append(f"{src}: unreachable, its probes were not run: {why}")
    for r in report.failures:
        p = r.probe
        where = f"{p.source} -> {p.target}"
        lines.append(f"{where}: {p.describe()}: {r.detail}")
    return lines


def skipped_lines(report: NetcheckReport) -> list[str]:
    """Skipped probes grouped: 'port 10250 (kubelet) on cp1, cp2: kubelet not running (not installed)'."""
    groups: dict[tuple[str, str], set[str]] = {}
    for r in report.results:
        if r.status != SKIPPED:
            continue
        p = r.probe
        what = f"port {p.port} ({p.service})" if p.kind == "port" else f"{p.kind} {p.subject}"
        groups.setdefault((what, r.detail), set()).add(p.target)
    order = {n: i for i, n in enumerate([*report.nodes, ENDPOINT])}
    return [
        f"skipped {what} on {', '.join(sorted(targets, key=lambda t: order.get(t, 0)))}: {why}"
        for (what, why), targets in groups.items()
    ]


def netcheck_text(report: NetcheckReport, *, color: bool = False) -> str:
    parts: list[object] = [matrix_table(report)]
    fails = failure_lines(report)
    if fails:
        parts.append(Text("FAILED:", style="bold red"))
        parts += [Text("  " + ln, style="red") for ln in fails]
    parts += [Text(ln, style="dim") for ln in skipped_lines(report)]
    parts.append(Text(report.summary(), style="bold red" if report.failed else "bold green"))
    return render(*parts, color=color)


# ---- node checks ------------------------------------------------------------------------------------
_STYLE = {"pass": "green", "fail": "bold red", "skip": "dim", "error": "bold red"}


def nodes_table(reports: Sequence[NodeReport]) -> Table:
    table = Table(title="validate: node state against the spec", show_lines=False)
    for col in ("node", "passed", "failed", "skipped", "failures"):
        table.add_column(col)
    for rep in reports:
        c = rep.counts()
        bad = [r.check.id for r in rep.results if r.status in ("fail", "error")]
        failures = ", ".join(bad[:3]) + (f" (+{len(bad) - 3} more)" if len(bad) > 3 else "")
        if rep.error:
            failures = f"unreachable: {rep.error}"
        table.add_row(rep.node, str(c["pass"]), Text(str(c["fail"] + c["error"]), style="bold red" if
                      c["fail"] + c["error"] else "green"), str(c["skip"]), Text(failures, style="red"))
    return table


def nodes_summary(reports: Sequence[NodeReport]) -> str:
    bad = [r.node for r in reports if r.failed]
    checks = sum(len(r.results) for r in reports)
    failed = sum(r.counts()["fail"] + r.counts()["error"] for r in reports)
    unchecked = [r.node for r in reports if r.error]
    # A node that could not be checked is a failure, never a quiet "0 failed".
    lead = f"FAILED: {len(unchecked)} not checked ({', '.join(unchecked)}); " if unchecked else ""
    text = f"validate: {lead}{len(reports)} nodes, {checks} checks, {failed} failed"
    return text + (f" (on {', '.join(bad)})" if bad else "")


def nodes_text(reports: Sequence[NodeReport], *, color: bool = False, verbose: bool = False) -> str:
    parts: list[object] = [nodes_table(reports)]
    for rep in reports:
        for r in rep.results:
            if r.status in ("fail", "error") or (verbose and r.status == "skip"):
                parts.append(Text(f"  {rep.node}: {r.check.id}: {r.status}: {r.message}", style=_STYLE[r.status]))
    skipped: dict[str, set[str]] = {}
    for rep in reports:
        for r in rep.results:
            if r.status == "skip":
                skipped.setdefault(f"{r.check.id}: {r.message}", set()).add(rep.node)
    if not verbose:
        for what, nodes in skipped.items():
            parts.append(Text(f"skipped {what} (on {len(nodes)} node{'s' if len(nodes) > 1 else ''})", style="dim"))
    parts.append(Text(nodes_summary(reports), style="bold red" if any(r.failed for r in reports) else "bold green"))
    return render(*parts, color=color)


__all__ = [
    "FAIL",
    "NOT_RUN",
    "matrix_table",
    "netcheck_text",
    "nodes_summary",
    "nodes_table",
    "nodes_text",
    "render",
]
