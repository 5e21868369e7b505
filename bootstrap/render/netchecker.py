"""Netchecker (Mirantis k8s-netchecker) for a cluster whose API server is up: manifests as data.

What Kubespray deploys with `deploy_netchecker: true`: a server Deployment (1 replica, :8081) with a
service account allowed to list pods, a NodePort Service `netchecker-service`, and two agent
DaemonSets on every node, one on the pod network and one with hostNetwork, each POSTing a report to
the server every `report_interval` seconds. The server answers /api/v1/connectivity_check with the
agents that never reported (absent) or stopped reporting (outdated).

Objects are built as dicts and dumped, so the YAML is always well formed; every object passes
`kubernetes-validate --strict` (tests/unit/test_netchecker_render.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

SERVER_IMAGE = "docker.io/mirantis/k8s-netchecker-server:v1.2.2"
AGENT_IMAGE = "docker.io/mirantis/k8s-netchecker-agent:v1.2.2"
SERVER_PORT = 8081
SERVICE = "netchecker-service"
AGENT_LABELS = ("netchecker-agent", "netchecker-agent-hostnet")  # the server lists pods by these labels
CHECK_PATH = "/api/v1/connectivity_check"


@dataclass(frozen=True)
class NetcheckerOptions:
    namespace: str = "netchecker"
    node_port: int = 31081  # Kubespray's netchecker_port
    report_interval: int = 15  # Kubespray's agent_report_interval (seconds)
    server_image: str = SERVER_IMAGE
    agent_image: str = AGENT_IMAGE


def _meta(name: str, opts: NetcheckerOptions, **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": opts.namespace}
    meta["labels"] = {"app.kubernetes.io/part-of": "netchecker", **labels}
    return meta


# Run unprivileged: neither binary needs root or capabilities (agents only resolve, dial and POST).
_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
# glog falls back to files in /tmp; with a read-only root that must be a writable volume.
_TMP_MOUNT = [{"name": "tmp", "mountPath": "/tmp"}]
_TMP_VOLUME = [{"name": "tmp", "emptyDir": {}}]
# Agents must land on every node, control planes and tainted nodes included (as Kubespray's do).
_TOLERATE_ALL = [{"operator": "Exists"}]


def namespace(opts: NetcheckerOptions) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": opts.namespace}}


def rbac(opts: NetcheckerOptions) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta("netchecker-server", opts)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "netchecker-server", "labels": {"app.kubernetes.io/part-of": "netchecker"}},
            # The server lists agent pods to tell absent agents from removed ones; nothing more.
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "netchecker-server", "labels": {"app.kubernetes.io/part-of": "netchecker"}},
            "subjects": [{"kind": "ServiceAccount", "name": "netchecker-server", "namespace": opts.namespace}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "netchecker-server"},
        },
    ]


def server(opts: NetcheckerOptions) -> list[dict[str, Any]]:
    labels = {"app": "netchecker-server"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta("netchecker-server", opts, **labels),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": "netchecker-server",
                    "tolerations": _TOLERATE_ALL,
                    "containers": [
                        {
                            "name": "netchecker-server",
                            "image": opts.server_image,
                            "imagePullPolicy": "IfNotPresent",
                            "args": ["-v=5", "-logtostderr", "-kubeproxyinit=false",
                                     f"-endpoint=0.0.0.0:{SERVER_PORT}"],
                            "ports": [{"name": "http", "containerPort": SERVER_PORT, "protocol": "TCP"}],
                            "readinessProbe": {"httpGet": {"path": "/api/v1/agents/", "port": SERVER_PORT}},
                            "resources": {"requests": {"cpu": "10m", "memory": "64Mi"},
                                          "limits": {"cpu": "100m", "memory": "256Mi"}},
                            "securityContext": _SECURITY,
                            "volumeMounts": _TMP_MOUNT,
                        }
                    ],
                    "volumes": _TMP_VOLUME,
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(SERVICE, opts, **labels),
        "spec": {
            "type": "NodePort",
            "selector": labels,
            "ports": [{"name": "http", "port": SERVER_PORT, "targetPort": SERVER_PORT, "protocol": "TCP",
                       "nodePort": opts.node_port}],
        },
    }
    return [deployment, service]


def agent(opts: NetcheckerOptions, *, host_network: bool) -> dict[str, Any]:
    name = AGENT_LABELS[1] if host_network else AGENT_LABELS[0]
    labels = {"app": name}
    env = [
        {"name": "MY_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "MY_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    ]
    pod: dict[str, Any] = {
        "tolerations": _TOLERATE_ALL,
        "containers": [
            {
                "name": name,
                "image": opts.agent_image,
                "imagePullPolicy": "IfNotPresent",
                "env": env,
                # The short service name resolves through the pod's search domains (same namespace).
                "args": ["-v=5", "-logtostderr=true", f"-serverendpoint={SERVICE}:{SERVER_PORT}",
                         f"-reportinterval={opts.report_interval}"],
                "resources": {"requests": {"cpu": "10m", "memory": "24Mi"},
                              "limits": {"cpu": "50m", "memory": "64Mi"}},
                "securityContext": _SECURITY,
                "volumeMounts": _TMP_MOUNT,
            }
        ],
        "volumes": _TMP_VOLUME,
    }
    if host_network:
        # The node's own network stack, but cluster DNS for the service name.
        pod["hostNetwork"] = True
        pod["dnsPolicy"] = "ClusterFirstWithHostNet"
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": _meta(name, opts, **labels),
        "spec": {
            "selector": {"matchLabels": labels},
            # Replace every agent at once: a report gap is expected during an update, a mix is not.
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "100%"}},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def objects(opts: NetcheckerOptions | None = None) -> list[dict[str, Any]]:
    """Every object, in apply order (namespace and RBAC before what uses them)."""
    opts = opts or NetcheckerOptions()
    return [namespace(opts), *rbac(opts), *server(opts), agent(opts, host_network=False),
            agent(opts, host_network=True)]


def render_manifests(opts: NetcheckerOptions | None = None) -> str:
    """One multi-document YAML stream for `kubectl apply -f -`."""
    return yaml.safe_dump_all(objects(opts), sort_keys=False, explicit_start=True)


# ---- the server's report ------------------------------------------------------------------------
@dataclass(frozen=True)
class ConnectivityReport:
    ok: bool
    message: str
    absent: tuple[str, ...]
    outdated: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "message": self.message, "absent": list(self.absent), "outdated": list(self.outdated)}


def parse_connectivity(body: dict[str, Any], *, http_ok: bool) -> ConnectivityReport:
    """The server's JSON. Its Go struct tags are malformed, so keys come out capitalised
    (`Message`, `Absent`, `Outdated`); accept lower case too in case a fixed server answers."""

    def get(key: str) -> Any:
        return body.get(key, body.get(key.lower()))

    absent = tuple(str(x) for x in (get("Absent") or []))
    outdated = tuple(str(x) for x in (get("Outdated") or []))
    return ConnectivityReport(http_ok and not absent and not outdated, str(get("Message") or ""), absent, outdated)


def proxy_path(opts: NetcheckerOptions) -> str:
    """The check through the API server's service proxy (no NodePort access needed)."""
    return f"/api/v1/namespaces/{opts.namespace}/services/{SERVICE}:{SERVER_PORT}/proxy{CHECK_PATH}"
