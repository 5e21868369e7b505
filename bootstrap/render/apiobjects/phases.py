"""`kubeadm init`'s phases: names, help, sub-phases and order, per Kubernetes minor
(kubeadm cmd/init.go newCmdInit and cmd/phases/init/*.go).

Sub-phases are given for the phases that talk to the API server; for the others (certs, kubeconfig,
etcd, control-plane) bootstrap/phases/tree.py already has kubeadm's. An `all` sub-phase runs its
siblings and is not listed by `kubeadm init --help`; neither is a hidden phase, which still runs.

Changes between minors:
- v1.27: kubelet-start ran before control-plane and etcd; from v1.28 after them.
- v1.27-v1.29: wait-control-plane had no help text; hidden until v1.33, listed from v1.34.
- kubelet-finalize/experimental-cert-rotation became enable-client-cert-rotation in v1.31 (both there,
  the old one deprecated) and was removed in v1.32.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PhaseInfo:
    name: str
    help: str
    children: tuple[PhaseInfo, ...] = ()
    aliases: tuple[str, ...] = ()
    hidden: bool = False  # runs, but `kubeadm init --help` does not list it
    needs_api_server: bool = False
    runs_siblings: bool = False  # an `all` sub-phase

    @property
    def listed(self) -> bool:
        return not (self.hidden or self.runs_siblings)


def _all(help_text: str) -> PhaseInfo:
    return PhaseInfo("all", help_text, runs_siblings=True, needs_api_server=True)


def _api(name: str, help_text: str, *children: PhaseInfo, aliases: tuple[str, ...] = (),
         hidden: bool = False) -> PhaseInfo:
    return PhaseInfo(name, help_text, tuple(children), aliases, hidden, needs_api_server=True)


def _sub(name: str, help_text: str) -> PhaseInfo:
    return PhaseInfo(name, help_text, needs_api_server=True)


def api_phases(minor: int) -> tuple[PhaseInfo, ...]:
    """The phases after kubelet-start, in order: every one needs a running kube-apiserver."""
    rotation = "Enable kubelet client certificate rotation"
    finalize: tuple[PhaseInfo, ...]
    if minor <= 30:
        finalize = (_sub("experimental-cert-rotation", rotation),)
    elif minor == 31:
        finalize = (_sub("enable-client-cert-rotation", rotation),
                    _sub("experimental-cert-rotation",
                         f"{rotation} (DEPRECATED: use 'enable-client-cert-rotation' instead)"))
    else:
        finalize = (_sub("enable-client-cert-rotation", rotation),)
    return (
        _api("wait-control-plane", "" if minor <= 29 else "Wait for the control plane to start", hidden=minor <= 33),
        _api("upload-config", "Upload the kubeadm and kubelet configuration to a ConfigMap",
             _all("Upload all configuration to a config map"),
             _sub("kubeadm", "Upload the kubeadm ClusterConfiguration to a ConfigMap"),
             _sub("kubelet", "Upload the kubelet component config to a ConfigMap"),
             aliases=("uploadconfig",)),
        _api("upload-certs", "Upload certificates to kubeadm-certs"),
        _api("mark-control-plane", "Mark a node as a control-plane"),
        _api("bootstrap-token", "Generates bootstrap tokens used to join a node to a cluster",
             aliases=("bootstraptoken",)),
        _api("kubelet-finalize", "Updates settings relevant to the kubelet after TLS bootstrap",
             _all("Run all kubelet-finalize phases"), *finalize),
        _api("addon", "Install required addons for passing conformance tests",
             _all("Install all the addons"),
             _sub("coredns", "Install the CoreDNS addon to a Kubernetes cluster"),
             _sub("kube-proxy", "Install the kube-proxy addon to a Kubernetes cluster")),
        _api("show-join-command", "Show the join command for control-plane and worker node"),
    )


def init_phases(minor: int) -> tuple[PhaseInfo, ...]:
    """Every top-level phase of `kubeadm init` for a Kubernetes minor, in the order it runs them."""
    preflight = PhaseInfo("preflight", "Run pre-flight checks")
    certs = PhaseInfo("certs", "Certificate generation")
    kubeconfig = PhaseInfo("kubeconfig", "Generate all kubeconfig files necessary to establish the control plane "
                                         "and the admin kubeconfig file")
    etcd = PhaseInfo("etcd", "Generate static Pod manifest file for local etcd")
    control_plane = PhaseInfo("control-plane",
                              "Generate all static Pod manifest files necessary to establish the control plane")
    kubelet_start = PhaseInfo("kubelet-start", "Write kubelet settings and (re)start the kubelet")
    if minor <= 27:
        local = (preflight, certs, kubeconfig, kubelet_start, control_plane, etcd)
    else:
        local = (preflight, certs, kubeconfig, etcd, control_plane, kubelet_start)
    return local + api_phases(minor)
