"""A fleet run's setup, shared by init, join and reset: the plan (inventory, every host's spec,
the skip list, the bundle) made and validated before any host is contacted; then the targets (SSH
connections, or with --rootfs one directory per host) and the RunState the engine runs the tree in.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bootstrap.artifacts.bundle import Bundle, load_bundle
from bootstrap.artifacts.upstream import DEFAULT_BASE_URL
from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import Tree
from bootstrap.engine.result import RunResult
from bootstrap.engine.runner import RunState
from bootstrap.errors import KbootstrapError, UsageError
from bootstrap.phases.tree import ALL_TREES
from bootstrap.spec.inventory import Inventory, load_inventory
from bootstrap.spec.model import ClusterSpec
from bootstrap.transport.base import Target
from bootstrap.transport.cache import ReadAheadTarget
from bootstrap.transport.local import LocalTarget
from bootstrap.transport.snapshot import Asked, SnapshotTarget, load_predictions, save_predictions
from bootstrap.transport.trace import maybe_trace
from bootstrap.workflow.fleet_spec import fleet_cluster_spec, node_specs
from bootstrap.workflow.options import Events, FleetOptions

INVENTORY_SKIP_REASON = "set in the inventory (kbootstrap_skip_phases)"


@dataclass
class FleetPlan:
    inv: Inventory
    cluster: ClusterSpec  # the first control plane's view
    specs: dict[str, ClusterSpec]  # each host's own, validated
    skip: set[str]
    reasons: dict[str, str]  # skipped phase -> why
    bundle: Bundle | None
    base_url: str
    pki_dir: Path
    notes: dict[str, object] = field(default_factory=dict)


def plan_fleet(opts: FleetOptions, tree: Tree, *, verify_bundle: bool = True) -> FleetPlan:
    """Everything that can be checked without a host: a bad inventory, flag or skip name is one
    line here and nothing runs. verify_bundle=False reads the bundle's manifest without hashing it."""
    inv = load_inventory(opts.inventory, opts.vault_password_file)
    cluster = fleet_cluster_spec(opts.flags, inv)
    specs = node_specs(cluster, inv)
    from_inv = [str(s) for s in inv.vars.get("kbootstrap_skip_phases") or []]
    requested = tree.check_skip(opts.skip)
    # The inventory's and the config's skips are about the cluster's whole life (init, join, reset):
    # checked against every tree, applied where the phase exists in this one.
    here = set(tree.paths())
    inventory_skip = ALL_TREES.check_skip(from_inv, where="kbootstrap_skip_phases") & here
    spec_skip = ALL_TREES.check_skip(cluster.skipped_phases, where="skipPhases") & here
    inv_reason = str(inv.vars.get("kbootstrap_skip_reason") or INVENTORY_SKIP_REASON)
    reasons = {p: inv_reason for p in inventory_skip} | {p: "--skip-phases" for p in requested | spec_skip}
    return FleetPlan(
        inv,
        cluster,
        specs,
        requested | inventory_skip | spec_skip,
        reasons,
        bundle_for(inv, opts.bundle, verify=verify_bundle),
        artifact_base_url(inv, opts.upstream_url),
        Path(opts.pki_dir) if opts.pki_dir else default_pki_dir(inv),
    )


def default_pki_dir(inv: Inventory) -> Path:
    return Path("pki") / inv.path.parent.name


def check_limit(inv: Inventory, limit: tuple[str, ...] | list[str]) -> None:
    known = {h.name for h in inv.hosts}
    unknown = [n for n in limit if n not in known]
    if unknown:
        raise UsageError(
            f"--limit: {', '.join(unknown)} not in the inventory {inv.path}",
            hint="add the new hosts to the inventory first",
        )


def artifact_base_url(inv: Inventory, override: str | None = None) -> str:
    """Where binaries come from without a bundle: --upstream-url, our inventory var, Kubespray's
    files_repo (same layout under /dl.k8s.io/release), else the upstream release site."""
    if override:
        return override
    if inv.vars.get("kbootstrap_upstream_url"):
        return str(inv.vars["kbootstrap_upstream_url"])
    if inv.vars.get("files_repo"):
        return f"{str(inv.vars['files_repo']).rstrip('/')}/dl.k8s.io/release"
    return DEFAULT_BASE_URL


def bundle_path(inv: Inventory, override: str | None) -> Path | None:
    path = override or inv.vars.get("kbootstrap_bundle")
    if not path:
        return None
    p = Path(str(path))
    if not p.is_absolute() and (inv.path.parent / p).exists():
        p = inv.path.parent / p
    return p


def bundle_for(inv: Inventory, override: str | None, *, verify: bool = True) -> Bundle | None:
    p = bundle_path(inv, override)
    return load_bundle(p, verify=verify) if p is not None else None


