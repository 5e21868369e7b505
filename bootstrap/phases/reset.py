"""`kbootstrap reset`: undo what init/join wrote on a node, kubeadm reset's list and no more.

Phases as kubeadm's: remove-etcd-member (a control plane with a local member leaves the etcd
cluster with `member remove` of itself, then its data dir is wiped; our host-mode etcd unit is
stopped and removed) and cleanup-node (stop the kubelet, unmount under /var/lib/kubelet, remove
the CRI's containers, delete the contents of manifests/, /var/lib/kubelet and the cert dir, and the
kubeconfig files). Directory contents go, the directories stay (kubeadm CleanDir). Not cleaned by a
single-node reset, as with kubeadm: iptables/nftables/IPVS rules, CNI config in /etc/cni/net.d,
$HOME/.kube. A fleet reset (`reset -i`) also runs cleanup-network, the cleanup kubeadm documents.

The etcd data dir is the one the node's etcd was configured with (its unit or manifest, as
kubeadm's getEtcdDataDir reads it), else the spec's: a custom etcd_data_dir is wiped too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import Phase, Tree
from bootstrap.engine.result import Status
from bootstrap.etcd.members import etcdctl_on, last_line, member_list, remove_member
from bootstrap.render.etcd import ETCD_SYSTEMD_UNIT_PATH
from bootstrap.spec.model import DEFAULT_CERT_DIR, KUBELET_DIR, KUBERNETES_DIR, MANIFESTS_DIR

KUBECONFIG_FILES = (
    "admin.conf",
    "super-admin.conf",
    "kubelet.conf",
    "bootstrap-kubelet.conf",
    "controller-manager.conf",
    "scheduler.conf",
)
TMP_DIR = f"{KUBERNETES_DIR}/tmp"
ETCD_MANIFEST = f"{MANIFESTS_DIR}/etcd.yaml"
# How many pods and containers the CRI holds; nothing when crictl is missing or the CRI is down.
CRI_OBJECTS = (
    "command -v crictl >/dev/null || exit 0; { crictl pods -q; crictl ps -aq; } 2>/dev/null | grep -c . || true"
)
REMOVE_CRI_OBJECTS = """\
for try in 1 2 3; do
  crictl stopp $(crictl pods -q 2>/dev/null) >/dev/null 2>&1 || true
  crictl rmp -fa >/dev/null 2>&1 && break || sleep 1
done
crictl rm -fa >/dev/null 2>&1 || true
echo 'CHANGED containers'"""
DEFAULT_ETCD_DATA_DIR = "/var/lib/etcd"
NOT_CLEANED = (
    "The reset process does not clean CNI configuration: remove /etc/cni/net.d yourself",
    "The reset process does not reset or clean up iptables rules or IPVS tables: use iptables/ipvsadm",
    "The reset process does not clean your kubeconfig files: remove $HOME/.kube/config yourself",
)


@dataclass
class ResetOptions:
    """How a reset runs: the member already removed (a whole cluster goes, or remove-node removed it
    through a survivor) and kubeadm's --cleanup-tmp-dir."""

    etcd_member_removed: bool = False
    cleanup_tmp_dir: bool = False


def _options(ctx: RunContext) -> ResetOptions:
    return ctx.run.slot(ResetOptions) if ctx.run is not None else ResetOptions()


def clean_dir(ctx: RunContext, path: str) -> None:
    """Delete what is in path, keep path itself (kubeadm CleanDir)."""
    for entry in ctx.target.list_dir(path) or []:
        ctx.remove(f"{path.rstrip('/')}/{entry}")


def etcd_data_dir(ctx: RunContext) -> str:
    """kubeadm getEtcdDataDir: the --data-dir of the node's etcd (unit or manifest), else the spec's."""
    for path in (ETCD_SYSTEMD_UNIT_PATH, ETCD_MANIFEST):
        data = ctx.read(path)
        if data is not None:
            found = re.search(r"--data-dir[= ]([^\s\"']+)", data.decode(errors="replace"))
            if found:
                return found[1]
    local = ctx.spec.etcd_local
    return local.data_dir if local is not None else DEFAULT_ETCD_DATA_DIR


