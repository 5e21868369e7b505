"""`kbootstrap reset` (one node, or every host of an inventory) and `remove-node` (one host out of a
running cluster: its etcd member removed through a survivor, then the node reset; with --force the
dead node is never contacted)."""

from __future__ import annotations

from bootstrap.engine.context import RunContext
from bootstrap.engine.result import Change, HostReport, PhaseResult, RunResult, Status
from bootstrap.engine.runner import RunState, run_host_phases, run_tree
from bootstrap.errors import KbootstrapError, TransportError, UsageError
from bootstrap.etcd import members as etcd
from bootstrap.kube.api import ClusterAPI
from bootstrap.phases.cluster_api import ADMIN_CONF
from bootstrap.phases.reset import RESET, ResetOptions
from bootstrap.spec.inventory import InventoryHost
from bootstrap.spec.load import build_spec
from bootstrap.spec.model import ClusterSpec
from bootstrap.transport.base import Target
from bootstrap.transport.local import LocalTarget
from bootstrap.workflow.init import local_host
from bootstrap.workflow.options import Events, FleetOptions
from bootstrap.workflow.session import close, connect, one_line, plan_fleet, run_state


def reset_node(
    cert_dir: str, *, rootfs: str | None, dry_run: bool, cleanup_tmp_dir: bool, events: Events | None = None
) -> RunResult:
    events = events or Events()
    spec = build_spec({"apiserver_advertise_address": "127.0.0.1", "node_name": "localhost", "cert_dir": cert_dir})
    target = LocalTarget(rootfs or "/", name="localhost")
    run = RunState(
        nodes={"localhost": local_host("localhost")},
        contexts={"localhost": RunContext(spec, target, dry_run=dry_run)},
        result=RunResult({}, dry_run=dry_run),
        dry_run=dry_run,
        on_phase=events.on_phase,
    )
    run.put_slot(ResetOptions(cleanup_tmp_dir=cleanup_tmp_dir))
    return run_tree(RESET.local(), run, set())


def reset_fleet(opts: FleetOptions, events: Events | None = None) -> RunResult:
    """Every host in parallel, as Kubespray's reset.yml: the whole cluster goes, so no etcd member
    leaves one by one (that would lose quorum half-way)."""
    events = events or Events()
    plan = plan_fleet(opts, RESET)
    names = [h.name for h in plan.inv.hosts]
    # The inventory's warnings (variables not honoured, Ansible's own): said before anything runs.
    events.warn_all(plan.inv.warnings)
    conns = connect(plan.inv, names, opts)
    try:
        run = run_state(plan, names, conns, opts, events)
        run.put_slot(ResetOptions(etcd_member_removed=True))
        return run_tree(RESET, run, set(plan.skip), skip_reasons=plan.reasons)
    finally:
        close(conns)


def remove_node(opts: FleetOptions, node_name: str, *, force: bool) -> RunResult:
    plan = plan_fleet(opts, RESET)
    inv = plan.inv
    if node_name not in {h.name for h in inv.hosts}:
        raise UsageError(
            f"--node: host {node_name!r} is not in {inv.path}", hint="names: " + ", ".join(h.name for h in inv.hosts)
        )
    host = inv.host(node_name)
    survivors = [h.name for h in inv.hosts if h.is_etcd and h.name != node_name]
    cps = [h.name for h in inv.control_planes() if h.name != node_name]
    names = list(dict.fromkeys([*survivors, *cps[:1], *([] if force else [node_name])]))
    conns = connect(inv, names, opts)
    result = RunResult({node_name: HostReport(node_name)}, dry_run=opts.dry_run)
    report = result.hosts[node_name]
    try:
        node_conn = None if force else conns[node_name]
        if isinstance(node_conn, KbootstrapError):
            raise TransportError(
                f"{node_name} is unreachable: {one_line(node_conn)}",
                hint="if it is dead for good, rerun with --force: its etcd member is removed "
                "through the survivors and the node is never contacted",
            )
        if host.is_etcd and plan.cluster.etcd_external is None:
            live = {n: c for n, c in conns.items() if not isinstance(c, KbootstrapError)}
            report.phases.append(_remove_member(live, survivors, host, plan.cluster, opts.dry_run))
        if node_conn is not None and not report.failed:
            run = run_state(plan, [node_name], conns, opts, Events())
            run.put_slot(ResetOptions(etcd_member_removed=True))
            partial = run_host_phases(run.contexts[node_name], RESET, set())
            report.phases.extend(partial.phases)
        elif force:
            report.phases.append(PhaseResult("cleanup-node", skipped_reason="--force: the node is not contacted"))
        if not report.failed and cps:
            report.phases.append(_delete_node_object(conns.get(cps[0]), cps[0], node_name, opts.dry_run))
    finally:
        close(conns)
    return result