def connect(
    inv: Inventory, names: list[str], opts: FleetOptions, *, read_ahead: str | None = None
) -> dict[str, Target | KbootstrapError]:
    """One target per host: an SSH connection (host keys verified), or with --rootfs the directory
    ROOTFS/<host>/ (nothing is contacted). A host that cannot be reached is its error.
    read_ahead: the command's name, to ask each host at once what that command's last run on this
    inventory asked it (transport/snapshot.py); `close` keeps what this run asked."""
    if opts.rootfs is not None:
        root = Path(opts.rootfs)
        return {n: LocalTarget(root / n, name=n) for n in names}
    from bootstrap.transport.ssh import SSHHost, connect_all

    known = tuple(str(p) for p in (inv.known_hosts, Path.home() / ".ssh" / "known_hosts") if p is not None)
    hosts = [
        SSHHost(
            name=h.name,
            address=h.address,
            port=h.port,
            user=h.user,
            key_file=h.key_file,
            become=h.become or opts.become,
            known_hosts=known,
        )
        for h in inv.hosts
        if h.name in names and h.connection == "ssh"
    ]
    out: dict[str, Target | KbootstrapError] = {}
    connected: dict[str, Target | KbootstrapError] = dict(connect_all(hosts, forks=opts.forks, tofu=opts.tofu))
    # ansible_connection=local: this machine is the host, as for Ansible.
    connected.update({h.name: LocalTarget("/", name=h.name) for h in inv.hosts
                      if h.name in names and h.connection == "local"})
    if read_ahead is None:
        for name, conn in connected.items():
            out[name] = conn if isinstance(conn, KbootstrapError) else ReadAheadTarget(maybe_trace(conn))
        return out
    file = predictions_file(inv, read_ahead)
    predicted, changed = load_predictions(file), threading.Event()
    snapshots: list[SnapshotTarget] = []
    for name, conn in connected.items():
        if isinstance(conn, KbootstrapError):
            out[name] = conn
            continue
        snapshot = SnapshotTarget(maybe_trace(conn), predicted.get(name), changed, prediction_file=file)
        snapshots.append(snapshot)
        out[name] = ReadAheadTarget(snapshot)
    with ThreadPoolExecutor(max_workers=max(1, min(opts.forks, len(snapshots) or 1))) as pool:
        list(pool.map(SnapshotTarget.warm, snapshots))
    return out


def predictions_file(inv: Inventory, command: str) -> Path:
    """Where a command's read-ahead for this inventory is kept (one file per inventory and command)."""
    key = hashlib.sha256(str(inv.path.resolve()).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "kbootstrap" / "read-ahead" / f"{key}-{command}.json"


def one_line(exc: BaseException) -> str:
    return exc.one_line() if isinstance(exc, KbootstrapError) else str(exc)


def run_state(
    plan: FleetPlan,
    names: list[str],
    conns: Mapping[str, Target | KbootstrapError],
    opts: FleetOptions,
    events: Events,
    *,
    first_control_plane: str | None = None,
) -> RunState:
    """The engine's state for a run over `names` (helpers in `conns` stay reachable as targets)."""
    contexts: dict[str, RunContext] = {}
    for n in names:
        conn = conns.get(n)
        if conn is None or isinstance(conn, KbootstrapError):
            continue
        host = plan.inv.host(n)
        contexts[n] = RunContext(
            plan.specs[n],
            conn,
            dry_run=opts.dry_run,
            bundle=plan.bundle,
            roles=host.roles,
            artifact_base_url=plan.base_url,
        )
    run = RunState(
        nodes={n: plan.inv.host(n) for n in names},
        contexts=contexts,
        result=RunResult({}, dry_run=opts.dry_run),
        first_control_plane=first_control_plane or plan.inv.control_planes()[0].name,
        targets={n: c for n, c in conns.items() if not isinstance(c, KbootstrapError)},
        inventory=plan.inv,
        forks=opts.forks,
        dry_run=opts.dry_run,
        on_phase=events.on_phase,
        on_interrupt=events.on_interrupt,
    )
    for n in names:
        conn = conns.get(n)
        if isinstance(conn, KbootstrapError):
            run.fail_host(n, conn.one_line())
            if events.on_host_failed is not None:
                events.on_host_failed(n, conn.one_line())
    return run


def close(conns: Mapping[str, Target | KbootstrapError]) -> None:
    """Close every connection, and keep what the run asked each host for the next run's read-ahead."""
    asked: dict[Path, dict[str, Asked]] = {}
    for name, c in conns.items():
        snapshot = getattr(c, "inner", None)
        if isinstance(snapshot, SnapshotTarget) and snapshot.prediction_file is not None:
            asked.setdefault(snapshot.prediction_file, {})[name] = snapshot.asked
    for file, hosts in asked.items():
        save_predictions(file, hosts)  # a host that asked nothing (a run refused early) keeps its last
    for c in conns.values():
        close_fn = getattr(c, "close", None)
        if close_fn is not None and not isinstance(c, KbootstrapError):
            close_fn()
