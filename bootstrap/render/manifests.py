"""Static Pod manifests for the control plane and local etcd, shaped exactly as kubeadm writes them.

Pure functions: spec (+ what kubeadm would look at on the node) -> Pod dict -> YAML bytes. Nothing
here touches a filesystem; the phases decide where bytes go. kubeadm.md section 3 is the contract;
where it was outdated the kubeadm source won (noted inline).

Our only deliberate differences are the CIS hardening items in `spec.hardening` (docs/hardening.md);
with `Hardening.kubeadm()` the bytes are kubeadm's.
"""

from __future__ import annotations

import ipaddress
import math
import posixpath
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import yaml

from bootstrap.render.templates import render_template
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

ETCD_SYSTEMD_UNIT_PATH = "/etc/systemd/system/etcd.service"


# ---- small helpers --------------------------------------------------------------------------------


def arguments_to_command(defaults: Sequence[tuple[str, str]], overrides: Sequence[Arg]) -> list[str]:
    """kubeadm ArgumentsToCommand: an override drops every default of the same name; sort by (name, value)."""
    override_names = {a.name for a in overrides}
    args = [(a.name, a.value) for a in overrides]
    args += [(n, v) for n, v in defaults if n not in override_names]
    return [f"--{n}={v}" for n, v in sorted(args)]


def _set_arg(args: list[tuple[str, str]], name: str, value: str) -> None:
    """kubeadm SetArgValues(..., 1): replace the value of name, or append it."""
    for i, (n, _) in enumerate(args):
        if n == name:
            args[i] = (name, value)
            return
    args.append((name, value))


def _arg_value(args: Iterable[Arg], name: str) -> str | None:
    """kubeadm GetArgValue(args, name, -1): the last value of name."""
    found = None
    for a in args:
        if a.name == name:
            found = a.value
    return found


