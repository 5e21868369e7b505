"""The real kubeadm of every release we build judges `kbootstrap config`: images list, print, validate.

Each release's own kubeadm binary (built by `make components` from k8s.io/kubernetes@RELEASE) and
kbootstrap run on the same inputs; their outputs must be identical, byte for byte, or (validate)
agree on accepting and refusing. These kubeadm commands only print: they run on this host, in a
network namespace of their own with no interface up (`unshare --net`), so a version lookup at
dl.k8s.io cannot leave the machine. kubeadm's commands that write run in lab machines instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bootstrap.artifacts.components import load_components
from bootstrap.errors import RequirementError
from components.releases import RELEASES

pytestmark = pytest.mark.slow
RELEASE_NAMES = [r.kubernetes for r in RELEASES]
REPO = Path(__file__).resolve().parents[2]


def kubeadm_of(release: str) -> Path:
    try:
        return load_components(release).binary("kubeadm")
    except RequirementError as exc:
        if os.environ.get("KBOOTSTRAP_STRICT") == "1":
            pytest.fail(exc.one_line())
        pytest.skip(exc.one_line())


def kubeadm(binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed to run kubeadm without a network")
    return subprocess.run(["unshare", "--net", str(binary), *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})


def kbootstrap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bootstrap.cli", *args], capture_output=True, text=True,
                          timeout=60, cwd=REPO)


def config_file(tmp_path: Path, case: str, template: str, release: str) -> str:
    path = tmp_path / f"{case}.yaml"
    path.write_text(template.format(version=release))
    return str(path)


def same_stdout(binary: Path, *args: str) -> None:
    theirs, ours = kubeadm(binary, *args), kbootstrap(*args)
    assert theirs.returncode == 0, f"kubeadm {' '.join(args)}: {theirs.stderr}"
    assert ours.returncode == 0, f"kbootstrap {' '.join(args)}: {ours.stderr}"
    assert ours.stdout == theirs.stdout, f"kbootstrap {' '.join(args)} differs from kubeadm's"


CONFIGS = {
    "overrides": """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: {version}
imageRepository: mirror.example.test/k8s
etcd:
  local:
    imageRepository: etcd.example.test/etcd-mirror
    imageTag: 3.6.99-0
dns:
  imageRepository: dns.example.test/coredns
  imageTag: v9.9.9
""",
    "addons-disabled-external-etcd": """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: {version}
dns:
  disabled: true
proxy:
  disabled: true
etcd:
  external:
    endpoints: ["https://192.0.2.10:2379"]
    caFile: /etc/etcd/ca.crt
    certFile: /etc/etcd/client.crt
    keyFile: /etc/etcd/client.key
""",
    # skipPhases alone does not change `config images list` (kubeadm syncs it with dns.disabled in init only).
    "skip-phases": """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
