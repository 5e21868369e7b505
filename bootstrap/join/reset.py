"""`kbootstrap reset`: undo what init/join wrote on a node, kubeadm reset's list and no more.

Phases as kubeadm's: remove-etcd-member (a control plane with a local member leaves the etcd
cluster with `member remove` of itself, then its data dir is wiped; our host-mode etcd unit is
stopped and removed) and cleanup-node (stop the kubelet, unmount under /var/lib/kubelet, remove
the CRI's containers, delete the contents of manifests/, /var/lib/kubelet and the cert dir, and the
kubeconfig files). Not cleaned, as with kubeadm: iptables/nftables/IPVS rules, CNI config in
/etc/cni/net.d, $HOME/.kube. Directory contents go, the directories stay (kubeadm CleanDir).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from bootstrap.phases.base import Phase
from bootstrap.render.manifests import ETCD_SYSTEMD_UNIT_PATH
from bootstrap.spec.model import DEFAULT_CERT_DIR, KUBELET_DIR, KUBERNETES_DIR, MANIFESTS_DIR
from bootstrap.transport.base import Target
from bootstrap.workflow.context import RunContext
from bootstrap.workflow.report import Status

KUBECONFIG_FILES = (
    "admin.conf",
    "super-admin.conf",
    "kubelet.conf",
    "bootstrap-kubelet.conf",
    "controller-manager.conf",
    "scheduler.conf",
)
TMP_DIR = f"{KUBERNETES_DIR}/tmp"
# How many pods and containers the CRI holds; nothing when crictl is missing or the CRI is down.
CRI_OBJECTS = (
    "command -v crictl >/dev/null || exit 0; { crictl pods -q; crictl ps -aq; } 2>/dev/null | grep -c . || true"
)
ETCD_DATA_DIR = "/var/lib/etcd"
NOT_CLEANED = (
    "The reset process does not clean CNI configuration: remove /etc/cni/net.d yourself",
    "The reset process does not reset or clean up iptables rules or IPVS tables: use iptables/ipvsadm",
    "The reset process does not clean your kubeconfig files: remove $HOME/.kube/config yourself",
)


def _removed(ctx: RunContext, path: str, detail: str = "removed") -> None:
    if not ctx.dry_run:
        ctx.target.remove(path)
    ctx.record(path, Status.UPDATED, ("would be " if ctx.dry_run else "") + detail)


def clean_dir(ctx: RunContext, path: str) -> None:
    """Delete what is in path, keep path itself (kubeadm CleanDir)."""
    for entry in ctx.target.list_dir(path) or []:
        _removed(ctx, f"{path.rstrip('/')}/{entry}")


def _is_etcd_member_node(target: Target) -> bool:
    return target.read(ETCD_SYSTEMD_UNIT_PATH) is not None or target.read(f"{MANIFESTS_DIR}/etcd.yaml") is not None


def remove_etcd_member_phase(cert_dir: str, *, already_removed: bool = False) -> Phase:
    def run(ctx: RunContext) -> None:
        target = ctx.target
        if not _is_etcd_member_node(target):
            ctx.skip("etcd member", "no local etcd member on this node")
            return
        if already_removed:
            ctx.skip("etcd member", "already removed from a surviving member")
        elif not target.live:
            ctx.skip(
                "etcd member",
                "--rootfs: etcd is not contacted; remove the member from a survivor (`kbootstrap remove-node --force`)",
            )
        elif ctx.dry_run:
            ctx.skip("etcd member", "dry-run: the member is not removed")
        else:
            leave_etcd(ctx, cert_dir)
        if target.read(ETCD_SYSTEMD_UNIT_PATH) is not None:
            if target.live and not ctx.dry_run:
                target.run("systemctl disable --now etcd >/dev/null 2>&1 || true", timeout=90)
                ctx.record("stop etcd", Status.UPDATED, "systemctl disable --now etcd")
            _removed(ctx, ETCD_SYSTEMD_UNIT_PATH)
            if target.live and not ctx.dry_run:
                target.run("systemctl daemon-reload", timeout=60)
        clean_dir(ctx, ETCD_DATA_DIR)

    return Phase("remove-etcd-member", "Remove a local etcd member", run)


def leave_etcd(ctx: RunContext, cert_dir: str) -> None:
    """`member remove` of this node's own member, through its local endpoint and client cert."""
    from bootstrap.join.node import _last_line, etcdctl_on, member_list, remove_member

    etcdctl = etcdctl_on(ctx.target, cert_dir)
    status = etcdctl("endpoint status -w json")
    try:
        own = int(json.loads(status.stdout)[0]["Status"]["header"]["member_id"]) if status.ok else None
    except (ValueError, KeyError, IndexError, TypeError):
        own = None
    if own is None:
        ctx.warn(
            "etcd member",
            f"local etcd did not answer ({_last_line(status)}): the member was not removed; "
            "remove it from a surviving member with `kbootstrap remove-node --force`",
        )
        return
    members = member_list(etcdctl)
    if len(members) <= 1:
        ctx.skip("etcd member", "the only member of its cluster: nothing to leave, the data dir is wiped")
        return
    result = remove_member(etcdctl, format(own, "x"))
    if not result.ok:
        ctx.warn("etcd member", f"member remove failed ({_last_line(result)}): remove it from a surviving member")
        return
    ctx.record("etcd member", Status.UPDATED, f"removed member {format(own, 'x')} from the etcd cluster")


