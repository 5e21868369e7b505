"""kube-router as the pod network (Kubespray's `kube_network_plugin: kube-router`): a DaemonSet on
every node doing pod routing (BGP between the nodes, each node's pod CIDR as the controller-manager
allocates it) and network policy; kube-proxy keeps the Services unless `run_service_proxy`.

The objects are ours, written from kube-router's documented flags and the API it reads (v2.1.0,
pkg/options/options.go): its ServiceAccount and read access to pods, services, endpoints,
endpointslices, nodes, namespaces and network policies, leases for its own leader election, and
services/status. It reaches the API server through the control-plane endpoint with a kubeconfig from
its service-account token, as kube-proxy does, so it does not depend on a Service to find it.

The CNI configuration (a bridge with host-local IPAM) is installed on each node by the DaemonSet's
init container when the node has none, so a node joined any way (ours, or `kubeadm join`) gets it;
kube-router then fills in the node's pod subnet and owns the file.
"""

from __future__ import annotations

import json
from typing import Any

from bootstrap.render.apiobjects.common import KUBE_SYSTEM, RBAC_V1, KubeObject, cluster_role_binding, configmap
from bootstrap.render.apiobjects.common import service_account as sa_subject
from bootstrap.render.apiobjects.kubeproxy import kube_proxy_kubeconfig
from bootstrap.spec.model import ClusterSpec

KUBE_ROUTER = "kube-router"
KUBECONFIG_CONFIGMAP = "kube-router-kubeconfig"
KUBECONFIG_DIR = "/var/lib/kube-router"
CNI_CONF_DIR = "/etc/cni/net.d"
CNI_CONF_FILE = f"{CNI_CONF_DIR}/10-kuberouter.conflist"
BRIDGE = "kube-bridge"
HEALTH_PORT = 20244
LABELS = {"k8s-app": KUBE_ROUTER, "tier": "node"}
CNI_CONFIGMAP = "kube-router-cni"
CNI_SOURCE_DIR = "/etc/kube-router-cni"
# Installs the configuration once, atomically (a half-written file would be read by the kubelet).
INSTALL_CNI = (f'test -f {CNI_CONF_FILE} || {{ cp {CNI_SOURCE_DIR}/conflist {CNI_CONF_DIR}/.kube-router.tmp && '
               f'mv {CNI_CONF_DIR}/.kube-router.tmp {CNI_CONF_FILE}; }}')



def cni_conflist(spec: ClusterSpec) -> str:
    """A bridge on kube-bridge with host-local addresses (kube-router adds the node's subnet) and
    portmap for hostPort pods."""
    bridge: dict[str, Any] = {"name": "kubernetes", "type": "bridge", "bridge": BRIDGE, "isDefaultGateway": True,
                              "ipam": {"type": "host-local"}}
    if spec.network.hairpin_mode:
        bridge["hairpinMode"] = True
    doc = {"cniVersion": "0.3.0", "name": "mynet",
           "plugins": [bridge, {"type": "portmap", "capabilities": {"snat": True, "portMappings": True}}]}
    return json.dumps(doc, indent=2) + "\n"


def args(spec: ClusterSpec) -> list[str]:
    net = spec.network
    return [
        "--run-router=true",
        f"--run-firewall={str(net.run_firewall).lower()}",
        f"--run-service-proxy={str(net.run_service_proxy).lower()}",
        "--bgp-graceful-restart=true",
        f"--kubeconfig={KUBECONFIG_DIR}/kubeconfig",
        f"--service-cluster-ip-range={spec.networking.service_subnet}",
        f"--health-port={HEALTH_PORT}",
    ]


def cluster_role() -> KubeObject:
    read = ["get", "list", "watch"]
    return {
        "apiVersion": RBAC_V1, "kind": "ClusterRole", "metadata": {"name": KUBE_ROUTER},
        "rules": [
            {"apiGroups": [""], "resources": ["namespaces", "pods", "services", "nodes", "endpoints"], "verbs": read},
            {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": read},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]},
            {"apiGroups": [""], "resources": ["services/status"], "verbs": ["update"]},
        ],
    }


def daemonset(spec: ClusterSpec) -> KubeObject:
    host_path = lambda name, path, kind=None: {  # noqa: E731
        "name": name, "hostPath": {"path": path, **({"type": kind} if kind else {})}}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": KUBE_ROUTER, "namespace": KUBE_SYSTEM, "labels": dict(LABELS)},
        "spec": {
            "selector": {"matchLabels": dict(LABELS)},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": dict(LABELS)},
                "spec": {
                    "priorityClassName": "system-node-critical",
                    "serviceAccountName": KUBE_ROUTER,
                    "hostNetwork": True,
                    "hostPID": True,
                    "initContainers": [{
                        "name": "install-cni",
                        "image": spec.network.image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["/bin/sh", "-c", INSTALL_CNI],
                        "volumeMounts": [
                            {"name": "cni-conf-dir", "mountPath": CNI_CONF_DIR},
                            {"name": "cni-source", "mountPath": CNI_SOURCE_DIR, "readOnly": True},
                        ],
                    }],
                    "containers": [{
                        "name": KUBE_ROUTER,
                        "image": spec.network.image,
                        "imagePullPolicy": "IfNotPresent",
                        "args": args(spec),
                        "env": [
                            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "KUBE_ROUTER_CNI_CONF_FILE", "value": CNI_CONF_FILE},
                        ],
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": HEALTH_PORT},
                                          "initialDelaySeconds": 10, "periodSeconds": 3},
                        "resources": {"requests": {"cpu": "250m", "memory": "250Mi"}},
                        "securityContext": {"privileged": True},
                        "volumeMounts": [
                            {"name": "lib-modules", "mountPath": "/lib/modules", "readOnly": True},
                            {"name": "cni-conf-dir", "mountPath": CNI_CONF_DIR},
                            {"name": "kubeconfig", "mountPath": KUBECONFIG_DIR, "readOnly": True},
                            {"name": "xtables-lock", "mountPath": "/run/xtables.lock"},
                        ],
                    }],
                    # Every node, whatever its taints: pods everywhere need the network.
                    "tolerations": [{"operator": "Exists"}],
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "volumes": [
                        host_path("lib-modules", "/lib/modules"),
                        host_path("cni-conf-dir", CNI_CONF_DIR),
                        {"name": "kubeconfig", "configMap": {"name": KUBECONFIG_CONFIGMAP}},
                        {"name": "cni-source", "configMap": {"name": CNI_CONFIGMAP}},
                        host_path("xtables-lock", "/run/xtables.lock", "FileOrCreate"),
                    ],
                },
            },
        },
    }


def kube_router_objects(spec: ClusterSpec) -> list[KubeObject]:
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": KUBE_ROUTER, "namespace": KUBE_SYSTEM}},
        cluster_role(),
        cluster_role_binding(KUBE_ROUTER, KUBE_ROUTER, [sa_subject(KUBE_ROUTER, KUBE_SYSTEM)]),
        configmap(KUBECONFIG_CONFIGMAP, KUBE_SYSTEM, {"kubeconfig": kube_proxy_kubeconfig(spec)}, labels=dict(LABELS)),
        configmap(CNI_CONFIGMAP, KUBE_SYSTEM, {"conflist": cni_conflist(spec)}, labels=dict(LABELS)),
        daemonset(spec),
    ]
