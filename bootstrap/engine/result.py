"""What a run did, per host and per phase: the data behind the text table and `-o json`."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    WARNING = "warning"
    FAILED = "failed"

    @property
    def changed(self) -> bool:
        return self in (Status.CREATED, Status.UPDATED)


@dataclass(frozen=True)
class Change:
    phase: str
    item: str  # a path on the node, or an action ("start kubelet")
    status: Status
    detail: str = ""


@dataclass
class PhaseResult:
    name: str
    seconds: float = 0.0
    changes: list[Change] = field(default_factory=list)
    error: str | None = None
    skipped_reason: str | None = None

    @property
    def changed(self) -> int:
        return sum(1 for c in self.changes if c.status.changed)


@dataclass
class HostReport:
    host: str
    phases: list[PhaseResult] = field(default_factory=list)
    error: str | None = None

    @property
    def changed(self) -> int:
        return sum(p.changed for p in self.phases)

    @property
    def failed(self) -> bool:
        return self.error is not None or any(p.error for p in self.phases)

    def to_json(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "failed": self.failed,
            "error": self.error or next((p.error for p in self.phases if p.error), None),
            "phases": [
                {
                    "name": p.name,
                    "seconds": round(p.seconds, 3),
                    "changed": p.changed,
                    "error": p.error,
                    "skipped": p.skipped_reason,
                    "changes": [
                        {"item": c.item, "status": c.status.value, **({"detail": c.detail} if c.detail else {})}
                        for c in p.changes
                    ],
                }
                for p in self.phases
            ],
        }


@dataclass
class RunResult:
    """One run of a tree over its hosts: what `commands/` renders (table, lines, `-o json`)."""

    hosts: dict[str, HostReport]
    dry_run: bool = False
    seconds: float = 0.0
    skipped: dict[str, str] = field(default_factory=dict)  # phase -> why it was skipped everywhere
    interrupted: bool = False  # stopped at a safe point after Ctrl-C
    # Cluster-level outcomes by name (validation, the etcd member a join went through, ...), as data.
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.interrupted or any(r.failed for r in self.hosts.values())

    def report(self, host: str) -> HostReport:
        return self.hosts.setdefault(host, HostReport(host))

    def to_json(self) -> dict[str, Any]:
        return {
            "hosts": {n: r.to_json() for n, r in self.hosts.items()},
            "skipped_phases": dict(self.skipped),
            "dry_run": self.dry_run,
            "seconds": round(self.seconds, 2),
            **({"interrupted": True} if self.interrupted else {}),
        }
