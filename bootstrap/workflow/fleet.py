"""Run phases across a fleet: phase by phase (lock-step), hosts in parallel, failures isolated.

A host that cannot be reached or fails a phase is reported and left out of later phases; the
others go on. Before a phase, an optional cluster step runs once on the control machine (e.g.
making the shared CAs) — data flows one way: spec -> plan -> apply on hosts -> report.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from bootstrap.errors import KbootstrapError
from bootstrap.phases.base import Phase
from bootstrap.spec.inventory import InventoryHost
from bootstrap.transport.base import Target
from bootstrap.workflow.context import RunContext
from bootstrap.workflow.report import HostReport, PhaseResult
from bootstrap.workflow.runner import run_phases


@dataclass(frozen=True)
class FleetPhase:
    phase: Phase
    applies_to: Callable[[InventoryHost], bool] = lambda h: True
    # Runs once on the control machine before the phase; may raise to stop the whole run.
    before: Callable[[FleetRun], None] | None = None
    # Runs once after the phase on all hosts that took part (e.g. wait for etcd health).
    after: Callable[[FleetRun, list[str]], None] | None = None


@dataclass
class FleetRun:
    hosts: dict[str, InventoryHost]
    targets: dict[str, Target]
    contexts: dict[str, RunContext]
    reports: dict[str, HostReport]
    forks: int = 64
    on_phase: Callable[[str, PhaseResult], None] | None = None
    shared: dict[str, object] = field(default_factory=dict)  # cluster-step outputs, by name

    def alive(self) -> list[str]:
        return [n for n in self.hosts if n in self.targets and not self.reports[n].failed]

    def fail_host(self, name: str, message: str) -> None:
        self.reports[name].error = message

    def run(self, phases: Iterable[FleetPhase], skip: set[str]) -> None:
        for fp in phases:
            path = fp.phase.name
            names = [n for n in self.alive() if fp.applies_to(self.hosts[n])]
            if path in skip or not names:
                for n in names:
                    self._record(n, PhaseResult(path, skipped_reason="skipped by --skip-phases"))
                continue
            if fp.before is not None:
                fp.before(self)
                names = [n for n in names if n in self.alive()]
            self._parallel(names, functools.partial(self._run_host, phase=fp.phase, skip=skip))
            if fp.after is not None:
                done = [n for n in names if not self.reports[n].failed]
                fp.after(self, done)

    def _run_host(self, name: str, *, phase: Phase, skip: set[str]) -> None:
        ctx = self.contexts[name]
        partial = run_phases(ctx, (phase,), skip, on_phase=self.on_phase)
        self.reports[name].phases.extend(partial.phases)

    def _record(self, name: str, result: PhaseResult) -> None:
        self.reports[name].phases.append(result)
        if self.on_phase:
            self.on_phase(name, result)

    def _parallel(self, names: list[str], fn: Callable[[str], None]) -> None:
        def guarded(n: str) -> None:
            started = time.monotonic()
            try:
                fn(n)
            except KbootstrapError as exc:
                self.fail_host(n, exc.one_line())
            except Exception as exc:  # a dropped connection mid-phase, say: this host only
                self.fail_host(n, f"{type(exc).__name__}: {exc} (after {time.monotonic() - started:.1f}s)")

        with ThreadPoolExecutor(max_workers=max(1, min(self.forks, len(names)))) as pool:
            list(pool.map(guarded, names))
