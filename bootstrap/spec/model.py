"""ClusterSpec: the one validated, immutable description of what to build.

Built once from flags, a kubeadm config file and/or an inventory (see spec/load.py), never mutated.
Facts discovered on hosts live beside it, not in it. Field names are snake_case versions of
kubeadm's v1beta4 names so a reader can map them one to one.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bootstrap.spec.endpoint import EndpointSpec
from bootstrap.versions import DEFAULT_KUBERNETES_VERSION, KubeVersion

DEFAULT_CERT_DIR = "/etc/kubernetes/pki"
KUBERNETES_DIR = "/etc/kubernetes"
MANIFESTS_DIR = "/etc/kubernetes/manifests"
KUBELET_DIR = "/var/lib/kubelet"
DEFAULT_CRI_SOCKET = "unix:///var/run/containerd/containerd.sock"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EncryptionAlgorithm(StrEnum):
    RSA_2048 = "RSA-2048"
    RSA_3072 = "RSA-3072"
    RSA_4096 = "RSA-4096"
    ECDSA_P256 = "ECDSA-P256"
    ECDSA_P384 = "ECDSA-P384"


class Arg(Frozen):
    """One component flag (`--name=value`), as kubeadm v1beta4's extraArgs entries."""

    name: str
    value: str


class HostPathMount(Frozen):
    name: str
    host_path: str
    mount_path: str
    read_only: bool = False
    path_type: str = ""


class EnvVar(Frozen):
    name: str
    value: str


class Component(Frozen):
    """apiServer / controllerManager / scheduler / etcd.local shared knobs."""

    extra_args: tuple[Arg, ...] = ()
    extra_volumes: tuple[HostPathMount, ...] = ()
    extra_envs: tuple[EnvVar, ...] = ()


class APIServer(Component):
    cert_sans: tuple[str, ...] = ()


class LocalEtcd(Component):
    data_dir: str = "/var/lib/etcd"
    image_repository: str = ""
    image_tag: str = ""
    server_cert_sans: tuple[str, ...] = ()
    peer_cert_sans: tuple[str, ...] = ()


class DNSAddon(Frozen):
    """ClusterConfiguration.dns: the CoreDNS addon (disabled: the addon/coredns phase is skipped)."""

    disabled: bool = False
    image_repository: str = ""  # default: the cluster's imageRepository
    image_tag: str = ""  # default: the CoreDNS version kubeadm pins


class EtcdMember(Frozen):
    name: str
    peer_url: str  # https://IP:2380


class ExternalEtcd(Frozen):
    endpoints: tuple[str, ...]
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""


class EtcdMode(StrEnum):
    STATIC_POD = "static-pod"  # kubeadm's default: a static pod run by the kubelet
    HOST = "host"  # Kubespray's default: a systemd unit with the same flags


class Networking(Frozen):
    service_subnet: str = "10.96.0.0/12"
    pod_subnet: str = ""
    dns_domain: str = "cluster.local"

    def service_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(s.strip(), strict=False) for s in self.service_subnet.split(",")]

    def api_service_ip(self) -> str:
        """First address of the first service CIDR (kubeadm GetAPIServerVirtualIP)."""
        return str(self.service_networks()[0].network_address + 1)

    def dns_service_ip(self) -> str:
        """Tenth address of the first service CIDR (kubeadm GetDNSIP)."""
        return str(self.service_networks()[0].network_address + 10)


class Taint(Frozen):
    key: str
    value: str = ""
    effect: str


class NodeRegistration(Frozen):
    name: str
    cri_socket: str = DEFAULT_CRI_SOCKET
    taints: tuple[Taint, ...] | None = None  # None: kubeadm's default control-plane taint
    kubelet_extra_args: tuple[Arg, ...] = ()
    ignore_preflight_errors: tuple[str, ...] = ()


class BootstrapToken(Frozen):
    token: str
    description: str = ""
    ttl: timedelta | None = timedelta(hours=24)
    usages: tuple[str, ...] = ("signing", "authentication")
    groups: tuple[str, ...] = ("system:bootstrappers:kubeadm:default-node-token",)


