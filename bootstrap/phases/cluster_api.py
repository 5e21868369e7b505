"""What the phases after kubelet-start share: one API session per run, and the gate for API objects.

The session is opened from the first control plane's super-admin.conf (kubeadm's credentials until
admin.conf's group is bound to cluster-admin, v1.29+) or admin.conf, read through that node's target
and kept in memory. It talks to the first control plane's own API server first (what kubeadm's
init does: the cluster endpoint may be a VIP or load balancer that is not up yet, or a name only
the nodes resolve), then to the endpoint the kubeconfig names. Objects go through `apply_objects`:
a dry run (or --rootfs) records and keeps them (the command prints them) and contacts nothing; a
real run applies each as kubeadm would (bootstrap.render.apiobjects.applymode) and records created,
updated or unchanged.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from bootstrap.engine.context import RunContext
from bootstrap.engine.result import Status
from bootstrap.engine.runner import RunState
from bootstrap.errors import KbootstrapError, PhaseError
from bootstrap.join.tokens import KEY_SECRET, SECRET_TYPE
from bootstrap.kube.api import CREATED, UNCHANGED, UPDATED, ClusterAPI, describe
from bootstrap.render.apiobjects.applymode import ApplyMode, apply_mode
from bootstrap.render.apiobjects.joincommand import WITHHELD
from bootstrap.spec.endpoint import url_host
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


def preload_client() -> None:
    """Import the `kubernetes` client (a third of a second) in the background while the node
    phases wait on their hosts, so the first API phase does not."""
    threading.Thread(target=importlib.import_module, args=("kubernetes.dynamic",), daemon=True).start()


def offline(ctx: RunContext) -> str | None:
    """Why this run talks to no API server (a dry run, a --rootfs render), or None."""
    if ctx.dry_run:
        return "dry run"
    if not ctx.live:
        return "not a live host (--rootfs): no API server"
    return None


def open_api(run: RunState) -> ClusterAPI:
    """The run's session, opened on first use from the first control plane's credentials (or, when
    this run cannot reach it, e.g. one Ansible task per host, another control plane's admin.conf)."""
    session = run.slot(APISession)
    if session.api is not None:
        return session.api
    first = run.first_control_plane
    others = [n for n in run.contexts if n != first and run.nodes[n].is_control_plane]
    for name in (first, *others):
        target = run.targets.get(name)
        if target is None:
            continue
        for path in (SUPER_ADMIN_CONF, ADMIN_CONF):
            found = target.read(path)
            if found is None:
                continue
            session.api = _first_answering(session, found.content, f"{name}:{path}", [*_local_url(run, name), None])
            return session.api
    raise PhaseError(f"no admin kubeconfig on {first} ({ADMIN_CONF})", hint="run the kubeconfig phase first")


def _local_url(run: RunState, name: str) -> list[str]:
    """The control plane's own API server (its advertise address), when this run knows it."""
    ctx = run.contexts.get(name)
    if ctx is not None:
        return [ctx.spec.local_endpoint_url]
    if run.inventory is None or not run.contexts:
        return []
    ip = next((h.ip for h in run.inventory.hosts if h.name == name), None)
    if ip is None:
        return []
    port = next(iter(run.contexts.values())).spec.bind_port
    return [f"https://{url_host(ip)}:{port}"]


def _first_answering(session: APISession, kubeconfig: bytes, where: str, servers: Iterable[str | None]) -> ClusterAPI:
    last: KbootstrapError | None = None
    for server in servers:
        api = ClusterAPI(kubeconfig, where, server=server)
        try:
            return session.stack.enter_context(api)
        except KbootstrapError as exc:
            last = exc
    assert last is not None
    raise last


def cluster_api(ctx: RunContext) -> ClusterAPI:
    assert ctx.run is not None
    return open_api(ctx.run)


def close_session(run: RunState) -> None:
    run.slot(APISession).close()


def apply_objects(ctx: RunContext, objects: list[dict[str, Any]]) -> list[str]:
    """Every object through the API (or, offline, into the run's list of objects to print);
    returns the descriptions of those that changed."""
    why = offline(ctx)
    if why is not None:
        kept = ctx.run.result.notes.setdefault(OBJECTS_NOTE, []) if ctx.run is not None else []
        kept.extend(redact_secret(obj) for obj in objects)
        if ctx.dry_run:
            for obj in objects:
                ctx.record(describe(obj), Status.CREATED, why)
        elif objects:
            ctx.skip(f"{len(objects)} API objects", f"{why} (`--dry-run` prints them)")
        return []
    api = cluster_api(ctx)
    changed = []
    for obj in objects:
        status = apply_one(api, obj)
        detail = "kept as found (kubeadm keeps a customised one)" if (
            status == UNCHANGED and apply_mode(obj) == ApplyMode.CREATE_OR_RETAIN) else ""
        ctx.record(describe(obj), _STATUS[status], detail)
        if status != UNCHANGED:
            changed.append(describe(obj))
    return changed


def apply_one(api: ClusterAPI, obj: dict[str, Any]) -> str:
    """create-or-retain objects are created only when missing; the rest server-side applied (which
    changes only the fields we own: kubeadm's create-or-mutate for kubeadm-config)."""
    if apply_mode(obj) == ApplyMode.CREATE_OR_RETAIN:
        meta = obj["metadata"]
        if api.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace")) is not None:
            return UNCHANGED
    return api.apply(obj)


def redact_secret(obj: dict[str, Any]) -> dict[str, Any]:
    """A Secret as a dry run keeps it: a bootstrap token's secret withheld (its id, expiry and usages
    are not secret), every value of any other Secret (encrypted CA keys)."""
    if obj.get("kind") != "Secret":
        return obj
    withheld = base64.b64encode(WITHHELD.encode()).decode()
    is_token = obj.get("type") == SECRET_TYPE
    data = {k: withheld if not is_token or k == KEY_SECRET else v for k, v in (obj.get("data") or {}).items()}
    return {**obj, "data": data}


def objects_yaml(objects: list[dict[str, Any]]) -> str:
    """The objects as one multi-document YAML stream (what `--dry-run` prints)."""
    return "".join("---\n" + yaml.safe_dump(o, sort_keys=False) for o in objects)