def run_remove_etcd_member(ctx: RunContext) -> None:
    data_dir = etcd_data_dir(ctx)
    has_member = ctx.state(ETCD_SYSTEMD_UNIT_PATH) is not None or ctx.state(ETCD_MANIFEST) is not None
    if not has_member:
        ctx.skip("etcd member", "no local etcd member on this node")
    elif _options(ctx).etcd_member_removed:
        ctx.skip("etcd member", "already removed from a surviving member")
    elif not ctx.live:
        ctx.skip(
            "etcd member",
            "--rootfs: etcd is not contacted; remove the member from a survivor (`kbootstrap remove-node --force`)",
        )
    elif ctx.dry_run:
        ctx.skip("etcd member", "dry-run: the member is not removed")
    else:
        leave_etcd(ctx)
    if ctx.state(ETCD_SYSTEMD_UNIT_PATH) is not None:
        stop_service(ctx, "etcd", disable=True)
        ctx.remove(ETCD_SYSTEMD_UNIT_PATH)
        # A member removed from a survivor exits on its own (and may restart): no failed unit stays.
        ctx.bookkeeping("systemctl daemon-reload; systemctl reset-failed etcd >/dev/null 2>&1; true")
    clean_dir(ctx, data_dir)


def leave_etcd(ctx: RunContext) -> None:
    """`member remove` of this node's own member, through its local endpoint and client cert."""
    etcdctl = etcdctl_on(ctx.target, ctx.spec.cert_dir)
    status = etcdctl("endpoint status -w json")
    try:
        own = int(json.loads(status.stdout)[0]["Status"]["header"]["member_id"]) if status.ok else None
    except (ValueError, KeyError, IndexError, TypeError):
        own = None
    if own is None:
        ctx.warn(
            "etcd member",
            f"local etcd did not answer ({last_line(status)}): the member was not removed; "
            "remove it from a surviving member with `kbootstrap remove-node --force`",
        )
        return
    members = member_list(etcdctl)
    if len(members) <= 1:
        ctx.skip("etcd member", "the only member of its cluster: nothing to leave, the data dir is wiped")
        return
    result = remove_member(etcdctl, format(own, "x"))
    if not result.ok:
        ctx.warn("etcd member", f"member remove failed ({last_line(result)}): remove it from a surviving member")
        return
    ctx.record("etcd member", Status.UPDATED, f"removed member {format(own, 'x')} from the etcd cluster")


RUNNING_STATES = ("active", "activating", "reloading", "deactivating", "refreshing")


def stop_service(ctx: RunContext, unit: str, *, disable: bool = False) -> None:
    """Stop a unit that runs (reported); one that does not is left alone (and said so)."""
    item = f"stop {unit}"
    state = ctx.fact(f"systemctl is-active {unit}")
    if state is None:
        ctx.skip(item, "--rootfs: no service is stopped, nothing is unmounted")
        return
    # Not only `active`: a unit between restarts (a kubelet crash-looping after a reboot) is
    # `activating`, and would be running again a moment after a reset that left it alone.
    if state.stdout.strip() not in RUNNING_STATES:
        if not disable:
            ctx.record(item, Status.UNCHANGED, f"the {unit} is not running")
            return
        # etcd exits with an error once its member is removed: the unit is left failed (and enabled).
        leftover = ctx.fact(f"systemctl is-enabled --quiet {unit} || systemctl is-failed --quiet {unit}")
        if leftover is not None and leftover.ok:
            ctx.run_change(f"systemctl disable --now {unit} >/dev/null 2>&1 || true\n"
                           f"systemctl reset-failed {unit} >/dev/null 2>&1 || true\necho 'CHANGED {item}'",
                           item, changes=[item])
        return
    verb = "disable --now" if disable else "stop"
    # A unit whose process exits non-zero on the way down (etcd whose member was just removed) is
    # left `failed`: reset-failed, so the node shows nothing failed.
    ctx.run_change(f"systemctl {verb} {unit} >/dev/null 2>&1 || true\n"
                   f"systemctl reset-failed {unit} >/dev/null 2>&1 || true\necho 'CHANGED {item}'",
                   item, changes=[item])


def run_cleanup_node(ctx: RunContext) -> None:
    cert_dir = ctx.spec.cert_dir.rstrip("/")
    stop_service(ctx, "kubelet")
    # Mounts under /var/lib/kubelet (resolved, as kubeadm does), deepest first.
    ctx.bookkeeping(
        f"d=$(readlink -f {KUBELET_DIR}) && awk -v d=\"$d/\" 'index($2, d)==1 {{print $2}}' "
        "/proc/mounts | sort -r | xargs -r -n1 umount",
        timeout=60,
    )
    found = ctx.fact(CRI_OBJECTS, timeout=60)
    count = found.stdout.strip() if found is not None else ""
    if count.isdigit() and int(count) > 0:
        # run_change scripts run under `set -e`: each crictl call is guarded, and a pod whose
        # teardown fails (its CNI already gone) gets kubeadm's retries before it is reported.
        ctx.run_change(REMOVE_CRI_OBJECTS, "containers", changes=["containers"], timeout=120)
        left = ctx.fact(CRI_OBJECTS, timeout=60)
        remaining = left.stdout.strip() if left is not None else ""
        if remaining.isdigit() and int(remaining) > 0:
            ctx.warn("containers", f"{remaining} pods or containers remain: see `crictl pods` and `crictl ps -a`")
    elif count.isdigit():
        ctx.record("containers", Status.UNCHANGED, "no pods or containers")
    dirs = [MANIFESTS_DIR, KUBELET_DIR, cert_dir]
    if _options(ctx).cleanup_tmp_dir:
        dirs.append(TMP_DIR)
    if cert_dir != DEFAULT_CERT_DIR:
        ctx.warn(cert_dir, f"cleaning a non-default certificates directory: {cert_dir}")
    for d in dirs:
        clean_dir(ctx, d)
    for name in KUBECONFIG_FILES:
        path = f"{KUBERNETES_DIR}/{name}"
        if ctx.state(path) is not None:
            ctx.remove(path)


