"""`kbootstrap reset --rootfs`: exactly kubeadm's cleanup list goes, everything else stays."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from bootstrap.commands.common import EdgeGroup
from bootstrap.commands.reset import reset

CLI = EdgeGroup(commands={"reset": reset})

REMOVED = [
    "etc/kubernetes/admin.conf", "etc/kubernetes/super-admin.conf", "etc/kubernetes/kubelet.conf",
    "etc/kubernetes/bootstrap-kubelet.conf", "etc/kubernetes/controller-manager.conf",
    "etc/kubernetes/scheduler.conf", "etc/kubernetes/manifests/kube-apiserver.yaml",
    "etc/kubernetes/manifests/etcd.yaml", "etc/kubernetes/pki/ca.crt", "etc/kubernetes/pki/etcd/ca.key",
    "var/lib/kubelet/config.yaml", "var/lib/kubelet/pki/kubelet-client-current.pem", "var/lib/etcd/member/snap/db",
]
KEPT = [
    "etc/cni/net.d/10-bridge.conf", "root/.kube/config", "etc/kubernetes/tmp/kubeadm-backup/x",
    "etc/kubernetes/audit-policy.yaml", "usr/lib/systemd/system/kubelet.service", "etc/hostname",
]


def make_node(root: Path) -> None:
    for rel in REMOVED + KEPT:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(rel)


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_reset_removes_exactly_kubeadms_list(tmp_path: Path) -> None:
    make_node(tmp_path)
    res = CliRunner().invoke(CLI, ["reset", "--rootfs", str(tmp_path), "--force"])
    assert res.exit_code == 0, res.output
    assert tree(tmp_path) == set(KEPT)
    for d in ("etc/kubernetes/manifests", "etc/kubernetes/pki", "var/lib/kubelet", "var/lib/etcd"):
        assert (tmp_path / d).is_dir()  # emptied, not removed (kubeadm CleanDir)
    assert "does not clean CNI configuration" in res.output
    again = CliRunner().invoke(CLI, ["reset", "--rootfs", str(tmp_path), "--force"])
    assert again.exit_code == 0 and tree(tmp_path) == set(KEPT)


def test_cleanup_tmp_dir_and_host_etcd_unit(tmp_path: Path) -> None:
    make_node(tmp_path)
    unit = tmp_path / "etc/systemd/system/etcd.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("[Unit]\n")
    res = CliRunner().invoke(CLI, ["reset", "--rootfs", str(tmp_path), "-f", "--cleanup-tmp-dir"])
    assert res.exit_code == 0, res.output
    assert tree(tmp_path) == set(KEPT) - {"etc/kubernetes/tmp/kubeadm-backup/x"}
    assert "remove the member from a survivor" in res.output  # --rootfs: etcd is not contacted, and it says so


def test_dry_run_and_declined_prompt_remove_nothing(tmp_path: Path) -> None:
    make_node(tmp_path)
    before = tree(tmp_path)
    res = CliRunner().invoke(CLI, ["reset", "--rootfs", str(tmp_path), "--dry-run"])
    assert res.exit_code == 0 and "would be removed" in res.output
    assert tree(tmp_path) == before
    res = CliRunner().invoke(CLI, ["reset", "--rootfs", str(tmp_path)], input="n\n")
    assert res.exit_code == 2 and "aborted reset operation" in res.output
    assert tree(tmp_path) == before