def cleanup_node_phase(cert_dir: str, *, cleanup_tmp_dir: bool = False) -> Phase:
    def run(ctx: RunContext) -> None:
        target = ctx.target
        live = target.live and not ctx.dry_run
        if live:
            # What was running is reported as changed; a second reset finds nothing and says so.
            if target.run("systemctl is-active --quiet kubelet").ok:
                target.run("systemctl stop kubelet >/dev/null 2>&1 || true", timeout=90)
                ctx.record("stop kubelet", Status.UPDATED, "systemctl stop kubelet")
            else:
                ctx.record("stop kubelet", Status.UNCHANGED, "the kubelet is not running")
            # Mounts under /var/lib/kubelet (resolved, as kubeadm does), deepest first.
            target.run(
                f"d=$(readlink -f {KUBELET_DIR}) && awk -v d=\"$d/\" 'index($2, d)==1 {{print $2}}' "
                "/proc/mounts | sort -r | xargs -r -n1 umount",
                timeout=60,
            )
            found = target.run(CRI_OBJECTS, timeout=60).stdout.strip()
            if found.isdigit() and int(found) > 0:
                target.run("crictl rmp -fa >/dev/null 2>&1; crictl rm -fa >/dev/null 2>&1; true", timeout=120)
                ctx.record("containers", Status.UPDATED, f"crictl: removed {found} pods and containers")
            elif found.isdigit():
                ctx.record("containers", Status.UNCHANGED, "no pods or containers")
        elif target.live:
            ctx.skip("stop kubelet", "dry-run: nothing is stopped")
        else:
            ctx.skip("stop kubelet", "--rootfs: no service is stopped, nothing is unmounted")
        dirs = [MANIFESTS_DIR, KUBELET_DIR, cert_dir.rstrip("/")]
        if cleanup_tmp_dir:
            dirs.append(TMP_DIR)
        if cert_dir.rstrip("/") != DEFAULT_CERT_DIR:
            ctx.warn(cert_dir, f"cleaning a non-default certificates directory: {cert_dir}")
        for d in dirs:
            clean_dir(ctx, d)
        for name in KUBECONFIG_FILES:
            path = f"{KUBERNETES_DIR}/{name}"
            if target.read(path) is not None:
                _removed(ctx, path)

    return Phase("cleanup-node", "Run cleanup node.", run)


def reset_phases(
    cert_dir: str = DEFAULT_CERT_DIR, *, cleanup_tmp_dir: bool = False, etcd_member_removed: bool = False
) -> tuple[Phase, ...]:
    return (
        remove_etcd_member_phase(cert_dir, already_removed=etcd_member_removed),
        cleanup_node_phase(cert_dir, cleanup_tmp_dir=cleanup_tmp_dir),
    )


Confirm = Callable[[str], bool]
