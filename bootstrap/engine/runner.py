"""Run a tree of phases over the hosts of a run: lock-step per phase, hosts in parallel (bounded),
failures isolated, and a RunResult back. Nothing here prints: callers pass `on_phase` to show
progress and render the result themselves.

Per phase: the hosts it selects among those still alive; its `before` hook once on the control
machine; the phase on each host in parallel; its `after` hook with the hosts that completed it. A
host that fails is reported with its reason and left out of later phases; the others go on.

Within one host a group whose every child runs is run through its own `run` when it has one (it
may batch work, e.g. generate all keys in parallel); otherwise its children run one by one.

Ctrl-C: the run stops at the next safe point (the end of the step each host is in) and says so at
once through `on_interrupt`; the result is marked interrupted.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bootstrap import debuglog
from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import Node, Phase, Tree
from bootstrap.engine.result import Change, HostReport, PhaseResult, RunResult, Status
from bootstrap.errors import KbootstrapError
from bootstrap.spec.inventory import Inventory
from bootstrap.transport.base import Target

SKIPPED = "skipped by --skip-phases"
INTERRUPTED = "not run: interrupted (Ctrl-C)"

Listener = Callable[[str, PhaseResult], None]
T = TypeVar("T")


@dataclass
class RunState:
    """What the hosts of one run share. Hooks read and write it; phases reach it as `ctx.run`."""

    nodes: dict[str, Node]  # every host of the run, in inventory order
    contexts: dict[str, RunContext]  # the hosts that were reached
    result: RunResult
    first_control_plane: str = ""
    inventory: Inventory | None = None  # fleet runs: what cluster steps plan from (validation)
    targets: dict[str, Target] = field(default_factory=dict)  # open connections, helpers included
    forks: int = 64
    dry_run: bool = False
    on_phase: Listener | None = None
    on_interrupt: Callable[[], None] | None = None  # told at once when Ctrl-C stops the run
    stop: threading.Event = field(default_factory=threading.Event)
    halted: dict[str, str] = field(default_factory=dict)  # roll name -> why it stopped
    _slots: dict[type, Any] = field(default_factory=dict)
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        for name, ctx in self.contexts.items():
            ctx.run = self
            ctx.buffered = True
            self.targets.setdefault(name, ctx.target)
        for name in self.nodes:
            self.result.report(name)

    # -- shared, typed state: one instance per type, made on first use (e.g. the shared CAs)
    def slot(self, kind: type[T], factory: Callable[[], T] | None = None) -> T:
        with self._guard:
            if kind not in self._slots:
                self._slots[kind] = (factory or kind)()
            value: T = self._slots[kind]
            return value

    def put_slot(self, value: object) -> None:
        with self._guard:
            self._slots[type(value)] = value

    def close_slots(self) -> None:
        """The run is over: slots holding a session (the API client) close it."""
        for value in list(self._slots.values()):
            close = getattr(value, "close", None)
            if callable(close):
                close()

    def lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    # -- hosts
    def alive(self) -> list[str]:
        return [n for n in self.nodes if n in self.contexts and not self.result.hosts[n].failed]

    def fail_host(self, name: str, message: str) -> None:
        self.result.hosts[name].error = message

    def note(self, host: str, item: str, status: Status, detail: str = "") -> None:
        """A cluster step's finding, in the host's last phase (e.g. 'etcd health: 3 members healthy')."""
        report = self.result.hosts[host]
        if not report.phases:
            report.phases.append(PhaseResult("-"))
        phase = report.phases[-1]
        phase.changes.append(Change(phase.name, item, status, detail))

    def parallel(self, names: list[str], fn: Callable[[str], None]) -> None:
        """fn(host) for each host, at most `forks` at once; a host whose fn raises fails alone."""

        def guarded(n: str) -> None:
            started = time.monotonic()
            try:
                fn(n)
            except KbootstrapError as exc:
                self.fail_host(n, exc.one_line())
            except Exception as exc:  # a dropped connection mid-phase, or a bug: this host only
                log = debuglog.record(exc, f"host {n}")
                self.fail_host(n, f"{type(exc).__name__}: {exc} (after {time.monotonic() - started:.1f}s; {log})")

        if not names:
            return
        with ThreadPoolExecutor(max_workers=max(1, min(self.forks, len(names)))) as pool:
            futures: list[Future[None]] = [pool.submit(guarded, n) for n in names]
            wait(futures)

    @contextlib.contextmanager
    def ctrl_c_stops(self) -> Iterator[None]:
        """While the run goes on, Ctrl-C stops it at the next safe point (each host finishes the step
        it is in, nothing new starts) and says so at once; a second Ctrl-C aborts at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.getsignal(signal.SIGINT)

        def stop(signum: int, frame: object) -> None:
            if self.stop.is_set():
                raise KeyboardInterrupt
            self.stop.set()
            if self.on_interrupt is not None:
                self.on_interrupt()

        signal.signal(signal.SIGINT, stop)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


