"""Local etcd as kubeadm runs it: its static Pod, or (etcd_mode=host) a systemd unit with exactly the
same flags, in the flag dialect of the etcd binary installed. Pure functions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from bootstrap.render.podspec import (
    ETCD,
    ETCD_CLIENT_PORT,
    ETCD_METRICS_PORT,
    ETCD_PEER_PORT,
    PROBE_PORT_NAME,
    Pod,
    arg_value,
    arguments_to_command,
    component_pod,
    join_host_port,
    liveness_probe,
    merge_env,
    mount,
    pod_yaml,
    readiness_probe,
    set_arg,
    startup_probe,
    uses_named_probe_port,
    volume,
)
from bootstrap.render.templates import render_template
from bootstrap.spec.model import ClusterSpec

ETCD_SYSTEMD_UNIT_PATH = "/etc/systemd/system/etcd.service"


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


def member_client_url(spec: ClusterSpec) -> str:
    """The client URL this node's member advertises (how the cluster lists it)."""
    return f"https://{join_host_port(spec.advertise_address, ETCD_CLIENT_PORT)}"


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
    client_url = member_client_url(spec)
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
        set_arg(args, "initial-cluster", ",".join(f"{n}={u}" for n, u in initial_cluster))
        set_arg(args, "initial-cluster-state", "existing")
    elif spec.etcd_members:
        # A fleet run: every member is known up front. "new" when they bootstrap together, "existing"
        # once the cluster runs (kubeadm's join semantics); etcd ignores the list after bootstrap.
        set_arg(args, "initial-cluster", ",".join(f"{m.name}={m.peer_url}" for m in spec.etcd_members))
        if spec.etcd_initial_cluster_state == "existing":
            set_arg(args, "initial-cluster-state", "existing")
    else:
        set_arg(args, "initial-cluster", f"{name}={peer_url}")
    return [ETCD, *arguments_to_command(spec, args, spec.etcd_local.extra_args)]


def etcd_probe_endpoint(spec: ClusterSpec) -> tuple[str, int, str]:
    """kubeadm GetEtcdProbeEndpoint: first listen-metrics-urls extraArg, else localhost:2381 over HTTP."""
    localhost = "::1" if spec.advertise_is_ipv6 else "127.0.0.1"
    value = arg_value(spec.etcd_local.extra_args, "listen-metrics-urls") if spec.etcd_local else None
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
    named = uses_named_probe_port(spec)
    port: int | str = PROBE_PORT_NAME if named else probe_port
    repo = local.image_repository or spec.image_repository
    container: dict[str, Any] = {
        "command": etcd_command(spec, initial_cluster=initial_cluster),
        "image": f"{repo}/etcd:{etcd_image_tag(spec)}",
        "imagePullPolicy": "IfNotPresent",
        "name": ETCD,
        "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}},
        # etcd writes both: mounted read-write, in this literal order (not sorted, unlike volumes).
        "volumeMounts": [mount("etcd-data", local.data_dir, False), mount("etcd-certs", certs_dir, False)],
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
        volume("etcd-certs", certs_dir, "DirectoryOrCreate"),
        volume("etcd-data", local.data_dir, "DirectoryOrCreate"),
    ]
    annotations = {"kubeadm.kubernetes.io/etcd.advertise-client-urls":
                   f"https://{join_host_port(spec.advertise_address, ETCD_CLIENT_PORT)}"}
    return component_pod(ETCD, container, volumes, annotations, probe_port, named)


def etcd_systemd_unit(spec: ClusterSpec, *, binary: str = "/usr/bin/etcd", binary_version: str | None = None) -> str:
    """etcd_mode=host: a systemd unit running etcd with exactly the static Pod's flags (Kubespray style),
    in the flag dialect of the etcd binary installed on the node (binary_version)."""
    # systemd expands %-specifiers in ExecStart; a literal % must be doubled.
    flags = [f.replace("%", "%%") for f in etcd_command(spec, binary_version=binary_version)[1:]]
    return render_template("etcd/etcd.service.j2", binary=binary, flags=flags)



def etcd_manifest(spec: ClusterSpec) -> bytes:
    return pod_yaml(spec, etcd_pod(spec))