skipPhases: [addon/kube-proxy]
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: {version}
imageRepository: registry.k8s.io
""",
}


@pytest.mark.parametrize("release", RELEASE_NAMES)
def test_images_list_flags(release: str) -> None:
    binary = kubeadm_of(release)
    same_stdout(binary, "config", "images", "list", "--kubernetes-version", release)
    same_stdout(binary, "config", "images", "list", "--kubernetes-version", release, "-o", "json")
    same_stdout(binary, "config", "images", "list", "--kubernetes-version", release, "-o", "yaml",
                "--image-repository", "my.registry.test/k8s")


@pytest.mark.parametrize("case", sorted(CONFIGS))
@pytest.mark.parametrize("release", RELEASE_NAMES)
def test_images_list_config_files(release: str, case: str, tmp_path: Path) -> None:
    path = config_file(tmp_path, case, CONFIGS[case], release)
    same_stdout(kubeadm_of(release), "config", "images", "list", "--config", path)


@pytest.mark.parametrize("release", RELEASE_NAMES)
def test_print_defaults(release: str) -> None:
    binary = kubeadm_of(release)
    theirs = kubeadm(binary, "config", "print", "init-defaults", "--component-configs",
                     "KubeProxyConfiguration,KubeletConfiguration")
    ours = kbootstrap("config", "print", "init-defaults", "--kubernetes-version", release, "--component-configs",
                      "KubeProxyConfiguration,KubeletConfiguration")
    assert theirs.returncode == 0 and ours.returncode == 0, theirs.stderr + ours.stderr
    assert ours.stdout == theirs.stdout
    theirs = kubeadm(binary, "config", "print", "join-defaults")
    ours = kbootstrap("config", "print", "join-defaults", "--kubernetes-version", release)
    assert theirs.returncode == 0 and ours.stdout == theirs.stdout


CLUSTER = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: {version}\n"
VALIDATE = {
    "v1beta4": "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: {version}\n",
    "v1beta3": "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nkubernetesVersion: {version}\n",
    "v1": "apiVersion: kubeadm.k8s.io/v1\nkind: ClusterConfiguration\nkubernetesVersion: {version}\n",
    "unknown-field": "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
                     "kubernetesVersion: {version}\nnotAField: 1\n",
    "bad-kind": "apiVersion: kubeadm.k8s.io/v1beta4\nkind: Nonsense\n",
    "cidrs-with-host-bits": CLUSTER + "networking:\n  serviceSubnet: 10.96.0.15/12\n  podSubnet: 10.244.1.15/16\n",
    "service-subnet-too-large": CLUSTER + "networking:\n  serviceSubnet: 10.0.0.0/8\n",
    "leaf-outlives-ca": CLUSTER + "certificateValidityPeriod: 100000h\n",
    "ca-validity-over-recommended": CLUSTER + "caCertificateValidityPeriod: 200000h\n",
    "ecdsa-p384": CLUSTER + "encryptionAlgorithm: ECDSA-P384\n",
    "bad-algorithm": CLUSTER + "encryptionAlgorithm: DSA\n",
    "bad-endpoint-port": CLUSTER + "controlPlaneEndpoint: lb.example.test:abc\n",
    "bad-node-name": "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n"
                     "  name: Bad_Name\n",
}
# Where kbootstrap is deliberately stricter than kubeadm (each refused with one line that says why).
STRICTER = {
    # kubeadm accepts a pod subnet inside the service subnet; the cluster then routes neither.
    "pod-subnet-overlaps-services": CLUSTER + "networking:\n  podSubnet: 10.96.0.0/16\n",
}


@pytest.mark.parametrize("case", sorted(VALIDATE))
@pytest.mark.parametrize("release", RELEASE_NAMES)
def test_validate_accepts_and_refuses_what_kubeadm_does(release: str, case: str, tmp_path: Path) -> None:
    path = config_file(tmp_path, case, VALIDATE[case], release)
    theirs = kubeadm(kubeadm_of(release), "config", "validate", "--config", path)
    ours = kbootstrap("config", "validate", "--config", path)
    assert (ours.returncode == 0) == (theirs.returncode == 0), (
        f"kubeadm {release} exit {theirs.returncode}: {theirs.stderr.strip()}\n"
        f"kbootstrap exit {ours.returncode}: {ours.stderr.strip()}")
    if ours.returncode:
        assert ours.returncode == 2 and ours.stderr.count("\n") == 1 and "Traceback" not in ours.stderr
    else:
        assert ours.stdout == theirs.stdout == "ok\n"
        # The validity warnings, word for word (kubeadm's are klog lines).
        theirs_warned = {ln.split("WARNING: ", 1)[1] for ln in theirs.stderr.splitlines()
                         if "WARNING: " in ln and "ValidityPeriod" in ln}
        ours_warned = {ln.removeprefix("warning: ") for ln in ours.stderr.splitlines() if ln.startswith("warning: ")}
        assert ours_warned == theirs_warned


@pytest.mark.parametrize("case", sorted(STRICTER))
@pytest.mark.parametrize("release", RELEASE_NAMES)
def test_declared_stricter_checks(release: str, case: str, tmp_path: Path) -> None:
    """When kubeadm starts refusing one of these too, the case moves to VALIDATE."""
    path = config_file(tmp_path, case, STRICTER[case], release)
    assert kubeadm(kubeadm_of(release), "config", "validate", "--config", path).returncode == 0
    ours = kbootstrap("config", "validate", "--config", path)
    assert ours.returncode == 2 and ours.stderr.count("\n") == 1
