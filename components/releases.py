"""The releases table: one line per Kubernetes release that `make components` builds.

Adding a release is one line here plus `make components-pin RELEASE=vX.Y.Z`, which writes that
release's go.mod/go.sum files under components/modules/vX.Y.Z/. etcd and CoreDNS are not in the
table: `components-pin` reads the versions kubeadm pins from the release's own constants.go.
"""

from __future__ import annotations

from dataclasses import dataclass

FULL = "full"  # every binary, the node tools and the images kubeadm pulls
KUBEADM_ONLY = "kubeadm-only"  # the kubeadm binary alone (for version-skew work on other minors)

# Node tools shared by the full releases unless a line says otherwise.
# containerd: RELEASES.md of containerd v2.4.2 recommends 2.4.0+ or 2.3.0+ for Kubernetes 1.37 and
# 2.3.0+ or 2.2.0+ for 1.36, so the 2.3 LTS line serves both (v2.3.7: newest 2.3 the proxy serves).
# Debian bookworm's containerd 1.6.20 is older than any containerd either release supports.
CONTAINERD = "v2.3.7"
RUNC = "v1.5.3"  # containerd v2.3.7 is tested with runc v1.5.2 (script/setup/runc-version); 1.5.3 is its patch
CNI_PLUGINS = "v1.10.0"
# The pod network (Kubespray's kube_network_plugin: kube-router). v2.1.0 is the only version of
# github.com/cloudnativelabs/kube-router/v2 the Go module proxy lists; v2.11.1 (the newest upstream
# tag) and v2.1.1 (Kubespray's kube_router_version) are refused (403). It is built with client-go
# v0.29.2 and uses only GA APIs (core/v1, discovery/v1 EndpointSlices, networking/v1
# NetworkPolicies), which v1.36 and v1.37 API servers still serve.
KUBE_ROUTER = "v2.1.0"
# flannel is built only on request (`--with flannel`): v0.28.10's main.go imports its tencentvpc
# backend unconditionally, which needs github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc
# v1.3.188, and the Go module proxy refuses that module (403). No substitute is used.
FLANNEL = "v0.28.10"
OPTIONAL_UNITS = ("flannel",)


@dataclass(frozen=True)
class Release:
    kubernetes: str
    scope: str = FULL
    cri_tools: str | None = None  # crictl follows the Kubernetes minor
    containerd: str = CONTAINERD
    runc: str = RUNC
    cni_plugins: str = CNI_PLUGINS
    kube_router: str = KUBE_ROUTER
    flannel: str = FLANNEL

    def __post_init__(self) -> None:
        if self.scope not in (FULL, KUBEADM_ONLY):
            raise ValueError(f"{self.kubernetes}: unknown scope {self.scope!r}")
        if self.scope == FULL and not self.cri_tools:
            raise ValueError(f"{self.kubernetes}: a full release needs its cri_tools version")


RELEASES: tuple[Release, ...] = (
    Release("v1.37.2", cri_tools="v1.37.0"),
    Release("v1.36.3", cri_tools="v1.36.0"),
    Release("v1.35.4", scope=KUBEADM_ONLY),  # the oldest supported minor: kubeadm for the oracle
)
DEFAULT_RELEASE = "v1.37.2"


def get(name: str) -> Release:
    for r in RELEASES:
        if r.kubernetes == name:
            return r
    known = ", ".join(r.kubernetes for r in RELEASES)
    raise KeyError(f"{name} is not in components/releases.py (known: {known})")
