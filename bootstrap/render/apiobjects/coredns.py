"""addon/coredns: the cluster DNS as kubeadm installs it (phases/addons/dns/{dns,manifests}.go).

Created in this order: ConfigMap coredns, ClusterRole and ClusterRoleBinding system:coredns,
ServiceAccount coredns, Deployment coredns, Service kube-dns at the tenth address of the first
service subnet.

What changed between minors (each minor's .0 release):
- v1.27: the ClusterRole also grants `get` on nodes (dropped in v1.28).
- v1.27-v1.28: the container drops capability "all"; "ALL" from v1.29.
- v1.32: the cache block stops caching the cluster domain's answers (disable success/denial).
- v1.34: the probes use named container ports (liveness-probe 8080, readiness-probe 8181).
"""

from __future__ import annotations

from typing import Any

from bootstrap.render.apiobjects.common import (
    DEFAULT_IMAGE_REPOSITORY,
    KUBE_SYSTEM,
    RBAC_V1,
    KubeObject,
    cluster_role_binding,
    configmap,
    minor,
    service_account,
)
from bootstrap.render.apiobjects.markcontrolplane import LABEL_CONTROL_PLANE
from bootstrap.render.patching import apply_patch_sets
from bootstrap.spec.model import ClusterSpec
from bootstrap.spec.patches import COREDNS_DEPLOYMENT

COREDNS = "coredns"
CLUSTER_ROLE = "system:coredns"
SERVICE = "kube-dns"
APP_LABEL = {"k8s-app": "kube-dns"}
REPLICAS = 2
# kubeadm constants.go CoreDNSVersion, per minor (.0 releases; v1.35-v1.37 from v1.35.4, v1.36.3,
# v1.37.2). bootstrap/versions.py has the same column for the minors it lists.
def coredns_version(spec: ClusterSpec) -> str:
    """The CoreDNS version kubeadm pins for the release (versions.py, from its constants.go)."""
    return spec.version.coredns_version


def coredns_image(spec: ClusterSpec) -> str:
    """images.GetDNSImage: dns.imageRepository or the cluster's; the default registry keeps CoreDNS
    under coredns/coredns, a mirror under coredns; dns.imageTag or the pinned version."""
    repository = spec.dns.image_repository or spec.image_repository
    if repository == DEFAULT_IMAGE_REPOSITORY:
        repository = f"{repository}/coredns"
    return f"{repository}/coredns:{spec.dns.image_tag or coredns_version(spec)}"


def corefile(spec: ClusterSpec) -> str:
    domain = spec.networking.dns_domain
    cache = "    cache 30\n"
    if minor(spec) >= 32:
        # Answers for the cluster domain change with every Service: never cache them.
        cache = (f"    cache 30 {{\n       disable success {domain}\n       disable denial {domain}\n    }}\n")
    return (
        ".:53 {\n"
        "    errors\n"
        "    health {\n"
        "       lameduck 5s\n"
        "    }\n"
        "    ready\n"
        f"    kubernetes {domain} in-addr.arpa ip6.arpa {{\n"
        "       pods insecure\n"
        "       fallthrough in-addr.arpa ip6.arpa\n"
        "       ttl 30\n"
        "    }\n"
        "    prometheus :9153\n"
        "    forward . /etc/resolv.conf {\n"
        "       max_concurrent 1000\n"
        "    }\n"
        f"{cache}"
        "    loop\n"
        "    reload\n"
        "    loadbalance\n"
        "}\n"
    )


def coredns_configmap(spec: ClusterSpec) -> KubeObject:
    return configmap(COREDNS, KUBE_SYSTEM, {"Corefile": corefile(spec)})


