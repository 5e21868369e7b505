"""What `kubeadm config images list` and `kubeadm config print init-defaults|join-defaults` print.

Images come from the same functions that render the static pods and addons (so the list is the one
a run uses); the order and the rules are kubeadm's images.GetControlPlaneImages: kube-proxy only
when proxy is not disabled, CoreDNS only when dns is not disabled, pause from imageRepository,
etcd only for local etcd (its own imageRepository and imageTag override). The defaults documents
are kubeadm's v1beta4 defaults (cmd/kubeadm/app/apis/kubeadm/v1beta4/defaults.go and the
placeholders of cmd/config.go), with the release's x.0 as kubernetesVersion, as kubeadm prints it.
The static defaults themselves (the values below) are also what `config migrate` fills in
(render/kubeadm_migrate.py), so each is written once.
"""

from __future__ import annotations

import socket
from typing import Any

from bootstrap.render.apiobjects.coredns import coredns_image
from bootstrap.render.apiobjects.kubeproxy import kube_proxy_image
from bootstrap.render.etcd import etcd_image_tag
from bootstrap.render.node import sandbox_image
from bootstrap.render.podspec import component_image
from bootstrap.spec.model import DEFAULT_CRI_SOCKET, ClusterSpec
from bootstrap.versions import KubeVersion

IMAGES_API_VERSION = "output.kubeadm.k8s.io/v1alpha3"
KUBEADM_V1BETA4 = "kubeadm.k8s.io/v1beta4"
PRINT_MIN_MINOR = 31  # v1beta4: what every supported release prints
PLACEHOLDER_TOKEN = "abcdef.0123456789abcdef"  # kubeadm's own placeholder, never a real token
PLACEHOLDER_ADDRESS = "1.2.3.4"
TIMEOUTS = {
    "controlPlaneComponentHealthCheck": "4m0s",
    "discovery": "5m0s",
    "etcdAPICall": "2m0s",
    "kubeletHealthCheck": "4m0s",
    "kubernetesAPICall": "1m0s",
    "tlsBootstrap": "5m0s",
    "upgradeManifests": "5m0s",
}
# v1beta4 defaults.go (SetDefaults_*) and bootstraptoken/v1 defaults, as kubeadm prints them.
BIND_PORT = 6443
CA_CERT_PATH = "/etc/kubernetes/pki/ca.crt"
CERTIFICATES_DIR = "/etc/kubernetes/pki"
ETCD_DATA_DIR = "/var/lib/etcd"
SERVICE_SUBNET = "10.96.0.0/12"
DNS_DOMAIN = "cluster.local"
IMAGE_REPOSITORY = "registry.k8s.io"
CLUSTER_NAME = "kubernetes"
ENCRYPTION_ALGORITHM = "RSA-2048"
CERTIFICATE_VALIDITY = "8760h0m0s"
CA_CERTIFICATE_VALIDITY = "87600h0m0s"
IMAGE_PULL_POLICY = "IfNotPresent"
TOKEN_TTL = "24h0m0s"
TOKEN_USAGES = ("signing", "authentication")
TOKEN_GROUPS = ("system:bootstrappers:kubeadm:default-node-token",)
CONTROL_PLANE_TAINT = {"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"}
# SetDefaults_UpgradeConfiguration: the *bool and pull settings each upgrade subcommand defaults.
UPGRADE_DEFAULTS: dict[str, dict[str, Any]] = {
    "apply": {"certificateRenewal": True, "etcdUpgrade": True, "imagePullPolicy": IMAGE_PULL_POLICY,
              "imagePullSerial": True},
    "node": {"certificateRenewal": True, "etcdUpgrade": True, "imagePullPolicy": IMAGE_PULL_POLICY,
             "imagePullSerial": True},
    "plan": {"etcdUpgrade": True},
}


def control_plane_images(spec: ClusterSpec) -> list[str]:
    images = [component_image(spec, c) for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")]
    if not spec.proxy_disabled:
        images.append(kube_proxy_image(spec))
    if not spec.dns.disabled:
        images.append(coredns_image(spec))
    images.append(sandbox_image(spec))
    local = spec.etcd_local
    if local is not None and spec.etcd_external is None:
        images.append(f"{local.image_repository or spec.image_repository}/etcd:{etcd_image_tag(spec)}")
    return images


def images_object(images: list[str]) -> dict[str, Any]:
    """kubeadm's output.kubeadm.k8s.io/v1alpha3 Images, keys in its JSON order."""
    return {"kind": "Images", "apiVersion": IMAGES_API_VERSION, "images": images}


def _node_registration(name: str) -> dict[str, Any]:
    return {"criSocket": DEFAULT_CRI_SOCKET, "imagePullPolicy": IMAGE_PULL_POLICY, "imagePullSerial": True,
            "name": name, "taints": None}


def init_defaults(version: KubeVersion) -> list[dict[str, Any]]:
    """InitConfiguration and ClusterConfiguration, as `kubeadm config print init-defaults`."""
    init = {
        "apiVersion": KUBEADM_V1BETA4,
        "bootstrapTokens": [{"groups": list(TOKEN_GROUPS), "token": PLACEHOLDER_TOKEN, "ttl": TOKEN_TTL,
                             "usages": list(TOKEN_USAGES)}],
        "kind": "InitConfiguration",
        "localAPIEndpoint": {"advertiseAddress": PLACEHOLDER_ADDRESS, "bindPort": BIND_PORT},
        "nodeRegistration": _node_registration("node"),
        "timeouts": dict(TIMEOUTS),
    }
    cluster = {
        "apiServer": {},
        "apiVersion": KUBEADM_V1BETA4,
        "caCertificateValidityPeriod": CA_CERTIFICATE_VALIDITY,
        "certificateValidityPeriod": CERTIFICATE_VALIDITY,
        "certificatesDir": CERTIFICATES_DIR,
        "clusterName": CLUSTER_NAME,
        "controllerManager": {},
        "dns": {},
        "encryptionAlgorithm": ENCRYPTION_ALGORITHM,
        "etcd": {"local": {"dataDir": ETCD_DATA_DIR}},
        "imageRepository": IMAGE_REPOSITORY,
        "kind": "ClusterConfiguration",
        "kubernetesVersion": f"{version.major}.{version.minor}.0",
        "networking": {"dnsDomain": DNS_DOMAIN, "serviceSubnet": SERVICE_SUBNET},
        "proxy": {},
        "scheduler": {},
    }
    return [init, cluster]


def join_defaults(node_name: str | None = None) -> list[dict[str, Any]]:
    """JoinConfiguration, as `kubeadm config print join-defaults` (the node name is this host's)."""
    return [{
        "apiVersion": KUBEADM_V1BETA4,
        "caCertPath": CA_CERT_PATH,
        "discovery": {"bootstrapToken": {"apiServerEndpoint": "kube-apiserver:6443", "token": PLACEHOLDER_TOKEN,
                                         "unsafeSkipCAVerification": True},
                      "tlsBootstrapToken": PLACEHOLDER_TOKEN},
        "kind": "JoinConfiguration",
        "nodeRegistration": _node_registration(node_name or socket.gethostname().lower()),
        "timeouts": dict(TIMEOUTS),
    }]
