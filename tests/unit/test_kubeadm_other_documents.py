"""JoinConfiguration, ResetConfiguration and UpgradeConfiguration in a kubeadm config file: read by the
command they belong to, validated and ignored with kubeadm's warning by the others."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bootstrap.commands.join import request_from, with_join_configuration
from bootstrap.errors import ConfigError, UsageError
from bootstrap.spec.kubeadm_config import ignored_documents, join_request, load_config_file
from bootstrap.spec.load import build_spec

REPO = Path(__file__).resolve().parents[2]
HASH = "sha256:" + "a" * 64
JOIN = f"""\
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
nodeRegistration:
  name: worker-7
  criSocket: unix:///run/containerd/containerd.sock
  kubeletExtraArgs:
  - {{name: node-labels, value: tier=edge}}
discovery:
  bootstrapToken:
    apiServerEndpoint: 10.0.0.10:6443
    token: abcdef.0123456789abcdef
    caCertHashes: ["{HASH}"]
timeouts:
  discovery: 2m0s
patches:
  directory: /nonexistent-but-unused-here
"""
OTHERS = """\
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ResetConfiguration
force: true
certificatesDir: /etc/kubernetes/pki
unmountFlags: [MNT_FORCE]
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: UpgradeConfiguration
apply:
  kubernetesVersion: v1.37.2
  certificateRenewal: true
node:
  etcdUpgrade: false
"""
CLUSTER = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {advertiseAddress: 10.0.0.10}
nodeRegistration: {name: cp-1}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.37.2
"""


def write(tmp_path: Path, text: str, name: str = "kubeadm.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_init_reads_its_documents_and_notes_the_others(tmp_path: Path) -> None:
    # The JoinConfiguration's patches directory does not exist: init must not read it.
    path = write(tmp_path, CLUSTER + "---\n" + JOIN + OTHERS)
    spec = build_spec({}, path)
    assert spec.node.name == "cp-1" and spec.patches_dir == ""
    assert ignored_documents(path, "init") == [
        f"[config] WARNING: Ignored configuration document with GroupVersionKind kubeadm.k8s.io/v1beta4, Kind={k}"
        for k in ("JoinConfiguration", "ResetConfiguration", "UpgradeConfiguration")]


def test_every_document_is_validated_even_where_it_is_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, CLUSTER + OTHERS.replace("etcdUpgrade: false", "etcdUpgrad: false"))
    with pytest.raises(ConfigError, match=r"UpgradeConfiguration\.node\.etcdUpgrad: unknown field"):
        build_spec({}, path)


def test_join_takes_node_values_and_discovery_from_its_document(tmp_path: Path) -> None:
    path = write(tmp_path, JOIN.replace("patches:\n  directory: /nonexistent-but-unused-here\n", ""))
    spec = build_spec({}, path, purpose="join")
    assert spec.node.name == "worker-7" and spec.node.kubelet_extra_args[0].value == "tier=edge"
    req = request_from(with_join_configuration({}, path))
    assert req.endpoint == "10.0.0.10:6443" and req.ca_hashes == (HASH,) and req.timeout == 120
    assert str(req.tls_bootstrap_token) == str(req.discovery_token)  # kubeadm's default
    assert not req.control_plane and join_request(path)["endpoint"][1] == (
        "JoinConfiguration.discovery.bootstrapToken.apiServerEndpoint")


def test_a_control_plane_join_document(tmp_path: Path) -> None:
    key = "b" * 64
    path = write(tmp_path, JOIN.replace(
        "patches:\n  directory: /nonexistent-but-unused-here\n",
        f"controlPlane:\n  localAPIEndpoint: {{advertiseAddress: 10.0.0.12, bindPort: 6444}}\n"
        f"  certificateKey: {key}\n"))
    spec = build_spec({}, path, purpose="join")
    assert (spec.advertise_address, spec.bind_port) == ("10.0.0.12", 6444)
    req = request_from(with_join_configuration({}, path))
    assert req.control_plane and req.certificate_key is not None