def coredns_cluster_role(spec: ClusterSpec) -> KubeObject:
    rules: list[dict[str, Any]] = [
        {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"], "verbs": ["list", "watch"]},
    ]
    if minor(spec) <= 27:
        rules.append({"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]})
    rules.append({"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]})
    return {"apiVersion": RBAC_V1, "kind": "ClusterRole", "metadata": {"name": CLUSTER_ROLE}, "rules": rules}


def coredns_cluster_role_binding() -> KubeObject:
    return cluster_role_binding(CLUSTER_ROLE, CLUSTER_ROLE, [service_account(COREDNS, KUBE_SYSTEM)])


def coredns_service_account() -> KubeObject:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": COREDNS, "namespace": KUBE_SYSTEM}}


def _container(spec: ClusterSpec) -> dict[str, Any]:
    mnr = minor(spec)
    named_probe_ports = mnr >= 34
    ports: list[dict[str, Any]] = [
        {"containerPort": 53, "name": "dns", "protocol": "UDP"},
        {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"},
        {"containerPort": 9153, "name": "metrics", "protocol": "TCP"},
    ]
    if named_probe_ports:
        ports += [{"containerPort": 8080, "name": "liveness-probe", "protocol": "TCP"},
                  {"containerPort": 8181, "name": "readiness-probe", "protocol": "TCP"}]
    return {
        "name": COREDNS,
        "image": coredns_image(spec),
        "imagePullPolicy": "IfNotPresent",
        "resources": {"limits": {"memory": "170Mi"}, "requests": {"cpu": "100m", "memory": "70Mi"}},
        "args": ["-conf", "/etc/coredns/Corefile"],
        "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": True}],
        "ports": ports,
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": "liveness-probe" if named_probe_ports else 8080, "scheme": "HTTP"},
            "initialDelaySeconds": 60,
            "timeoutSeconds": 5,
            "successThreshold": 1,
            "failureThreshold": 5,
        },
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": "readiness-probe" if named_probe_ports else 8181, "scheme": "HTTP"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL" if mnr >= 29 else "all"]},
            "readOnlyRootFilesystem": True,
        },
    }


def coredns_deployment(spec: ClusterSpec, *, replicas: int = REPLICAS) -> KubeObject:
    """replicas: kubeadm keeps the count of a CoreDNS Deployment that already runs (2 for a new one).
    The corednsdeployment patches of the patches directory are applied."""
    deployment: KubeObject = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": COREDNS, "namespace": KUBE_SYSTEM, "labels": dict(APP_LABEL)},
        "spec": {
            "replicas": replicas,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "selector": {"matchLabels": dict(APP_LABEL)},
            "template": {
                "metadata": {"labels": dict(APP_LABEL)},
                "spec": {
                    "priorityClassName": "system-cluster-critical",
                    "serviceAccountName": COREDNS,
                    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                        "weight": 100,
                        "podAffinityTerm": {
                            "labelSelector": {"matchExpressions": [
                                {"key": "k8s-app", "operator": "In", "values": ["kube-dns"]}]},
                            "topologyKey": "kubernetes.io/hostname",
                        },
                    }]}},
                    "tolerations": [
                        {"key": "CriticalAddonsOnly", "operator": "Exists"},
                        {"key": LABEL_CONTROL_PLANE, "effect": "NoSchedule"},
                    ],
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "containers": [_container(spec)],
                    # The node's resolver, not the cluster's: CoreDNS is what the cluster resolves with.
                    "dnsPolicy": "Default",
                    "volumes": [{"name": "config-volume", "configMap": {
                        "name": COREDNS, "items": [{"key": "Corefile", "path": "Corefile"}]}}],
                },
            },
        },
    }
    return apply_patch_sets(deployment, COREDNS_DEPLOYMENT, spec.patches)


def dns_service(spec: ClusterSpec) -> KubeObject:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": SERVICE,
            "namespace": KUBE_SYSTEM,
            "labels": {**APP_LABEL, "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"},
            "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"},
            # kubeadm's: lets an update replace the Service unconditionally (resourceVersion 0).
            "resourceVersion": "0",
        },
        "spec": {
            "clusterIP": spec.networking.dns_service_ip(),
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153},
            ],
            "selector": dict(APP_LABEL),
        },
    }


def coredns_objects(spec: ClusterSpec, *, replicas: int = REPLICAS) -> list[KubeObject]:
    """The addon in kubeadm's creation order."""
    return [
        coredns_configmap(spec),
        coredns_cluster_role(spec),
        coredns_cluster_role_binding(),
        coredns_service_account(),
        coredns_deployment(spec, replicas=replicas),
        dns_service(spec),
    ]
