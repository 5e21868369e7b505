"""Static Pod manifests for the control plane and local etcd, shaped exactly as kubeadm writes them.

Pure functions: spec (+ what kubeadm would look at on the node) -> Pod dict -> YAML bytes. Nothing
here touches a filesystem; the phases decide where bytes go. kubeadm.md section 3 is the contract;
where it was outdated the kubeadm source won (noted inline).

Our only deliberate differences are the CIS hardening items in `spec.hardening` (docs/hardening.md);
with `Hardening.kubeadm()` the bytes are kubeadm's.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from typing import Any

from bootstrap.render.podspec import (
    AUDIT_LOG_DIR,
    AUDIT_LOG_PATH,
    AUDIT_POLICY_PATH,
    CA_CERTS_EXTRA_PATHS,
    CA_CERTS_PATH,
    CONTROL_PLANE_COMPONENTS,
    ETCD_CLIENT_PORT,
    FLEXVOLUME_DIR,
    KCM_PORT,
    KUBE_APISERVER,
    KUBE_CONTROLLER_MANAGER,
    KUBE_SCHEDULER,
    PROBE_PORT_NAME,
    SCHEDULER_PORT,
    Mounts,
    PathExists,
    Pod,
    arg_value,
    arguments_to_command,
    component_image,
    component_pod,
    join_host_port,
    liveness_probe,
    merge_env,
    pod_yaml,
    probe_address,
    proxy_env,
    readiness_probe,
    set_arg,
    startup_probe,
    uses_named_probe_port,
)
from bootstrap.render.templates import render_template
from bootstrap.spec.model import KUBERNETES_DIR, ClusterSpec, EnvVar


def member_client_url(peer_url: str) -> str:
    """https://IP:2380 -> https://IP:2379."""
    base, _, _ = peer_url.rpartition(":")
    return f"{base}:{ETCD_CLIENT_PORT}"


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
        set_arg(args, "etcd-servers", ",".join(ext.endpoints))
        if ext.ca_file:
            set_arg(args, "etcd-cafile", ext.ca_file)
        if ext.cert_file and ext.key_file:
            set_arg(args, "etcd-certfile", ext.cert_file)
            set_arg(args, "etcd-keyfile", ext.key_file)
    else:
        local = "::1" if spec.advertise_is_ipv6 else "127.0.0.1"
        set_arg(args, "etcd-servers", f"https://{join_host_port(local, ETCD_CLIENT_PORT)}")
        if spec.etcd_members and all(m.name != spec.node.name for m in spec.etcd_members):
            # A fleet whose etcd runs on other hosts (Kubespray's separate etcd group): no member
            # listens here, so every member's client URL, as Kubespray's etcd_access_addresses.
            set_arg(args, "etcd-servers", ",".join(member_client_url(m.peer_url) for m in spec.etcd_members))
        set_arg(args, "etcd-cafile", f"{pki}/etcd/ca.crt")
        set_arg(args, "etcd-certfile", f"{pki}/apiserver-etcd-client.crt")
        set_arg(args, "etcd-keyfile", f"{pki}/apiserver-etcd-client.key")
        if spec.etcd_local is not None:
            adv_urls = arg_value(spec.etcd_local.extra_args, "advertise-client-urls")
            if adv_urls is not None:
                set_arg(args, "etcd-servers", adv_urls)
    if arg_value(spec.api_server.extra_args, "authorization-config") is None:
        set_arg(args, "authorization-mode", "Node,RBAC")
    h = spec.hardening
    if h.disable_profiling:
        set_arg(args, "profiling", "false")
    if h.audit_log:
        set_arg(args, "audit-log-path", AUDIT_LOG_PATH)
        set_arg(args, "audit-log-maxage", "30")
        set_arg(args, "audit-log-maxbackup", "10")
        set_arg(args, "audit-log-maxsize", "100")
        set_arg(args, "audit-policy-file", AUDIT_POLICY_PATH)
    return [KUBE_APISERVER, *arguments_to_command(spec, args, spec.api_server.extra_args)]


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


