"""The pieces every static Pod manifest is made of, as kubeadm makes them: component flags, probes,
volumes and mounts, the Pod skeleton, and kubeadm's YAML serialisation. Pure functions."""

from __future__ import annotations

import ipaddress
import math
import posixpath
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import yaml

from bootstrap.render.patching import apply_patch_sets
from bootstrap.spec.model import KUBERNETES_DIR, Arg, ClusterSpec, EnvVar, HostPathMount

PathExists = Callable[[str], bool]
Pod = dict[str, Any]

KUBE_APISERVER = "kube-apiserver"
KUBE_CONTROLLER_MANAGER = "kube-controller-manager"
KUBE_SCHEDULER = "kube-scheduler"
ETCD = "etcd"
CONTROL_PLANE_COMPONENTS = (KUBE_APISERVER, KUBE_CONTROLLER_MANAGER, KUBE_SCHEDULER)

KCM_PORT = 10257
SCHEDULER_PORT = 10259
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
ETCD_METRICS_PORT = 2381
# kubeadm v1beta4 default controlPlaneComponentHealthCheck (4m); startup failureThreshold = ceil(4m / 10s).
COMPONENT_HEALTH_CHECK_SECONDS = 240
PROBE_PORT_NAME = "probe-port"

# Directories /etc/ssl/certs may symlink into; kubeadm mounts each one that exists on the node.
CA_CERTS_EXTRA_PATHS = (
    "/etc/pki/ca-trust",
    "/etc/pki/tls/certs",
    "/etc/ca-certificates",
    "/usr/share/ca-certificates",
    "/usr/local/share/ca-certificates",
)
CA_CERTS_PATH = "/etc/ssl/certs"
FLEXVOLUME_DIR = "/usr/libexec/kubernetes/kubelet-plugins/volume/exec"

# Hardening: audit log (CIS 1.2.16-1.2.19).
AUDIT_POLICY_PATH = f"{KUBERNETES_DIR}/audit-policy.yaml"
AUDIT_LOG_DIR = "/var/log/kubernetes/audit"
AUDIT_LOG_PATH = f"{AUDIT_LOG_DIR}/audit.log"



# ---- small helpers --------------------------------------------------------------------------------


def arguments_to_command(spec: ClusterSpec, defaults: Sequence[tuple[str, str]], overrides: Sequence[Arg]) -> list[str]:
    """kubeadm ArgumentsToCommand: an override drops every default of the same name. Up to v1.34
    everything is sorted by (name, value); from v1.35 only the defaults are, and the overrides follow
    in the order the config gives them."""
    override_names = {a.name for a in overrides}
    kept = [(n, v) for n, v in defaults if n not in override_names]
    given = [(a.name, a.value) for a in overrides]
    args = sorted(kept) + given if spec.version.at_least(35) else sorted(kept + given)
    return [f"--{n}={v}" for n, v in args]


def set_arg(args: list[tuple[str, str]], name: str, value: str) -> None:
    """kubeadm SetArgValues(..., 1): replace the value of name, or append it."""
    for i, (n, _) in enumerate(args):
        if n == name:
            args[i] = (name, value)
            return
    args.append((name, value))


def arg_value(args: Iterable[Arg], name: str) -> str | None:
    """kubeadm GetArgValue(args, name, -1): the last value of name."""
    found = None
    for a in args:
        if a.name == name:
            found = a.value
    return found


