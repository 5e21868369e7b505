"""The etcd phase: local etcd as kubeadm's static Pod, or (etcd_mode=host) as a systemd unit with
exactly the same flags, Kubespray style. External etcd: nothing to do on the node."""

from __future__ import annotations

import re

from bootstrap.errors import PhaseError
from bootstrap.phases.base import Phase
from bootstrap.render import manifests as m
from bootstrap.spec.model import MANIFESTS_DIR, ClusterSpec, EtcdMember, EtcdMode
from bootstrap.workflow.context import RunContext
from bootstrap.workflow.report import Status

ETCD_UNIT_MODE = 0o644


def _run_local(ctx: RunContext) -> None:
    spec = ctx.spec
    if spec.etcd_external is not None or spec.etcd_local is None:
        ctx.skip("etcd", "external etcd is configured: no local etcd member on this node")
        return
    ctx.ensure_dir(spec.etcd_local.data_dir, spec.hardening.etcd_data_dir_mode)
    if spec.etcd_mode == EtcdMode.HOST:
        _run_host_unit(ctx)
        return
    ctx.ensure_dir(MANIFESTS_DIR, 0o700)
    ctx.ensure_file(f"{MANIFESTS_DIR}/etcd.yaml", m.etcd_manifest(spec), 0o600)


def _installed_etcd_version(ctx: RunContext) -> str | None:
    """`etcd --version` on a live node ("etcd Version: 3.4.23"); None under --rootfs or if absent."""
    if not ctx.target.live:
        return None
    out = ctx.target.run("etcd --version 2>/dev/null | sed -n 's/^etcd Version: //p'").stdout.strip()
    return out or None


def _bootstrapped_membership(ctx: RunContext) -> ClusterSpec:
    """etcd reads --initial-cluster* only when it bootstraps a member. Once this node's member
    exists, keep the flags its unit was born with: re-rendering them from a grown inventory would
    change every member's unit and restart them all at once (a quorum loss for nothing)."""
    spec = ctx.spec
    current = ctx.target.read(m.ETCD_SYSTEMD_UNIT_PATH)
    if current is None or spec.etcd_local is None or not ctx.target.live:
        return spec
    if not ctx.target.run(f"test -d {spec.etcd_local.data_dir}/member").ok:
        return spec
    text = current.content.decode(errors="replace")
    members = re.search(r"--initial-cluster=(\S+)", text)
    state = re.search(r"--initial-cluster-state=(\S+)", text)
    if members is None:
        return spec
    parsed = []
    for item in members[1].split(","):
        name, _, url = item.partition("=")
        parsed.append(EtcdMember(name=name, peer_url=url))
    return spec.model_copy(update={
        "etcd_members": tuple(parsed),
        "etcd_initial_cluster_state": state[1] if state else "new",
    })


def _run_host_unit(ctx: RunContext) -> None:
    spec = _bootstrapped_membership(ctx)
    unit = m.etcd_systemd_unit(spec, binary_version=_installed_etcd_version(ctx)).encode()
    changed = ctx.ensure_file(m.ETCD_SYSTEMD_UNIT_PATH, unit, ETCD_UNIT_MODE)
    if ctx.dry_run:
        ctx.skip("start etcd", "dry-run: nothing is started")
        return
    if not ctx.target.live:
        ctx.skip("start etcd", "not a live root (--rootfs): no service is started")
        return
    # Restart only when the unit changed; otherwise make sure it is enabled and running.
    script = ("systemctl daemon-reload && systemctl enable etcd && systemctl restart etcd" if changed
              else "systemctl enable etcd && systemctl start etcd")
    result = ctx.target.run(script, timeout=120)
    if not result.ok:
        ctx.record("start etcd", Status.FAILED, (result.stderr or result.stdout).strip())
        raise PhaseError("etcd: systemd could not start etcd", hint="see `journalctl -u etcd`")
    ctx.record("start etcd", Status.UPDATED if changed else Status.UNCHANGED, "systemctl: etcd running")


PHASE = Phase(
    "etcd",
    "Generate static Pod manifest file for local etcd",
    None,
    children=(
        Phase("local", "Generate the static Pod manifest file for a local, single-node local etcd instance",
              _run_local),
    ),
)
