"""join-workers: the workers join the running control plane as `kubeadm join` does, through the
kubelet's TLS bootstrap: bootstrap-kubelet.conf with a bootstrap token (the cluster's, found or
made by phases/bootstrap_token.py), the kubelet started, and then the wait until it has its client
certificate (its CSR approved by the node-autoapprove binding) and written kubelet.conf; then
bootstrap-kubelet.conf goes, as kubeadm removes it.

A worker with a kubelet.conf has joined: nothing is written, no token is needed or made.
"""

from __future__ import annotations

import shlex

from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import WORKERS, Phase
from bootstrap.engine.result import Status
from bootstrap.engine.runner import RunState
from bootstrap.errors import PhaseError
from bootstrap.join.node import BOOTSTRAP_KUBECONFIG, KUBELET_KUBECONFIG, TOKEN_USER
from bootstrap.phases import kubelet
from bootstrap.phases.bootstrap_token import JoinToken, join_token
from bootstrap.phases.certs import SharedPKI
from bootstrap.phases.cluster_api import offline
from bootstrap.render.kubeconfig import KUBECONFIG_MODE, build_kubeconfig

TLS_BOOTSTRAP_TIMEOUT = 300  # kubeadm: timeouts.tlsBootstrap, 5m0s


def prepare_token(run: RunState, names: list[str]) -> None:
    """Before the workers: a token, when one of them still has to join."""
    found = {n: run.contexts[n].state(KUBELET_KUBECONFIG) for n in names}
    if all(state is not None for state in found.values()):
        return
    joining = run.slot(JoinToken)
    join_token(run)
    if not joining.ca_pem:
        joining.ca_pem = run.slot(SharedPKI).files.get("ca.crt", b"")


def run_tls_bootstrap(ctx: RunContext) -> None:
    if ctx.state(KUBELET_KUBECONFIG) is not None:
        ctx.skip(BOOTSTRAP_KUBECONFIG, "kubelet.conf exists: the kubelet has joined already")
        return
    if offline(ctx) is not None and ctx.state(BOOTSTRAP_KUBECONFIG) is not None:
        ctx.record(BOOTSTRAP_KUBECONFIG, Status.UNCHANGED, f"kept ({offline(ctx)}: no token to check it against)")
        return
    assert ctx.run is not None
    joining = ctx.run.slot(JoinToken)
    if not joining.ca_pem:  # one Ansible task per host: the before-hook ran in another process
        joining.ca_pem = ctx.run.slot(SharedPKI).files.get("ca.crt", b"")
    if (joining.token is None or not joining.ca_pem) and offline(ctx) is not None:
        ctx.skip(BOOTSTRAP_KUBECONFIG, f"{offline(ctx)}: no cluster CA yet (the certs phase makes it)")
        return
    if joining.token is None or not joining.ca_pem:
        raise PhaseError("no bootstrap token or cluster CA for the TLS bootstrap",
                         hint="run the bootstrap-token and certs phases (or `join -i`) first")
    data = build_kubeconfig("kubernetes", ctx.spec.control_plane_url, joining.ca_pem, TOKEN_USER,
                            token=str(joining.token))
    ctx.ensure_dir("/etc/kubernetes", 0o755)
    ctx.ensure_file(BOOTSTRAP_KUBECONFIG, data, KUBECONFIG_MODE, detail=f"token id {joining.token.id}")
    if joining.note:
        ctx.record(f"bootstrap token {joining.token.id}", Status.UNCHANGED, joining.note)


def run_kubelet_start(ctx: RunContext) -> None:
    joined = ctx.state(KUBELET_KUBECONFIG) is not None
    # Not joined yet: the kubelet (re)starts with the bootstrap kubeconfig even if it was running.
    kubelet.run(ctx, changed_before=() if joined else (BOOTSTRAP_KUBECONFIG,))
    if joined:
        return
    if offline(ctx) is not None:
        ctx.skip(KUBELET_KUBECONFIG, f"{offline(ctx)}: no TLS bootstrap is waited for")
        return
    wait_for_bootstrap(ctx)


def wait_for_bootstrap(ctx: RunContext) -> None:
    path = shlex.quote(KUBELET_KUBECONFIG)
    script = (f"i=0; while [ $i -lt {TLS_BOOTSTRAP_TIMEOUT} ]; do test -s {path} && "
              f"echo \"after $i s\" && exit 0; sleep 1; i=$((i+1)); done; exit 3")
    result = ctx.fact(script, timeout=TLS_BOOTSTRAP_TIMEOUT + 30, now=True)
    assert result is not None
    if not result.ok:
        raise PhaseError(
            f"the kubelet on {ctx.name} did not finish its TLS bootstrap within {TLS_BOOTSTRAP_TIMEOUT // 60}m",
            hint="see `journalctl -u kubelet` there; its CSR (kubectl get csr) and the bootstrap token's RBAC",
        )
    ctx.record(KUBELET_KUBECONFIG, Status.CREATED, f"written by the kubelet {result.stdout.strip()} (CSR approved)")
    # As kubeadm join: the token's credential leaves the disk once the kubelet has its own. (kubeadm
    # also removes it when the wait fails; here it stays, so the kubelet can still finish.)
    ctx.remove(BOOTSTRAP_KUBECONFIG, detail="removed: the TLS bootstrap is done")


TLS_BOOTSTRAP = Phase("tls-bootstrap", "Write bootstrap-kubelet.conf with a bootstrap token for the kubelet's "
                                        "TLS bootstrap", run_tls_bootstrap)
KUBELET_START = Phase("kubelet-start", "Write kubelet settings, start the kubelet and wait for its TLS bootstrap",
                      run_kubelet_start)
PHASE = Phase(
    "join-workers",
    "Join the workers through the kubelet's TLS bootstrap, as kubeadm join does",
    None,
    children=(TLS_BOOTSTRAP, KUBELET_START),
    hosts=WORKERS,
    before=prepare_token,
    fleet_only=True,
)
