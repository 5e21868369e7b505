"""`kbootstrap join` on one node, with kubeadm join's semantics.

Everything that can fail without touching the node runs first (argument checks, discovery, the CA
pin, downloading and decrypting the control-plane certificates, conflicts with files already
there); only then is anything written. A wrong hash, a bad or expired token or an unreachable
endpoint therefore leaves the node exactly as it was.

Worker: ca.crt, bootstrap-kubelet.conf (0600), kubelet settings, kubelet (re)started when present.
Control plane (--control-plane): the shared CAs from kubeadm-certs (--certificate-key) or already on
disk, the node's own certificates, admin/controller-manager/scheduler kubeconfigs, static Pod
manifests, then the local etcd member joins the existing cluster (learner, start, promote, healthy).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bootstrap.errors import KbootstrapError, PhaseError, PKIError, PreflightError, UsageError
from bootstrap.join import copycerts
from bootstrap.join.apiclient import APIClient
from bootstrap.join.discovery import (
    DEFAULT_TIMEOUT,
    ClusterInfo,
    Fetch,
    discover_file,
    discover_token,
    fetch_cluster_info,
)
from bootstrap.join.tokens import Token
from bootstrap.phases import control_plane, etcd, kubelet
from bootstrap.phases.base import Phase
from bootstrap.pki.store import ensure_pki
from bootstrap.render.kubeconfig import KUBECONFIG_MODE, build_kubeconfig, ensure_kubeconfigs
from bootstrap.spec.endpoint import url_host
from bootstrap.spec.model import KUBERNETES_DIR, ClusterSpec, EtcdMember, EtcdMode, split_host_port
from bootstrap.transport.base import CommandResult, Target
from bootstrap.workflow.context import RunContext
from bootstrap.workflow.report import Status

TOKEN_USER = "tls-bootstrap-token-user"  # kubeadm's user name in bootstrap-kubelet.conf
BOOTSTRAP_KUBECONFIG = f"{KUBERNETES_DIR}/bootstrap-kubelet.conf"
KUBELET_KUBECONFIG = f"{KUBERNETES_DIR}/kubelet.conf"
JOIN_KUBECONFIGS = ("admin", "controller-manager", "scheduler")  # kubeadm join never writes super-admin.conf
ETCD_HEALTH_ATTEMPTS, ETCD_HEALTH_INTERVAL = 8, 5.0  # kubeadm: 8 x 5 s after the member joins


@dataclass(frozen=True)
class JoinRequest:
    endpoint: str | None = None
    discovery_token: Token | None = None
    tls_bootstrap_token: Token | None = None
    ca_hashes: tuple[str, ...] = ()
    unsafe_skip_ca_verification: bool = False
    discovery_file: str | None = None
    control_plane: bool = False
    certificate_key: bytes | None = None
    timeout: float = DEFAULT_TIMEOUT


def check_request(req: JoinRequest) -> None:
    if req.discovery_file and (req.endpoint or req.discovery_token):
        raise UsageError(
            "--discovery-file cannot be mixed with an API server endpoint or --discovery-token",
            hint="use one discovery method",
        )
    if not req.discovery_file:
        if not req.endpoint:
            raise UsageError(
                "missing the API server endpoint",
                hint="kbootstrap join HOST:PORT --token ... "
                "--discovery-token-ca-cert-hash sha256:..., or --discovery-file FILE",
            )
        if req.discovery_token is None:
            raise UsageError("--token or --discovery-token is required for token discovery")
        try:
            split_host_port(req.endpoint, 6443)
        except ValueError:
            raise UsageError(f"{req.endpoint!r} is not a valid HOST:PORT API server endpoint") from None
    if req.certificate_key is not None and not req.control_plane:
        raise UsageError("--certificate-key can only be used with --control-plane")


@dataclass
class JoinPlan:
    """What discovery established; nothing of it is on the node yet."""

    spec: ClusterSpec
    info: ClusterInfo
    bootstrap_kubeconfig: bytes
    control_plane: bool
    shared_files: dict[str, bytes] = field(default_factory=dict)  # absolute path -> content


def _file_available(target: Target, path: str, want: bytes | None) -> None:
    """kubeadm's FileAvailable preflight, kept idempotent: the very same content is fine."""
    state = target.read(path)
    if state is not None and (want is None or state.content != want):
        name = "FileAvailable-" + path.replace("/", "-")
        raise PreflightError(
            f"[ERROR {name}]: {path} already exists",
            hint="this node has joined (or was initialised) before: run `kbootstrap reset` first",
        )


