"""The kubelet-start phase: kubelet settings (config.yaml, kubeadm-flags.env, instance config), the
packaged unit and drop-in, then the kubelet enabled and running on a live node that has it.

The kubelet is restarted only when one of its inputs changed (its config, flags, unit or drop-in,
or its credentials: kubelet.conf, bootstrap-kubelet.conf), and the report says which; a rerun with
nothing to do leaves the running kubelet alone.
"""

from __future__ import annotations

from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import Phase
from bootstrap.render import kubelet as k
from bootstrap.spec.model import KUBELET_DIR, KUBERNETES_DIR

FLAGS_ENV_MODE = 0o644  # kubeadm's mode; not a CIS item
KUBELET_DIR_MODE = 0o700
RESOLVED_WANTS = (
    "/etc/systemd/system/multi-user.target.wants/systemd-resolved.service",
    "/etc/systemd/system/sysinit.target.wants/systemd-resolved.service",
)
CREDENTIALS = (f"{KUBERNETES_DIR}/kubelet.conf", f"{KUBERNETES_DIR}/bootstrap-kubelet.conf")
KUBELET_BINARY = "/usr/bin/kubelet"


def node_hostname(ctx: RunContext) -> str:
    """The node's own hostname: /etc/hostname on the target, else `hostname` on a live node."""
    data = ctx.read("/etc/hostname")
    if data is not None and data.strip():
        return data.decode(errors="replace").strip().lower()
    result = ctx.fact("hostname")
    if result is not None and result.ok and result.stdout.strip():
        return result.stdout.strip().lower()
    return ctx.spec.node.name  # unknown: assume it matches, as a fresh node named by us would


def systemd_resolved_active(ctx: RunContext) -> bool:
    """Live node: ask systemd. --rootfs: nothing runs, so look whether the unit is enabled."""
    result = ctx.fact("systemctl is-active --quiet systemd-resolved")
    if result is not None:
        return result.ok
    return any(ctx.state(p) is not None or ctx.target.list_dir(p) is not None for p in RESOLVED_WANTS)


def _modes(ctx: RunContext) -> dict[str, int]:
    h = ctx.spec.hardening
    return {
        k.KUBELET_CONFIG_PATH: h.kubelet_config_mode,
        k.KUBELET_FLAGS_ENV_PATH: FLAGS_ENV_MODE,
        k.KUBELET_INSTANCE_CONFIG_PATH: h.kubelet_config_mode,
        k.KUBELET_UNIT_PATH: h.kubelet_unit_mode,
        k.KUBELET_DROPIN_PATH: h.kubelet_unit_mode,
    }


def run(ctx: RunContext, *, changed_before: tuple[str, ...] = ()) -> None:
    """changed_before: kubelet inputs an earlier step of the same phase changed (join: its bootstrap
    kubeconfig), so the kubelet picks them up."""
    rendered = k.render_kubelet_files(
        ctx.spec, hostname=node_hostname(ctx), systemd_resolved=systemd_resolved_active(ctx)
    )
    for warning in rendered.warnings:
        ctx.warn(k.KUBELET_CONFIG_PATH, warning)
    ctx.ensure_dir(KUBELET_DIR, KUBELET_DIR_MODE)
    modes = _modes(ctx)
    written = ctx.ensure_files([(path, data, modes[path]) for path, data in rendered.files.items()])
    changed = [p for p, c in written.items() if c] + list(changed_before)
    # A file kubeadm does not write for this release and these feature gates (instance-config.yaml
    # without NodeLocalCRISocket) goes: the kubelet would still merge it into its config.
    stale = k.KUBELET_INSTANCE_CONFIG_PATH
    if stale not in rendered.files and ctx.state(stale) is not None:
        ctx.remove(stale, "removed: kubeadm does not write it for this release and feature gates")
        changed.append(stale)
    start(ctx, changed)


# The kubelet learns the runtime's cgroup driver from the CRI once, at its start: started before
# containerd was (re)started (after a reboot, before a rerun fixed containerd's config), it keeps
# a stale driver and every sandbox fails ("expected cgroupsPath to be of format slice:prefix:name").
RUNTIME_NEWER = "containerd restarted after the kubelet"
_STARTS = "systemctl show -p ActiveEnterTimestampMonotonic --value containerd kubelet 2>/dev/null"


def runtime_newer(starts: str) -> bool:
    """From `_STARTS`'s output: containerd entered `active` after the running kubelet did."""
    values = starts.split()
    if len(values) != 2 or not all(v.isdigit() for v in values):
        return False
    runtime, kubelet = (int(v) for v in values)
    return kubelet > 0 and runtime > kubelet


def start(ctx: RunContext, changed: list[str]) -> None:
    present = ctx.fact(f"test -x {KUBELET_BINARY} && {_STARTS}")
    if present is not None and not present.ok:
        ctx.skip("start kubelet", f"{KUBELET_BINARY} is not installed: nothing to start")
        return
    units_changed = any(p in (k.KUBELET_UNIT_PATH, k.KUBELET_DROPIN_PATH) for p in changed)
    reasons = [f"{', '.join(p.rsplit('/', 1)[-1] for p in changed)} changed"] if changed else []
    if present is not None and runtime_newer(present.stdout):
        reasons.append(RUNTIME_NEWER)
    if ctx.service("kubelet", restart=bool(reasons), why="; ".join(reasons), daemon_reload=units_changed):
        wait_healthy(ctx)


HEALTH_WAIT = 40  # seconds for a (re)started kubelet that has its credentials to answer /healthz


def wait_healthy(ctx: RunContext) -> None:
    """A kubelet that has its kubeconfig answers /healthz (and serves :10250) a few seconds after a
    (re)start: what follows (the API phases, netcheck's port probes) finds it serving. A kubelet
    still to TLS-bootstrap is waited for by its join step instead."""
    if ctx.dry_run or not ctx.live:
        return
    result = ctx.fact(
        f"if [ ! -f {KUBERNETES_DIR}/kubelet.conf ]; then exit 0; fi; i=0; "
        f"until curl -sf --max-time 2 -o /dev/null http://127.0.0.1:10248/healthz; do "
        f"i=$((i+1)); if [ $i -ge {HEALTH_WAIT} ]; then exit 1; fi; sleep 1; done",
        timeout=HEALTH_WAIT + 30, now=True,
    )
    if result is not None and result.exit_code == 1:
        ctx.warn("kubelet health", f"the kubelet does not answer /healthz {HEALTH_WAIT}s after its start "
                                   "(see `journalctl -u kubelet`)")


PHASE = Phase("kubelet-start", "Write kubelet settings and (re)start the kubelet", run)