class Hardening(Frozen):
    """Where we deliberately differ from kubeadm to pass the CIS Kubernetes Benchmark.

    `profile: kubeadm` switches every item back to kubeadm's behaviour; each item can also be
    switched alone. See docs/hardening.md for the CIS check each item answers.
    """

    profile: str = "cis"  # cis | kubeadm
    disable_profiling: bool = True  # CIS 1.2.15, 1.3.2, 1.4.1: --profiling=false
    audit_log: bool = True  # CIS 1.2.16-1.2.19: audit log path, maxage, maxbackup, maxsize + policy
    cert_file_mode: int = 0o600  # CIS 1.1.20: PKI *.crt 0600 (kubeadm writes 0644)
    kubelet_config_mode: int = 0o600  # CIS 4.1.9: /var/lib/kubelet/config.yaml (kubeadm 0644)
    kubelet_unit_mode: int = 0o600  # CIS 4.1.1: kubelet unit + drop-in (deb package ships 0644)
    etcd_data_dir_mode: int = 0o700  # CIS 1.1.11

    @classmethod
    def kubeadm(cls) -> Hardening:
        return cls(
            profile="kubeadm",
            disable_profiling=False,
            audit_log=False,
            cert_file_mode=0o644,
            kubelet_config_mode=0o644,
            kubelet_unit_mode=0o644,
            etcd_data_dir_mode=0o700,
        )


class ContainerRuntime(Frozen):
    """containerd settings beyond kubeadm's, from the inventory: registry mirrors (Kubespray's
    `containerd_registries_mirrors`, validated by render/containerd_registry.py), the CA those
    mirrors' certificates come from (`kbootstrap_registry_ca`, PEM), and containerd's
    restrict_oom_score_adj for nodes that may not lower OOM scores (a container host without
    CAP_SYS_RESOURCE: `kbootstrap_containerd_restrict_oom_score_adj`)."""

    registries_mirrors: tuple[dict[str, Any], ...] = ()
    registry_ca_pem: str = ""
    restrict_oom_score_adj: bool = False


NETWORK_PLUGINS = ("kube-router", "none", "cni")
KUBE_ROUTER_IMAGE = "docker.io/cloudnativelabs/kube-router:v2.1.0"  # components/releases.py KUBE_ROUTER


class PodNetwork(Frozen):
    """The pod network kbootstrap installs (Kubespray's `kube_network_plugin`): kube-router, or none /
    cni for one the user brings (Cilium via Helm, ...). Single-node init defaults to none, as kubeadm
    (it installs no network); inventories to kube-router (docs/network.md says why not flannel).
    The kube_router_* switches are Kubespray's."""

    plugin: str = "none"
    run_firewall: bool = True  # kube_router_run_firewall: network policies
    run_service_proxy: bool = False  # kube_router_run_service_proxy: IPVS instead of kube-proxy
    hairpin_mode: bool = False  # kube_router_support_hairpin_mode
    image: str = KUBE_ROUTER_IMAGE  # kube_router_image_repo:v{kube_router_version}


class PatchSet(Frozen):
    """One file of kubeadm's patches directory: its target, its patch type and its documents."""

    file: str  # the file's name, for messages
    target: str  # etcd, kube-apiserver, ..., kubeletconfiguration, corednsdeployment, kubeproxydaemonset
    patch_type: str  # strategic | merge | json
    patches: tuple[Any, ...]  # each document, decoded


