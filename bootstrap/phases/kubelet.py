"""The kubelet-start phase: kubelet settings (config.yaml, kubeadm-flags.env, instance config), the
packaged unit and drop-in, then (re)start the kubelet on a live node that has it installed."""

from __future__ import annotations

from bootstrap.errors import PhaseError
from bootstrap.phases.base import Phase
from bootstrap.render import kubelet as k
from bootstrap.spec.model import KUBELET_DIR
from bootstrap.workflow.context import RunContext
from bootstrap.workflow.report import Status

FLAGS_ENV_MODE = 0o644  # kubeadm's mode; not a CIS item
KUBELET_DIR_MODE = 0o700
RESOLVED_WANTS = (
    "/etc/systemd/system/multi-user.target.wants/systemd-resolved.service",
    "/etc/systemd/system/sysinit.target.wants/systemd-resolved.service",
)


def node_hostname(ctx: RunContext) -> str:
    """The node's own hostname: /etc/hostname on the target, else `hostname` on a live node."""
    state = ctx.target.read("/etc/hostname")
    if state is not None and state.content.strip():
        return state.content.decode(errors="replace").strip().lower()
    if ctx.target.live:
        result = ctx.target.run("hostname")
        if result.ok and result.stdout.strip():
            return result.stdout.strip().lower()
    return ctx.spec.node.name  # unknown: assume it matches, as a fresh node named by us would


def systemd_resolved_active(ctx: RunContext) -> bool:
    """Live node: ask systemd. --rootfs: nothing runs, so look whether the unit is enabled."""
    if ctx.target.live:
        return ctx.target.run("systemctl is-active --quiet systemd-resolved").ok
    return any(ctx.target.read(p) is not None or ctx.target.list_dir(p) is not None for p in RESOLVED_WANTS)


def _modes(ctx: RunContext) -> dict[str, int]:
    h = ctx.spec.hardening
    return {
        k.KUBELET_CONFIG_PATH: h.kubelet_config_mode,
        k.KUBELET_FLAGS_ENV_PATH: FLAGS_ENV_MODE,
        k.KUBELET_INSTANCE_CONFIG_PATH: h.kubelet_config_mode,
        k.KUBELET_UNIT_PATH: h.kubelet_unit_mode,
        k.KUBELET_DROPIN_PATH: h.kubelet_unit_mode,
    }


def run(ctx: RunContext) -> None:
    rendered = k.render_kubelet_files(
        ctx.spec, hostname=node_hostname(ctx), systemd_resolved=systemd_resolved_active(ctx)
    )
    for warning in rendered.warnings:
        ctx.warn(k.KUBELET_CONFIG_PATH, warning)
    ctx.ensure_dir(KUBELET_DIR, KUBELET_DIR_MODE)
    modes = _modes(ctx)
    for path, data in rendered.files.items():
        ctx.ensure_file(path, data, modes[path])
    _start(ctx)


def _start(ctx: RunContext) -> None:
    item = "start kubelet"
    if ctx.dry_run:
        ctx.skip(item, "dry-run: nothing is started")
        return
    if not ctx.target.live:
        ctx.skip(item, "--rootfs: no service is started")
        return
    if not ctx.target.run("test -x /usr/bin/kubelet").ok:
        ctx.skip(item, "kubelet binary not installed")
        return
    result = ctx.target.run(
        "systemctl daemon-reload && systemctl enable kubelet && systemctl restart kubelet", timeout=120
    )
    if not result.ok:
        ctx.record(item, Status.FAILED, (result.stderr or result.stdout).strip())
        raise PhaseError("kubelet-start: systemd could not (re)start the kubelet", hint="see `journalctl -u kubelet`")
    ctx.record(item, Status.UPDATED, "systemctl restart kubelet")


PHASE = Phase("kubelet-start", "Write kubelet settings and (re)start the kubelet", run)