def _delete_node_object(conn: Target | KbootstrapError | None, cp: str, node_name: str, dry_run: bool) -> PhaseResult:
    """The Node object goes too (Kubespray's remove-node deletes it): its pods are then rescheduled by
    their controllers. Not drained first. Through a remaining control plane's admin.conf."""
    result = PhaseResult("delete-node")
    item = f"Node {node_name}"
    if conn is None or isinstance(conn, KbootstrapError) or not conn.live:
        result.changes.append(Change(result.name, item, Status.SKIPPED, f"{cp} is not reachable: delete it yourself"))
        return result
    admin = conn.read(ADMIN_CONF)
    if admin is None:
        result.changes.append(Change(result.name, item, Status.SKIPPED, f"no {ADMIN_CONF} on {cp}"))
        return result
    if dry_run:
        result.changes.append(Change(result.name, item, Status.UPDATED, "would be deleted"))
        return result
    try:
        with ClusterAPI(admin.content, f"{cp}:{ADMIN_CONF}") as api:
            gone = api.delete("v1", "Node", node_name)
    except KbootstrapError as exc:
        result.changes.append(Change(result.name, item, Status.WARNING, f"not deleted: {exc.one_line()}"))
        return result
    result.changes.append(Change(result.name, item, Status.UPDATED if gone else Status.UNCHANGED,
                                 "deleted through " + cp if gone else "not registered"))
    return result


def _remove_member(
    conns: dict[str, Target], survivors: list[str], host: InventoryHost, cluster: ClusterSpec, dry_run: bool
) -> PhaseResult:
    result = PhaseResult("remove-etcd-member")
    reachable = [n for n in survivors if n in conns]
    if not reachable:
        result.error = "no surviving etcd member is reachable: the member cannot be removed"
        return result
    peer = f"https://{f'[{host.ip}]' if ':' in host.ip else host.ip}:2380"
    errors = []
    for name in reachable:
        etcdctl = etcd.etcdctl_on(conns[name], cluster.cert_dir)
        try:
            members = etcd.member_list(etcdctl)
        except KbootstrapError as exc:
            errors.append(f"{name}: {exc.message}")
            continue
        victim = next((m for m in members if m.name == host.name or peer in m.peer_urls), None)
        item = f"etcd member {host.name}"
        if victim is None:
            result.changes.append(Change(result.name, item, Status.UNCHANGED, f"not a member (seen from {name})"))
            return result
        if len(members) <= 1:
            result.error = f"{host.name} is the last etcd member: removing it would destroy the cluster"
            return result
        if dry_run:
            result.changes.append(Change(result.name, item, Status.UPDATED, f"would remove {victim.hex_id}"))
            return result
        out = etcd.remove_member(etcdctl, victim.hex_id)
        if not out.ok:
            errors.append(f"{name}: member remove: {etcd.last_line(out)}")
            continue
        result.changes.append(Change(result.name, item, Status.UPDATED, f"removed {victim.hex_id} through {name}"))
        try:
            health = etcd.wait_all_healthy(etcdctl)
            result.changes.append(Change(result.name, "etcd health", Status.UNCHANGED, health.describe()))
        except KbootstrapError as exc:
            result.error = exc.one_line()
        return result
    result.error = "; ".join(errors)
    return result



