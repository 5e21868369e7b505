"""The cluster model from flags and kubeadm config files: values, conflicts, every bad input."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bootstrap.errors import ConfigError, UsageError
from bootstrap.spec.load import build_spec, parse_duration
from bootstrap.spec.model import EncryptionAlgorithm

BASE = {"apiserver_advertise_address": "10.0.0.5", "node_name": "cp1"}

V1BETA4 = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 10.1.2.3
  bindPort: 6444
nodeRegistration:
  name: node-a
  kubeletExtraArgs:
  - name: v
    value: "2"
  ignorePreflightErrors: [NumCPU]
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.31.2
controlPlaneEndpoint: lb.example.com:8443
networking:
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/16
  dnsDomain: corp.local
apiServer:
  certSANs: [api.example.com, 192.0.2.7]
  extraArgs:
  - name: audit-log-maxage
    value: "7"
etcd:
  local:
    dataDir: /data/etcd
    serverCertSANs: [etcd.example.com]
encryptionAlgorithm: ECDSA-P256
certificateValidityPeriod: 720h
caCertificateValidityPeriod: 43800h
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
maxPods: 50
"""

V1BETA3 = """\
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
kubernetesVersion: v1.28.4
apiServer:
  extraArgs:
    audit-log-maxage: "7"
controllerManager:
  extraArgs:
    bind-address: 0.0.0.0
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: InitConfiguration
nodeRegistration:
  kubeletExtraArgs:
    v: "4"
"""


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "kubeadm.yaml"
    p.write_text(text)
    return str(p)


def test_defaults_follow_kubeadm() -> None:
    spec = build_spec(BASE)
    assert spec.cluster_name == "kubernetes"
    assert spec.networking.service_subnet == "10.96.0.0/12"
    assert spec.networking.api_service_ip() == "10.96.0.1"
    assert spec.networking.dns_service_ip() == "10.96.0.10"
    assert spec.cert_dir == "/etc/kubernetes/pki"
    assert spec.encryption_algorithm is EncryptionAlgorithm.RSA_2048
    assert spec.certificate_validity == timedelta(hours=8760)
    assert spec.ca_certificate_validity == timedelta(hours=87600)
    assert spec.control_plane_url == "https://10.0.0.5:6443"
    assert spec.kubernetes_version == "v1.37.2"  # the newest release (December 2026: v1.35-v1.37 supported)


def test_v1beta4_documents(tmp_path: Path) -> None:
    spec = build_spec({}, write(tmp_path, V1BETA4))
    assert spec.advertise_address == "10.1.2.3" and spec.bind_port == 6444
    assert spec.node.name == "node-a"
    assert [(a.name, a.value) for a in spec.node.kubelet_extra_args] == [("v", "2")]
    assert spec.node.ignore_preflight_errors == ("NumCPU",)
    assert spec.kubernetes_version == "v1.31.2"
    assert spec.control_plane_url == "https://lb.example.com:8443"
    assert spec.networking.dns_domain == "corp.local"
    assert spec.api_server.cert_sans == ("api.example.com", "192.0.2.7")
    assert spec.etcd_local is not None and spec.etcd_local.data_dir == "/data/etcd"
    assert spec.encryption_algorithm is EncryptionAlgorithm.ECDSA_P256
    assert spec.certificate_validity == timedelta(hours=720)
    assert spec.kubelet_configuration == {"maxPods": 50}


def test_v1beta3_maps_become_args(tmp_path: Path) -> None:
    spec = build_spec(BASE, write(tmp_path, V1BETA3))
    assert [(a.name, a.value) for a in spec.api_server.extra_args] == [("audit-log-maxage", "7")]
    assert [(a.name, a.value) for a in spec.controller_manager.extra_args] == [("bind-address", "0.0.0.0")]
    assert [(a.name, a.value) for a in spec.node.kubelet_extra_args] == [("v", "4")]


def test_flag_and_file_may_not_both_set_a_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--pod-network-cidr: also set by ClusterConfiguration.networking.podSubnet"):
        build_spec({"pod_network_cidr": "10.200.0.0/16"}, write(tmp_path, V1BETA4))


