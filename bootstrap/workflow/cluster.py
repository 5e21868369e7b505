"""A whole cluster from an inventory: per-host specs, the shared PKI, and the fleet phase list.

The shared CA material (kubeadm's kubeadm-certs set) is made once on the control machine under
--pki-dir, or read back from the first control plane when the cluster already has it; only
control planes receive it. Workers get ca.crt and never a CA private key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bootstrap.artifacts.bundle import Bundle
from bootstrap.artifacts.upstream import DEFAULT_BASE_URL
from bootstrap.errors import PKIError, UsageError
from bootstrap.phases import control_plane, etcd, kubeconfig, kubelet, node
from bootstrap.phases.base import Phase
from bootstrap.phases.loadbalancer import loadbalancer_fleet_phase
from bootstrap.phases.preflight import PHASE as PREFLIGHT
from bootstrap.pki import catalog
from bootstrap.pki.store import ensure_pki
from bootstrap.render.kubeconfig import ALL_KUBECONFIGS, ensure_kubeconfigs, node_kubeconfigs
from bootstrap.spec.endpoint import control_plane_endpoint_for, endpoint_from_inventory, endpoint_sans, url_host
from bootstrap.spec.inventory import Inventory, InventoryHost
from bootstrap.spec.load import build_spec
from bootstrap.spec.model import KUBERNETES_DIR, Arg, ClusterSpec, EtcdMember, EtcdMode, NodeRegistration
from bootstrap.transport.local import LocalTarget
from bootstrap.workflow.context import RunContext
from bootstrap.workflow.fleet import FleetPhase, FleetRun
from bootstrap.workflow.report import Change, Status

# kubeadm's kubeadm-certs set: what every control plane must share (relative to the cert dir).
SHARED_CA_FILES = (
    "ca.crt",
    "ca.key",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "etcd/ca.crt",
    "etcd/ca.key",
    "sa.key",
    "sa.pub",
)
SHARED_CA_PHASES = ("ca", "front-proxy-ca", "etcd-ca", "sa")


def fleet_cluster_spec(params: Mapping[str, Any], inv: Inventory) -> ClusterSpec:
    """The cluster as every fleet command sees it (init, join, validate): the first control plane's
    view, the API endpoint from the inventory (external LB, VIP or localhost proxies), its SANs."""
    first = inv.control_planes()[0]
    flags = dict(params)
    for per_host in ("apiserver_advertise_address", "node_name"):
        if flags.get(per_host):
            raise UsageError(
                f"--{per_host.replace('_', '-')} is per host", hint="set `ip` for each host in the inventory"
            )
    flags["apiserver_advertise_address"], flags["node_name"] = first.ip, first.name
    endpoint = endpoint_from_inventory(inv)
    if not flags.get("control_plane_endpoint") and "control_plane_endpoint" not in inv.cluster_values:
        if endpoint is None:
            flags["control_plane_endpoint"] = f"{first.ip}:{flags.get('apiserver_bind_port') or 6443}"
        else:
            flags["control_plane_endpoint"] = control_plane_endpoint_for(endpoint, inv.control_planes())
    cluster = build_spec(flags, params.get("config"), defaults=inv.cluster_values)
    if endpoint is None:
        return cluster
    sans = tuple(dict.fromkeys((*cluster.api_server.cert_sans, *endpoint_sans(endpoint))))
    return cluster.model_copy(
        update={"api_endpoint": endpoint, "api_server": cluster.api_server.model_copy(update={"cert_sans": sans})}
    )


def node_spec(cluster: ClusterSpec, host: InventoryHost, members: tuple[EtcdMember, ...]) -> ClusterSpec:
    """The cluster spec as seen from one host: its address, its name, the etcd members. The kubelet
    gets --node-ip = the inventory's ip, as Kubespray sets it: on a host with more than one address
    (a VM's NAT and private networks) it would otherwise register the default route's. A node-ip in
    kubeletExtraArgs wins."""
    extra = cluster.node.kubelet_extra_args
    if not any(a.name == "node-ip" for a in extra):
        extra = (*extra, Arg(name="node-ip", value=host.ip))
    node = NodeRegistration(**{**cluster.node.model_dump(), "name": host.name, "kubelet_extra_args": extra})
    return cluster.model_copy(update={"advertise_address": host.ip, "node": node, "etcd_members": members})


def etcd_members(inv: Inventory) -> tuple[EtcdMember, ...]:
    return tuple(EtcdMember(name=h.name, peer_url=f"https://{url_host(h.ip)}:2380") for h in inv.hosts if h.is_etcd)


@dataclass
class SharedPKI:
    """Shared CA files (path relative to the cert dir -> bytes), filled before the certs phase."""

    store: Path
    files: dict[str, bytes] = field(default_factory=dict)
    source: str = ""


def prepare_shared_pki(run: FleetRun, cluster: ClusterSpec, shared: SharedPKI, first_cp: str, dry_run: bool) -> None:
    cert_dir = cluster.cert_dir.rstrip("/")
    local = LocalTarget(shared.store, name="control-machine")
    remote = run.targets.get(first_cp)
    remote_files = {}
    if remote is not None:
        for rel in SHARED_CA_FILES:
            state = remote.read(f"{cert_dir}/{rel}")
            if state is not None:
                remote_files[rel] = state.content
    local_ca = local.read(f"{cert_dir}/ca.crt")
    if "ca.crt" in remote_files:
        if local_ca is not None and local_ca.content != remote_files["ca.crt"]:
            raise PKIError(
                f"the CA in {shared.store} differs from the one on {first_cp}",
                hint=f"the cluster's CA wins: move {shared.store} away to read it back from {first_cp}",
            )
        if not dry_run:
            for rel, data in remote_files.items():
                local.write(f"{cert_dir}/{rel}", data, 0o600)
        shared.files, shared.source = remote_files, f"read back from {first_cp}"
        return
    ctx = RunContext(cluster, local, dry_run=dry_run)
    ensure_pki(ctx, list(SHARED_CA_PHASES))
    for rel in SHARED_CA_FILES:
        state = local.read(f"{cert_dir}/{rel}")
        if state is not None:
            shared.files[rel] = state.content
    shared.source = f"control machine ({shared.store})"


ETCD_ONLY_FILES = ("etcd/ca.crt", "etcd/ca.key")
ETCD_ONLY_CERTS = ("etcd-ca", "etcd-server", "etcd-peer", "etcd-healthcheck-client")


def certs_phase(shared: SharedPKI) -> Phase:
    """Control planes: the shared CAs and their own certs. etcd-only members: the etcd CA and etcd
    certs. Workers: ca.crt only, never a CA private key."""

    def run(ctx: RunContext) -> None:
        cert_dir = ctx.spec.cert_dir.rstrip("/")
        prefetch(ctx, pki_paths(ctx.spec))
        if "kube_control_plane" in ctx.roles:
            files, certs = tuple(shared.files), None
        elif "etcd" in ctx.roles:
            files, certs = ETCD_ONLY_FILES, list(ETCD_ONLY_CERTS)
        else:
            files, certs = ("ca.crt",), []
        ctx.ensure_files(
            [
                (
                    f"{cert_dir}/{rel}",
                    shared.files[rel],
                    ctx.spec.hardening.cert_file_mode if rel.endswith(".crt") else 0o600,
                )
                for rel in files
                if rel in shared.files
            ],
            detail=f"shared CA material, {shared.source}",
        )
        if certs != []:
            ensure_pki(ctx, certs)

    return Phase("certs", "Distribute the shared CAs (only ca.crt to workers) and issue each node's certificates", run)


def pki_paths(spec: ClusterSpec) -> list[str]:
    """Every PKI file and kubeconfig a control plane may hold: what the certs and kubeconfig
    phases read, fetched in one round trip."""
    cert_dir = spec.cert_dir.rstrip("/")
    paths = [p for c in catalog.ALL_CERTS for p in (c.cert_path(cert_dir), c.key_path(cert_dir))]
    paths += [f"{cert_dir}/sa.key", f"{cert_dir}/sa.pub"]
    paths += [f"{KUBERNETES_DIR}/{k.file}" for k in ALL_KUBECONFIGS]
    return paths


def prefetch(ctx: RunContext, paths: list[str]) -> None:
    fetch = getattr(ctx.target, "prefetch", None)
    if fetch is not None:
        fetch(paths)


def kubeconfig_phase(first_cp: str) -> Phase:
    """As kubeadm: super-admin.conf (system:masters) exists only on the control plane where the
    cluster was initialised; the others get what `kubeadm join --control-plane` writes."""

    def run(ctx: RunContext) -> None:
        prefetch(ctx, pki_paths(ctx.spec))
        ensure_kubeconfigs(ctx, [k.name for k in node_kubeconfigs(ctx.spec, init_node=ctx.spec.node.name == first_cp)])

    return Phase(kubeconfig.PHASE.name, kubeconfig.PHASE.help, run)


def wait_etcd_healthy(run: FleetRun, names: list[str], cluster: ClusterSpec) -> None:
    """After the etcd phase: every member healthy, seen from each member over mTLS."""
    if cluster.etcd_mode != EtcdMode.HOST or not names:
        return
    pki = cluster.cert_dir.rstrip("/") + "/etcd"
    script = f"""
for i in $(seq 1 60); do
  if ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert={pki}/ca.crt \\
       --cert={pki}/healthcheck-client.crt --key={pki}/healthcheck-client.key \\
       endpoint health --cluster >/tmp/kbootstrap-etcd-health 2>&1; then cat /tmp/kbootstrap-etcd-health; exit 0; fi
  sleep 0.5
done
tail -2 /tmp/kbootstrap-etcd-health >&2; exit 1
"""

    def check(name: str) -> None:
        result = run.targets[name].run(script, timeout=60)
        if not result.ok:
            run.fail_host(name, f"etcd is not healthy: {(result.stderr or result.stdout).strip()[-200:]}")
            return
        healthy = sum(1 for ln in result.stdout.splitlines() if "is healthy" in ln)
        phase = run.reports[name].phases[-1]
        phase.changes.append(Change(phase.name, "etcd health", Status.UNCHANGED, f"{healthy} members healthy"))

    run._parallel(names, check)


def fleet_phases(cluster: ClusterSpec, shared: SharedPKI, first_cp: str, dry_run: bool) -> list[FleetPhase]:
    def cp(h: InventoryHost) -> bool:
        return h.is_control_plane

    def etcd_member(h: InventoryHost) -> bool:
        return h.is_etcd

    # Node preparation comes first: kubeadm's preflight checks (CRI answering, ip_forward, iptables)
    # describe a node ready for kubeadm, which is what these phases make.
    return [
        FleetPhase(node.KERNEL),
        FleetPhase(node.CONTAINER_RUNTIME),
        FleetPhase(node.BINARIES),
        FleetPhase(PREFLIGHT),
        FleetPhase(
            certs_phase(shared),
            before=lambda run: prepare_shared_pki(run, cluster, shared, first_cp, dry_run),
        ),
        FleetPhase(kubeconfig_phase(first_cp), applies_to=cp),
        FleetPhase(etcd.PHASE, applies_to=etcd_member, after=lambda run, names: wait_etcd_healthy(run, names, cluster)),
        FleetPhase(control_plane.PHASE, applies_to=cp),
        loadbalancer_fleet_phase(cluster.api_endpoint),
        FleetPhase(kubelet.PHASE),
    ]


def fleet_phase_paths(phases: list[FleetPhase]) -> list[str]:
    return [p for fp in phases for p, _ in fp.phase.walk()]


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


def bundle_for(inv: Inventory, override: str | None) -> Bundle | None:
    from bootstrap.artifacts.bundle import load_bundle

    path = override or inv.vars.get("kbootstrap_bundle")
    if not path:
        return None
    p = Path(str(path))
    if not p.is_absolute():
        p = (inv.path.parent / p) if (inv.path.parent / p).exists() else p
    return load_bundle(p)