def plan_join(
    req: JoinRequest,
    spec: ClusterSpec,
    target: Target,
    *,
    fetch: Fetch = fetch_cluster_info,
    api: Callable[[ClusterInfo, Token], APIClient] | None = None,
) -> JoinPlan:
    check_request(req)
    _file_available(target, KUBELET_KUBECONFIG, None)
    tls_token = req.tls_bootstrap_token or req.discovery_token
    if req.discovery_file:
        state = target.read(req.discovery_file) if not req.discovery_file.startswith("https://") else None
        if state is None:
            raise UsageError(
                f"--discovery-file {req.discovery_file}: no such file", hint="give a local kubeconfig file"
            )
        found = discover_file(state.content, req.discovery_file)
        info = found.info
        if tls_token is not None:
            bootstrap = build_kubeconfig("kubernetes", info.server, info.ca_pem, TOKEN_USER, token=str(tls_token))
        elif found.has_credentials:
            bootstrap = state.content  # kubeadm uses the discovery file itself as the bootstrap kubeconfig
        else:
            raise UsageError(
                f"the discovery file {req.discovery_file} has no credentials",
                hint="pass --tls-bootstrap-token (or --token) to authenticate the kubelet",
            )
    else:
        assert req.endpoint and req.discovery_token
        info = discover_token(
            req.endpoint,
            req.discovery_token,
            req.ca_hashes,
            unsafe_skip_ca_verification=req.unsafe_skip_ca_verification,
            timeout=req.timeout,
            fetch=fetch,
        )
        assert tls_token is not None
        bootstrap = build_kubeconfig("kubernetes", info.server, info.ca_pem, TOKEN_USER, token=str(tls_token))
    _file_available(target, BOOTSTRAP_KUBECONFIG, bootstrap)
    cert_dir = spec.cert_dir.rstrip("/")
    plan = JoinPlan(spec, info, bootstrap, req.control_plane)
    if not req.control_plane:
        _file_available(target, f"{cert_dir}/ca.crt", info.ca_pem)
        return plan
    # A joining control plane needs a stable endpoint: the one every node reaches (cluster-info's).
    if not spec.control_plane_endpoint:
        host_port = info.server.removeprefix("https://").rstrip("/")
        plan.spec = spec.model_copy(update={"control_plane_endpoint": host_port})
    if req.certificate_key is not None:
        if tls_token is None:
            raise UsageError("--certificate-key needs a bootstrap token to read the kubeadm-certs Secret")
        client = (api or _token_client)(info, tls_token)
        secret = client.get_secret(copycerts.NAMESPACE, copycerts.SECRET_NAME)
        plan.shared_files = copycerts.decrypt_secret(secret, req.certificate_key, copycerts.files_to_transfer(spec))
    else:
        # kubeadm: without --certificate-key the shared certificates must have been copied by hand.
        missing = [p for p in copycerts.files_to_transfer(spec) if target.read(p) is None and p.endswith("ca.crt")]
        if missing:
            raise PKIError(
                f"missing {', '.join(missing)} for a control-plane join",
                hint="pass --certificate-key (after upload-certs) or copy the shared certificates first",
            )
    ca = plan.shared_files.get(f"{cert_dir}/ca.crt")
    if ca is not None and ca != info.ca_pem:
        raise PKIError(
            "the CA in the kubeadm-certs Secret is not the cluster CA that discovery pinned",
            hint="upload the certificates again from a control plane of this cluster",
        )
    for path, content in plan.shared_files.items():
        state = target.read(path)
        if state is not None and state.content != content:
            raise PKIError(f"{path} exists and differs from the cluster's", hint="run `kbootstrap reset` first")
    return plan


def _token_client(info: ClusterInfo, token: Token) -> APIClient:
    return APIClient(info.server, ca_pem=info.ca_pem, token=str(token))


