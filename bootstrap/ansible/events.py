"""ansible-runner events -> our per-host reports, so `--transport ansible` reports (and `-o json`)
exactly as the SSH transport does. The action plugin's results carry our phase reports under
`kbootstrap`; this turns them back into PhaseResults, host failures and task timings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bootstrap.engine.result import Change, HostReport, PhaseResult, Status


def phase_from_json(d: Mapping[str, Any]) -> PhaseResult:
    """The inverse of HostReport.to_json for one phase."""
    changes = []
    for c in d.get("changes") or []:
        try:
            status = Status(c.get("status", "unchanged"))
        except ValueError:
            status = Status.WARNING
        changes.append(Change(str(d.get("name", "-")), str(c.get("item", "")), status, str(c.get("detail", ""))))
    return PhaseResult(
        str(d.get("name", "-")),
        seconds=float(d.get("seconds") or 0.0),
        changes=changes,
        error=d.get("error"),
        skipped_reason=d.get("skipped"),
    )


def last_line(text: Any) -> str:
    lines = [ln.strip() for ln in str(text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


@dataclass
class TaskTiming:
    host: str
    task: str
    role: str
    seconds: float
    status: str


@dataclass
class EventCollector:
    """Feed it ansible-runner events (`collect`); read per-host reports, stats and timings after."""

    hosts: list[str]
    on_phase: Callable[[str, PhaseResult], None] | None = None
    on_host_failed: Callable[[str, str], None] | None = None
    reports: dict[str, HostReport] = field(default_factory=dict)
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    timings: list[TaskTiming] = field(default_factory=list)
    stopped_by: str = ""  # a host whose failure stopped the whole play (any_errors_fatal)
    validation: dict[str, Mapping[str, Any]] = field(default_factory=dict)  # host -> validate step's checks
    etcd_sources: dict[str, str] = field(default_factory=dict)  # joined member -> the member it joined through
    netcheck_facts: dict[str, str] = field(default_factory=dict)  # host -> its netcheck facts output
    netcheck_outputs: dict[str, str] = field(default_factory=dict)  # host -> its probe script output
    notes: dict[str, Any] = field(default_factory=dict)  # the run's closing notes (join text, admin kubeconfig)

    def __post_init__(self) -> None:
        self.reports = {h: HostReport(h) for h in self.hosts}

    def report(self, host: str) -> HostReport:
        return self.reports.setdefault(host, HostReport(host))

    def collect(self, event: Mapping[str, Any]) -> bool:
        kind = str(event.get("event", ""))
        data = event.get("event_data") or {}
        if kind == "playbook_on_stats":
            self._stats(data)
            return True
        if not kind.startswith("runner_on_") or kind in ("runner_on_start",):
            return True
        host = str(data.get("host", ""))
        if not host:
            return True
        res = data.get("res") or {}
        status = kind.removeprefix("runner_on_")
        task, role = str(data.get("task", "")), str(data.get("role", ""))
        self.timings.append(TaskTiming(host, task, role, float(data.get("duration") or 0), status))
        if kind == "runner_on_unreachable":
            msg = last_line(res.get("msg")) or "unreachable"
            self._fail(host, f"cannot reach {host}: {msg}")
            return True
        ours = res.get("kbootstrap") if isinstance(res, Mapping) else None
        if isinstance(ours, Mapping):
            # A run_once step reports for the host it names (loadbalancer:after: the first control plane).
            self._phases(str(ours.get("host") or host), ours)
            if ours.get("etcd_source"):
                self.etcd_sources[host] = str(ours["etcd_source"])
            if "netcheck_facts" in ours:
                self.netcheck_facts[host] = str(ours["netcheck_facts"])
            if "netcheck_output" in ours:
                self.netcheck_outputs[host] = str(ours["netcheck_output"])
            if isinstance(ours.get("notes"), Mapping):
                self.notes.update(ours["notes"])
        if isinstance(res.get("kbootstrap_validate"), Mapping):
            # Validation failures are the report's `validation`, not a failed host (as over SSH).
            self.validation[host] = res["kbootstrap_validate"]
            return True
        if kind == "runner_on_failed" and not data.get("ignore_errors"):
            error = last_line(res.get("msg")) or "failed"
            report = self.report(host)
            if not report.failed:  # a phase error already says it; otherwise the task's message
                self._fail(host, error)
            if isinstance(ours, Mapping) and ours.get("step") == "certs:before":
                self.stopped_by = host
        return True

    def _phases(self, host: str, ours: Mapping[str, Any]) -> None:
        report = self.report(host)
        for raw in ours.get("phases") or []:
            phase = phase_from_json(raw)
            if ours.get("merge") and report.phases:
                report.phases[-1].changes.extend(phase.changes)
                continue
            report.phases.append(phase)
            if self.on_phase is not None:
                self.on_phase(host, phase)

    def _fail(self, host: str, message: str) -> None:
        self.report(host).error = message
        if self.on_host_failed is not None:
            self.on_host_failed(host, message)

    def _stats(self, data: Mapping[str, Any]) -> None:
        for key in ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored"):
            for host, n in (data.get(key) or {}).items():
                self.stats.setdefault(str(host), {})[key] = int(n)

    def finish(self, rc: int, status: str) -> None:
        """After the run: hosts the play stopped for (a fatal failure elsewhere, a timeout) say so.
        A host that merely failed is dropped by Ansible alone; the others go on and are not touched."""
        if rc == 0 or not (self.stopped_by or status in ("timeout", "canceled")):
            return
        for host, report in self.reports.items():
            if report.failed:
                continue
            if self.stopped_by:
                report.error = f"the play stopped before {host} finished: {self.stopped_by} failed"
            else:
                report.error = f"ansible-playbook {status} before {host} finished"

    def task_profile(self, top: int = 10) -> list[dict[str, Any]]:
        """Where the time went: per task, the slowest host's seconds and the sum over hosts."""
        by_task: dict[str, list[float]] = {}
        for t in self.timings:
            by_task.setdefault(f"{t.role + ' : ' if t.role else ''}{t.task}", []).append(t.seconds)
        ranked = sorted(by_task.items(), key=lambda kv: -max(kv[1]))[:top]
        return [
            {"task": k, "max_seconds": round(max(v), 3), "sum_seconds": round(sum(v), 3), "hosts": len(v)}
            for k, v in ranked
        ]

