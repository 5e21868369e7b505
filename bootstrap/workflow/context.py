"""RunContext: what a phase gets. Every change to a node goes through it, so dry-run, the
report and idempotence ("a second run changes nothing") are handled once, here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from bootstrap.artifacts.bundle import Bundle
from bootstrap.artifacts.upstream import DEFAULT_BASE_URL
from bootstrap.spec.model import ClusterSpec
from bootstrap.transport.base import Target
from bootstrap.workflow.report import Change, PhaseResult, Status


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
    roles: frozenset[str] = frozenset({"kube_control_plane", "etcd"})

    def record(self, item: str, status: Status, detail: str = "") -> None:
        self.phase.changes.append(Change(self.phase.name, item, status, detail))

    def ensure_file(self, path: str, data: bytes, mode: int, *, owner: str | None = None, detail: str = "") -> bool:
        """Make path hold exactly data with mode. Returns True if it changed (or would, in dry-run)."""
        current = self.target.read(path)
        if current is not None and current.content == data:
            if current.mode == mode:
                self.record(path, Status.UNCHANGED, detail)
                return False
            if not self.dry_run:
                self.target.chmod(path, mode)
            self.record(path, Status.UPDATED, f"mode {current.mode:04o} -> {mode:04o}")
            return True
        if not self.dry_run:
            self.target.write(path, data, mode, owner)
        self.record(path, Status.CREATED if current is None else Status.UPDATED, detail)
        return True

    def ensure_files(self, files: list[tuple[str, bytes, int]], *, detail: str = "") -> dict[str, bool]:
        """ensure_file for many files at once. On a transport that batches (SSH), this costs two
        round trips however many files there are: one read, one write of what differs."""
        read_many = getattr(self.target, "read_many", None)
        write_many = getattr(self.target, "write_many", None)
        if read_many is None or write_many is None:
            return {path: self.ensure_file(path, data, mode, detail=detail) for path, data, mode in files}
        current = read_many([p for p, _, _ in files])
        changed: dict[str, bool] = {}
        to_write = []
        for path, data, mode in files:
            state = current.get(path)
            if state is not None and state.content == data and state.mode == mode:
                self.record(path, Status.UNCHANGED, detail)
                changed[path] = False
                continue
            to_write.append((path, data, mode, None))
            status = Status.CREATED if state is None else Status.UPDATED
            self.record(path, status, detail if state is None or state.content != data else
                        f"mode {state.mode:04o} -> {mode:04o}")
            changed[path] = True
        if to_write and not self.dry_run:
            write_many(to_write)
        return changed

    def ensure_dir(self, path: str, mode: int) -> None:
        """Directories are not reported unless their mode is wrong; files carry the news."""
        if self.dry_run:
            return
        self.target.mkdir(path, mode)

    def skip(self, item: str, reason: str) -> None:
        self.record(item, Status.SKIPPED, reason)

    def warn(self, item: str, reason: str) -> None:
        self.record(item, Status.WARNING, reason)