def test_flags_fill_what_the_file_leaves(tmp_path: Path) -> None:
    spec = build_spec({"node_name": "other"}, write(tmp_path, V1BETA3.replace("v1.28.4", "v1.29.0")))
    assert spec.node.name == "other"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"control_plane_endpoint": "lb:port"}, "--control-plane-endpoint: 'lb:port' is not HOST[:PORT]"),
        ({"control_plane_endpoint": "bad_host!:6443"}, "neither an IP nor a DNS name"),
        ({"apiserver_advertise_address": "not-an-ip"}, "--apiserver-advertise-address: 'not-an-ip' is not an IP"),
        ({"pod_network_cidr": "10.96.0.0/16"}, "overlaps the service subnet 10.96.0.0/12"),
        ({"pod_network_cidr": "10.244.0.0/33"}, "--pod-network-cidr: '10.244.0.0/33' is not a valid CIDR"),
        ({"service_cidr": "10.0.0.0/8"}, "is too large"),
        ({"kubernetes_version": "1.x"}, "--kubernetes-version: '1.x' is not a Kubernetes version"),
        ({"kubernetes_version": "v1.20.0"}, "is not supported"),
        ({"apiserver_cert_extra_sans": "ok.example.com,not valid"}, "'not valid' is not an IP address, DNS name"),
        ({"node_name": "Bad_Name"}, "is not a valid node name"),
        ({"encryption_algorithm": "DSA"}, "unknown algorithm"),
    ],
)
def test_bad_flags_name_the_problem(flags: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError) as exc:
        build_spec({**BASE, **flags})
    assert message in exc.value.one_line()
    assert exc.value.exit_code == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "apiVersion: kubeadm.k8s.io/v1beta9\nkind: ClusterConfiguration\n",
            "unknown apiVersion/kind kubeadm.k8s.io/v1beta9/ClusterConfiguration",
        ),
        ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfigurationX\n", "unknown apiVersion/kind"),
        (
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\napiServer:\n  certSANz: [a]\n",
            "ClusterConfiguration.apiServer.certSANz: unknown field",
        ),
        (
            "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nencryptionAlgorithm: RSA-4096\n",
            "ClusterConfiguration.encryptionAlgorithm: unknown field",
        ),
        (
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\napiServer:\n  extraArgs:\n    a: b\n",
            "ClusterConfiguration.apiServer.extraArgs",
        ),
        (
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmaxPodz: 3\n",
            "KubeletConfiguration.maxPodz: unknown field",
        ),
        ("a: [unclosed\n", "not valid YAML"),
        (
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncertificateValidityPeriod: 1year\n",
            "is not a duration",
        ),
    ],
)
def test_bad_config_files_name_the_path(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UsageError) as exc:
        build_spec(BASE, write(tmp_path, text))
    assert message in exc.value.one_line()


def test_go_durations() -> None:
    assert parse_duration("87600h0m0s", "x") == timedelta(hours=87600)
    assert parse_duration("1h30m", "x") == timedelta(minutes=90)
    with pytest.raises(ConfigError):
        parse_duration("10 days", "x")


def test_ipv6_endpoint() -> None:
    spec = build_spec(
        {
            "apiserver_advertise_address": "fd00::5",
            "node_name": "cp1",
            "service_cidr": "fd00:10::/108",
            "control_plane_endpoint": "[fd00::1]:6443",
        }
    )
    assert spec.control_plane_url == "https://[fd00::1]:6443"
    assert spec.local_endpoint_url == "https://[fd00::5]:6443"
    assert spec.networking.api_service_ip() == "fd00:10::1"


def test_hardening_profiles() -> None:
    assert build_spec(BASE).hardening.cert_file_mode == 0o600
    kubeadm = build_spec({**BASE, "hardening": "kubeadm"}).hardening
    assert kubeadm.cert_file_mode == 0o644 and not kubeadm.audit_log and not kubeadm.disable_profiling
