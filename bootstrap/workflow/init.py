"""`kbootstrap init`: one node (kubeadm's workflow on this machine or a --rootfs directory), or
every host of an inventory (`-i`: over SSH, or rendered offline into ROOTFS/<host>/)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import Tree
from bootstrap.engine.result import RunResult
from bootstrap.engine.runner import RunState, run_tree
from bootstrap.phases.certs import SharedPKI
from bootstrap.phases.tree import INIT
from bootstrap.spec.inventory import CONTROL_PLANE, ETCD, InventoryHost
from bootstrap.spec.load import build_spec, environment_defaults
from bootstrap.transport.local import LocalTarget
from bootstrap.validate.zones import check_zones
from bootstrap.workflow.options import Events, FleetOptions
from bootstrap.workflow.session import close, connect, plan_fleet, run_state

ZONES = "zones"


def local_host(name: str) -> InventoryHost:
    """The one node of a single-node init: first control plane and etcd member."""
    return InventoryHost(name=name, address="127.0.0.1", ip="127.0.0.1", roles=frozenset({CONTROL_PLANE, ETCD}))


def init_node(
    flags: dict[str, Any],
    *,
    rootfs: str | None,
    dry_run: bool,
    only: str | None = None,
    skip: tuple[str, ...] = (),
    events: Events | None = None,
) -> RunResult:
    """kubeadm's init on one node: the init tree without kbootstrap's fleet-only phases."""
    events = events or Events()
    spec = build_spec(flags, flags.get("config"), defaults=environment_defaults(os.environ))
    tree = INIT.local()
    skipped = tree.check_skip(skip) | tree.check_skip(spec.skip_phases, where="skipPhases")
    if only is not None:
        tree, only_skip = tree.only(only)
        skipped |= only_skip
    target = LocalTarget(rootfs or "/", name=spec.node.name)
    ctx = RunContext(spec, target, dry_run=dry_run)
    run = RunState(
        nodes={spec.node.name: local_host(spec.node.name)},
        contexts={spec.node.name: ctx},
        result=RunResult({}, dry_run=dry_run),
        first_control_plane=spec.node.name,
        dry_run=dry_run,
        on_phase=events.on_phase,
        on_interrupt=events.on_interrupt,
    )
    return run_tree(tree, run, skipped)


def init_fleet(opts: FleetOptions, events: Events | None = None, *, tree: Tree = INIT) -> RunResult:
    """Every host of the inventory through the init tree (or `opts.only`, one phase of it)."""
    events = events or Events()
    plan = plan_fleet(opts, tree)
    skip = set(plan.skip)
    if opts.only is not None:
        tree, only_skip = tree.only(opts.only)
        skip |= only_skip
    names = [h.name for h in plan.inv.hosts if not opts.limit or h.name in opts.limit]
    where = f"rendering into {opts.rootfs}" if opts.rootfs else "connecting to"
    events.note(f"{where} {len(names)} hosts")
    conns = connect(plan.inv, names, opts)
    try:
        run = run_state(plan, names, conns, opts, events)
        run.put_slot(SharedPKI(store=Path(plan.pki_dir)))
        result = run_tree(tree, run, skip, skip_reasons=plan.reasons)
    finally:
        close(conns)
    zones = check_zones(plan.inv.hosts)
    result.notes[ZONES] = {"warnings": zones.warnings, "suggestion": zones.suggestion or None}
    return result