# ---- applying the plan ----------------------------------------------------------------------------
def join_phases(plan: JoinPlan, *, etcd_join: Callable[[RunContext], None] | None = None) -> tuple[Phase, ...]:
    """kubeadm join's phase order: control-plane-prepare, kubelet-start, control-plane-join."""
    cert_dir = plan.spec.cert_dir.rstrip("/")

    def download_certs(ctx: RunContext) -> None:
        for path, content in plan.shared_files.items():
            mode = ctx.spec.hardening.cert_file_mode if path.endswith(".crt") else 0o600
            ctx.ensure_dir(path.rsplit("/", 1)[0], 0o755)
            ctx.ensure_file(path, content, mode, detail="from the kubeadm-certs Secret")
        if not plan.shared_files:
            ctx.skip("download-certs", "no --certificate-key: using the shared certificates already on the node")

    def certs(ctx: RunContext) -> None:
        ensure_pki(ctx)  # the CAs now on disk are reused; every leaf is made for this node

    def kubeconfigs(ctx: RunContext) -> None:
        ensure_kubeconfigs(ctx, list(JOIN_KUBECONFIGS))

    def kubelet_start(ctx: RunContext) -> None:
        ctx.ensure_dir(KUBERNETES_DIR, 0o755)
        if not plan.control_plane:
            ctx.ensure_dir(cert_dir, 0o755)
            ctx.ensure_file(
                f"{cert_dir}/ca.crt",
                plan.info.ca_pem,
                ctx.spec.hardening.cert_file_mode,
                detail=f"cluster CA from {plan.info.server}",
            )
        ctx.ensure_file(
            BOOTSTRAP_KUBECONFIG,
            plan.bootstrap_kubeconfig,
            KUBECONFIG_MODE,
            detail=f"TLS bootstrap against {plan.info.server}",
        )
        kubelet.run(ctx)

    phases: list[Phase] = []
    if plan.control_plane:
        phases.append(
            Phase(
                "control-plane-prepare",
                "Prepare the machine for serving a control plane",
                None,
                (
                    Phase(
                        "download-certs",
                        "Download certificates shared among control-plane nodes from the kubeadm-certs Secret",
                        download_certs,
                    ),
                    Phase("certs", "Generate the certificates for the new control plane components", certs),
                    Phase("kubeconfig", "Generate the kubeconfig for the new control plane components", kubeconfigs),
                    Phase(
                        "control-plane",
                        "Generate the manifests for the new control plane components",
                        control_plane.run_all,
                    ),
                ),
            )
        )
    phases.append(
        Phase("kubelet-start", "Write kubelet settings, certificates and (re)start the kubelet", kubelet_start)
    )
    if plan.control_plane:
        phases.append(
            Phase(
                "control-plane-join",
                "Join a machine as a control plane instance",
                None,
                (Phase("etcd", "Add a new local etcd member", etcd_join or _no_etcd_join),),
            )
        )
    return tuple(phases)


def _no_etcd_join(ctx: RunContext) -> None:
    if ctx.spec.etcd_external is not None:
        ctx.skip("etcd", "external etcd: no local member")
        return
    raise PhaseError(
        "joining the local etcd member needs the existing members' client URLs",
        hint="join control planes with `kbootstrap join -i INVENTORY --limit HOST`",
    )


# ---- etcd: one member at a time, as a learner first -----------------------------------------------
Etcdctl = Callable[[str], CommandResult]


def etcdctl_on(target: Target, cert_dir: str, endpoints: str = "https://127.0.0.1:2379") -> Etcdctl:
    """etcdctl on a member with its own healthcheck-client certificate (kubeadm's etcd client cert)."""
    pki = cert_dir.rstrip("/") + "/etcd"
    base = (
        f"ETCDCTL_API=3 etcdctl --endpoints={endpoints} --cacert={pki}/ca.crt "
        f"--cert={pki}/healthcheck-client.crt --key={pki}/healthcheck-client.key --command-timeout=15s"
    )
    return lambda args: target.run(f"{base} {args}", timeout=60)


@dataclass(frozen=True)
class Member:
    id: int
    name: str
    peer_urls: tuple[str, ...]
    is_learner: bool

    @property
    def hex_id(self) -> str:
        return format(self.id, "x")


def member_list(etcdctl: Etcdctl) -> list[Member]:
    result = etcdctl("member list -w json")
    if not result.ok:
        raise PhaseError(f"etcd member list failed: {_last_line(result)}", hint="is the existing etcd cluster healthy?")
    try:
        doc = json.loads(result.stdout)
    except ValueError:
        raise PhaseError("etcd member list: unreadable answer") from None
    return [
        Member(int(m["ID"]), str(m.get("name") or ""), tuple(m.get("peerURLs") or ()), bool(m.get("isLearner")))
        for m in doc.get("members") or []
    ]


def _last_line(result: CommandResult) -> str:
    text = (result.stderr or result.stdout).strip()
    return text.splitlines()[-1][:300] if text else f"exit {result.exit_code}"


def wait_etcd_healthy(
    etcdctl: Etcdctl, attempts: int = ETCD_HEALTH_ATTEMPTS, interval: float = ETCD_HEALTH_INTERVAL
) -> str:
    last = ""
    for i in range(attempts):
        result = etcdctl("endpoint health --cluster")
        if result.ok:
            return (result.stdout + result.stderr).strip()
        last = _last_line(result)
        if i + 1 < attempts:
            time.sleep(interval)
    raise PhaseError(f"etcd cluster is not healthy after {attempts} checks: {last}", hint="see `journalctl -u etcd`")


# etcd refuses a membership change while the members would not be a healthy quorum after it, and a
# member counts as active only ~5 s after it connected: right after a join, `member add` (the next
# member) and `member remove` answer "unhealthy cluster" for a while. kubeadm retries its etcd calls
# with backoff; so do we, for those answers only.
RETRYABLE_RECONFIG = ("unhealthy cluster", "too many requests")