def _is_ipv6(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _probe_address(addr: str) -> str:
    """kubeadm getProbeAddress: an unspecified bind address means "probe the pod IP" (empty host)."""
    return "" if addr in ("0.0.0.0", "::") else addr


def proxy_env_vars(environ: Mapping[str, str]) -> list[EnvVar]:
    """kubeadm GetProxyEnvVars: every *_proxy variable (any case) of an environment."""
    return [EnvVar(name=k, value=v) for k, v in environ.items() if k.lower().endswith("_proxy") and v]


def _proxy(spec: ClusterSpec, environ: Mapping[str, str] | None) -> list[EnvVar]:
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


def _volume(name: str, path: str, path_type: str) -> dict[str, Any]:
    # An extraVolume without pathType still serializes `type: ""` (a pointer to "" in kubeadm).
    return {"hostPath": {"path": path, "type": path_type}, "name": name}


def _mount(name: str, path: str, read_only: bool) -> dict[str, Any]:
    m: dict[str, Any] = {"mountPath": path, "name": name}
    if read_only:
        m["readOnly"] = True
    return m


class _Mounts:
    """Volumes and mounts keyed by name (a later one with the same name replaces the earlier)."""

    def __init__(self) -> None:
        self.volumes: dict[str, dict[str, Any]] = {}
        self.mounts: dict[str, dict[str, Any]] = {}

    def add(self, name: str, host_path: str, mount_path: str, read_only: bool, path_type: str) -> None:
        self.volumes[name] = _volume(name, host_path, path_type)
        self.mounts[name] = _mount(name, mount_path, read_only)

    def add_extra(self, extra: Iterable[HostPathMount]) -> None:
        for v in extra:
            self.add(v.name, v.host_path, v.mount_path, v.read_only, v.path_type)

    def sorted_volumes(self) -> list[dict[str, Any]]:
        return [self.volumes[n] for n in sorted(self.volumes)]

    def sorted_mounts(self) -> list[dict[str, Any]]:
        return [self.mounts[n] for n in sorted(self.mounts)]


def _http_probe(host: str, path: str, port: int | str, scheme: str, initial_delay: int, timeout: int,
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
    return _http_probe(host, path, port, scheme, 10, 15, 8, 10)


def readiness_probe(host: str, path: str, port: int | str, scheme: str) -> dict[str, Any]:
    return _http_probe(host, path, port, scheme, 0, 15, 3, 1)


def startup_probe(host: str, path: str, port: int | str, scheme: str) -> dict[str, Any]:
    threshold = math.ceil(COMPONENT_HEALTH_CHECK_SECONDS / 10)
    return _http_probe(host, path, port, scheme, 10, 15, threshold, 10)


def _uses_named_probe_port(spec: ClusterSpec) -> bool:
    # v1.34+: probes reference a named container port (kubernetes PR #132776).
    return spec.version.at_least(34)


def _component_pod(name: str, container: dict[str, Any], volumes: list[dict[str, Any]],
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


def _image(spec: ClusterSpec, component: str) -> str:
    return f"{spec.image_repository}/{component}:{spec.version}"


def _pki(spec: ClusterSpec, name: str) -> str:
    return posixpath.join(spec.cert_dir, name)


# ---- kube-apiserver -------------------------------------------------------------------------------


def apiserver_command(spec: ClusterSpec) -> list[str]:
    pki = spec.cert_dir
    args: list[tuple[str, str]] = [
        ("advertise-address", spec.advertise_address),
        ("enable-admission-plugins", "NodeRestriction"),
        ("service-cluster-ip-range", spec.networking.service_subnet),
        ("service-account-key-file", f"{pki}/sa.pub"),
        ("service-account-signing-key-file", f"{pki}/sa.key"),
        ("service-account-issuer", f"https://kubernetes.default.svc.{spec.networking.dns_domain}"),
        ("client-ca-file", f"{pki}/ca.crt"),
        ("tls-cert-file", f"{pki}/apiserver.crt"),
        ("tls-private-key-file", f"{pki}/apiserver.key"),
        ("kubelet-client-certificate", f"{pki}/apiserver-kubelet-client.crt"),
        ("kubelet-client-key", f"{pki}/apiserver-kubelet-client.key"),
        ("enable-bootstrap-token-auth", "true"),
        ("secure-port", str(spec.bind_port)),
        ("allow-privileged", "true"),
        ("kubelet-preferred-address-types", "InternalIP,ExternalIP,Hostname"),
        ("requestheader-username-headers", "X-Remote-User"),
        ("requestheader-group-headers", "X-Remote-Group"),
        ("requestheader-extra-headers-prefix", "X-Remote-Extra-"),
        ("requestheader-client-ca-file", f"{pki}/front-proxy-ca.crt"),
        ("requestheader-allowed-names", "front-proxy-client"),
        ("proxy-client-cert-file", f"{pki}/front-proxy-client.crt"),
        ("proxy-client-key-file", f"{pki}/front-proxy-client.key"),
    ]
    ext = spec.etcd_external
    if ext is not None:
        _set_arg(args, "etcd-servers", ",".join(ext.endpoints))
        if ext.ca_file:
            _set_arg(args, "etcd-cafile", ext.ca_file)
        if ext.cert_file and ext.key_file:
            _set_arg(args, "etcd-certfile", ext.cert_file)
            _set_arg(args, "etcd-keyfile", ext.key_file)
    else:
        local = "::1" if spec.advertise_is_ipv6 else "127.0.0.1"
        _set_arg(args, "etcd-servers", f"https://{join_host_port(local, ETCD_CLIENT_PORT)}")
        _set_arg(args, "etcd-cafile", f"{pki}/etcd/ca.crt")
        _set_arg(args, "etcd-certfile", f"{pki}/apiserver-etcd-client.crt")
        _set_arg(args, "etcd-keyfile", f"{pki}/apiserver-etcd-client.key")
        if spec.etcd_local is not None:
            adv_urls = _arg_value(spec.etcd_local.extra_args, "advertise-client-urls")
            if adv_urls is not None:
                _set_arg(args, "etcd-servers", adv_urls)
    if _arg_value(spec.api_server.extra_args, "authorization-config") is None:
        _set_arg(args, "authorization-mode", "Node,RBAC")
    h = spec.hardening
    if h.disable_profiling:
        _set_arg(args, "profiling", "false")
    if h.audit_log:
        _set_arg(args, "audit-log-path", AUDIT_LOG_PATH)
        _set_arg(args, "audit-log-maxage", "30")
        _set_arg(args, "audit-log-maxbackup", "10")
        _set_arg(args, "audit-log-maxsize", "100")
        _set_arg(args, "audit-policy-file", AUDIT_POLICY_PATH)
    return [KUBE_APISERVER, *arguments_to_command(args, spec.api_server.extra_args)]


def _etcd_cert_volumes(spec: ClusterSpec) -> list[str]:
    """kubeadm getEtcdCertVolumes: the dirs of external-etcd cert files not already mounted."""
    ext = spec.etcd_external
    if ext is None:
        return []
    dirs: set[str] = set()
    for path in (ext.ca_file, ext.cert_file, ext.key_file):
        d = posixpath.dirname(path) if path else "."
        if d in (".", ""):
            continue
        if any(d.startswith(p) for p in CA_CERTS_EXTRA_PATHS) or d.startswith(CA_CERTS_PATH) \
                or d.startswith(spec.cert_dir):
            continue
        contained = False
        for existing in sorted(dirs):
            if existing.startswith(d):
                dirs.discard(existing)
            elif d.startswith(existing):
                contained = True
        if not contained:
            dirs.add(d)
    return sorted(dirs)


def _control_plane_mounts(spec: ClusterSpec, path_exists: PathExists) -> dict[str, _Mounts]:
    """kubeadm getHostPathVolumesForTheControlPlane, plus our audit mounts when hardened."""
    m = {c: _Mounts() for c in CONTROL_PLANE_COMPONENTS}
    api, kcm, sched = m[KUBE_APISERVER], m[KUBE_CONTROLLER_MANAGER], m[KUBE_SCHEDULER]
    doc = "DirectoryOrCreate"
    api.add("k8s-certs", spec.cert_dir, spec.cert_dir, True, doc)
    api.add("ca-certs", CA_CERTS_PATH, CA_CERTS_PATH, True, doc)
    for i, d in enumerate(_etcd_cert_volumes(spec)):
        api.add(f"etcd-certs-{i}", d, d, True, doc)
    kcm.add("k8s-certs", spec.cert_dir, spec.cert_dir, True, doc)
    kcm.add("ca-certs", CA_CERTS_PATH, CA_CERTS_PATH, True, doc)
    kcm_conf = f"{KUBERNETES_DIR}/controller-manager.conf"
    kcm.add("kubeconfig", kcm_conf, kcm_conf, True, "FileOrCreate")
    flex = _arg_value(spec.controller_manager.extra_args, "flex-volume-plugin-dir") or FLEXVOLUME_DIR
    kcm.add("flexvolume-dir", flex, flex, False, doc)  # rw: third-party plugins talk through sockets here
    sched_conf = f"{KUBERNETES_DIR}/scheduler.conf"
    sched.add("kubeconfig", sched_conf, sched_conf, True, "FileOrCreate")
    for path in CA_CERTS_EXTRA_PATHS:
        if path_exists(path):
            name = path.replace("/", "-")[1:]
            api.add(name, path, path, True, doc)
            kcm.add(name, path, path, True, doc)
    if spec.hardening.audit_log:
        api.add("audit-policy", AUDIT_POLICY_PATH, AUDIT_POLICY_PATH, True, "File")
        api.add("audit-log", AUDIT_LOG_DIR, AUDIT_LOG_DIR, False, doc)
    api.add_extra(spec.api_server.extra_volumes)
    kcm.add_extra(spec.controller_manager.extra_volumes)
    sched.add_extra(spec.scheduler.extra_volumes)
    return m


def apiserver_pod(spec: ClusterSpec, path_exists: PathExists, *, environ: Mapping[str, str] | None = None) -> Pod:
    mounts = _control_plane_mounts(spec, path_exists)[KUBE_APISERVER]
    named = _uses_named_probe_port(spec)
    port: int | str = PROBE_PORT_NAME if named else spec.bind_port
    host = _probe_address(spec.advertise_address)
    container: dict[str, Any] = {
        "command": apiserver_command(spec),
        "image": _image(spec, KUBE_APISERVER),
        "imagePullPolicy": "IfNotPresent",
        "livenessProbe": liveness_probe(host, "/livez", port, "HTTPS"),
        "name": KUBE_APISERVER,
        "readinessProbe": readiness_probe(host, "/readyz", port, "HTTPS"),
        "resources": {"requests": {"cpu": "250m"}},
        "startupProbe": startup_probe(host, "/livez", port, "HTTPS"),
        "volumeMounts": mounts.sorted_mounts(),
    }
    _put_env(container, spec, _proxy(spec, environ), spec.api_server.extra_envs)
    annotations = {
        "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint":
            join_host_port(spec.advertise_address, spec.bind_port),
    }
    return _component_pod(KUBE_APISERVER, container, mounts.sorted_volumes(), annotations, spec.bind_port, named)


def _put_env(container: dict[str, Any], spec: ClusterSpec, proxy: list[EnvVar], extra: Sequence[EnvVar]) -> None:
    # extraEnvs exist from v1beta4 (v1.31); an empty env list is omitted like Go's omitempty.
    env = merge_env(proxy, extra if spec.version.at_least(31) else ())
    if env:
        container["env"] = env


# ---- kube-controller-manager / kube-scheduler ------------------------------------------------------


def controller_manager_command(spec: ClusterSpec, *, external_ca: bool = False) -> list[str]:
    pki = spec.cert_dir
    conf = f"{KUBERNETES_DIR}/controller-manager.conf"
    args: list[tuple[str, str]] = [
        ("bind-address", "127.0.0.1"),
        ("leader-elect", "true"),
        ("kubeconfig", conf),
        ("authentication-kubeconfig", conf),
        ("authorization-kubeconfig", conf),
        ("client-ca-file", f"{pki}/ca.crt"),
        ("requestheader-client-ca-file", f"{pki}/front-proxy-ca.crt"),
        ("root-ca-file", f"{pki}/ca.crt"),
        ("service-account-private-key-file", f"{pki}/sa.key"),
        ("cluster-signing-cert-file", f"{pki}/ca.crt"),
        ("cluster-signing-key-file", f"{pki}/ca.key"),
        ("use-service-account-credentials", "true"),
        ("controllers", "*,bootstrapsigner,tokencleaner"),
    ]
    if external_ca:
        # Without ca.key the csrsigning controller must not start: kubeadm passes empty paths.
        _set_arg(args, "cluster-signing-key-file", "")
        _set_arg(args, "cluster-signing-cert-file", "")
    if spec.networking.pod_subnet:
        _set_arg(args, "allocate-node-cidrs", "true")
        _set_arg(args, "cluster-cidr", spec.networking.pod_subnet)
        if spec.networking.service_subnet:
            _set_arg(args, "service-cluster-ip-range", spec.networking.service_subnet)
    if spec.cluster_name:
        _set_arg(args, "cluster-name", spec.cluster_name)
    if spec.hardening.disable_profiling:
        _set_arg(args, "profiling", "false")
    return [KUBE_CONTROLLER_MANAGER, *arguments_to_command(args, spec.controller_manager.extra_args)]


def controller_manager_pod(spec: ClusterSpec, path_exists: PathExists, *, external_ca: bool = False,
                           environ: Mapping[str, str] | None = None) -> Pod:
    mounts = _control_plane_mounts(spec, path_exists)[KUBE_CONTROLLER_MANAGER]
    named = _uses_named_probe_port(spec)
    port: int | str = PROBE_PORT_NAME if named else KCM_PORT
    bind = _arg_value(spec.controller_manager.extra_args, "bind-address")
    host = _probe_address(bind) if bind is not None else "127.0.0.1"
    container: dict[str, Any] = {
        "command": controller_manager_command(spec, external_ca=external_ca),
        "image": _image(spec, KUBE_CONTROLLER_MANAGER),
        "imagePullPolicy": "IfNotPresent",
        "livenessProbe": liveness_probe(host, "/healthz", port, "HTTPS"),
        "name": KUBE_CONTROLLER_MANAGER,
        "resources": {"requests": {"cpu": "200m"}},
        "startupProbe": startup_probe(host, "/healthz", port, "HTTPS"),
        "volumeMounts": mounts.sorted_mounts(),
    }
    _put_env(container, spec, _proxy(spec, environ), spec.controller_manager.extra_envs)
    return _component_pod(KUBE_CONTROLLER_MANAGER, container, mounts.sorted_volumes(), None, KCM_PORT, named)


def scheduler_command(spec: ClusterSpec) -> list[str]:
    conf = f"{KUBERNETES_DIR}/scheduler.conf"
    args: list[tuple[str, str]] = [
        ("bind-address", "127.0.0.1"),
        ("leader-elect", "true"),
        ("kubeconfig", conf),
        ("authentication-kubeconfig", conf),
        ("authorization-kubeconfig", conf),
    ]
    if spec.hardening.disable_profiling:
        _set_arg(args, "profiling", "false")
    return [KUBE_SCHEDULER, *arguments_to_command(args, spec.scheduler.extra_args)]


def scheduler_pod(spec: ClusterSpec, *, environ: Mapping[str, str] | None = None) -> Pod:
    mounts = _control_plane_mounts(spec, lambda _p: False)[KUBE_SCHEDULER]
    named = _uses_named_probe_port(spec)
    port: int | str = PROBE_PORT_NAME if named else SCHEDULER_PORT
    bind = _arg_value(spec.scheduler.extra_args, "bind-address")
    host = _probe_address(bind) if bind is not None else "127.0.0.1"
    container: dict[str, Any] = {
        "command": scheduler_command(spec),
        "image": _image(spec, KUBE_SCHEDULER),
        "imagePullPolicy": "IfNotPresent",
        "name": KUBE_SCHEDULER,
        "resources": {"requests": {"cpu": "100m"}},
        "volumeMounts": mounts.sorted_mounts(),
    }
    if spec.version.at_least(32):
        # v1.32+ (kubernetes PR #126945): /livez for liveness+startup, /readyz for readiness.
        container["livenessProbe"] = liveness_probe(host, "/livez", port, "HTTPS")
        container["readinessProbe"] = readiness_probe(host, "/readyz", port, "HTTPS")
        container["startupProbe"] = startup_probe(host, "/livez", port, "HTTPS")
    else:
        container["livenessProbe"] = liveness_probe(host, "/healthz", port, "HTTPS")
        container["startupProbe"] = startup_probe(host, "/healthz", port, "HTTPS")
    _put_env(container, spec, _proxy(spec, environ), spec.scheduler.extra_envs)
    return _component_pod(KUBE_SCHEDULER, container, mounts.sorted_volumes(), None, SCHEDULER_PORT, named)


# ---- etcd ------------------------------------------------------------------------------------------


def etcd_image_tag(spec: ClusterSpec) -> str:
    local = spec.etcd_local
    return (local.image_tag if local and local.image_tag else "") or spec.version.etcd_version


def etcd_is_36_or_newer(spec: ClusterSpec, binary_version: str | None = None) -> bool:
    """etcd 3.6 renamed experimental flags; decided by the image tag's major.minor, as kubeadm does,
    or (host mode) by the version of the etcd binary installed on the node."""
    tag = (binary_version or etcd_image_tag(spec)).lstrip("v").split("-")[0]
    try:
        major, minor = (int(x) for x in tag.split(".")[:2])
    except ValueError:
        return spec.version.at_least(34)  # a non-semver tag: assume the version's default etcd
    return (major, minor) >= (3, 6)


def etcd_command(
    spec: ClusterSpec, *, initial_cluster: Sequence[tuple[str, str]] = (), binary_version: str | None = None
) -> list[str]:
    """initial_cluster: (name, peerURL) of every member when joining; empty for `init`.
    binary_version: the etcd actually run (host mode), when it differs from the image tag's."""
    if spec.etcd_local is None:
        raise ValueError("etcd_command needs local etcd")
    pki = spec.cert_dir
    adv = spec.advertise_address
    local = "::1" if spec.advertise_is_ipv6 else "127.0.0.1"
    client_url = f"https://{join_host_port(adv, ETCD_CLIENT_PORT)}"
    peer_url = f"https://{join_host_port(adv, ETCD_PEER_PORT)}"
    name = spec.node.name
    args: list[tuple[str, str]] = [
        ("name", name),
        ("listen-client-urls", f"https://{join_host_port(local, ETCD_CLIENT_PORT)},{client_url}"),
        ("advertise-client-urls", client_url),
        ("listen-peer-urls", peer_url),
        ("initial-advertise-peer-urls", peer_url),
        ("data-dir", spec.etcd_local.data_dir),
        ("cert-file", f"{pki}/etcd/server.crt"),
        ("key-file", f"{pki}/etcd/server.key"),
        ("trusted-ca-file", f"{pki}/etcd/ca.crt"),
        ("client-cert-auth", "true"),
        ("peer-cert-file", f"{pki}/etcd/peer.crt"),
        ("peer-key-file", f"{pki}/etcd/peer.key"),
        ("peer-trusted-ca-file", f"{pki}/etcd/ca.crt"),
        ("peer-client-cert-auth", "true"),
        ("snapshot-count", "10000"),
        ("listen-metrics-urls", f"http://{join_host_port(local, ETCD_METRICS_PORT)}"),
    ]
    if etcd_is_36_or_newer(spec, binary_version):
        args += [("feature-gates", "InitialCorruptCheck=true"), ("watch-progress-notify-interval", "5s")]
    else:
        args += [("experimental-initial-corrupt-check", "true"), ("experimental-watch-progress-notify-interval", "5s")]
    if initial_cluster:
        _set_arg(args, "initial-cluster", ",".join(f"{n}={u}" for n, u in initial_cluster))
        _set_arg(args, "initial-cluster-state", "existing")
    elif spec.etcd_members:
        # A fleet run: every member is known up front. "new" when they bootstrap together, "existing"
        # once the cluster runs (kubeadm's join semantics); etcd ignores the list after bootstrap.
        _set_arg(args, "initial-cluster", ",".join(f"{m.name}={m.peer_url}" for m in spec.etcd_members))
        if spec.etcd_initial_cluster_state == "existing":
            _set_arg(args, "initial-cluster-state", "existing")
    else:
        _set_arg(args, "initial-cluster", f"{name}={peer_url}")
    return [ETCD, *arguments_to_command(args, spec.etcd_local.extra_args)]


def etcd_probe_endpoint(spec: ClusterSpec) -> tuple[str, int, str]:
    """kubeadm GetEtcdProbeEndpoint: first listen-metrics-urls extraArg, else localhost:2381 over HTTP."""
    localhost = "::1" if spec.advertise_is_ipv6 else "127.0.0.1"
    value = _arg_value(spec.etcd_local.extra_args, "listen-metrics-urls") if spec.etcd_local else None
    if value is None:
        return localhost, ETCD_METRICS_PORT, "HTTP"
    try:
        url = urlsplit(value.split(",")[0])
        port = url.port or ETCD_METRICS_PORT
    except ValueError:
        return localhost, ETCD_METRICS_PORT, "HTTP"
    scheme = "HTTPS" if url.scheme == "https" else "HTTP"
    return url.hostname or localhost, port, scheme


def etcd_pod(spec: ClusterSpec, *, initial_cluster: Sequence[tuple[str, str]] = ()) -> Pod:
    if spec.etcd_local is None:
        raise ValueError("etcd_pod needs local etcd")
    local = spec.etcd_local
    certs_dir = f"{spec.cert_dir}/etcd"
    host, probe_port, scheme = etcd_probe_endpoint(spec)
    named = _uses_named_probe_port(spec)
    port: int | str = PROBE_PORT_NAME if named else probe_port
    repo = local.image_repository or spec.image_repository
    container: dict[str, Any] = {
        "command": etcd_command(spec, initial_cluster=initial_cluster),
        "image": f"{repo}/etcd:{etcd_image_tag(spec)}",
        "imagePullPolicy": "IfNotPresent",
        "name": ETCD,
        "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}},
        # etcd writes both: mounted read-write, in this literal order (not sorted, unlike volumes).
        "volumeMounts": [_mount("etcd-data", local.data_dir, False), _mount("etcd-certs", certs_dir, False)],
    }
    if spec.version.at_least(31):
        # v1.31+ (kubernetes PR #124465): /livez and /readyz, needs etcd >= 3.5.11.
        container["livenessProbe"] = liveness_probe(host, "/livez", port, scheme)
        container["readinessProbe"] = readiness_probe(host, "/readyz", port, scheme)
        container["startupProbe"] = startup_probe(host, "/readyz", port, scheme)
    else:
        container["livenessProbe"] = liveness_probe(host, "/health?exclude=NOSPACE&serializable=true", port, scheme)
        container["startupProbe"] = startup_probe(host, "/health?serializable=false", port, scheme)
    env = merge_env(local.extra_envs if spec.version.at_least(31) else ())
    if env:
        container["env"] = env
    volumes = [
        _volume("etcd-certs", certs_dir, "DirectoryOrCreate"),
        _volume("etcd-data", local.data_dir, "DirectoryOrCreate"),
    ]
    annotations = {"kubeadm.kubernetes.io/etcd.advertise-client-urls":
                   f"https://{join_host_port(spec.advertise_address, ETCD_CLIENT_PORT)}"}
    return _component_pod(ETCD, container, volumes, annotations, probe_port, named)


def etcd_systemd_unit(spec: ClusterSpec, *, binary: str = "/usr/bin/etcd", binary_version: str | None = None) -> str:
    """etcd_mode=host: a systemd unit running etcd with exactly the static Pod's flags (Kubespray style),
    in the flag dialect of the etcd binary installed on the node (binary_version)."""
    # systemd expands %-specifiers in ExecStart; a literal % must be doubled.
    flags = [f.replace("%", "%%") for f in etcd_command(spec, binary_version=binary_version)[1:]]
    return render_template("etcd/etcd.service.j2", binary=binary, flags=flags)


def audit_policy() -> bytes:
    """The audit Policy written to AUDIT_POLICY_PATH when hardening.audit_log is on."""
    return render_template("audit/policy.yaml").encode()


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
    return to_yaml(pod, creation_timestamp=not spec.version.at_least(34))


def control_plane_manifests(spec: ClusterSpec, path_exists: PathExists, *, external_ca: bool = False,
                            environ: Mapping[str, str] | None = None) -> dict[str, bytes]:
    """component name -> manifest bytes, for the three control-plane components."""
    return {
        KUBE_APISERVER: pod_yaml(spec, apiserver_pod(spec, path_exists, environ=environ)),
        KUBE_CONTROLLER_MANAGER: pod_yaml(
            spec, controller_manager_pod(spec, path_exists, external_ca=external_ca, environ=environ)),
        KUBE_SCHEDULER: pod_yaml(spec, scheduler_pod(spec, environ=environ)),
    }


def etcd_manifest(spec: ClusterSpec) -> bytes:
    return pod_yaml(spec, etcd_pod(spec))