def test_a_flag_and_the_document_may_not_both_set_a_value(tmp_path: Path) -> None:
    path = write(tmp_path, JOIN)
    with pytest.raises(UsageError, match=r"--endpoint: also set by JoinConfiguration\.discovery"):
        with_join_configuration({"endpoint": "10.0.0.11:6443"}, path)


def test_join_needs_a_join_document_and_init_an_init_or_cluster_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no JoinConfiguration kind was found"):
        load_config_file(write(tmp_path, CLUSTER), "join")
    kubelet_only = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmaxPods: 10\n"
    with pytest.raises(ConfigError, match="no InitConfiguration or ClusterConfiguration kind was found"):
        load_config_file(write(tmp_path, kubelet_only, "k.yaml"), "init")
    assert load_config_file(write(tmp_path, JOIN + OTHERS, "j.yaml"),
                            "validate") == {}


def test_v1beta3_join_document(tmp_path: Path) -> None:
    text = """\
apiVersion: kubeadm.k8s.io/v1beta3
kind: JoinConfiguration
nodeRegistration:
  name: old-worker
  kubeletExtraArgs: {node-labels: a=b}
discovery:
  bootstrapToken: {apiServerEndpoint: "10.0.0.10:6443", token: abcdef.0123456789abcdef, unsafeSkipCAVerification: true}
  timeout: 1m0s
"""
    path = write(tmp_path, text)
    assert build_spec({"kubernetes_version": "v1.36.3"}, path, purpose="join").node.name == "old-worker"
    req = request_from(with_join_configuration({}, path))
    assert req.unsafe_skip_ca_verification and req.timeout == 60


def test_reset_reads_its_document(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc" / "kubernetes").mkdir(parents=True)
    path = write(tmp_path, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ResetConfiguration\nforce: true\n"
                 "dryRun: true\ncertificatesDir: /etc/kubernetes/pki\n" + "---\n" + CLUSTER)
    proc = subprocess.run([sys.executable, "-m", "bootstrap.cli", "reset", "--config", path, "--rootfs", str(root)],
                          capture_output=True, text=True, cwd=REPO, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Kind=InitConfiguration" in proc.stderr and "Are you sure" not in proc.stderr  # force: no prompt
    again = subprocess.run([sys.executable, "-m", "bootstrap.cli", "reset", "--config", path, "--force",
                            "--rootfs", str(root)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert again.returncode == 2 and "--force: also set by ResetConfiguration.force" in again.stderr


def test_join_takes_the_cluster_part_from_the_cluster(tmp_path: Path) -> None:
    """What kubeadm join reads from kubeadm-config and kubelet-config, under the file's node values."""
    from bootstrap.render.kubelet import kubelet_config
    from bootstrap.spec.kubeadm_config import cluster_documents_values

    cluster = ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.36.3\n"
               "networking: {serviceSubnet: 10.233.0.0/18, dnsDomain: corp.local, podSubnet: 10.233.64.0/18}\n")
    kubelet = ("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nclusterDNS: [10.233.0.10]\n"
               "clusterDomain: corp.local\nmaxPods: 42\n")
    values = cluster_documents_values([cluster, kubelet], "the cluster")
    join = JOIN.replace("patches:\n  directory: /nonexistent-but-unused-here\n", "")
    path = write(tmp_path, join + "---\n" + CLUSTER)  # the file's ClusterConfiguration is not read
    spec = build_spec({}, path, purpose="join", defaults=values)
    assert (spec.node.name, spec.kubernetes_version, spec.networking.dns_domain) == ("worker-7", "v1.36.3", "corp.local")
    config, _ = kubelet_config(spec)
    assert config["clusterDNS"] == ["10.233.0.10"] and config["maxPods"] == 42
    assert "Kind=ClusterConfiguration" in " ".join(ignored_documents(path, "join"))