def reconfigure(etcdctl: Etcdctl, args: str, *, timeout: float = 40.0, interval: float = 2.0) -> CommandResult:
    """A `member add|remove` call, retried while etcd says the cluster is not ready for it."""
    deadline = time.monotonic() + timeout
    while True:
        result = etcdctl(args)
        text = (result.stdout + result.stderr).lower()
        if result.ok or not any(r in text for r in RETRYABLE_RECONFIG) or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def remove_member(etcdctl: Etcdctl, hex_id: str, *, timeout: float = 40.0, interval: float = 2.0) -> CommandResult:
    return reconfigure(etcdctl, f"member remove {hex_id}", timeout=timeout, interval=interval)


def join_etcd_member(ctx: RunContext, etcdctl: Etcdctl, *, promote_timeout: float = 60.0) -> None:
    """Add this node as a learner (if not yet a member), write its etcd unit/manifest with
    --initial-cluster = existing members + self and state `existing`, start it, promote it, wait
    until the whole cluster is healthy. Safe to rerun after a failure at any step."""
    spec = ctx.spec
    name = spec.node.name
    peer_url = f"https://{url_host(spec.advertise_address)}:2380"
    members = member_list(etcdctl)
    mine = next((m for m in members if peer_url in m.peer_urls), None)
    if mine is None:
        if ctx.dry_run:
            ctx.record(f"etcd member {name}", Status.CREATED, f"would add {peer_url} as a learner")
            return
        result = reconfigure(etcdctl, f"member add {name} --peer-urls={peer_url} --learner")
        if not result.ok:
            raise PhaseError(f"etcd member add {name} failed: {_last_line(result)}")
        ctx.record(f"etcd member {name}", Status.CREATED, f"added {peer_url} as a learner")
        members = member_list(etcdctl)
        mine = next((m for m in members if peer_url in m.peer_urls), None)
        if mine is None:
            raise PhaseError(f"etcd member {name} was added but is not listed")
    else:
        ctx.record(f"etcd member {name}", Status.UNCHANGED, "learner" if mine.is_learner else "voting member")
    existing = {m.name: m.peer_urls[0] for m in members if m.name and m.peer_urls and m.peer_urls[0] != peer_url}
    cluster = tuple(EtcdMember(name=n, peer_url=u) for n, u in sorted({**existing, name: peer_url}.items()))
    unit_exists = ctx.target.read(_etcd_file(spec)) is not None
    if mine.name and not mine.is_learner and unit_exists:
        # Joined earlier: the --initial-cluster flags are ignored once the data dir exists, so the
        # unit is left as written then instead of restarting etcd for a cosmetic difference.
        ctx.record(_etcd_file(spec), Status.UNCHANGED, "member already joined")
    else:
        sub = dataclasses.replace(
            ctx, spec=spec.model_copy(update={"etcd_members": cluster, "etcd_initial_cluster_state": "existing"})
        )
        etcd.PHASE.children[0].run(sub)  # type: ignore[misc]
    if ctx.dry_run:
        return
    if mine.is_learner:
        _promote(ctx, etcdctl, mine, promote_timeout)
    healthy = wait_etcd_healthy(etcdctl)
    ctx.record("etcd health", Status.UNCHANGED, f"{healthy.count('is healthy')} members healthy")


def _promote(ctx: RunContext, etcdctl: Etcdctl, member: Member, timeout: float) -> None:
    # A learner can be promoted only once it has caught up with the leader: retry until then.
    deadline = time.monotonic() + timeout
    while True:
        result = etcdctl(f"member promote {member.hex_id}")
        if result.ok or "is not a learner" in (result.stderr + result.stdout):
            ctx.record(f"etcd member {ctx.spec.node.name}", Status.UPDATED, "promoted to a voting member")
            return
        if time.monotonic() > deadline:
            raise PhaseError(
                f"etcd member promote {member.hex_id} failed: {_last_line(result)}",
                hint="rerun the join: the learner stays in the cluster and is promoted then",
            )
        time.sleep(2)


def _etcd_file(spec: ClusterSpec) -> str:
    from bootstrap.render.manifests import ETCD_SYSTEMD_UNIT_PATH
    from bootstrap.spec.model import MANIFESTS_DIR

    return ETCD_SYSTEMD_UNIT_PATH if spec.etcd_mode == EtcdMode.HOST else f"{MANIFESTS_DIR}/etcd.yaml"


__all__ = ["JoinPlan", "JoinRequest", "KbootstrapError", "join_etcd_member", "join_phases", "plan_join"]
