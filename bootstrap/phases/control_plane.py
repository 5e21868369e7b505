"""The control-plane phase: static Pod manifests for kube-apiserver, kube-controller-manager and
kube-scheduler (kubeadm.md section 3), plus our audit policy when hardening.audit_log is on.

The kubelet restarts a static pod when its manifest changes. A change to a running API server's
manifest is therefore rolled one control plane at a time: the next waits until this one's new API
server answers /readyz, so the cluster keeps an API server throughout.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field

from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import CONTROL_PLANES, Phase
from bootstrap.engine.result import Status
from bootstrap.errors import PhaseError
from bootstrap.render import manifests as m
from bootstrap.spec.model import MANIFESTS_DIR

MANIFEST_MODE = 0o600
MANIFESTS_DIR_MODE = 0o700
AUDIT_POLICY_MODE = 0o600
AUDIT_LOG_DIR_MODE = 0o700
ROLL = "kube-apiserver"
RESTART_TIMEOUT = 120.0  # the kubelet notices a manifest change within its 20 s file check, then starts it


@dataclass
class _CADirsFound:
    """Which of kubeadm's extra CA directories each host has (a RunState slot): asked once per run,
    in one script, for both components that mount them."""

    by_host: dict[str, frozenset[str]] = field(default_factory=dict)


def path_exists_on(ctx: RunContext) -> m.PathExists:
    """kubeadm stats the CA directories on the node it runs on (os.Stat: a file or a directory,
    symlinks followed); we look on the target node."""
    found = _existing_ca_dirs(ctx)
    return lambda path: path in found if path in m.CA_CERTS_EXTRA_PATHS else _exists(ctx, path)


def _exists(ctx: RunContext, path: str) -> bool:
    return ctx.target.list_dir(path) is not None or ctx.state(path) is not None


def _existing_ca_dirs(ctx: RunContext) -> frozenset[str]:
    cache = ctx.run.slot(_CADirsFound).by_host if ctx.run is not None else {}
    if ctx.name not in cache:
        paths = " ".join(shlex.quote(p) for p in m.CA_CERTS_EXTRA_PATHS)
        result = ctx.fact(f'for p in {paths}; do [ -e "$p" ] && printf "%s\\n" "$p"; done; true')
        if result is None:  # --rootfs: the tree is local, look there
            cache[ctx.name] = frozenset(p for p in m.CA_CERTS_EXTRA_PATHS if _exists(ctx, p))
        else:
            cache[ctx.name] = frozenset(result.stdout.split("\n")) & frozenset(m.CA_CERTS_EXTRA_PATHS)
    return cache[ctx.name]


def using_external_ca(ctx: RunContext) -> bool:
    """kubeadm UsingExternalCA: the node has the cluster CA certificate but not its key."""
    cert_dir = ctx.spec.cert_dir
    return ctx.state(f"{cert_dir}/ca.crt") is not None and ctx.state(f"{cert_dir}/ca.key") is None


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
    pod = m.apiserver_pod(spec, path_exists_on(ctx))
    data = m.pod_yaml(spec, pod)
    path = manifest_path(m.KUBE_APISERVER)
    current = ctx.read(path)
    pid = _apiserver_pid(ctx) if current is not None and current != data else None
    if pid is None:
        _write(ctx, m.KUBE_APISERVER, data)
        return
    with ctx.rolling(ROLL, gate=lambda: _ready_again(ctx, pid)):
        ctx.ensure_dir(MANIFESTS_DIR, MANIFESTS_DIR_MODE)
        ctx.ensure_file(path, data, MANIFEST_MODE, detail="a running API server: one control plane at a time")
        ctx.flush()


def _apiserver_pid(ctx: RunContext) -> str | None:
    result = ctx.fact("pgrep -xo kube-apiserver || true")
    pid = result.stdout.strip() if result is not None else ""
    return pid or None


def _ready_again(ctx: RunContext, old_pid: str) -> None:
    """The restarted API server (a new process) answers /readyz on this node."""
    url = shlex.quote(f"https://127.0.0.1:{ctx.spec.bind_port}/readyz")
    deadline = time.monotonic() + RESTART_TIMEOUT
    while time.monotonic() < deadline and not ctx.stopping:
        pid = _apiserver_pid(ctx)
        ready = ctx.fact(f"curl -sk --max-time 3 -o /dev/null -w '%{{http_code}}' {url}", timeout=10)
        if pid and pid != old_pid and ready is not None and ready.stdout.strip() == "200":
            ctx.record("kube-apiserver", Status.UNCHANGED, "restarted and ready (/readyz 200)")
            return
        time.sleep(2)
    raise PhaseError(
        f"the restarted kube-apiserver on {ctx.target.name} is not ready after {RESTART_TIMEOUT:.0f}s",
        hint="see `crictl ps -a` and `crictl logs` on that node; the other control planes were not touched",
    )


def _run_controller_manager(ctx: RunContext) -> None:
    external_ca = using_external_ca(ctx)
    if external_ca:
        ctx.warn("external CA", "ca.key is absent: the controller-manager will not sign certificates")
    pod = m.controller_manager_pod(ctx.spec, path_exists_on(ctx), external_ca=external_ca)
    _write(ctx, m.KUBE_CONTROLLER_MANAGER, m.pod_yaml(ctx.spec, pod))


def _run_scheduler(ctx: RunContext) -> None:
    _write(ctx, m.KUBE_SCHEDULER, m.pod_yaml(ctx.spec, m.scheduler_pod(ctx.spec)))


CHILDREN = (
    Phase("apiserver", "Generates the kube-apiserver static Pod manifest", _run_apiserver),
    Phase("controller-manager", "Generates the kube-controller-manager static Pod manifest", _run_controller_manager),
    Phase("scheduler", "Generates the kube-scheduler static Pod manifest", _run_scheduler),
)


def run_all(ctx: RunContext) -> None:
    for child in CHILDREN:
        if child.run is not None:
            child.run(ctx)


PHASE = Phase(
    "control-plane",
    "Generate all static Pod manifest files necessary to establish the control plane",
    None,
    children=CHILDREN,
    hosts=CONTROL_PLANES,
)