class ClusterSpec(Frozen):
    """Everything `kbootstrap init` needs for one control-plane node (and, later, a fleet)."""

    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
    cluster_name: str = "kubernetes"
    control_plane_endpoint: str = ""  # host[:port]; empty: the local API endpoint
    advertise_address: str
    bind_port: int = 6443
    node: NodeRegistration
    networking: Networking = Networking()
    cert_dir: str = DEFAULT_CERT_DIR
    image_repository: str = "registry.k8s.io"
    api_server: APIServer = APIServer()
    controller_manager: Component = Component()
    scheduler: Component = Component()
    etcd_local: LocalEtcd | None = LocalEtcd()
    etcd_external: ExternalEtcd | None = None
    etcd_mode: EtcdMode = EtcdMode.STATIC_POD
    # Fleet runs: every member of a new etcd cluster ("new"), or the members a joining node
    # joins ("existing"). Empty: kubeadm's single-member `--initial-cluster=NODE=https://ADV:2380`.
    etcd_members: tuple[EtcdMember, ...] = ()
    etcd_initial_cluster_state: str = "new"
    encryption_algorithm: EncryptionAlgorithm = EncryptionAlgorithm.RSA_2048
    certificate_validity: timedelta = timedelta(hours=8760)
    ca_certificate_validity: timedelta = timedelta(hours=87600)
    feature_gates: dict[str, bool] = Field(default_factory=dict)
    bootstrap_tokens: tuple[BootstrapToken, ...] = ()
    kubelet_configuration: dict[str, Any] = Field(default_factory=dict)  # user KubeletConfiguration
    # Inventories: KubeletConfiguration fields per role ("control-plane", "worker"), laid under each
    # host's kubelet_configuration by workflow/fleet_spec.node_spec (Kubespray's eviction_hard*).
    kubelet_role_configuration: dict[str, dict[str, Any]] = Field(default_factory=dict)
    kube_proxy_configuration: dict[str, Any] = Field(default_factory=dict)  # user KubeProxyConfiguration
    dns: DNSAddon = DNSAddon()
    proxy_disabled: bool = False  # ClusterConfiguration.proxy.disabled
    network: PodNetwork = PodNetwork()
    skip_phases: tuple[str, ...] = ()
    # patches.directory (or --patches) on the control machine, read once into its patch sets.
    patches_dir: str = ""
    patches: tuple[PatchSet, ...] = ()
    hardening: Hardening = Hardening()
    # Fleet runs: how clients reach the API servers (external LB, VIP, or a localhost proxy on
    # workers); None for a single API server. See spec/endpoint.py and docs/ha.md.
    api_endpoint: EndpointSpec | None = None
    # The *_proxy variables the control-plane static pods get (kubeadm: the environment of the
    # process running init). Single-node: that environment; fleet: the inventory's proxy variables.
    proxy_env: tuple[EnvVar, ...] = ()
    container_runtime: ContainerRuntime = ContainerRuntime()

    # ---- derived values, named as in kubeadm.md -------------------------------------------------
    @property
    def skipped_phases(self) -> tuple[str, ...]:
        """skipPhases plus the addons the ClusterConfiguration disables (kubeadm's manageSkippedAddons)."""
        extra = [name for name, off in (("addon/coredns", self.dns.disabled), ("addon/kube-proxy", self.proxy_disabled))
                 if off and name not in self.skip_phases and "addon" not in self.skip_phases]
        return (*self.skip_phases, *extra)

    def addon_disabled(self, addon: str) -> bool:
        """What the uploaded ClusterConfiguration says: disabled in the file, or its phase skipped."""
        off = self.dns.disabled if addon == "coredns" else self.proxy_disabled
        return off or f"addon/{addon}" in self.skip_phases or "addon" in self.skip_phases

    @property
    def version(self) -> KubeVersion:
        return KubeVersion.parse(self.kubernetes_version)

    @property
    def local_endpoint_url(self) -> str:
        return f"https://{_host_port(self.advertise_address, self.bind_port)}"

    def endpoint_host_port(self) -> tuple[str, int]:
        """controlPlaneEndpoint split; port defaults to bindPort (kubeadm)."""
        if not self.control_plane_endpoint:
            return self.advertise_address, self.bind_port
        return split_host_port(self.control_plane_endpoint, self.bind_port)

    @property
    def control_plane_url(self) -> str:
        host, port = self.endpoint_host_port()
        return f"https://{_host_port(host, port)}"

    @property
    def advertise_is_ipv6(self) -> bool:
        return ipaddress.ip_address(self.advertise_address).version == 6


def split_host_port(text: str, default_port: int) -> tuple[str, int]:
    """'host', 'host:port', '[v6]:port' or a bare IPv6 address -> (host, port). ValueError if bad."""
    text = text.strip()
    if not text:
        raise ValueError("empty")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError("bad bracketed address")
        port_text = rest[1:] if rest else ""
    elif text.count(":") > 1:
        ipaddress.IPv6Address(text)  # a bare IPv6 address, no port
        return text, default_port
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise ValueError("empty host")
    port = int(port_text) if port_text else default_port
    if not 0 < port < 65536:
        raise ValueError("port out of range")
    return host, port


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
