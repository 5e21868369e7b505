"""Growing and shrinking a cluster from an inventory (Kubespray's scale.yml and remove-node.yml).

`join -i INV --limit HOSTS`: the hosts in --limit are new; the others are the running cluster. The
new hosts go through init's phase list (node prep, preflight, certs with the shared CAs read back
from the first existing control plane, kubeconfigs, manifests, kubelet). Workers also get
bootstrap-kubelet.conf with a bootstrap token. New etcd members join ONE AT A TIME (a lock around
the whole sequence, kubeadm#1353/#1712): `member add --learner` through a healthy existing member,
unit with `--initial-cluster-state=existing` and members = current + self, start, promote, healthy.

`remove-node -i INV --node HOST`: remove its etcd member through a survivor, then reset the node;
with --force the node is never contacted (it is dead), only the survivors are.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bootstrap.errors import KbootstrapError, PhaseError, TransportError, UsageError
from bootstrap.join.apiclient import APIClient
from bootstrap.join.node import (
    BOOTSTRAP_KUBECONFIG,
    KUBELET_KUBECONFIG,
    TOKEN_USER,
    Etcdctl,
    _last_line,
    etcdctl_on,
    join_etcd_member,
    member_list,
    remove_member,
    wait_etcd_healthy,
)
from bootstrap.join.reset import reset_phases
from bootstrap.join.tokens import BootstrapToken, Token, generate_token, parse_token
from bootstrap.phases import etcd as etcd_phase
from bootstrap.phases import kubeconfig as kubeconfig_phase
from bootstrap.phases.base import Phase
from bootstrap.render.kubeconfig import KUBECONFIG_MODE, build_kubeconfig, ensure_kubeconfigs, parse_kubeconfig
from bootstrap.spec.endpoint import url_host
from bootstrap.spec.inventory import Inventory, InventoryHost, load_inventory
from bootstrap.spec.model import ClusterSpec, EtcdMode
from bootstrap.transport.base import Target
from bootstrap.workflow.cluster import (
    SharedPKI,
    bundle_for,
    etcd_members,
    fleet_cluster_spec,
    fleet_phase_paths,
    fleet_phases,
    node_spec,
)
from bootstrap.workflow.context import RunContext
from bootstrap.workflow.fleet import FleetPhase, FleetRun
from bootstrap.workflow.report import Change, HostReport, PhaseResult, Status
from bootstrap.workflow.runner import run_phases

JOIN_KUBECONFIGS = ("admin", "kubelet", "controller-manager", "scheduler")  # never super-admin.conf on join
TLS_BOOTSTRAP = "tls-bootstrap"
FLEET_TOKEN_DESCRIPTION = "Bootstrap token for nodes joined by `kbootstrap join -i`"


def cluster_spec(params: dict[str, Any], inv: Inventory) -> ClusterSpec:
    """The cluster as `init -i` computes it (same endpoint rule), so certificates and files agree."""
    return fleet_cluster_spec(params, inv)


def _check_limit(inv: Inventory, limit: list[str]) -> None:
    known = {h.name for h in inv.hosts}
    unknown = [n for n in limit if n not in known]
    if unknown:
        raise UsageError(
            f"--limit: {', '.join(unknown)} not in the inventory {inv.path}",
            hint="add the new hosts to the inventory first, then join them",
        )


# ---- join -----------------------------------------------------------------------------------------
class FleetJoin:
    """The phase list for new hosts and the cluster-side steps it needs."""

    def __init__(
        self,
        inv: Inventory,
        cluster: ClusterSpec,
        limit: list[str],
        shared: SharedPKI,
        *,
        dry_run: bool,
        token: Token | None,
        etcd_from_node: bool = False,
    ) -> None:
        self.inv, self.cluster, self.limit, self.shared, self.dry_run = inv, cluster, limit, shared, dry_run
        # Over SSH the control machine runs etcdctl on a healthy member (`_pick_etcd_source`). The
        # Ansible transport sees one host per task, so there the joining node reaches the cluster
        # itself, with its own etcd client certificate, as `kubeadm join --control-plane` does.
        self.etcd_from_node = etcd_from_node
        existing_cps = [h for h in inv.control_planes() if h.name not in limit]
        if not existing_cps:
            raise UsageError(
                "--limit names every control plane: there is no running cluster to join",
                hint="create the cluster with `kbootstrap init -i` first",
            )
        if inv.control_planes()[0].name in limit and not cluster.control_plane_endpoint:
            raise UsageError("the inventory's first control plane is being joined: set control_plane_endpoint")
        self.source_cp = existing_cps[0].name
        self.existing_etcd = [h.name for h in inv.hosts if h.is_etcd and h.name not in limit]
        self.token = token or generate_token()
        self.lock = threading.Lock()  # one etcd member joins at a time
        self.etcd_source: str | None = None
        self.tokens: dict[str, Token] = {}  # host -> the token in its bootstrap-kubelet.conf
        self.token_note: str = ""
        self._targets: dict[str, Target] = {}  # every connection of the run, helpers included

    def helper_hosts(self) -> list[str]:
        return list(dict.fromkeys([self.source_cp, *self.existing_etcd]))

    def phases(self) -> list[FleetPhase]:
        out: list[FleetPhase] = []
        for fp in fleet_phases(self.cluster, self.shared, self.source_cp, self.dry_run):
            name = fp.phase.name
            if name == kubeconfig_phase.PHASE.name:
                out.append(FleetPhase(Phase(name, kubeconfig_phase.PHASE.help, self._kubeconfigs), fp.applies_to))
            elif name == etcd_phase.PHASE.name:
                join = self.etcd_join_from_node if self.etcd_from_node else self._etcd_join
                local = Phase("local", etcd_phase.PHASE.children[0].help, join)
                out.append(
                    FleetPhase(
                        Phase(name, etcd_phase.PHASE.help, None, (local,)), fp.applies_to, before=self._pick_etcd_source
                    )
                )
            elif name == "kubelet-start":
                out.append(
                    FleetPhase(
                        Phase(
                            TLS_BOOTSTRAP,
                            "Write bootstrap-kubelet.conf with a bootstrap token for the kubelet's TLS bootstrap",
                            self._tls_bootstrap,
                        ),
                        lambda h: not h.is_control_plane,
                        before=self._register_tokens,
                    )
                )
                out.append(fp)
            else:
                out.append(fp)
        return out

    # -- control planes
    def _kubeconfigs(self, ctx: RunContext) -> None:
        ensure_kubeconfigs(ctx, list(JOIN_KUBECONFIGS))

    # -- etcd
    def _pick_etcd_source(self, run: FleetRun) -> None:
        if self.cluster.etcd_mode != EtcdMode.HOST or self.cluster.etcd_external is not None:
            return
        errors = []
        for name in self.existing_etcd:
            target = run.targets.get(name)
            if target is None:
                errors.append(f"{name}: not reachable")
                continue
            result = etcdctl_on(target, self.cluster.cert_dir)("endpoint health")
            if result.ok:
                self.etcd_source = name
                return
            errors.append(f"{name}: {_last_line(result)}")
        raise PhaseError(
            "no healthy etcd member to join through: " + "; ".join(errors)
            if errors
            else "the inventory has no existing etcd member",
            hint="fix the existing etcd cluster first",
        )

    def _require_host_etcd(self) -> None:
        if self.cluster.etcd_mode != EtcdMode.HOST:
            raise PhaseError(
                "joining stacked etcd as a static Pod needs a running kubelet",
                hint="set etcd_mode: host (Kubespray's default) for fleet joins",
            )

    def _etcd_join(self, ctx: RunContext) -> None:
        self._require_host_etcd()
        assert self.etcd_source is not None
        with self.lock:
            source = self._targets[self.etcd_source]
            join_etcd_member(ctx, etcdctl_on(source, self.cluster.cert_dir))

    def etcd_join_from_node(self, ctx: RunContext) -> None:
        """Join through the first existing member that answers healthy from the joining node itself.
        Members still join one at a time: the caller serialises (scale.yml's `throttle: 1`)."""
        self._require_host_etcd()
        errors = []
        for name in self.existing_etcd:
            url = f"https://{url_host(self.inv.host(name).ip)}:2379"
            etcdctl = etcdctl_on(ctx.target, self.cluster.cert_dir, endpoints=url)
            result = etcdctl("endpoint health")
            if result.ok:
                self.etcd_source = name
                join_etcd_member(ctx, etcdctl)
                return
            errors.append(f"{name}: {_last_line(result)}")
        if ctx.dry_run:
            # A fresh node has no etcd client or certificates before a real run: nothing to ask with.
            members = ", ".join(self.existing_etcd)
            ctx.record(f"etcd member {ctx.spec.node.name}", Status.CREATED,
                       f"would be added as a learner through a healthy member ({members})")
            return
        raise PhaseError(
            "no healthy etcd member answers from this node: " + "; ".join(errors)
            if errors
            else "the inventory has no existing etcd member",
            hint="fix the existing etcd cluster, or the network between it and the new member (port 2379)",
        )

    # -- workers
    def _register_tokens(self, run: FleetRun) -> None:
        """Keep a node's existing bootstrap token; register every token used with the API server."""
        for name in self.limit:
            target = run.targets.get(name)
            state = target.read(BOOTSTRAP_KUBECONFIG) if target is not None else None
            kc_token = None
            if state is not None:
                try:
                    kc_token = parse_kubeconfig(state.content, BOOTSTRAP_KUBECONFIG).token
                    self.tokens[name] = parse_token(kc_token or "")
                except KbootstrapError:
                    pass
        if self.dry_run:
            return
        admin = run.targets[self.source_cp].read("/etc/kubernetes/admin.conf")
        used = {str(t): t for t in [self.token, *self.tokens.values()]}
        try:
            if admin is None:
                raise TransportError(f"no admin.conf on {self.source_cp}")
            client = APIClient.from_kubeconfig(admin.content, f"{self.source_cp}:/etc/kubernetes/admin.conf")
            now = datetime.now(UTC)
            for t in used.values():
                secret = BootstrapToken(t, FLEET_TOKEN_DESCRIPTION).secret(now)
                client.create_or_update_secret(secret)
            self.token_note = f"bootstrap token registered with {client.server}"
        except KbootstrapError as exc:
            self.token_note = (
                f"bootstrap token not registered ({exc.message}): the kubelet's TLS bootstrap "
                "waits for it; rerun this join once the API server answers"
            )

    def _tls_bootstrap(self, ctx: RunContext) -> None:
        if ctx.target.read(KUBELET_KUBECONFIG) is not None:
            ctx.skip(BOOTSTRAP_KUBECONFIG, "kubelet.conf exists: the kubelet has bootstrapped already")
            return
        token = self.tokens.get(ctx.target.name, self.token)
        ca = self.shared.files["ca.crt"]
        data = build_kubeconfig("kubernetes", ctx.spec.control_plane_url, ca, TOKEN_USER, token=str(token))
        ctx.ensure_dir("/etc/kubernetes", 0o755)
        ctx.ensure_file(BOOTSTRAP_KUBECONFIG, data, KUBECONFIG_MODE, detail=f"token id {token.id}")
        if self.token_note:
            status = Status.UNCHANGED if "registered with" in self.token_note else Status.WARNING
            ctx.record(f"bootstrap token {token.id}", status, self.token_note)


def run_fleet_join(params: dict[str, Any], limit: list[str]) -> None:
    from bootstrap.commands.common import emit
    from bootstrap.commands.fleet import Progress, connect, summary

    inv = load_inventory(params["inventory"])
    _check_limit(inv, limit)
    cluster = cluster_spec(params, inv)
    pki_dir = Path(params.get("pki_dir") or Path("pki") / inv.path.parent.name)
    shared = SharedPKI(pki_dir)
    dry_run = bool(params.get("dry_run"))
    token = parse_token(params["token"]) if params.get("token") else None
    job = FleetJoin(inv, cluster, limit, shared, dry_run=dry_run, token=token)
    phases = job.phases()
    skip = _skip_list(params, inv, cluster, phases)
    new = [h.name for h in inv.hosts if h.name in limit]
    output = params.get("output", "text")
    progress = Progress(new, enabled=output == "text")
    started = datetime.now(UTC)
    forks = int(params.get("forks") or 64)
    with progress:
        progress.note(f"connecting to {len(new)} new hosts and {len(job.helper_hosts())} cluster hosts")
        conns = connect(
            inv, list(dict.fromkeys([*new, *job.helper_hosts()])), forks, bool(params.get("trust_on_first_use"))
        )
        bad_source = conns.get(job.source_cp)
        if isinstance(bad_source, Exception):
            _close(conns)
            raise TransportError(
                f"cannot reach {job.source_cp}, the control plane the cluster is read from: {_one_line(bad_source)}"
            )
        members = etcd_members(inv)
        reports = {n: HostReport(n) for n in new}
        targets: dict[str, Target] = {n: c for n, c in conns.items() if not isinstance(c, Exception)}
        contexts = {}
        bundle = bundle_for(inv, params.get("bundle"))
        for n in new:
            if isinstance(conns[n], Exception):
                reports[n].error = _one_line(conns[n])
                progress.host_failed(n, reports[n].error or "")
                continue
            host = inv.host(n)
            contexts[n] = RunContext(
                node_spec(cluster, host, members), targets[n], dry_run=dry_run, bundle=bundle, roles=host.roles
            )
        job._targets = targets
        run = FleetRun(
            {n: inv.host(n) for n in new}, targets, contexts, reports, forks=forks, on_phase=progress.phase_done
        )
        try:
            run.run(phases, skip)
        finally:
            _close(conns)
    elapsed = (datetime.now(UTC) - started).total_seconds()
    skipped = {p: "--skip-phases or the inventory (kbootstrap_skip_phases)" for p in sorted(skip)}
    data = {
        "hosts": {n: reports[n].to_json() for n in new},
        "skipped_phases": skipped,
        "dry_run": dry_run,
        "seconds": round(elapsed, 2),
        "etcd_joined_through": job.etcd_source,
    }
    emit(output, data, lambda: summary(reports, skipped, dry_run, elapsed, title="kbootstrap join"))
    if any(r.failed for r in reports.values()):
        raise SystemExit(1)


def _skip_list(params: dict[str, Any], inv: Inventory, cluster: ClusterSpec, phases: list[FleetPhase]) -> set[str]:
    known = set(fleet_phase_paths(phases))
    requested = [s for s in (params.get("skip_phases") or "").split(",") if s.strip()]
    skip = set()
    for name in [*requested, *cluster.skip_phases, *(inv.vars.get("kbootstrap_skip_phases") or [])]:
        name = name.strip().removesuffix("/all")
        if name not in known:
            raise UsageError(f"--skip-phases: unknown phase {name!r}", hint="valid: " + ", ".join(sorted(known)))
        skip.add(name)
    return skip


def _one_line(exc: Exception) -> str:
    return exc.one_line() if isinstance(exc, KbootstrapError) else str(exc)


def _close(conns: dict[str, Any]) -> None:
    for c in conns.values():
        close = getattr(c, "close", None)
        if close and not isinstance(c, Exception):
            close()


# ---- remove-node ----------------------------------------------------------------------------------
def _find_member(etcdctl: Etcdctl, host: InventoryHost) -> tuple[int, Any]:
    members = member_list(etcdctl)
    peer = f"https://{f'[{host.ip}]' if ':' in host.ip else host.ip}:2380"
    victim = next((m for m in members if m.name == host.name or peer in m.peer_urls), None)
    return len(members), victim


def run_remove_node(params: dict[str, Any]) -> None:
    from bootstrap.commands.common import emit
    from bootstrap.commands.fleet import connect

    inv = load_inventory(params["inventory"])
    node_name = params["node"]
    if node_name not in {h.name for h in inv.hosts}:
        raise UsageError(
            f"--node: host {node_name!r} is not in {inv.path}", hint="names: " + ", ".join(h.name for h in inv.hosts)
        )
    host = inv.host(node_name)
    force = bool(params.get("force"))
    cluster = cluster_spec(params, inv)
    survivors = [h.name for h in inv.hosts if h.is_etcd and h.name != node_name]
    cps = [h.name for h in inv.control_planes() if h.name != node_name]
    names = list(dict.fromkeys([*survivors, *cps[:1], *([] if force else [node_name])]))
    conns = connect(inv, names, int(params.get("forks") or 64), bool(params.get("trust_on_first_use")))
    report = HostReport(node_name)
    try:
        node_conn = None if force else conns[node_name]
        if isinstance(node_conn, Exception):
            raise TransportError(
                f"{node_name} is unreachable: {_one_line(node_conn)}",
                hint="if it is dead for good, rerun with --force: its etcd member is removed "
                "through the survivors and the node is never contacted",
            )
        if host.is_etcd and cluster.etcd_external is None:
            report.phases.append(_remove_member(conns, survivors, host, cluster))
        if node_conn is not None and not report.failed:
            ctx = RunContext(node_spec(cluster, host, ()), node_conn, dry_run=bool(params.get("dry_run")))
            partial = run_phases(ctx, reset_phases(cluster.cert_dir, etcd_member_removed=True), set())
            report.phases.extend(partial.phases)
        elif force:
            report.phases.append(PhaseResult("cleanup-node", skipped_reason="--force: the node is not contacted"))
    finally:
        _close(conns)
    data = {"hosts": {node_name: report.to_json()}, "forced": force}

    def text() -> str:
        lines = []
        for p in report.phases:
            for c in p.changes:
                lines.append(f"[{p.name}] {c.status.value}: {c.item}" + (f" ({c.detail})" if c.detail else ""))
            if p.skipped_reason:
                lines.append(f"[{p.name}] skipped: {p.skipped_reason}")
            if p.error:
                lines.append(f"[{p.name}] FAILED: {p.error}")
        if not report.failed:
            lines.append(f"{node_name} removed: take it out of {inv.path} so later runs leave it alone")
        return "\n".join(lines)

    emit(params.get("output", "text"), data, text)
    if report.failed:
        raise SystemExit(1)


def _remove_member(
    conns: dict[str, Any], survivors: list[str], host: InventoryHost, cluster: ClusterSpec
) -> PhaseResult:
    result = PhaseResult("remove-etcd-member")
    reachable = [n for n in survivors if not isinstance(conns.get(n), Exception) and conns.get(n) is not None]
    if not reachable:
        result.error = "no surviving etcd member is reachable: the member cannot be removed"
        return result
    errors = []
    for name in reachable:
        etcdctl = etcdctl_on(conns[name], cluster.cert_dir)
        try:
            count, victim = _find_member(etcdctl, host)
        except KbootstrapError as exc:
            errors.append(f"{name}: {exc.message}")
            continue
        if victim is None:
            result.changes.append(
                Change(result.name, f"etcd member {host.name}", Status.UNCHANGED, f"not a member (seen from {name})")
            )
            return result
        if count <= 1:
            result.error = f"{host.name} is the last etcd member: removing it would destroy the cluster"
            return result
        out = remove_member(etcdctl, victim.hex_id)
        if not out.ok:
            errors.append(f"{name}: member remove: {_last_line(out)}")
            continue
        result.changes.append(
            Change(result.name, f"etcd member {host.name}", Status.UPDATED, f"removed {victim.hex_id} through {name}")
        )
        try:
            healthy = wait_etcd_healthy(etcdctl)
            result.changes.append(
                Change(result.name, "etcd health", Status.UNCHANGED, f"{healthy.count('is healthy')} members healthy")
            )
        except KbootstrapError as exc:
            result.error = exc.one_line()
        return result
    result.error = "; ".join(errors)
    return result


def run_fleet_reset(params: dict[str, Any]) -> None:
    """`kbootstrap reset -i INV`: wipe every host in parallel (kubeadm's cleanup on each node)."""
    from bootstrap.commands.common import emit
    from bootstrap.commands.fleet import connect, summary

    inv = load_inventory(params["inventory"])
    cluster = cluster_spec(params, inv)
    names = [h.name for h in inv.hosts]
    conns = connect(inv, names, int(params.get("forks") or 64), bool(params.get("trust_on_first_use")))
    reports = {n: HostReport(n) for n in names}
    started = time.monotonic()
    try:
        targets = {n: c for n, c in conns.items() if not isinstance(c, Exception)}
        for n, c in conns.items():
            if isinstance(c, Exception):
                reports[n].error = _one_line(c)
        contexts = {
            n: RunContext(node_spec(cluster, inv.host(n), ()), t, dry_run=bool(params.get("dry_run")))
            for n, t in targets.items()
        }
        run = FleetRun({n: inv.host(n) for n in names}, dict(targets), contexts, reports,
                       forks=int(params.get("forks") or 64))
        for phase in reset_phases(cluster.cert_dir, etcd_member_removed=True):
            run.run([FleetPhase(phase)], set())
    finally:
        _close(conns)
    elapsed = time.monotonic() - started
    data = {"hosts": {n: r.to_json() for n, r in reports.items()}, "dry_run": bool(params.get("dry_run"))}
    emit(params.get("output", "text"), data,
         lambda: summary(reports, {}, bool(params.get("dry_run")), elapsed, title="kbootstrap reset"))
    if any(r.failed for r in reports.values()):
        raise SystemExit(1)
