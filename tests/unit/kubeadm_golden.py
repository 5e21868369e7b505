"""Read the kubeadm outputs in tests/golden/apiobjects (captured by capture.py there) back into objects,
and the ClusterSpecs that match the two configs they were made from."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from bootstrap.spec.model import (
    APIServer,
    Arg,
    BootstrapToken,
    ClusterSpec,
    Component,
    EncryptionAlgorithm,
    EnvVar,
    HostPathMount,
    LocalEtcd,
    Networking,
    NodeRegistration,
    Taint,
)

# The fixtures kept in the repo; the lab oracle (tests/lab/test_kubeadm_oracle.py) points these at
# a fresh capture by the real kubeadm of each release instead.
GOLDEN = Path(os.environ.get("KBOOTSTRAP_APIOBJECTS_DIR") or Path(__file__).resolve().parents[1] / "golden" / "apiobjects")
VERSIONS = tuple(os.environ.get("KBOOTSTRAP_APIOBJECTS_VERSIONS", "v1.37.2,v1.36.3").split(","))
CASES = ("basic", "custom")
CERTIFICATE_KEYS = {"basic": "0123456789abcdef" * 4, "custom": "fedcba9876543210" * 4}
# configs/custom.yaml's KubeProxyConfiguration document.
CUSTOM_KUBE_PROXY = {"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
                     "mode": "nftables"}

_ACTION = re.compile(r'^\[dryrun\] Would perform action (\w+) on resource "([^"]+)"', re.M)


@dataclass(frozen=True)
class Action:
    verb: str  # CREATE, GET, PATCH, LIST
    resource: str  # configmaps, clusterrolebindings, ...
    obj: dict[str, Any] | None


def fixture(version: str, case: str, name: str) -> str:
    """A fixture's text without its provenance header (case "": one of the version's own)."""
    text = (GOLDEN / version / case / f"{name}.txt").read_text()
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("# "))


def actions(version: str, case: str, name: str) -> list[Action]:
    """Every API call the dry-run client printed, with the object it attached (if any)."""
    text = fixture(version, case, name)
    out = []
    starts = [m for m in _ACTION.finditer(text)]
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        block = text[m.end():end]
        obj = None
        marker = "[dryrun] Attached object:\n"
        if marker in block:
            body = block.split(marker, 1)[1]
            body = body.split("\n\n", 1)[0]  # the object ends at the first blank line
            obj = yaml.safe_load(body)
        out.append(Action(m[1], m[2], obj))
    return out


def created(version: str, case: str, name: str) -> list[dict[str, Any]]:
    return [a.obj for a in actions(version, case, name) if a.verb == "CREATE" and a.obj is not None]


def without_go_zero_values(obj: Any, top: bool = True) -> Any:
    """The dry-run printer marshals typed Go objects: `status` and empty structs (resources: {})
    appear although kubeadm never set them, and the API server adds them anyway. Dropped here."""
    if isinstance(obj, dict):
        out = {k: without_go_zero_values(v, False) for k, v in obj.items() if not (top and k == "status")}
        return {k: v for k, v in out.items() if v != {}}
    if isinstance(obj, list):
        return [without_go_zero_values(v, False) for v in obj]
    return obj


def ca_pem(version: str, case: str, name: str = "ca.crt") -> bytes:
    return (GOLDEN / version / case / name).read_bytes()


def spec_for(version: str, case: str) -> ClusterSpec:
    """The ClusterSpec configs/CASE.yaml describes."""
    token = BootstrapToken(token="abcdef.0123456789abcdef")
    if case == "basic":
        return ClusterSpec(
            kubernetes_version=version, advertise_address="10.0.0.10",
            node=NodeRegistration(name="node-a", cri_socket="unix:///var/run/containerd/containerd.sock"),
            networking=Networking(pod_subnet="10.244.0.0/16"), bootstrap_tokens=(token,))
    return ClusterSpec(
        kubernetes_version=version, advertise_address="fd00::10", bind_port=8443, cluster_name="lab-cluster",
        control_plane_endpoint="[fd00::100]:8443", image_repository="registry.example.test:5000/k8s",
        cert_dir="/srv/pki", encryption_algorithm=EncryptionAlgorithm.ECDSA_P256,
        certificate_validity=timedelta(hours=4380), feature_gates={"RootlessControlPlane": False},
        node=NodeRegistration(name="node-b", cri_socket="unix:///run/containerd/containerd.sock",
                              taints=(Taint(key="dedicated", value="infra", effect="NoExecute"),)),
        networking=Networking(service_subnet="fd00:10:96::/112", pod_subnet="fd00:10:244::/56",
                              dns_domain="example.local"),
        api_server=APIServer(cert_sans=("api.example.test", "fd00::100"),
                             extra_args=(Arg(name="audit-log-maxage", value="7"),),
                             extra_volumes=(HostPathMount(name="audit", host_path="/var/log/kube-audit",
                                                          mount_path="/var/log/kube-audit",
                                                          path_type="DirectoryOrCreate"),)),
        controller_manager=Component(extra_args=(Arg(name="node-cidr-mask-size-ipv6", value="64"),),
                                     extra_envs=(EnvVar(name="GODEBUG", value="http2client=0"),)),
        etcd_local=LocalEtcd(data_dir="/data/etcd", extra_args=(Arg(name="listen-metrics-urls",
                                                                    value="http://[::1]:2381"),),
                             server_cert_sans=("etcd.example.test",)),
        bootstrap_tokens=(
            BootstrapToken(token="abcdef.0123456789abcdef", description="first token", ttl=timedelta(hours=2),
                           usages=("authentication", "signing"),
                           groups=("system:bootstrappers:kubeadm:default-node-token", "system:bootstrappers:workers")),
            BootstrapToken(token="uvwxyz.abcdefghijklmnop", ttl=None, usages=("authentication",)),
        ),
        kubelet_configuration={"maxPods": 150},
    )
