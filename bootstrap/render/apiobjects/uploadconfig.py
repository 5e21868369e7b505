"""upload-config: the kubeadm-config and kubelet-config ConfigMaps and who may read them.

kubeadm: phases/uploadconfig/uploadconfig.go (kubeadm-config), phases/kubelet/config.go
(CreateConfigMap, kubelet-config), cmd/phases/init/uploadconfig.go (the order, and up to v1.35 the
CRI-socket annotation on the Node).

ClusterConfiguration is uploaded as kubeadm.k8s.io/v1beta4 from v1.31 and as v1beta3 before
(MarshalKubeadmConfigObject's default), with the component configs stripped: each lives in its own
ConfigMap. Fields are the spec's; omitempty fields are left out as Go's encoder does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bootstrap.durations import go_duration
from bootstrap.render.apiobjects.common import (
    COMPONENT_CONFIG_HASH_ANNOTATION,
    KUBE_SYSTEM,
    NODE_BOOTSTRAP_TOKEN_GROUP,
    NODES_GROUP,
    KubeObject,
    component_config_hash,
    configmap,
    get_role,
    go_yaml,
    group,
    kubernetes_version,
    minor,
    role_binding,
)
from bootstrap.render.podspec import ETCD_CLIENT_PORT, join_host_port
from bootstrap.spec.model import Arg, ClusterSpec, Component, EnvVar, EtcdMode, HostPathMount

KUBEADM_CONFIG = "kubeadm-config"
CLUSTER_CONFIGURATION_KEY = "ClusterConfiguration"
NODES_KUBEADM_CONFIG_ROLE = "kubeadm:nodes-kubeadm-config"
KUBELET_CONFIG = "kubelet-config"
KUBELET_CONFIG_KEY = "kubelet"
KUBELET_CONFIG_ROLE = "kubeadm:kubelet-config"
CRI_SOCKET_ANNOTATION = "kubeadm.alpha.kubernetes.io/cri-socket"
KUBEADM_V1BETA4 = "kubeadm.k8s.io/v1beta4"
KUBEADM_V1BETA3 = "kubeadm.k8s.io/v1beta3"
# v1beta3 carried apiServer.timeoutForControlPlane, defaulted to 4m (v1beta3/defaults.go).
V1BETA3_TIMEOUT_FOR_CONTROL_PLANE = "4m0s"


# ---- ClusterConfiguration ---------------------------------------------------------------------------
def _args_v1beta4(args: Sequence[Arg]) -> list[dict[str, str]]:
    return [{"name": a.name, "value": a.value} for a in args]


def _args_v1beta3(args: Sequence[Arg]) -> dict[str, str]:
    # v1beta3 extraArgs is a map: a repeated flag keeps its last value (v1beta3 conversion.go).
    return {a.name: a.value for a in args}


def _volumes(volumes: Sequence[HostPathMount]) -> list[dict[str, Any]]:
    out = []
    for v in volumes:
        doc: dict[str, Any] = {"name": v.name, "hostPath": v.host_path, "mountPath": v.mount_path}
        if v.read_only:
            doc["readOnly"] = True
        if v.path_type:
            doc["pathType"] = v.path_type
        out.append(doc)
    return out


def _envs(envs: Sequence[EnvVar]) -> list[dict[str, str]]:
    return [{"name": e.name, "value": e.value} if e.value else {"name": e.name} for e in envs]


def _component(c: Component, v1beta4: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if c.extra_args:
        doc["extraArgs"] = _args_v1beta4(c.extra_args) if v1beta4 else _args_v1beta3(c.extra_args)
    if c.extra_volumes:
        doc["extraVolumes"] = _volumes(c.extra_volumes)
    if c.extra_envs and v1beta4:
        doc["extraEnvs"] = _envs(c.extra_envs)
    return doc


def _etcd(spec: ClusterSpec, v1beta4: bool) -> dict[str, Any]:
    ext = spec.etcd_external
    if ext is not None:
        # ExternalEtcd's file fields have no omitempty: they are written even when empty.
        return {"external": {"endpoints": list(ext.endpoints), "caFile": ext.ca_file, "certFile": ext.cert_file,
                             "keyFile": ext.key_file}}
    local = spec.etcd_local
    if local is None:
        return {}
    if spec.etcd_mode == EtcdMode.HOST:
        # kubeadm runs no etcd of its own here: to kubeadm (join --control-plane, upgrade) it is an
        # external etcd of these members, as Kubespray's kubeadm config says for its host etcd.
        members = [m.peer_url.rsplit(":", 1)[0] + f":{ETCD_CLIENT_PORT}" for m in spec.etcd_members] or [
            f"https://{join_host_port(spec.advertise_address, ETCD_CLIENT_PORT)}"]
        pki = spec.cert_dir.rstrip("/")
        return {"external": {"endpoints": members, "caFile": f"{pki}/etcd/ca.crt",
                             "certFile": f"{pki}/apiserver-etcd-client.crt",
                             "keyFile": f"{pki}/apiserver-etcd-client.key"}}
    doc: dict[str, Any] = {"dataDir": local.data_dir}
    if local.image_repository:
        doc["imageRepository"] = local.image_repository
    if local.image_tag:
        doc["imageTag"] = local.image_tag
    if local.extra_args:
        doc["extraArgs"] = _args_v1beta4(local.extra_args) if v1beta4 else _args_v1beta3(local.extra_args)
    if local.extra_envs and v1beta4:
        doc["extraEnvs"] = _envs(local.extra_envs)
    if local.server_cert_sans:
        doc["serverCertSANs"] = list(local.server_cert_sans)
    if local.peer_cert_sans:
        doc["peerCertSANs"] = list(local.peer_cert_sans)
    return {"local": doc}


def _addon_doc(spec: ClusterSpec, addon: str, v1beta4: bool) -> dict[str, Any]:
    """ClusterConfiguration.dns / .proxy as kubeadm uploads them (its init syncs `disabled` with
    skipPhases; v1beta3 has no `disabled`)."""
    doc: dict[str, Any] = {}
    if v1beta4 and spec.addon_disabled(addon):
        doc["disabled"] = True
    if addon == "coredns":
        if spec.dns.image_repository:
            doc["imageRepository"] = spec.dns.image_repository
        if spec.dns.image_tag:
            doc["imageTag"] = spec.dns.image_tag
    return doc


def cluster_configuration(spec: ClusterSpec) -> dict[str, Any]:
    """The ClusterConfiguration document kubeadm uploads, for the spec's Kubernetes minor.

    spec.hardening is not in it: it is ours, not kubeadm's (the static Pods carry its flags)."""
    v1beta4 = minor(spec) >= 31
    api_server = _component(spec.api_server, v1beta4)
    if spec.api_server.cert_sans:
        api_server["certSANs"] = list(spec.api_server.cert_sans)
    if not v1beta4:
        api_server["timeoutForControlPlane"] = V1BETA3_TIMEOUT_FOR_CONTROL_PLANE
    networking = {"dnsDomain": spec.networking.dns_domain, "serviceSubnet": spec.networking.service_subnet}
    if spec.networking.pod_subnet:
        networking["podSubnet"] = spec.networking.pod_subnet
    doc: dict[str, Any] = {
        "apiVersion": KUBEADM_V1BETA4 if v1beta4 else KUBEADM_V1BETA3,
        "kind": "ClusterConfiguration",
        "apiServer": api_server,
        "certificatesDir": spec.cert_dir,
        "clusterName": spec.cluster_name,
        "controllerManager": _component(spec.controller_manager, v1beta4),
        "dns": _addon_doc(spec, "coredns", v1beta4),
        "etcd": _etcd(spec, v1beta4),
        "imageRepository": spec.image_repository,
        "kubernetesVersion": kubernetes_version(spec),
        "networking": networking,
        "scheduler": _component(spec.scheduler, v1beta4),
    }
    if spec.control_plane_endpoint:
        doc["controlPlaneEndpoint"] = spec.control_plane_endpoint
    if spec.feature_gates:
        doc["featureGates"] = dict(spec.feature_gates)
    if v1beta4:
        doc["proxy"] = _addon_doc(spec, "kube-proxy", v1beta4)
        doc["encryptionAlgorithm"] = str(spec.encryption_algorithm)
        doc["certificateValidityPeriod"] = go_duration(spec.certificate_validity)
        doc["caCertificateValidityPeriod"] = go_duration(spec.ca_certificate_validity)
    return doc


