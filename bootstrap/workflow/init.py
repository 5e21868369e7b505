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
from bootstrap.join.copycerts import parse_certificate_key
from bootstrap.phases.certs import SharedPKI
from bootstrap.phases.cluster_api import ADMIN_CONF, preload_client
from bootstrap.phases.tree import INIT
from bootstrap.phases.upload_certs import CertificateUpload
from bootstrap.render.kubeconfig import with_server
from bootstrap.spec.inventory import CONTROL_PLANE, ETCD, InventoryHost, ansible_bool
from bootstrap.spec.load import build_spec, environment_defaults
from bootstrap.transport.local import LocalTarget
from bootstrap.validate.zones import check_zones
from bootstrap.workflow.guard import check_rerun, read_running_cluster
from bootstrap.workflow.options import Events, FleetOptions
from bootstrap.workflow.session import FleetPlan, close, connect, plan_fleet, run_state

ZONES = "zones"
ADMIN_NOTE = "admin_kubeconfig"  # RunResult.notes: where the control machine's admin.conf was written
ARTIFACTS_DIR = "artifacts"


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
    skipped = tree.check_skip(skip) | tree.check_skip(spec.skipped_phases, where="skipPhases")
    if only is not None:
        tree, only_skip = tree.only(only)
        skipped |= only_skip
    target = LocalTarget(rootfs or "/", name=spec.node.name)
    check_rerun(read_running_cluster(target, spec), spec, spec.node.name)
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
    run.put_slot(certificate_upload(flags.get("upload_certs"), flags.get("certificate_key"), None))
    return run_tree(tree, run, skipped)


def certificate_upload(enabled: object, key: object, key_dir: Path | None) -> CertificateUpload:
    """--upload-certs / --certificate-key, checked before anything runs (a bad key is a usage error)."""
    if key:
        parse_certificate_key(str(key))
    return CertificateUpload(enabled=bool(enabled), key_hex=str(key or ""), key_dir=key_dir)


def write_admin_kubeconfig(plan: FleetPlan, run: RunState) -> str | None:
    """Kubespray's kubeconfig_localhost: the first control plane's admin.conf, its server the cluster
    endpoint, at inventories/NAME/artifacts/admin.conf (0600, atomic). None when there is none yet."""
    if not ansible_bool(plan.inv.vars.get("kubeconfig_localhost", True)):
        return None
    target = run.targets.get(run.first_control_plane)
    found = target.read(ADMIN_CONF) if target is not None and target.live else None
    if found is None:
        return None
    data = with_server(found.content, plan.cluster.control_plane_url, f"{run.first_control_plane}:{ADMIN_CONF}")
    artifacts = plan.inv.path.parent / ARTIFACTS_DIR
    local = LocalTarget(artifacts, name="control-machine")
    current = local.read("/admin.conf")
    if current is None or current.content != data or current.mode != 0o600:
        local.write("/admin.conf", data, 0o600)
    return str(artifacts / "admin.conf")


def init_fleet(opts: FleetOptions, events: Events | None = None, *, tree: Tree = INIT) -> RunResult:
    """Every host of the inventory through the init tree (or `opts.only`, one phase of it)."""
    events = events or Events()
    plan = plan_fleet(opts, tree)
    # The inventory's warnings (variables not honoured, Ansible's own): said before anything runs.
    events.warn_all(plan.inv.warnings)
    skip = set(plan.skip)
    if opts.only is not None:
        tree, only_skip = tree.only(opts.only)
        skip |= only_skip
    names = [h.name for h in plan.inv.hosts if not opts.limit or h.name in opts.limit]
    where = f"rendering into {opts.rootfs}" if opts.rootfs else "connecting to"
    events.note(f"{where} {len(names)} hosts")
    if not opts.dry_run and opts.rootfs is None:
        preload_client()
    # The read-ahead predicts a whole init from the last one; one phase asks too little for it.
    conns = connect(plan.inv, names, opts, read_ahead="init" if opts.only is None else None)
    try:
        run = run_state(plan, names, conns, opts, events)
        first = run.contexts.get(run.first_control_plane)
        if first is not None:  # unreachable: its own phases fail, and nothing is guarded
            check_rerun(read_running_cluster(first.target, first.spec), first.spec, run.first_control_plane)
        run.put_slot(SharedPKI(store=Path(plan.pki_dir)))
        run.put_slot(certificate_upload(opts.upload_certs, opts.certificate_key, Path(plan.pki_dir)))
        result = run_tree(tree, run, skip, skip_reasons=plan.reasons)
        if not opts.dry_run and not result.hosts[run.first_control_plane].failed:
            result.notes[ADMIN_NOTE] = write_admin_kubeconfig(plan, run)
    finally:
        close(conns)
    zones = check_zones(plan.inv.hosts)
    result.notes[ZONES] = {"warnings": zones.warnings, "suggestion": zones.suggestion or None}
    return result
