"""The etcd phase: local etcd as kubeadm's static Pod, or (etcd_mode=host) as a systemd unit with
exactly the same flags, Kubespray style. External etcd: nothing to do on the node.

A member whose unit changes while it runs is restarted one member at a time, and the next waits
until this one is back in a healthy quorum: a config change never takes the etcd cluster down. The
members of a new cluster start together (each waits for the others to form the quorum). After the
phase each member checks that it answers and that a quorum of its cluster is healthy; a member
that is down fails alone and the others converge.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import ETCD_MEMBERS, Phase
from bootstrap.engine.result import Status
from bootstrap.engine.runner import RunState
from bootstrap.etcd.members import etcdctl_on, wait_quorum
from bootstrap.render import etcd as etcd_render
from bootstrap.spec.model import MANIFESTS_DIR, ClusterSpec, EtcdMember, EtcdMode

ETCD_UNIT_MODE = 0o644
MANIFESTS_DIR_MODE = 0o700
ROLL = "etcd"  # the rolling-restart lock: one member at a time


def run_local(ctx: RunContext) -> None:
    spec = ctx.spec
    if spec.etcd_external is not None or spec.etcd_local is None:
        ctx.skip("etcd", "external etcd is configured: no local etcd member on this node")
        return
    ctx.ensure_dir(spec.etcd_local.data_dir, spec.hardening.etcd_data_dir_mode)
    if spec.etcd_mode == EtcdMode.HOST:
        run_host_unit(ctx)
        return
    ctx.ensure_dir(MANIFESTS_DIR, MANIFESTS_DIR_MODE)
    path = f"{MANIFESTS_DIR}/etcd.yaml"
    manifest = etcd_render.etcd_manifest(spec)
    running = ctx.state(path) is not None and _member_running(ctx)
    if not running:
        ctx.ensure_file(path, manifest, 0o600)
        return
    # The kubelet restarts the static pod when its manifest changes: one member at a time.
    current = ctx.read(path)
    if current == manifest:
        ctx.ensure_file(path, manifest, 0o600)
        return
    with ctx.rolling(ROLL, gate=lambda: _healthy_again(ctx)):
        ctx.ensure_file(path, manifest, 0o600, detail="a running member: restarted one at a time")
        ctx.flush()


@dataclass(frozen=True)
class MemberFacts:
    """What the etcd unit's render needs from the node, asked in one script."""

    has_data: bool  # the member exists (its data dir has member/)
    version: str | None  # the etcd binary's version, when it answers
    running: bool


def member_facts(ctx: RunContext, binary: str) -> MemberFacts | None:
    """None under --rootfs (nothing is asked)."""
    assert ctx.spec.etcd_local is not None
    member = shlex.quote(ctx.spec.etcd_local.data_dir + "/member")
    found = ctx.fact(f"test -d {member} && echo data; pgrep -x etcd >/dev/null && echo running; "
                     f"echo \"version $({shlex.quote(binary)} --version 2>/dev/null | sed -n 's/^etcd Version: //p')\"")
    if found is None:
        return None
    lines = found.stdout.splitlines()
    version = next((ln.removeprefix("version ").strip() for ln in lines if ln.startswith("version ")), "")
    return MemberFacts("data" in lines, version or None, "running" in lines)


def bootstrapped_membership(ctx: RunContext, facts: MemberFacts | None) -> ClusterSpec:
    """etcd reads --initial-cluster* only when it bootstraps a member. Once this node's member
    exists, keep the flags its unit was born with: re-rendering them from a grown inventory would
    change every member's unit and restart them all for nothing."""
    spec = ctx.spec
    current = ctx.read(etcd_render.ETCD_SYSTEMD_UNIT_PATH)
    if current is None or spec.etcd_local is None or facts is None or not facts.has_data:
        return spec
    text = current.decode(errors="replace")
    members = re.search(r"--initial-cluster=(\S+)", text)
    state = re.search(r"--initial-cluster-state=(\S+)", text)
    if members is None:
        return spec
    parsed = []
    for item in members[1].split(","):
        name, _, url = item.partition("=")
        parsed.append(EtcdMember(name=name, peer_url=url))
    return spec.model_copy(
        update={"etcd_members": tuple(parsed), "etcd_initial_cluster_state": state[1] if state else "new"}
    )


def etcd_binary(ctx: RunContext) -> str:
    """The component build's etcd (kubeadm's pinned version) when the bundle carries it, else Debian's."""
    return "/usr/local/bin/etcd" if ctx.bundle is not None and ctx.bundle.has_etcd else "/usr/bin/etcd"


def run_host_unit(ctx: RunContext) -> None:
    binary = etcd_binary(ctx)
    facts = member_facts(ctx, binary)
    ctx.prefetch([etcd_render.ETCD_SYSTEMD_UNIT_PATH])  # read twice below, and compared: one round trip
    spec = bootstrapped_membership(ctx, facts)
    unit = etcd_render.etcd_systemd_unit(spec, binary=binary, binary_version=facts.version if facts else None).encode()
    current = ctx.read(etcd_render.ETCD_SYSTEMD_UNIT_PATH)
    if current is None or current == unit or facts is None or not facts.running:
        # A new member (the members of a new cluster start together), or nothing to restart.
        changed = ctx.ensure_file(etcd_render.ETCD_SYSTEMD_UNIT_PATH, unit, ETCD_UNIT_MODE)
        ctx.service("etcd", restart=changed, why="unit changed", daemon_reload=changed,
                    rootfs_reason="not a live root (--rootfs): no service is started")
        return
    with ctx.rolling(ROLL, gate=lambda: _healthy_again(ctx)):
        ctx.ensure_file(
            etcd_render.ETCD_SYSTEMD_UNIT_PATH, unit, ETCD_UNIT_MODE, detail="a running member: one at a time"
        )
        ctx.service("etcd", restart=True, why="unit changed", daemon_reload=True)


def _member_running(ctx: RunContext) -> bool:
    result = ctx.fact("pgrep -x etcd >/dev/null")
    return result is not None and result.ok


def _healthy_again(ctx: RunContext) -> None:
    health = wait_quorum(etcdctl_on(ctx.target, ctx.spec.cert_dir), stopping=lambda: ctx.stopping,
                         local_url=etcd_render.member_client_url(ctx.spec))
    ctx.record("etcd health", Status.UNCHANGED, health.describe())


def check_health(run: RunState, names: list[str]) -> None:
    """After the phase, on each member: it answers, and a quorum of its cluster is healthy."""
    members = [n for n in names if _has_local_member(run, n)]

    def check(name: str) -> None:
        ctx = run.contexts[name]
        health = wait_quorum(etcdctl_on(ctx.target, ctx.spec.cert_dir), stopping=lambda: ctx.stopping,
                             local_url=etcd_render.member_client_url(ctx.spec))
        status = Status.WARNING if health.unhealthy else Status.UNCHANGED
        run.note(name, "etcd health", status, health.describe())

    run.parallel(members, check)


def _has_local_member(run: RunState, name: str) -> bool:
    ctx = run.contexts[name]
    spec = ctx.spec
    return (
        not run.dry_run
        and ctx.live
        and spec.etcd_mode == EtcdMode.HOST
        and spec.etcd_external is None
        and spec.etcd_local is not None
    )


LOCAL = Phase(
    "local", "Generate the static Pod manifest file for a local, single-node local etcd instance", run_local
)
PHASE = Phase(
    "etcd",
    "Generate static Pod manifest file for local etcd",
    None,
    children=(LOCAL,),
    hosts=ETCD_MEMBERS,
    after=check_health,
)