def kubeadm_config_objects(spec: ClusterSpec) -> list[KubeObject]:
    """kube-system/kubeadm-config, then the Role and RoleBinding letting joining nodes read it."""
    return [
        configmap(KUBEADM_CONFIG, KUBE_SYSTEM, {CLUSTER_CONFIGURATION_KEY: go_yaml(cluster_configuration(spec))}),
        get_role(NODES_KUBEADM_CONFIG_ROLE, KUBE_SYSTEM, "configmaps", KUBEADM_CONFIG),
        role_binding(NODES_KUBEADM_CONFIG_ROLE, KUBE_SYSTEM, NODES_KUBEADM_CONFIG_ROLE,
                     [group(NODE_BOOTSTRAP_TOKEN_GROUP), group(NODES_GROUP)]),
    ]


# ---- kubelet-config ---------------------------------------------------------------------------------
def cluster_kubelet_configuration(spec: ClusterSpec, node_config: Mapping[str, Any]) -> dict[str, Any]:
    """The KubeletConfiguration every kubelet gets, from the one kubelet-start wrote on this node
    (bootstrap.render.kubelet.kubelet_config).

    Two values in the node's file are the node's own: containerRuntimeEndpoint comes from
    instance-config.yaml (NodeLocalCRISocket), which kubeadm merges into the file only; and resolvConf
    is set when systemd-resolved runs on the node. Up to v1.36 kubeadm's kubelet-start mutated the
    shared config in place, so the init node's resolvConf leaked into the ConfigMap; v1.37 writes
    the file from a copy (phases/kubelet/config.go WriteConfigToDisk).
    """
    doc = dict(node_config)
    user = spec.kubelet_configuration
    doc["containerRuntimeEndpoint"] = user.get("containerRuntimeEndpoint", "")
    if minor(spec) >= 37:
        if "resolvConf" in user:
            doc["resolvConf"] = user["resolvConf"]
        else:
            doc.pop("resolvConf", None)
    return doc


