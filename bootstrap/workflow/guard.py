"""What a rerun of init may not change on a cluster that already runs.

The first control plane's own files say what the cluster was built with: the API server's image tag
(the release) and service range, the controller manager's cluster name and pod range, the kubelet's
cluster domain, etcd's data directory (static pod or systemd unit) and the API server certificate's
key type. A rerun whose spec differs in one of them is refused before any host is touched: a
version change is an upgrade (one minor at a time, never down), the others cannot change on a
running cluster at all. Nothing found (a fresh node): nothing to guard.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bootstrap.errors import UsageError
from bootstrap.render.etcd import ETCD_SYSTEMD_UNIT_PATH
from bootstrap.render.kubelet import KUBELET_CONFIG_PATH
from bootstrap.spec.model import MANIFESTS_DIR, ClusterSpec, EncryptionAlgorithm, EtcdMode
from bootstrap.transport.base import Target
from bootstrap.versions import KubeVersion

APISERVER_MANIFEST = f"{MANIFESTS_DIR}/kube-apiserver.yaml"
KCM_MANIFEST = f"{MANIFESTS_DIR}/kube-controller-manager.yaml"
ETCD_MANIFEST = f"{MANIFESTS_DIR}/etcd.yaml"


@dataclass(frozen=True)
class RunningCluster:
    """What the first control plane's files say; None where a file or flag is not there."""

    version: str | None = None
    service_subnet: str | None = None
    pod_subnet: str | None = None
    cluster_name: str | None = None
    dns_domain: str | None = None
    etcd_data_dir: str | None = None
    encryption_algorithm: str | None = None


def _command(manifest: bytes | None) -> tuple[str | None, dict[str, str]]:
    """(the first container's image, its --flags) of a static pod manifest."""
    if manifest is None:
        return None, {}
    try:
        pod = yaml.safe_load(manifest)
        container = pod["spec"]["containers"][0]
    except (yaml.YAMLError, KeyError, IndexError, TypeError):
        return None, {}
    return container.get("image"), _flags(container.get("command") or [])


def _flags(words: list[str]) -> dict[str, str]:
    return {name.removeprefix("--"): value for name, _, value in (w.partition("=") for w in words)
            if name.startswith("--")}


def _unit_flags(unit: bytes) -> dict[str, str]:
    """The --flags of a systemd unit's ExecStart (continuation lines joined, %% unescaped)."""
    text = unit.decode(errors="replace").replace("\\\n", " ")
    line = next((ln for ln in text.splitlines() if ln.startswith("ExecStart=")), "")
    try:
        return _flags([w.replace("%%", "%") for w in shlex.split(line.removeprefix("ExecStart="))])
    except ValueError:
        return {}


def _key_type(pem: bytes | None) -> str | None:
    if pem is None:
        return None
    try:
        key = x509.load_pem_x509_certificate(pem).public_key()
    except ValueError:
        return None
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "ECDSA-P256", "secp384r1": "ECDSA-P384"}.get(key.curve.name)
    return None


def read_running_cluster(target: Target, spec: ClusterSpec) -> RunningCluster:
    """The first control plane's files, read through its target (one round trip)."""
    cert = f"{spec.cert_dir.rstrip('/')}/apiserver.crt"
    paths = [APISERVER_MANIFEST, KCM_MANIFEST, ETCD_MANIFEST, ETCD_SYSTEMD_UNIT_PATH, KUBELET_CONFIG_PATH, cert]
    found = target.read_many(paths)
    content = {p: (f.content if f is not None else None) for p, f in found.items()}
    image, api = _command(content[APISERVER_MANIFEST])
    _, kcm = _command(content[KCM_MANIFEST])
    _, etcd = _command(content[ETCD_MANIFEST])
    unit = content[ETCD_SYSTEMD_UNIT_PATH]
    if not etcd and unit is not None:
        etcd = _unit_flags(unit)
    domain = None
    kubelet = content[KUBELET_CONFIG_PATH]
    if kubelet is not None:
        try:
            domain = (yaml.safe_load(kubelet) or {}).get("clusterDomain")
        except (yaml.YAMLError, AttributeError):
            domain = None
    version = image.rpartition(":")[2] if image and ":" in image else None
    return RunningCluster(
        version=version, service_subnet=api.get("service-cluster-ip-range"),
        # Without a pod range the controller manager has no --cluster-cidr: that is a value too.
        pod_subnet=kcm.get("cluster-cidr", "") if kcm else None, cluster_name=kcm.get("cluster-name"),
        dns_domain=domain,
        etcd_data_dir=etcd.get("data-dir"), encryption_algorithm=_key_type(content[cert]))


def check_rerun(running: RunningCluster, spec: ClusterSpec, where: str) -> None:
    """Refuse, in one line, a rerun that would change what a running cluster cannot change in place."""
    if running.version and running.version != spec.kubernetes_version:
        _check_version(running.version, spec.kubernetes_version, where)
    fields: list[tuple[str, str | None, str | None]] = [
        ("networking.serviceSubnet", running.service_subnet, spec.networking.service_subnet),
        ("networking.podSubnet", running.pod_subnet, spec.networking.pod_subnet),
        ("clusterName", running.cluster_name, spec.cluster_name),
        ("networking.dnsDomain", running.dns_domain, spec.networking.dns_domain),
        ("encryptionAlgorithm", running.encryption_algorithm, EncryptionAlgorithm(spec.encryption_algorithm).value),
    ]
    if spec.etcd_local is not None and spec.etcd_mode in (EtcdMode.STATIC_POD, EtcdMode.HOST):
        fields.append(("etcd.local.dataDir", running.etcd_data_dir, spec.etcd_local.data_dir))
    for name, was, wanted in fields:
        if was is not None and wanted is not None and was != wanted:
            raise UsageError(f"{name}: the cluster on {where} runs with {was!r}; {wanted!r} cannot be set on a "
                             "running cluster", hint=f"keep {was!r}, or build a new cluster (kbootstrap reset first)")


def _check_version(running: str, target: str, where: str) -> None:
    have, want = KubeVersion.parse(running), KubeVersion.parse(target)
    keep = f"rerun with --kubernetes-version {running} or kubernetesVersion: {running} in the file"
    if (want.minor, want.patch) < (have.minor, have.patch):
        raise UsageError(f"kubernetesVersion {target} would downgrade the cluster on {where}, which runs {running}",
                         hint=f"kubeadm and kbootstrap never downgrade; {keep}")
    if want.minor > have.minor + 1:
        raise UsageError(f"kubernetesVersion {target} would skip v1.{have.minor + 1} on {where}, which runs {running}",
                         hint=f"upgrade one minor at a time (`kbootstrap upgrade apply`, the [day-2] issue); {keep}")
    raise UsageError(f"kubernetesVersion {target} would upgrade the cluster on {where}, which runs {running}: "
                     "a rerun of init does not upgrade",
                     hint=f"use `kbootstrap upgrade apply {target}` (the [day-2] issue, not there yet); {keep}")
