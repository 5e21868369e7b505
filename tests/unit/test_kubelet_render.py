"""Kubelet files: config.yaml, kubeadm-flags.env, instance config, unit and drop-in (kubeadm.md section 6)."""

from __future__ import annotations

from typing import Any

import yaml

from bootstrap.render import kubelet as k
from bootstrap.spec.load import build_spec
from bootstrap.spec.model import Arg, ClusterSpec


def make_spec(version: str = "v1.34.0", **update: Any) -> ClusterSpec:
    spec = build_spec({"apiserver_advertise_address": "10.0.0.5", "node_name": "cp1",
                       "kubernetes_version": version, "hardening": "kubeadm"})
    return spec.model_copy(update=update) if update else spec


EXPECTED_V130 = """\
apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
  webhook:
    cacheAuthorizedTTL: 0s
    cacheUnauthorizedTTL: 0s
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
containerRuntimeEndpoint: ""
cpuManagerReconcilePeriod: 0s
evictionPressureTransitionPeriod: 0s
fileCheckFrequency: 0s
healthzBindAddress: 127.0.0.1
healthzPort: 10248
httpCheckFrequency: 0s
imageMaximumGCAge: 0s
imageMinimumGCAge: 0s
kind: KubeletConfiguration
logging:
  flushFrequency: 0
  options:
    json:
      infoBufferSize: "0"
    text:
      infoBufferSize: "0"
  verbosity: 0
memorySwap: {}
nodeStatusReportFrequency: 0s
nodeStatusUpdateFrequency: 0s
resolvConf: /run/systemd/resolve/resolv.conf
rotateCertificates: true
runtimeRequestTimeout: 0s
shutdownGracePeriod: 0s
shutdownGracePeriodCriticalPods: 0s
staticPodPath: /etc/kubernetes/manifests
streamingConnectionIdleTimeout: 0s
syncFrequency: 0s
volumeStatsAggPeriod: 0s
"""


def test_config_v130_full_file() -> None:
    data, warnings = k.kubelet_config_yaml(make_spec("v1.30.2"), systemd_resolved=True)
    assert data.decode() == EXPECTED_V130
    assert warnings == []


def test_config_v134_node_local_cri_socket_and_no_resolved() -> None:
    cfg, _ = k.kubelet_config(make_spec("v1.34.0"), systemd_resolved=False)
    assert cfg["containerRuntimeEndpoint"] == "unix:///var/run/containerd/containerd.sock"
    assert "resolvConf" not in cfg
    assert cfg["crashLoopBackOff"] == {}


def test_user_values_kept_with_kubeadm_warnings_and_rotation_forced() -> None:
    user = {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "clusterDomain": "corp.local", "readOnlyPort": 10255, "rotateCertificates": False,
            "cgroupDriver": "cgroupfs", "maxPods": 200, "authentication": {"anonymous": {"enabled": True}},
            "resolvConf": "/etc/resolv.conf"}
    cfg, warnings = k.kubelet_config(make_spec(kubelet_configuration=user), systemd_resolved=True)
    assert cfg["clusterDomain"] == "corp.local" and cfg["maxPods"] == 200
    assert cfg["rotateCertificates"] is True
    assert cfg["cgroupDriver"] == "cgroupfs"
    assert cfg["resolvConf"] == "/etc/resolv.conf"
    assert cfg["authentication"]["anonymous"]["enabled"] is True
    assert cfg["authentication"]["webhook"] == {"cacheTTL": "0s", "enabled": True}
    assert len(warnings) == 3
    assert any("'clusterDomain'" in w and "cluster.local" in w and "corp.local" in w for w in warnings)
    assert any("readOnlyPort" in w for w in warnings)


def test_flags_env_v130() -> None:
    data = k.kubelet_flags_env(make_spec("v1.30.2"), hostname="cp1")
    assert data == (b'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock'
                    b' --pod-infra-container-image=registry.k8s.io/pause:3.9"\n')