def kubelet_config_objects(spec: ClusterSpec, node_config: Mapping[str, Any]) -> list[KubeObject]:
    """kube-system/kubelet-config, then its Role and RoleBinding (nodes and bootstrap tokens may read it).

    node_config: this node's KubeletConfiguration as kubelet-start wrote it. kubeadm signs the
    ConfigMap (a hash annotation) only when no KubeletConfiguration document was given: a signed
    config is kubeadm's own and `kubeadm upgrade` may regenerate it."""
    data = {KUBELET_CONFIG_KEY: go_yaml(cluster_kubelet_configuration(spec, node_config))}
    user_supplied = bool(spec.kubelet_configuration)
    annotations = None if user_supplied else {COMPONENT_CONFIG_HASH_ANNOTATION: component_config_hash(data)}
    return [
        configmap(KUBELET_CONFIG, KUBE_SYSTEM, data, annotations=annotations),
        get_role(KUBELET_CONFIG_ROLE, KUBE_SYSTEM, "configmaps", KUBELET_CONFIG),
        role_binding(KUBELET_CONFIG_ROLE, KUBE_SYSTEM, KUBELET_CONFIG_ROLE,
                     [group(NODES_GROUP), group(NODE_BOOTSTRAP_TOKEN_GROUP)]),
    ]


def upload_config_objects(spec: ClusterSpec, node_config: Mapping[str, Any]) -> list[KubeObject]:
    """Both sub-phases in kubeadm's order: upload-config/kubeadm, then upload-config/kubelet."""
    return kubeadm_config_objects(spec) + kubelet_config_objects(spec, node_config)


def cri_socket_annotation_patch(spec: ClusterSpec) -> dict[str, Any] | None:
    """The Node patch upload-config/kubelet ends with, or None where kubeadm no longer makes it.

    Up to v1.31 kubeadm always recorded the node's CRI socket as an annotation; v1.32-v1.35 only
    while the NodeLocalCRISocket gate is off (alpha, off, in v1.32-v1.33; beta, on, in
    v1.34-v1.35); v1.36 dropped it (the socket lives in /var/lib/kubelet/instance-config.yaml).
    A strategic-merge patch body for the Node named spec.node.name."""
    mnr = minor(spec)
    if mnr >= 36:
        return None
    if mnr >= 32 and spec.feature_gates.get("NodeLocalCRISocket", mnr >= 34):
        return None
    return {"metadata": {"annotations": {CRI_SOCKET_ANNOTATION: spec.node.cri_socket}}}