def _control_plane_mounts(spec: ClusterSpec, path_exists: PathExists) -> dict[str, Mounts]:
    """kubeadm getHostPathVolumesForTheControlPlane, plus our audit mounts when hardened."""
    m = {c: Mounts() for c in CONTROL_PLANE_COMPONENTS}
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
    if not spec.version.at_least(36):  # kubeadm v1.36 dropped the flexvolume mount (its volumes.go)
        flex = arg_value(spec.controller_manager.extra_args, "flex-volume-plugin-dir") or FLEXVOLUME_DIR
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
    named = uses_named_probe_port(spec)
    port: int | str = PROBE_PORT_NAME if named else spec.bind_port
    host = probe_address(spec.advertise_address)
    container: dict[str, Any] = {
        "command": apiserver_command(spec),
        "image": component_image(spec, KUBE_APISERVER),
        "imagePullPolicy": "IfNotPresent",
        "livenessProbe": liveness_probe(host, "/livez", port, "HTTPS"),
        "name": KUBE_APISERVER,
        "readinessProbe": readiness_probe(host, "/readyz", port, "HTTPS"),
        "resources": {"requests": {"cpu": "250m"}},
        "startupProbe": startup_probe(host, "/livez", port, "HTTPS"),
        "volumeMounts": mounts.sorted_mounts(),
    }
    _put_env(container, spec, proxy_env(spec, environ), spec.api_server.extra_envs)
    annotations = {
        "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint":
            join_host_port(spec.advertise_address, spec.bind_port),
    }
    return component_pod(KUBE_APISERVER, container, mounts.sorted_volumes(), annotations, spec.bind_port, named)


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
        set_arg(args, "cluster-signing-key-file", "")
        set_arg(args, "cluster-signing-cert-file", "")
    if spec.networking.pod_subnet:
        set_arg(args, "allocate-node-cidrs", "true")
        set_arg(args, "cluster-cidr", spec.networking.pod_subnet)
        if spec.networking.service_subnet:
            set_arg(args, "service-cluster-ip-range", spec.networking.service_subnet)
    if spec.cluster_name:
        set_arg(args, "cluster-name", spec.cluster_name)
    if spec.hardening.disable_profiling:
        set_arg(args, "profiling", "false")
    return [KUBE_CONTROLLER_MANAGER, *arguments_to_command(spec, args, spec.controller_manager.extra_args)]


def controller_manager_pod(spec: ClusterSpec, path_exists: PathExists, *, external_ca: bool = False,
                           environ: Mapping[str, str] | None = None) -> Pod:
    mounts = _control_plane_mounts(spec, path_exists)[KUBE_CONTROLLER_MANAGER]
    named = uses_named_probe_port(spec)
    port: int | str = PROBE_PORT_NAME if named else KCM_PORT
    bind = arg_value(spec.controller_manager.extra_args, "bind-address")
    host = probe_address(bind) if bind is not None else "127.0.0.1"
    container: dict[str, Any] = {
        "command": controller_manager_command(spec, external_ca=external_ca),
        "image": component_image(spec, KUBE_CONTROLLER_MANAGER),
        "imagePullPolicy": "IfNotPresent",
        "livenessProbe": liveness_probe(host, "/healthz", port, "HTTPS"),
        "name": KUBE_CONTROLLER_MANAGER,
        "resources": {"requests": {"cpu": "200m"}},
        "startupProbe": startup_probe(host, "/healthz", port, "HTTPS"),
        "volumeMounts": mounts.sorted_mounts(),
    }
    _put_env(container, spec, proxy_env(spec, environ), spec.controller_manager.extra_envs)
    return component_pod(KUBE_CONTROLLER_MANAGER, container, mounts.sorted_volumes(), None, KCM_PORT, named)


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
        set_arg(args, "profiling", "false")
    return [KUBE_SCHEDULER, *arguments_to_command(spec, args, spec.scheduler.extra_args)]


def scheduler_pod(spec: ClusterSpec, *, environ: Mapping[str, str] | None = None) -> Pod:
    mounts = _control_plane_mounts(spec, lambda _p: False)[KUBE_SCHEDULER]
    named = uses_named_probe_port(spec)
    port: int | str = PROBE_PORT_NAME if named else SCHEDULER_PORT
    bind = arg_value(spec.scheduler.extra_args, "bind-address")
    host = probe_address(bind) if bind is not None else "127.0.0.1"
    container: dict[str, Any] = {
        "command": scheduler_command(spec),
        "image": component_image(spec, KUBE_SCHEDULER),
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
    _put_env(container, spec, proxy_env(spec, environ), spec.scheduler.extra_envs)
    return component_pod(KUBE_SCHEDULER, container, mounts.sorted_volumes(), None, SCHEDULER_PORT, named)


# ---- etcd ------------------------------------------------------------------------------------------


def audit_policy() -> bytes:
    """The audit Policy written to AUDIT_POLICY_PATH when hardening.audit_log is on."""
    return render_template("audit/policy.yaml").encode()


def control_plane_manifests(spec: ClusterSpec, path_exists: PathExists, *, external_ca: bool = False,
                            environ: Mapping[str, str] | None = None) -> dict[str, bytes]:
    """component name -> manifest bytes, for the three control-plane components."""
    return {
        KUBE_APISERVER: pod_yaml(spec, apiserver_pod(spec, path_exists, environ=environ)),
        KUBE_CONTROLLER_MANAGER: pod_yaml(
            spec, controller_manager_pod(spec, path_exists, external_ca=external_ca, environ=environ)),
        KUBE_SCHEDULER: pod_yaml(spec, scheduler_pod(spec, environ=environ)),
    }