def run_tree(
    tree: Tree,
    run: RunState,
    skip: set[str],
    *,
    skip_reasons: Mapping[str, str] | None = None,
) -> RunResult:
    """Run every phase of the tree over the run's hosts; returns (and fills) run.result."""
    started = time.monotonic()
    reasons = dict(skip_reasons or {})
    for path in sorted(skip):
        run.result.skipped.setdefault(path, reasons.get(path, SKIPPED))
    with run.ctrl_c_stops():
        try:
            for phase in tree:
                if run.stop.is_set():
                    run.result.interrupted = True
                    for n in run.alive():
                        _record(run, n, PhaseResult(phase.name, skipped_reason=INTERRUPTED))
                    continue
                _run_phase(phase, run, skip, reasons)
        finally:
            run.close_slots()
    if run.stop.is_set():
        run.result.interrupted = True
    run.result.seconds += time.monotonic() - started
    run.result.dry_run = run.dry_run
    return run.result


def _run_phase(phase: Phase, run: RunState, skip: set[str], reasons: Mapping[str, str]) -> None:
    names = [n for n in run.alive() if phase.hosts(run.nodes[n], run)]
    path = phase.name
    if not names:
        return
    if path in skip:
        why = reasons.get(path, SKIPPED)
        for n in names:
            _record(run, n, PhaseResult(path, skipped_reason=why))
        return
    for hook in (phase.before,):
        if hook is not None and not _hook(run, phase, hook, names):
            return
    if phase.cluster_step is not None:
        _hook(run, phase, phase.cluster_step, names)
    if has_host_work(phase):
        run.parallel([n for n in names if n in run.alive()], lambda n: _run_host(run, n, phase, skip, reasons))
        if run.stop.is_set():  # Ctrl-C while the hosts were starting: those not started say so
            for n in run.alive():
                if n in names and not any(p.name.split("/")[0] == path for p in run.result.hosts[n].phases):
                    _record(run, n, PhaseResult(path, skipped_reason=INTERRUPTED))
    if phase.after is not None:
        done = [n for n in names if n in run.alive()]
        if done:
            _hook(run, phase, phase.after, done)


def has_host_work(phase: Phase) -> bool:
    """Whether the phase (or a sub-phase) does anything on the hosts themselves."""
    return phase.run is not None or any(has_host_work(c) for c in phase.children)


def _hook(run: RunState, phase: Phase, hook: Callable[[RunState, list[str]], None], names: list[str]) -> bool:
    """Run a cluster step; its typed error fails the hosts of the phase (they depend on it)."""
    try:
        hook(run, names)
        return True
    except KbootstrapError as exc:
        message = f"{phase.name}: {exc.one_line()}"
    except Exception as exc:
        message = f"{phase.name}: {type(exc).__name__}: {exc} ({debuglog.record(exc, f'phase {phase.name}')})"
    for n in names:
        if n in run.alive():
            run.fail_host(n, message)
    return False


def _run_host(run: RunState, name: str, phase: Phase, skip: set[str], reasons: Mapping[str, str]) -> None:
    report = run_host_phases(run.contexts[name], (phase,), skip, reasons=reasons, on_phase=run.on_phase)
    run.result.hosts[name].phases.extend(report.phases)


def run_host_phases(
    ctx: RunContext,
    phases: tuple[Phase, ...] | list[Phase] | Tree,
    skip: set[str],
    *,
    prefix: str = "",
    reasons: Mapping[str, str] | None = None,
    on_phase: Listener | None = None,
) -> HostReport:
    """The phases on one host, in order, stopping at its first failure."""
    report = HostReport(ctx.target.name)
    for phase in phases:
        _run_one(ctx, phase, prefix, skip, dict(reasons or {}), report, on_phase)
        if report.failed:
            break
    return report


def _run_one(
    ctx: RunContext,
    phase: Phase,
    prefix: str,
    skip: set[str],
    reasons: dict[str, str],
    report: HostReport,
    on_phase: Listener | None,
) -> None:
    path = f"{prefix}/{phase.name}" if prefix else phase.name
    result = PhaseResult(path)
    if path in skip:
        result.skipped_reason = reasons.get(path, SKIPPED)
        _done(report, result, on_phase)
        return
    if ctx.stopping:
        result.skipped_reason = INTERRUPTED
        _done(report, result, on_phase)
        return
    child_skipped = any(p.startswith(path + "/") for p in skip)
    if phase.children and (phase.run is None or child_skipped):
        for child in phase.children:
            _run_one(ctx, child, path, skip, reasons, report, on_phase)
            if report.failed:
                return
        return
    if phase.run is None:
        return
    ctx.phase = result
    started = time.monotonic()
    try:
        try:
            phase.run(ctx)
        finally:
            ctx.flush()  # what the phase wrote reaches the node even when it failed part way
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


def _record(run: RunState, name: str, result: PhaseResult) -> None:
    run.result.hosts[name].phases.append(result)
    if run.on_phase:
        run.on_phase(name, result)
