"""A rerun of init on a running cluster may not change its release or what cannot change in place
(the first control plane's files say what it runs). Each refusal is one line, exit 2, before any
file is touched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bootstrap.render.etcd import etcd_systemd_unit
from bootstrap.spec.load import build_spec
from bootstrap.workflow.guard import _unit_flags

REPO = Path(__file__).resolve().parents[2]
BASE = ("--apiserver-advertise-address", "10.0.0.10", "--node-name", "cp-1", "--pod-network-cidr", "10.244.0.0/16")


def init(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bootstrap.cli", "init", "--rootfs", str(root), *BASE, *args],
                          capture_output=True, text=True, cwd=REPO, timeout=120)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("guard") / "root"
    proc = init(root, "--kubernetes-version", "v1.36.3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root


@pytest.mark.parametrize(("args", "message"), [
    (("--kubernetes-version", "v1.35.4"), "kubernetesVersion v1.35.4 would downgrade the cluster on cp-1, which runs v1.36.3"),
    (("--kubernetes-version", "v1.36.1"), "would downgrade"),
    (("--kubernetes-version", "v1.37.2"), "would upgrade the cluster on cp-1, which runs v1.36.3"),
    (("--kubernetes-version", "v1.36.3", "--service-cidr", "10.200.0.0/16"),
     "networking.serviceSubnet: the cluster on cp-1 runs with '10.96.0.0/12'; '10.200.0.0/16' cannot be set"),
    (("--kubernetes-version", "v1.36.3", "--service-dns-domain", "other.local"), "networking.dnsDomain"),
    (("--kubernetes-version", "v1.36.3", "--encryption-algorithm", "ECDSA-P256"), "encryptionAlgorithm"),
])
def test_a_rerun_that_would_change_the_running_cluster_is_refused(built: Path, args: tuple[str, ...],
                                                                  message: str) -> None:
    before = snapshot(built)
    proc = init(built, *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr
    assert snapshot(built) == before


def test_the_same_spec_reruns_and_a_skipped_minor_is_named(built: Path, tmp_path: Path) -> None:
    assert init(built, "--kubernetes-version", "v1.36.3").returncode == 0
    old = tmp_path / "old"
    assert init(old, "--kubernetes-version", "v1.35.4").returncode == 0
    proc = init(old, "--kubernetes-version", "v1.37.2")
    assert proc.returncode == 2 and "would skip v1.36" in proc.stderr, proc.stderr


def test_the_etcd_unit_of_host_mode_is_read_back() -> None:
    spec = build_spec({"apiserver_advertise_address": "10.0.0.10", "node_name": "cp-1", "etcd_mode": "host"})
    unit = etcd_systemd_unit(spec).encode()
    assert _unit_flags(unit)["data-dir"] == "/var/lib/etcd"


def test_a_file_kubeadm_does_not_write_for_the_release_and_gates_is_removed(tmp_path: Path) -> None:
    """instance-config.yaml (NodeLocalCRISocket) goes when a rerun turns the gate off (v1.35: beta)."""
    root = tmp_path / "root"
    assert init(root, "--kubernetes-version", "v1.35.4").returncode == 0
    instance = root / "var/lib/kubelet/instance-config.yaml"
    assert instance.is_file()
    config = tmp_path / "gates.yaml"
    config.write_text("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.35.4\n"
                      "networking: {podSubnet: 10.244.0.0/16}\nfeatureGates: {NodeLocalCRISocket: false}\n")
    proc = subprocess.run([sys.executable, "-m", "bootstrap.cli", "init", "--rootfs", str(root), "--config",
                           str(config), "--apiserver-advertise-address", "10.0.0.10", "--node-name", "cp-1"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not instance.exists() and "kubeadm does not write it" in proc.stdout
    assert "--container-runtime-endpoint" in (root / "var/lib/kubelet/kubeadm-flags.env").read_text()
