"""RunContext: what a phase gets for one host, and the one gate for every change to it.

Reads (`read`, `fact`) run in a dry run too. Changes (`ensure_file(s)`, `ensure_dir`, `remove`,
`run_change`, `service`) are planned against what is there, recorded, and applied only when the run
is for real and the target is live where that matters: so `--dry-run` is one switch, its change
list is the real run's, and a second run records nothing as changed. What a dry run would have
written is kept in this context's overlay, so a later phase of the same run (kubeconfig after
certs) sees the same files it would see for real.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bootstrap.artifacts.bundle import Bundle
from bootstrap.artifacts.upstream import DEFAULT_BASE_URL
from bootstrap.engine.result import Change, PhaseResult, Status
from bootstrap.errors import KbootstrapError, PhaseError
from bootstrap.spec.model import ClusterSpec
from bootstrap.transport.base import CommandResult, FileState, Target, read_only

if TYPE_CHECKING:
    from bootstrap.engine.runner import RunState

CONTROL_PLANE_ROLE, ETCD_ROLE = "kube_control_plane", "etcd"


@dataclass
class RunContext:
    spec: ClusterSpec
    target: Target
    dry_run: bool = False
    # One start time for the run: kubeadm backdates every cert from the same moment.
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    phase: PhaseResult = field(default_factory=lambda: PhaseResult("-"))
    # Fleet runs: where artifacts come from, and this node's roles in the cluster.
    bundle: Bundle | None = None
    # Without a bundle, binaries come from this release site or mirror (pinned sha256).
    artifact_base_url: str = DEFAULT_BASE_URL
    roles: frozenset[str] = frozenset({CONTROL_PLANE_ROLE, ETCD_ROLE})
    run: RunState | None = None  # the run this host is part of (shared state, locks, Ctrl-C)
    overlay: dict[str, FileState] = field(default_factory=dict)  # what a dry run would have written
    # In a run (the runner turns it on) writes wait in `pending`: a phase's files go to the node in one
    # batch (one round trip), sent before any command runs and when the phase ends. Off: at once.
    buffered: bool = False
    pending: dict[str, tuple[bytes, int, str | None]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def is_control_plane(self) -> bool:
        return CONTROL_PLANE_ROLE in self.roles

    @property
    def is_etcd(self) -> bool:
        return ETCD_ROLE in self.roles

    @property
    def live(self) -> bool:
        """A running machine's own root: services and commands are real (not --rootfs)."""
        return self.target.live

    @property
    def stopping(self) -> bool:
        """Ctrl-C was pressed: long waits end at their next safe point."""
        return self.run is not None and self.run.stop.is_set()

    # ---- the report --------------------------------------------------------------------------
    def record(self, item: str, status: Status, detail: str = "") -> None:
        self.phase.changes.append(Change(self.phase.name, item, status, detail))

    def skip(self, item: str, reason: str) -> None:
        self.record(item, Status.SKIPPED, reason)

    def warn(self, item: str, reason: str) -> None:
        self.record(item, Status.WARNING, reason)

    # ---- reads -------------------------------------------------------------------------------
    def state(self, path: str) -> FileState | None:
        if path in self.pending:
            data, mode, _ = self.pending[path]
            return FileState(data, mode)
        if path in self.overlay:
            return self.overlay[path]
        return self.target.read(path)

    def read(self, path: str) -> bytes | None:
        state = self.state(path)
        return state.content if state is not None else None

    def prefetch(self, paths: list[str]) -> None:
        """Read many files in one round trip (the reads that follow are answered from it)."""
        prefetch = getattr(self.target, "prefetch", None)
        if prefetch is not None:
            prefetch(paths)

    def fact(self, script: str, *, timeout: float | None = 60, now: bool = False) -> CommandResult | None:
        """A read-only command on a live node (it runs in a dry run too); None under --rootfs.
        now: asked at the moment, never read ahead (a wait for something to happen; a check that only
        follows a change)."""
        if not self.live:
            return None
        self.flush()
        return read_only(self.target, script, timeout=timeout, now=now)

    def bookkeeping(self, script: str, *, timeout: float | None = 60) -> None:
        """A command that changes the node but is not a change to report (our checksum stamps,
        systemd's view after a unit file went): not in a dry run, nor under --rootfs."""
        if self.dry_run or not self.live:
            return
        self.flush()
        self.target.run(script, timeout=timeout)

    # ---- changes -----------------------------------------------------------------------------
    def flush(self) -> None:
        """Send the pending writes (one batch). The runner calls it when a phase ends."""
        if self.pending:
            files = [(path, data, mode, owner) for path, (data, mode, owner) in self.pending.items()]
            self.pending.clear()  # in place: a sub-context (same host, another spec) shares it
            self.target.write_many(files)

    def ensure_file(self, path: str, data: bytes, mode: int, *, owner: str | None = None, detail: str = "") -> bool:
        """Make path hold exactly data with mode. True if it changed (or would, in a dry run)."""
        return self.ensure_files([(path, data, mode)], detail=detail, owner=owner)[path]

    def put(self, path: str, data: bytes, mode: int, detail: str = "") -> bool:
        return self.ensure_file(path, data, mode, detail=detail)

    def ensure_files(
        self, files: list[tuple[str, bytes, int]], *, detail: str = "", owner: str | None = None
    ) -> dict[str, bool]:
        """ensure_file for many files at once: one batched read and one batched write of what
        differs (two round trips over SSH, however many files)."""
        paths = [p for p, _, _ in files]
        known = {p: self.state(p) for p in paths if p in self.overlay or p in self.pending}
        on_target = self.target.read_many([p for p in paths if p not in known])
        changed: dict[str, bool] = {}
        to_write = []
        for path, data, mode in files:
            state = known[path] if path in known else on_target.get(path)
            if state is not None and state.content == data and state.mode == mode:
                self.record(path, Status.UNCHANGED, detail)
                changed[path] = False
                continue
            if state is None:
                self.record(path, Status.CREATED, detail)
            elif state.content == data:
                self.record(path, Status.UPDATED, f"mode {state.mode:04o} -> {mode:04o}")
            else:
                self.record(path, Status.UPDATED, detail)
            to_write.append((path, data, mode, owner))
            changed[path] = True
        for path, data, mode, who in to_write:
            if self.dry_run:
                self.overlay[path] = FileState(data, mode)
            else:
                self.pending[path] = (data, mode, who)
        if not self.buffered:
            self.flush()
        return changed

    def ensure_dir(self, path: str, mode: int) -> bool:
        """A directory with exactly this mode. Made when missing (not reported: the files in it
        carry the news); an existing one with another mode is fixed, and that is reported."""
        current = self.target.dir_mode(path)
        if current == mode:
            return False
        if current is not None:
            self.record(path + "/", Status.UPDATED, f"mode {current:04o} -> {mode:04o}")
        if not self.dry_run:
            self.target.mkdir(path, mode)
            if current is not None:
                self.target.chmod(path, mode)
        return True

    def remove(self, path: str, detail: str = "removed") -> None:
        self.pending.pop(path, None)
        if not self.dry_run:
            self.flush()
            self.target.remove(path)
        self.overlay.pop(path, None)
        self.record(path, Status.UPDATED, ("would be " if self.dry_run else "") + detail)

    def run_change(
        self, script: str, what: str, *, changes: Sequence[str] | None = None, timeout: float | None = 300
    ) -> CommandResult | None:
        """A command that changes the node. Its output's `CHANGED <item>` lines are the changes
        recorded; a non-zero exit fails the phase. A dry run runs nothing and records `changes`
        (the items the script would print; default: `what`); under --rootfs it is skipped. Returns
        None when it did not run."""
        if not self.live:
            self.skip(what, "not a live host (--rootfs)")
            return None
        if self.dry_run:
            for item in ([what] if changes is None else changes):
                self.record(item, Status.UPDATED, "dry run")
            return None
        self.flush()
        result = self.target.run("set -euo pipefail\n" + script, timeout=timeout)
        for line in result.stdout.splitlines():
            if line.startswith("CHANGED "):
                self.record(line.removeprefix("CHANGED "), Status.UPDATED)
        if not result.ok:
            tail = (result.stderr.strip().splitlines() or result.stdout.strip().splitlines() or ["no output"])[-1]
            raise PhaseError(f"{what} failed on {self.target.name} (exit {result.exit_code}): {tail}")
        return result

    def ensure_file_checked(self, path: str, data: bytes, mode: int, check: str, tool: str) -> bool:
        """ensure_file for a config a tool validates on the node before it replaces the old one:
        `check` is the tool's command with {} for the staged copy (`haproxy -c -q -f {}`). A config
        the tool rejects replaces nothing. Under --rootfs the file is written unvalidated."""
        current = self.state(path)
        if current is not None and current.content == data and current.mode == mode:
            self.record(path, Status.UNCHANGED)
            return False
        if not self.live:
            return self.ensure_file(path, data, mode, detail=f"not validated: {tool} does not run under --rootfs")
        status = Status.CREATED if current is None else Status.UPDATED
        if self.dry_run:
            self.record(path, status, "dry run")
            self.overlay[path] = FileState(data, mode)
            return True
        staged = path + ".kbootstrap-new"
        self.flush()
        self.target.write_many([(staged, data, mode, None)])
        q = shlex.quote
        result = self.target.run(
            f"if out=$({check.format(q(staged))} 2>&1); then mv -f {q(staged)} {q(path)}; "
            f"else rm -f {q(staged)}; printf '%s\\n' \"$out\" >&2; exit 1; fi"
        )
        if not result.ok:
            lines = [ln for ln in result.stderr.splitlines() if ln.strip()] or ["no output"]
            raise PhaseError(
                f"{tool} rejected the rendered {path} on {self.target.name}: {lines[-1].strip()}",
                hint=f"nothing was replaced; report this config bug with `{check.format(path)}` output",
            )
        self.record(path, status, f"validated by {check.split()[0]}")
        return True

    def service(
        self,
        unit: str,
        *,
        restart: bool = False,
        why: str = "",
        daemon_reload: bool = False,
        reload: bool = False,
        rootfs_reason: str = "--rootfs: no service is started",
    ) -> bool:
        """The unit enabled and running; restarted (or, with `reload`, reloaded) only when `restart`
        (its inputs changed: `why` says which). True when it was (or would be) started or restarted."""
        item = f"start {unit}"
        if not self.live:
            self.skip(item, "dry-run: nothing is started" if self.dry_run else rootfs_reason)
            return False
        self.flush()
        state = read_only(
            self.target, f"systemctl is-enabled {unit} 2>/dev/null; systemctl is-active {unit} 2>/dev/null; true",
            timeout=60).stdout.split()
        enabled = bool(state) and state[0] in ("enabled", "static", "alias")
        active = len(state) > 1 and state[1] == "active"
        steps, words = [], []
        if daemon_reload:
            steps.append("systemctl daemon-reload")
        if not enabled:
            steps.append(f"systemctl enable -q {unit}")
            words.append("enabled")
        if not active:
            steps.append(f"systemctl start {unit}")
            words.append("started")
        elif restart:
            steps.append(f"systemctl {'reload-or-restart' if reload else 'restart'} {unit}")
            words.append(("reloaded" if reload else "restarted") + (f" ({why})" if why else ""))
        if not words:
            self.record(item, Status.UNCHANGED, "enabled and running")
            return False
        detail = ", ".join(words)
        if self.dry_run:
            self.record(item, Status.UPDATED, "would be " + detail)
            return True
        result = self.target.run(" && ".join(steps), timeout=180)
        if not result.ok:
            self.record(item, Status.FAILED, (result.stderr or result.stdout).strip()[-300:])
            raise PhaseError(
                f"systemd could not start {unit} on {self.target.name}", hint=f"see `journalctl -u {unit}`"
            )
        self.record(item, Status.UPDATED, detail)
        return True

    @contextlib.contextmanager
    def rolling(self, name: str, gate: Callable[[], None] | None = None) -> Iterator[None]:
        """One host at a time for a change that restarts a member of a quorum (etcd) or an API
        server: the next host waits until this one passed `gate` (healthy again). A host failing
        its gate stops the roll: the hosts after it are not touched."""
        if self.run is None:
            yield
            if gate is not None and not self.dry_run:
                gate()
            return
        with self.run.lock(name):
            halted = self.run.halted.get(name)
            if halted:
                raise PhaseError(f"not restarted: {halted}", hint="fix that host and rerun; the roll resumes")
            yield
            if gate is not None and not self.dry_run:
                try:
                    gate()
                except KbootstrapError as exc:
                    self.run.halted[name] = f"{self.target.name} failed its health check after the restart"
                    raise exc
