"""Run phases against one node: skip what was asked, time each phase, collect the report.

A group whose every child runs is run through its own `run` when it has one (it may batch work,
e.g. generate all keys in parallel); otherwise its children run one by one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bootstrap.errors import KbootstrapError
from bootstrap.phases.base import Phase
from bootstrap.workflow.context import RunContext
from bootstrap.workflow.report import Change, HostReport, PhaseResult, Status

NOT_IMPLEMENTED = "needs a running kube-apiserver; kbootstrap stops before it (skip it with --skip-phases)"

Listener = Callable[[str, PhaseResult], None]


def run_phases(
    ctx: RunContext,
    phases: tuple[Phase, ...] | list[Phase],
    skip: set[str],
    *,
    prefix: str = "",
    on_phase: Listener | None = None,
) -> HostReport:
    report = HostReport(ctx.target.name)
    for phase in phases:
        _run_one(ctx, phase, prefix, skip, report, on_phase)
        if report.failed:
            break
    return report


def _run_one(
    ctx: RunContext, phase: Phase, prefix: str, skip: set[str], report: HostReport, on_phase: Listener | None
) -> None:
    path = f"{prefix}/{phase.name}" if prefix else phase.name
    result = PhaseResult(path)
    if path in skip:
        result.skipped_reason = "skipped by --skip-phases"
        _done(report, result, on_phase)
        return
    if phase.needs_api_server:
        result.skipped_reason = NOT_IMPLEMENTED
        _done(report, result, on_phase)
        return
    child_skipped = any(p.startswith(path + "/") for p in skip)
    if phase.children and (phase.run is None or child_skipped):
        for child in phase.children:
            _run_one(ctx, child, path, skip, report, on_phase)
            if report.failed:
                return
        return
    assert phase.run is not None
    ctx.phase = result
    started = time.monotonic()
    try:
        phase.run(ctx)
    except KbootstrapError as exc:
        result.error = exc.one_line()
        result.changes.append(Change(path, path, Status.FAILED, exc.one_line()))
    finally:
        result.seconds = time.monotonic() - started
    _done(report, result, on_phase)


def _done(report: HostReport, result: PhaseResult, on_phase: Listener | None) -> None:
    report.phases.append(result)
    if on_phase:
        on_phase(report.host, result)