def test_flags_env_v134_no_cri_flag_hostname_override_and_extra_args() -> None:
    spec = make_spec("v1.34.0")
    spec = spec.model_copy(update={"node": spec.node.model_copy(update={"kubelet_extra_args": (
        Arg(name="node-ip", value="10.0.0.5"), Arg(name="pod-infra-container-image", value="my/pause:1"))})})
    data = k.kubelet_flags_env(spec, hostname="Other-Host")
    assert data == (b'KUBELET_KUBEADM_ARGS="--hostname-override=cp1 --node-ip=10.0.0.5'
                    b' --pod-infra-container-image=my/pause:1"\n')
    assert b"hostname-override" not in k.kubelet_flags_env(spec, hostname="CP1")


def test_node_local_cri_socket_gate() -> None:
    assert not k.node_local_cri_socket(make_spec("v1.33.0"))
    assert k.node_local_cri_socket(make_spec("v1.33.0", feature_gates={"NodeLocalCRISocket": True}))
    assert not k.node_local_cri_socket(make_spec("v1.34.0", feature_gates={"NodeLocalCRISocket": False}))
    assert not k.node_local_cri_socket(make_spec("v1.31.0", feature_gates={"NodeLocalCRISocket": True}))


def test_render_kubelet_files_set() -> None:
    files = k.render_kubelet_files(make_spec("v1.34.0"), hostname="cp1").files
    assert set(files) == {k.KUBELET_CONFIG_PATH, k.KUBELET_FLAGS_ENV_PATH, k.KUBELET_INSTANCE_CONFIG_PATH,
                          k.KUBELET_UNIT_PATH, k.KUBELET_DROPIN_PATH}
    assert files[k.KUBELET_INSTANCE_CONFIG_PATH] == \
        b'containerRuntimeEndpoint: "unix:///var/run/containerd/containerd.sock"\n'
    assert yaml.safe_load(files[k.KUBELET_INSTANCE_CONFIG_PATH]) == {
        "containerRuntimeEndpoint": "unix:///var/run/containerd/containerd.sock"}
    assert k.KUBELET_INSTANCE_CONFIG_PATH not in k.render_kubelet_files(make_spec("v1.33.0"), hostname="cp1").files


def test_unit_and_dropin_as_packaged() -> None:
    unit = k.kubelet_unit().decode()
    assert "ExecStart=/usr/bin/kubelet\nRestart=always\nStartLimitInterval=0\nRestartSec=10\n" in unit
    assert unit.startswith("[Unit]\nDescription=kubelet: The Kubernetes Node Agent\n")
    dropin = k.kubeadm_dropin("deb").decode()
    assert "EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env\n" in dropin
    assert "EnvironmentFile=-/etc/default/kubelet\n" in dropin
    assert dropin.endswith("ExecStart=\nExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS"
                           " $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS\n")
    assert "EnvironmentFile=-/etc/sysconfig/kubelet\n" in k.kubeadm_dropin("rpm").decode()


def test_fleet_nodes_get_node_ip_from_the_inventory() -> None:
    """As Kubespray: --node-ip is the inventory's ip (a VM's NAT address must not be registered);
    kubeletExtraArgs' own node-ip wins."""
    from bootstrap.spec.inventory import InventoryHost
    from bootstrap.workflow.fleet_spec import node_spec

    host = InventoryHost(name="w1", address="127.0.0.1", ip="192.168.56.12", roles=frozenset({"kube_node"}))
    env = k.kubelet_flags_env(node_spec(make_spec(), host, ()), hostname="w1").decode()
    assert "--node-ip=192.168.56.12" in env
    own = make_spec()
    own = own.model_copy(update={"node": own.node.model_copy(
        update={"kubelet_extra_args": (Arg(name="node-ip", value="10.9.9.9"),)})})
    env = k.kubelet_flags_env(node_spec(own, host, ()), hostname="w1").decode()
    assert "--node-ip=10.9.9.9" in env and "192.168.56.12" not in env


def test_kubelet_restarts_when_containerd_started_after_it() -> None:
    from bootstrap.phases.kubelet import runtime_newer

    assert runtime_newer("2000\n1000\n")  # containerd restarted after the kubelet: stale cgroup driver
    assert not runtime_newer("1000\n2000\n")  # the usual order (boot, or a kubelet restarted since)
    assert not runtime_newer("1000\n0\n")  # kubelet not running: it is started anyway
    assert not runtime_newer("")  # no systemd answer: nothing to conclude
