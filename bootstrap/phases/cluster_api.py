"""What the phases after kubelet-start share: one API session per run, and the gate for API objects.

The session is opened from the first control plane's super-admin.conf (kubeadm's credentials until
admin.conf's group is bound to cluster-admin, v1.29+) or admin.conf, read through the node's target
and kept in memory; the client talks to the cluster endpoint the kubeconfig names. Objects go
through `apply_objects`: a dry run records and keeps them (the command prints them) and contacts
nothing; a real run applies each server-side and records created, updated or unchanged.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import yaml

from bootstrap.engine.context import RunContext
from bootstrap.engine.result import Status
from bootstrap.errors import PhaseError
from bootstrap.kube.api import CREATED, UNCHANGED, UPDATED, ClusterAPI, describe
from bootstrap.spec.model import KUBERNETES_DIR

SUPER_ADMIN_CONF = f"{KUBERNETES_DIR}/super-admin.conf"
ADMIN_CONF = f"{KUBERNETES_DIR}/admin.conf"
OBJECTS_NOTE = "objects"  # RunResult.notes: the objects a dry run would apply, in order
_STATUS = {CREATED: Status.CREATED, UPDATED: Status.UPDATED, UNCHANGED: Status.UNCHANGED}


@dataclass
class APISession:
    """The run's API session (a RunState slot), opened on first use, closed when the run ends."""

    api: ClusterAPI | None = None
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def close(self) -> None:
        self.stack.close()
        self.api = None


def cluster_api(ctx: RunContext) -> ClusterAPI:
    """The session, opened from the credentials on this node (the first control plane)."""
    session = ctx.run.slot(APISession) if ctx.run is not None else APISession()
    if session.api is not None:
        return session.api
    for path in (SUPER_ADMIN_CONF, ADMIN_CONF):
        data = ctx.read(path)
        if data is not None:
            session.api = session.stack.enter_context(ClusterAPI(data, f"{ctx.name}:{path}"))
            return session.api
    raise PhaseError(f"no admin kubeconfig on {ctx.name} ({ADMIN_CONF})", hint="run the kubeconfig phase first")


def apply_objects(ctx: RunContext, objects: list[dict[str, Any]]) -> list[str]:
    """Every object through the API (or, in a dry run, into the run's list of objects to print);
    returns the descriptions of those that changed."""
    if ctx.dry_run or not ctx.live:
        kept = ctx.run.result.notes.setdefault(OBJECTS_NOTE, []) if ctx.run is not None else []
        for obj in objects:
            kept.append(obj)
            why = "dry run" if ctx.dry_run else "not a live host (--rootfs): nothing is applied"
            ctx.record(describe(obj), Status.CREATED if ctx.dry_run else Status.SKIPPED, why)
        return []
    api = cluster_api(ctx)
    changed = []
    for obj in objects:
        status = api.apply(obj)
        ctx.record(describe(obj), _STATUS[status])
        if status != UNCHANGED:
            changed.append(describe(obj))
    return changed


def objects_yaml(objects: list[dict[str, Any]]) -> str:
    """The objects as one multi-document YAML stream (what `--dry-run` prints)."""
    return "".join("---\n" + yaml.safe_dump(o, sort_keys=False) for o in objects)