def is_ipv6(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def probe_address(addr: str) -> str:
    """kubeadm getProbeAddress: an unspecified bind address means "probe the pod IP" (empty host)."""
    return "" if addr in ("0.0.0.0", "::") else addr


def proxy_env_vars(environ: Mapping[str, str]) -> list[EnvVar]:
    """kubeadm GetProxyEnvVars: every *_proxy variable (any case) of an environment."""
    return [EnvVar(name=k, value=v) for k, v in environ.items() if k.lower().endswith("_proxy") and v]


def proxy_env(spec: ClusterSpec, environ: Mapping[str, str] | None) -> list[EnvVar]:
    """The node's proxy settings: the spec's (the environment of a single-node init, or the
    inventory's http_proxy/https_proxy/no_proxy in a fleet), never the control machine's."""
    return proxy_env_vars(environ) if environ is not None else list(spec.proxy_env)


def merge_env(*lists: Iterable[EnvVar]) -> list[dict[str, str]]:
    """kubeadm MergeKubeadmEnvVars: later lists win by name; sorted by name."""
    merged: dict[str, str] = {}
    for envs in lists:
        for e in envs:
            merged[e.name] = e.value
    return [{"name": n, "value": merged[n]} for n in sorted(merged)]


def volume(name: str, path: str, path_type: str) -> dict[str, Any]:
    # An extraVolume without pathType still serializes `type: ""` (a pointer to "" in kubeadm).
    return {"hostPath": {"path": path, "type": path_type}, "name": name}


def mount(name: str, path: str, read_only: bool) -> dict[str, Any]:
    m: dict[str, Any] = {"mountPath": path, "name": name}
    if read_only:
        m["readOnly"] = True
    return m


class Mounts:
    """Volumes and mounts keyed by name (a later one with the same name replaces the earlier)."""

    def __init__(self) -> None:
        self.volumes: dict[str, dict[str, Any]] = {}
        self.mounts: dict[str, dict[str, Any]] = {}

    def add(self, name: str, host_path: str, mount_path: str, read_only: bool, path_type: str) -> None:
        self.volumes[name] = volume(name, host_path, path_type)
        self.mounts[name] = mount(name, mount_path, read_only)

    def add_extra(self, extra: Iterable[HostPathMount]) -> None:
        for v in extra:
            self.add(v.name, v.host_path, v.mount_path, v.read_only, v.path_type)

    def sorted_volumes(self) -> list[dict[str, Any]]:
        return [self.volumes[n] for n in sorted(self.volumes)]

    def sorted_mounts(self) -> list[dict[str, Any]]:
        return [self.mounts[n] for n in sorted(self.mounts)]


def http_probe(host: str, path: str, port: int | str, scheme: str, initial_delay: int, timeout: int,
                failure_threshold: int, period: int) -> dict[str, Any]:
    http_get: dict[str, Any] = {"path": path, "port": port, "scheme": scheme}
    if host:
        http_get["host"] = host
    probe: dict[str, Any] = {
        "failureThreshold": failure_threshold,
        "httpGet": http_get,
        "periodSeconds": period,
        "timeoutSeconds": timeout,
    }
    if initial_delay:
        probe["initialDelaySeconds"] = initial_delay
    return probe


def liveness_probe(host: str, path: str, port: int | str, scheme: str) -> dict[str, Any]:
    return http_probe(host, path, port, scheme, 10, 15, 8, 10)


def readiness_probe(host: str, path: str, port: int | str, scheme: str) -> dict[str, Any]:
    return http_probe(host, path, port, scheme, 0, 15, 3, 1)


def startup_probe(host: str, path: str, port: int | str, scheme: str) -> dict[str, Any]:
    threshold = math.ceil(COMPONENT_HEALTH_CHECK_SECONDS / 10)
    return http_probe(host, path, port, scheme, 10, 15, threshold, 10)


def uses_named_probe_port(spec: ClusterSpec) -> bool:
    # v1.34+: probes reference a named container port (kubernetes PR #132776).
    return spec.version.at_least(34)


def component_pod(name: str, container: dict[str, Any], volumes: list[dict[str, Any]],
                   annotations: dict[str, str] | None, probe_port: int, named_port: bool) -> Pod:
    """kubeadm ComponentPod + WriteStaticPodToDisk's serialized shape."""
    if named_port:
        container["ports"] = [{"containerPort": probe_port, "name": PROBE_PORT_NAME, "protocol": "TCP"}]
    metadata: dict[str, Any] = {
        "labels": {"component": name, "tier": "control-plane"},
        "name": name,
        "namespace": "kube-system",
    }
    if annotations:
        metadata["annotations"] = annotations
    spec: dict[str, Any] = {
        "containers": [container],
        "hostNetwork": True,
        "priority": 2000001000,
        "priorityClassName": "system-node-critical",
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "volumes": volumes,
    }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": {}}


def component_image(spec: ClusterSpec, component: str) -> str:
    return f"{spec.image_repository}/{component}:{spec.version}"


def pki_path(spec: ClusterSpec, name: str) -> str:
    return posixpath.join(spec.cert_dir, name)


# ---- kube-apiserver -------------------------------------------------------------------------------


# ---- serialization ---------------------------------------------------------------------------------


class _GoYAMLDumper(yaml.SafeDumper):
    """Dump like sigs.k8s.io/yaml (go-yaml v2): sorted keys, indentless lists, and double quotes for
    strings that would otherwise read back as another type ("0", "true", "")."""

    def choose_scalar_style(self) -> str:
        style: str = super().choose_scalar_style()
        event = self.event
        if style == "'" and isinstance(event, yaml.ScalarEvent) and not event.implicit[0]:
            return '"'
        return style


def to_yaml(obj: Any, *, creation_timestamp: bool = True) -> bytes:
    """Serialize as kubeadm does. creation_timestamp: add `metadata.creationTimestamp: null` (kubeadm
    before v1.34; apimachinery stopped emitting the zero value in v1.34, kubernetes PR #130989)."""
    if creation_timestamp and isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
        obj = {**obj, "metadata": {**obj["metadata"], "creationTimestamp": None}}
    text = yaml.dump(obj, Dumper=_GoYAMLDumper, default_flow_style=False, sort_keys=True,
                     width=1 << 30, allow_unicode=True)
    return text.encode()


def pod_yaml(spec: ClusterSpec, pod: Pod) -> bytes:
    """A static pod as kubeadm writes it: with the patches directory's patches for its name applied."""
    if spec.patches:
        pod = apply_patch_sets(pod, str(pod["metadata"]["name"]), spec.patches)
    return to_yaml(pod, creation_timestamp=not spec.version.at_least(34))


