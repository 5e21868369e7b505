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

from collections.abc import Callable
from dataclasses import dataclass, field

from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import Phase
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
from bootstrap.phases import control_plane, kubelet
from bootstrap.pki.store import ensure_pki
from bootstrap.render.kubeconfig import KUBECONFIG_MODE, build_kubeconfig, ensure_kubeconfigs
from bootstrap.spec.model import KUBERNETES_DIR, ClusterSpec, split_host_port
from bootstrap.transport.base import Target

TOKEN_USER = "tls-bootstrap-token-user"  # kubeadm's user name in bootstrap-kubelet.conf
BOOTSTRAP_KUBECONFIG = f"{KUBERNETES_DIR}/bootstrap-kubelet.conf"
KUBELET_KUBECONFIG = f"{KUBERNETES_DIR}/kubelet.conf"
JOIN_KUBECONFIGS = ("admin", "controller-manager", "scheduler")  # kubeadm join never writes super-admin.conf


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


KUBEADM_CONFIG = "kubeadm-config"
KUBELET_CONFIG = "kubelet-config"


def cluster_documents(client: APIClient) -> list[str]:
    """The running cluster's ClusterConfiguration and KubeletConfiguration, as kubeadm join reads them
    (the bootstrap RBAC lets a bootstrap token read both ConfigMaps)."""
    kubeadm = client.get_configmap("kube-system", KUBEADM_CONFIG).get("data") or {}
    kubelet = client.get_configmap("kube-system", KUBELET_CONFIG).get("data") or {}
    if "ClusterConfiguration" not in kubeadm:
        raise UsageError(f"the {KUBEADM_CONFIG} ConfigMap has no ClusterConfiguration",
                         hint="the cluster was not made by kubeadm or kbootstrap (init phase upload-config)")
    return [kubeadm["ClusterConfiguration"], *([kubelet["kubelet"]] if "kubelet" in kubelet else [])]


def plan_join(
    req: JoinRequest,
    spec: ClusterSpec,
    target: Target,
    *,
    fetch: Fetch = fetch_cluster_info,
    api: Callable[[ClusterInfo, Token], APIClient] | None = None,
    with_cluster: Callable[[list[str]], ClusterSpec] | None = None,
) -> JoinPlan:
    """with_cluster: the node's spec made again from the cluster's own documents (kubeadm join's
    ClusterConfiguration and KubeletConfiguration come from the cluster, not the file)."""
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
    # File discovery into a --rootfs contacts nothing, and so renders from the local spec alone.
    if with_cluster is not None and (target.live or not req.discovery_file):
        client = (api or _token_client)(info, tls_token) if tls_token is not None else APIClient.from_kubeconfig(
            bootstrap, "the discovery file")
        spec = with_cluster(cluster_documents(client))
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


__all__ = ["JoinPlan", "JoinRequest", "KbootstrapError", "join_phases", "plan_join"]
