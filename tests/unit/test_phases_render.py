"""control-plane, etcd and kubelet-start phases over a --rootfs target: modes, idempotence, dry-run."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import Phase
from bootstrap.engine.result import PhaseResult, Status
from bootstrap.phases import control_plane, etcd, kubelet
from bootstrap.spec.load import build_spec
from bootstrap.spec.model import ClusterSpec, ExternalEtcd
from bootstrap.transport.local import LocalTarget


def make_spec(hardening: str = "cis", **update: Any) -> ClusterSpec:
    spec = build_spec({"apiserver_advertise_address": "10.0.0.5", "node_name": "cp1",
                       "kubernetes_version": "v1.34.0", "hardening": hardening})
    return spec.model_copy(update=update) if update else spec


def run_phase(phase: Phase, spec: ClusterSpec, root: Path, *, dry_run: bool = False) -> PhaseResult:
    ctx = RunContext(spec, LocalTarget(root), dry_run=dry_run, phase=PhaseResult(phase.name))
    todo = [phase]
    while todo:
        p = todo.pop(0)
        if p.run is not None:
            p.run(ctx)
        todo[:0] = list(p.children)
    return ctx.phase


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def statuses(result: PhaseResult) -> dict[str, Status]:
    return {c.item: c.status for c in result.changes}


def test_control_plane_writes_manifests_0600_dir_0700_and_audit(tmp_path: Path) -> None:
    result = run_phase(control_plane.PHASE, make_spec("cis"), tmp_path)
    manifests = tmp_path / "etc/kubernetes/manifests"
    assert mode(manifests) == 0o700
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert mode(manifests / f"{name}.yaml") == 0o600
    assert mode(tmp_path / "etc/kubernetes/audit-policy.yaml") == 0o600
    assert (tmp_path / "var/log/kubernetes/audit").is_dir()
    assert b"--audit-policy-file=/etc/kubernetes/audit-policy.yaml" in (manifests / "kube-apiserver.yaml").read_bytes()
    assert all(s == Status.CREATED for s in statuses(result).values())
    assert not [p for p in manifests.iterdir() if p.name.startswith(".")]  # no temp files left behind


def test_control_plane_kubeadm_profile_writes_no_audit_policy(tmp_path: Path) -> None:
    run_phase(control_plane.PHASE, make_spec("kubeadm"), tmp_path)
    assert not (tmp_path / "etc/kubernetes/audit-policy.yaml").exists()
    assert b"audit" not in (tmp_path / "etc/kubernetes/manifests/kube-apiserver.yaml").read_bytes()


def test_second_run_changes_nothing(tmp_path: Path) -> None:
    spec = make_spec("cis")
    for phase in (control_plane.PHASE, etcd.PHASE, kubelet.PHASE):
        run_phase(phase, spec, tmp_path)
    for phase in (control_plane.PHASE, etcd.PHASE, kubelet.PHASE):
        again = run_phase(phase, spec, tmp_path)
        changed = [c for c in again.changes if c.status.changed]
        assert changed == [], phase.name


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    spec = make_spec("cis")
    for phase in (control_plane.PHASE, etcd.PHASE, kubelet.PHASE):
        result = run_phase(phase, spec, tmp_path, dry_run=True)
        assert any(c.status == Status.CREATED for c in result.changes)
    assert list(tmp_path.iterdir()) == []


def test_external_ca_mode_detected_from_target(tmp_path: Path) -> None:
    pki = tmp_path / "etc/kubernetes/pki"
    pki.mkdir(parents=True)
    (pki / "ca.crt").write_text("cert")
    result = run_phase(control_plane.PHASE, make_spec("kubeadm"), tmp_path)
    kcm = (tmp_path / "etc/kubernetes/manifests/kube-controller-manager.yaml").read_text()
    assert "- --cluster-signing-cert-file=\n" in kcm and "- --cluster-signing-key-file=\n" in kcm
    assert statuses(result)["external CA"] == Status.WARNING
    (pki / "ca.key").write_text("key")
    run_phase(control_plane.PHASE, make_spec("kubeadm"), tmp_path)
    kcm = (tmp_path / "etc/kubernetes/manifests/kube-controller-manager.yaml").read_text()
    assert "--cluster-signing-key-file=/etc/kubernetes/pki/ca.key" in kcm


def test_ca_dirs_mounted_only_if_present_on_target(tmp_path: Path) -> None:
    (tmp_path / "usr/share/ca-certificates").mkdir(parents=True)
    run_phase(control_plane.PHASE, make_spec("kubeadm"), tmp_path)
    api = (tmp_path / "etc/kubernetes/manifests/kube-apiserver.yaml").read_text()
    assert "name: usr-share-ca-certificates" in api and "etc-pki-tls-certs" not in api


@pytest.mark.parametrize("hardening", ["cis", "kubeadm"])
def test_etcd_manifest_and_data_dir(tmp_path: Path, hardening: str) -> None:
    run_phase(etcd.PHASE, make_spec(hardening), tmp_path)
    assert mode(tmp_path / "var/lib/etcd") == 0o700
    assert mode(tmp_path / "etc/kubernetes/manifests/etcd.yaml") == 0o600


def test_etcd_host_mode_writes_unit_and_skips_start_under_rootfs(tmp_path: Path) -> None:
    result = run_phase(etcd.PHASE, make_spec(etcd_mode="host"), tmp_path)
    assert not (tmp_path / "etc/kubernetes/manifests/etcd.yaml").exists()
    unit = tmp_path / "etc/systemd/system/etcd.service"
    assert unit.read_text().startswith("# Written by kbootstrap")
    skipped = [c for c in result.changes if c.item == "start etcd"]
    assert skipped[0].status == Status.SKIPPED and "not a live root" in skipped[0].detail


def test_external_etcd_is_skipped(tmp_path: Path) -> None:
    spec = make_spec(etcd_external=ExternalEtcd(endpoints=("https://e:2379",)), etcd_local=None)
    result = run_phase(etcd.PHASE, spec, tmp_path)
    assert [(c.item, c.status) for c in result.changes] == [("etcd", Status.SKIPPED)]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("hardening,config_mode,unit_mode", [("cis", 0o600, 0o600), ("kubeadm", 0o644, 0o644)])
def test_kubelet_start_files_modes_and_rootfs_skip(tmp_path: Path, hardening: str, config_mode: int,
                                                   unit_mode: int) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/hostname").write_text("node-a\n")
    result = run_phase(kubelet.PHASE, make_spec(hardening), tmp_path)
    assert mode(tmp_path / "var/lib/kubelet") == 0o700
    assert mode(tmp_path / "var/lib/kubelet/config.yaml") == config_mode
    assert mode(tmp_path / "var/lib/kubelet/kubeadm-flags.env") == 0o644
    assert mode(tmp_path / "usr/lib/systemd/system/kubelet.service") == unit_mode
    assert mode(tmp_path / "usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf") == unit_mode
    assert b"--hostname-override=cp1" in (tmp_path / "var/lib/kubelet/kubeadm-flags.env").read_bytes()
    start = next(c for c in result.changes if c.item == "start kubelet")
    assert start.status == Status.SKIPPED and start.detail == "--rootfs: no service is started"


def test_kubelet_resolv_conf_follows_enabled_resolved_in_rootfs(tmp_path: Path) -> None:
    wants = tmp_path / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True)
    (wants / "systemd-resolved.service").write_text("")
    run_phase(kubelet.PHASE, make_spec(), tmp_path)
    assert b"resolvConf: /run/systemd/resolve/resolv.conf" in (tmp_path / "var/lib/kubelet/config.yaml").read_bytes()


def test_kubelet_dry_run_starts_nothing(tmp_path: Path) -> None:
    result = run_phase(kubelet.PHASE, make_spec(), tmp_path, dry_run=True)
    start = next(c for c in result.changes if c.item == "start kubelet")
    assert start.status == Status.SKIPPED and "dry-run" in start.detail