# Fleet resets go on where kubeadm's stops, doing what kubeadm's reset tells the user to do by hand,
# so that the node is ready for a fresh init: the CNI configuration and IPAM state, the kube-proxy
# and kube-router rules (only theirs: every KUBE-* / kube-router chain and rule, in iptables and
# ip6tables, their nftables tables, IPVS services, and their ipsets where the node has the ipset
# tool), and the pod network's links.
NETWORK_LEFTOVERS = r"""
n=0
for f in /etc/cni/net.d/* /var/lib/cni/*; do [ -e "$f" ] && n=$((n+1)); done
for t in iptables ip6tables; do
  command -v $t-save >/dev/null && n=$((n + $($t-save 2>/dev/null | grep -c -e 'KUBE-' -e 'kube-router')))
done
command -v nft >/dev/null && n=$((n + $(nft list tables 2>/dev/null | grep -c ' kube-proxy$')))
command -v ipset >/dev/null && n=$((n + $(ipset list -n 2>/dev/null | grep -c -e '^KUBE-' -e '^kube-router')))
command -v ipvsadm >/dev/null && n=$((n + $(ipvsadm -Ln 2>/dev/null | grep -c '^[TU][CD]P ')))
for l in kube-bridge kube-dummy-if kube-ipvs0; do ip link show $l >/dev/null 2>&1 && n=$((n+1)); done
echo $n
"""
CLEAN_NETWORK = r"""
rm -rf /etc/cni/net.d/* /var/lib/cni/*
for t in iptables ip6tables; do
  command -v $t-save >/dev/null || continue
  for table in filter nat mangle raw; do
    # grep -c, not -q: -q stops reading early, and with pipefail the save's SIGPIPE fails the test.
    if [ "$($t-save -t $table 2>/dev/null | grep -c -e 'KUBE-' -e 'kube-router' || true)" != 0 ]; then
      $t-save -t $table | { grep -v -e 'KUBE-' -e 'kube-router' || true; } | $t-restore -T $table
    fi
  done
done
if command -v nft >/dev/null; then for fam in ip ip6; do nft delete table $fam kube-proxy 2>/dev/null || true; done; fi
if command -v ipset >/dev/null; then
  for set in $(ipset list -n 2>/dev/null | grep -e '^KUBE-' -e '^kube-router' || true); do
    ipset destroy "$set" 2>/dev/null || true
  done
fi
if command -v ipvsadm >/dev/null; then ipvsadm -C 2>/dev/null || true; fi
for l in kube-bridge kube-dummy-if kube-ipvs0; do ip link delete $l 2>/dev/null || true; done
echo 'CHANGED pod network state'
"""


def run_cleanup_network(ctx: RunContext) -> None:
    found = ctx.fact(NETWORK_LEFTOVERS, timeout=60)
    if found is None:
        ctx.skip("pod network state", "--rootfs: no rules or links to remove")
        return
    count = found.stdout.strip()
    if not count.isdigit() or int(count) == 0:
        ctx.record("pod network state", Status.UNCHANGED, "no CNI configuration, KUBE-* rules, ipsets or links")
        return
    ctx.run_change(CLEAN_NETWORK, "pod network state", changes=["pod network state"], timeout=120)


REMOVE_ETCD_MEMBER = Phase("remove-etcd-member", "Remove a local etcd member", run_remove_etcd_member)
CLEANUP_NODE = Phase("cleanup-node", "Run cleanup node.", run_cleanup_node)
CLEANUP_NETWORK = Phase("cleanup-network", "Remove the pod network's configuration, rules and links (fleet resets)",
                        run_cleanup_network, fleet_only=True)
RESET = Tree((REMOVE_ETCD_MEMBER, CLEANUP_NODE, CLEANUP_NETWORK))
