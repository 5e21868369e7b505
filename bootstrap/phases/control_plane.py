"""The control-plane phase: static Pod manifests for kube-apiserver, kube-controller-manager and
kube-scheduler (kubeadm.md section 3), plus our audit policy when hardening.audit_log is on."""

from __future__ import annotations

from bootstrap.phases.base import Phase
from bootstrap.render import manifests as m
from bootstrap.spec.model import MANIFESTS_DIR
from bootstrap.transport.base import Target
from bootstrap.workflow.context import RunContext

MANIFEST_MODE = 0o600
MANIFESTS_DIR_MODE = 0o700
AUDIT_POLICY_MODE = 0o600
AUDIT_LOG_DIR_MODE = 0o700


def path_exists_on(target: Target) -> m.PathExists:
    """kubeadm stats the CA directories on the node it runs on; we look on the target node."""
    return lambda path: target.list_dir(path) is not None or target.read(path) is not None


def using_external_ca(ctx: RunContext) -> bool:
    """kubeadm UsingExternalCA: the node has the cluster CA certificate but not its key."""
    cert_dir = ctx.spec.cert_dir
    return ctx.target.read(f"{cert_dir}/ca.crt") is not None and ctx.target.read(f"{cert_dir}/ca.key") is None


def manifest_path(component: str) -> str:
    return f"{MANIFESTS_DIR}/{component}.yaml"


def _write(ctx: RunContext, component: str, data: bytes) -> None:
    ctx.ensure_dir(MANIFESTS_DIR, MANIFESTS_DIR_MODE)
    ctx.ensure_file(manifest_path(component), data, MANIFEST_MODE)


def _run_apiserver(ctx: RunContext) -> None:
    spec = ctx.spec
    if spec.hardening.audit_log:
        ctx.ensure_file(m.AUDIT_POLICY_PATH, m.audit_policy(), AUDIT_POLICY_MODE, detail="hardening: audit policy")
        ctx.ensure_dir(m.AUDIT_LOG_DIR, AUDIT_LOG_DIR_MODE)
    pod = m.apiserver_pod(spec, path_exists_on(ctx.target))
    _write(ctx, m.KUBE_APISERVER, m.pod_yaml(spec, pod))


def _run_controller_manager(ctx: RunContext) -> None:
    external_ca = using_external_ca(ctx)
    if external_ca:
        ctx.warn("external CA", "ca.key is absent: the controller-manager will not sign certificates")
    pod = m.controller_manager_pod(ctx.spec, path_exists_on(ctx.target), external_ca=external_ca)
    _write(ctx, m.KUBE_CONTROLLER_MANAGER, m.pod_yaml(ctx.spec, pod))


def _run_scheduler(ctx: RunContext) -> None:
    _write(ctx, m.KUBE_SCHEDULER, m.pod_yaml(ctx.spec, m.scheduler_pod(ctx.spec)))


def run_all(ctx: RunContext) -> None:
    for child in PHASE.children:
        if child.run is not None:
            child.run(ctx)


PHASE = Phase(
    "control-plane",
    "Generate all static Pod manifest files necessary to establish the control plane",
    None,
    children=(
        Phase("apiserver", "Generates the kube-apiserver static Pod manifest", _run_apiserver),
        Phase("controller-manager", "Generates the kube-controller-manager static Pod manifest",
              _run_controller_manager),
        Phase("scheduler", "Generates the kube-scheduler static Pod manifest", _run_scheduler),
    ),
)
