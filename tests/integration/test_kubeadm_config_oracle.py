"""The real kubeadm of every release we build judges `kbootstrap config`: images list, print, validate,
migrate.

Each release's own kubeadm binary (built by `make components` from k8s.io/kubernetes@RELEASE) and
kbootstrap run on the same inputs; their outputs must be identical, byte for byte, or (validate)
agree on accepting and refusing. These kubeadm commands only print: they run on this host, in a
network namespace of their own with no interface up (`unshare --net`), so a version lookup at
dl.k8s.io cannot leave the machine. kubeadm's commands that write run in lab machines instead.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kbtest import RELEASE_NAMES, kubeadm_offline, real_kubeadm

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


kubeadm_of = real_kubeadm
kubeadm = kubeadm_offline


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
JOIN = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
nodeRegistration: {{name: worker-1, criSocket: "unix:///run/containerd/containerd.sock"}}
discovery:
  bootstrapToken:
    apiServerEndpoint: 10.0.0.10:6443
    token: abcdef.0123456789abcdef
    caCertHashes: ["sha256:0000000000000000000000000000000000000000000000000000000000000000"]
"""
RESET = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ResetConfiguration\nforce: true\ncleanupTmpDir: true\n"
UPGRADE = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: UpgradeConfiguration\napply:\n  certificateRenewal: false\n"
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
    "feature-gate-unknown": CLUSTER + "featureGates:\n  Nonsense: true\n",
    # External etcd as kubeadm's ValidateEtcd judges it: https once a TLS file is named, a scheme always.
    "external-etcd-https": CLUSTER + "etcd:\n  external:\n    endpoints: [https://10.0.0.9:2379]\n"
                           "    caFile: /etc/etcd/ca.crt\n    certFile: /etc/etcd/c.crt\n    keyFile: /etc/etcd/c.key\n",
    "external-etcd-http-with-tls": CLUSTER + "etcd:\n  external:\n    endpoints: [http://10.0.0.9:2379]\n"
                                   "    caFile: /etc/etcd/ca.crt\n",
    "external-etcd-http-plain": CLUSTER + "etcd:\n  external:\n    endpoints: [http://10.0.0.9:2379]\n",
    "external-etcd-no-scheme": CLUSTER + "etcd:\n  external:\n    endpoints: [10.0.0.9:2379]\n",
    "external-etcd-cert-without-key": CLUSTER + "etcd:\n  external:\n    endpoints: [https://10.0.0.9:2379]\n"
                                      "    caFile: /etc/etcd/ca.crt\n    certFile: /etc/etcd/c.crt\n",
    "feature-gate-node-local-cri-socket-off": CLUSTER + "featureGates:\n  NodeLocalCRISocket: false\n",
    "feature-gate-rootless": CLUSTER + "featureGates:\n  RootlessControlPlane: false\n",
    # The other kinds kubeadm reads: each alone, and all of them in one file.
    "join": JOIN,
    "join-control-plane": JOIN + "controlPlane:\n  localAPIEndpoint: {{advertiseAddress: 10.0.0.12}}\n"
                          "  certificateKey: " + "ab" * 32 + "\n",
    "join-unknown-field": JOIN + "notAField: 1\n",
    "join-without-discovery": "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n",
    "reset": RESET,
    "reset-unknown-field": RESET + "notAField: 1\n",
    "upgrade": UPGRADE,
    "upgrade-unknown-field": UPGRADE + "  notAField: 1\n",
    "every-kind": CLUSTER + "---\n" + JOIN + "---\n" + RESET + "---\n" + UPGRADE,
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
    # A file that names no release is judged by the rules of the kubeadm reading it: tell ours which.
    ours = kbootstrap("config", "validate", "--config", path, "--kubernetes-version", release)
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


# ---- config migrate ----------------------------------------------------------------------------
# Host-dependent values: kubeadm fills a missing node name (hostname), CRI socket (detected), token
# (random) and advertise address (the default route's) from the machine. Both run on this host, so
# the hostname and the socket detection agree; the cases give tokens and addresses explicitly, except
# HOST_DEFAULTS, compared with the token and the advertise address normalized: the token is random,
# and kubeadm runs without a network (no default route: it falls back to 0.0.0.0) while kbootstrap
# sees this host's.
INIT_V1BETA3 = """\
apiVersion: kubeadm.k8s.io/v1beta3
kind: InitConfiguration
bootstrapTokens:
- token: abcdef.0123456789abcdef
  ttl: 90m
  description: the first
localAPIEndpoint:
  advertiseAddress: 192.0.2.10
nodeRegistration:
  name: CP1
  criSocket: unix:///run/containerd/containerd.sock
  kubeletExtraArgs:
    v: "2"
    max-pods: "50"
"""
CLUSTER_V1BETA3 = """\
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
kubernetesVersion: {version}
controlPlaneEndpoint: lb.example.test
apiServer:
  timeoutForControlPlane: 7m30s
  certSANs: [API.Example.TEST, 10.0.0.1]
  extraArgs:
    profiling: "false"
    audit-log-maxage: "30"
controllerManager:
  extraArgs:
    node-cidr-mask-size: "24"
    bind-address: 0.0.0.0
etcd:
  local:
    extraArgs:
      snapshot-count: "5000"
      election-timeout: "1500"
networking:
  podSubnet: 10.244.0.0/16
"""
INIT_V1BETA4 = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens: [{token: abcdef.0123456789abcdef}]
localAPIEndpoint: {advertiseAddress: 192.0.2.10}
nodeRegistration: {name: cp1, criSocket: unix:///run/containerd/containerd.sock}
"""
JOIN_V1BETA4 = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    token: abcdef.0123456789abcdef
    apiServerEndpoint: 192.0.2.10:6443
    caCertHashes: [sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef]
nodeRegistration:
  name: cp2
  criSocket: /run/containerd/containerd.sock
  kubeletExtraArgs: [{name: node-ip, value: 192.0.2.11}]
controlPlane:
  localAPIEndpoint: {advertiseAddress: 192.0.2.11, bindPort: 7443}
  certificateKey: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
timeouts:
  discovery: 2m
"""
MIGRATE = {
    # extraArgs maps become sorted name/value lists; timeoutForControlPlane moves to the Init (and
    # Join) timeouts; v1.37 refuses the file.
    "v1beta3-init-cluster": INIT_V1BETA3 + "---\n" + CLUSTER_V1BETA3,
    # Mixed versions: the v1beta3 Cluster's timeout reaches the v1beta4 Init and Join (v1.35/v1.36).
    "v1beta3-cluster-v1beta4-init-join": CLUSTER_V1BETA3 + "---\n" + INIT_V1BETA4 + "---\n" + JOIN_V1BETA4,
    "v1beta3-join": """\
apiVersion: kubeadm.k8s.io/v1beta3
kind: JoinConfiguration
discovery:
  timeout: 3m
  file: {kubeConfigPath: "file:///etc/hostname"}
  tlsBootstrapToken: abcdef.0123456789abcdef
nodeRegistration: {name: w1, criSocket: "unix:///run/containerd/containerd.sock", taints: []}
""",
    # Re-defaulted: every default printed; on v1.35/v1.36 controlPlaneComponentHealthCheck becomes 0s
    # (their migrate mutator), v1.37 keeps the file's value.
    "v1beta4-redefaulted": """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: abcdef.0123456789abcdef
- token: bbbbbb.0123456789abcdef
  ttl: 1.5h
  usages: [authentication, signing]
localAPIEndpoint: {advertiseAddress: 192.0.2.10, bindPort: 7443}
nodeRegistration:
  criSocket: unix:///run/containerd/containerd.sock
  name: cp1
  taints: []
  kubeletExtraArgs: [{name: v, value: "2"}, {name: a, value: "1"}, {name: v, value: "3"}]
timeouts: {controlPlaneComponentHealthCheck: 10m, tlsBootstrap: 90s}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: {version}
controlPlaneEndpoint: lb.example.test
apiServer:
  extraArgs: [{name: profiling, value: "false"}]
  extraEnvs:
  - name: NODE
    valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
etcd:
  external:
    endpoints: [https://192.0.2.1:2379]
    caFile: /etc/etcd/ca.crt
    certFile: /etc/etcd/client.crt
    keyFile: /etc/etcd/client.key
dns: {disabled: true}
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
maxPods: 50
""",
    "v1beta4-join": JOIN_V1BETA4,
    # v1.35 skips the UpgradeConfiguration, v1.36 fails on it, v1.37 migrates it.
    "reset-upgrade": """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: ResetConfiguration
criSocket: /run/containerd/containerd.sock
unmountFlags: [MNT_DETACH]
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: UpgradeConfiguration
apply: {forceUpgrade: false, patches: {directory: /etc/kubernetes/patches}}
diff: {contextLines: 3}
""",
    "host-defaults": "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: {version}\n",
}
HOST_DEFAULTS = {"host-defaults"}
# The releases whose kubeadm migrates each case (the others refuse it).
MIGRATED_BY = {
    "v1beta3-init-cluster": {35, 36},
    "v1beta3-cluster-v1beta4-init-join": {35, 36},
    "v1beta3-join": {35, 36},
    "v1beta4-redefaulted": {35, 36, 37},
    "v1beta4-join": {35, 36, 37},
    "reset-upgrade": {35, 37},
    "host-defaults": {35, 36, 37},
}
# Refused by every release's kubeadm, and by kbootstrap with one line.
MIGRATE_BAD = {
    "unknown-field": "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: {version}\n"
                     "apiServer: {timeoutForControlPlane: 4m}\n",
    "join-without-discovery": "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n"
                              "nodeRegistration: {name: w1, criSocket: unix:///run/containerd/containerd.sock}\n",
    "extra-args-map-in-v1beta4": "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
                                 "kubernetesVersion: {version}\napiServer: {extraArgs: {v: \"2\"}}\n",
    "groups-without-authentication": "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n"
                                     "bootstrapTokens: [{token: abcdef.0123456789abcdef, usages: [signing]}]\n"
                                     "localAPIEndpoint: {advertiseAddress: 192.0.2.10}\n"
                                     "nodeRegistration: {name: cp1, criSocket: unix:///run/containerd/containerd.sock}\n",
    "unquoted-number-in-map": "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n"
                              "kubernetesVersion: {version}\napiServer: {extraArgs: {v: 2}}\n",
    "kbootstrap-document": "apiVersion: kbootstrap.io/v1alpha1\nkind: BootstrapConfiguration\netcdMode: host\n",
}
_TOKEN = re.compile(r"token: [a-z0-9]{6}\.[a-z0-9]{16}")
_ADDRESS = re.compile(r"advertiseAddress: \S+")


def migrate_file(tmp_path: Path, case: str, template: str, release: str) -> str:
    """As config_file, with {version} substituted literally (these templates use YAML's {flow} maps)."""
    path = tmp_path / f"{case}.yaml"
    path.write_text(template.replace("{version}", release))
    return str(path)


def migrate_both(release: str, path: str, *flags: str) -> tuple[subprocess.CompletedProcess[str],
                                                                 subprocess.CompletedProcess[str]]:
    """kubeadm and kbootstrap on the same file; kbootstrap is told the release (kubeadm is that
    release), which it otherwise takes from the file's kubernetesVersion."""
    theirs = kubeadm(kubeadm_of(release), "config", "migrate", "--old-config", path, *flags)
    ours = kbootstrap("config", "migrate", "--old-config", path, *flags, "--kubernetes-version", release)
    return theirs, ours


def one_line_refusal(ours: subprocess.CompletedProcess[str]) -> None:
    assert ours.returncode == 2, ours.stderr
    assert ours.stdout == "" and "Traceback" not in ours.stderr
    assert [ln for ln in ours.stderr.splitlines() if ln.startswith("error: ")] == ours.stderr.splitlines()[-1:]


@pytest.mark.parametrize("case", sorted(MIGRATE))
@pytest.mark.parametrize("release", RELEASE_NAMES)
def test_migrate_gives_what_kubeadm_gives(release: str, case: str, tmp_path: Path) -> None:
    path = migrate_file(tmp_path, case, MIGRATE[case], release)
    theirs, ours = migrate_both(release, path)
    minor = int(release.split(".")[1])
    assert (theirs.returncode == 0) == (minor in MIGRATED_BY[case]), f"kubeadm {release}: {theirs.stderr}"
    if theirs.returncode:
        one_line_refusal(ours)
        if "old API spec" in theirs.stderr:  # v1.37 and v1beta3: the same refusal, pointing to migrate
            assert 'old API spec: "kubeadm.k8s.io/v1beta3"' in ours.stderr and "config migrate" in ours.stderr
        return
    assert ours.returncode == 0, ours.stderr
    want, got = theirs.stdout, ours.stdout
    if case in HOST_DEFAULTS:
        want, got = (_ADDRESS.sub("advertiseAddress: ADDRESS", _TOKEN.sub("token: TOKEN", t)) for t in (want, got))
    assert got == want


@pytest.mark.parametrize("case", sorted(MIGRATE_BAD))
@pytest.mark.parametrize("release", RELEASE_NAMES)
def test_migrate_refuses_what_kubeadm_refuses(release: str, case: str, tmp_path: Path) -> None:
    path = migrate_file(tmp_path, case, MIGRATE_BAD[case], release)
    theirs, ours = migrate_both(release, path)
    assert theirs.returncode != 0, theirs.stdout
    one_line_refusal(ours)


@pytest.mark.parametrize("release", RELEASE_NAMES)
def test_migrate_experimental_api(release: str, tmp_path: Path) -> None:
    """kubeadm.k8s.io/v1: unknown before v1.37; from v1.37 read with --allow-experimental-api only,
    its mergeMethod validated and dropped (the output is v1beta4)."""
    text = MIGRATE["v1beta4-redefaulted"].replace("kubeadm.k8s.io/v1beta4", "kubeadm.k8s.io/v1").replace(
        '{name: profiling, value: "false"}', '{name: profiling, value: "false", mergeMethod: append}')
    path = migrate_file(tmp_path, "v1", text, release)
    theirs, ours = migrate_both(release, path)
    assert theirs.returncode != 0
    one_line_refusal(ours)
    theirs, ours = migrate_both(release, path, "--allow-experimental-api")
    if release.startswith("v1.37."):
        assert theirs.returncode == 0 and ours.returncode == 0, theirs.stderr + ours.stderr
        assert ours.stdout == theirs.stdout and "mergeMethod" not in ours.stdout
    else:
        assert theirs.returncode != 0
        one_line_refusal(ours)


@pytest.mark.parametrize("release", RELEASE_NAMES)
def test_migrate_new_config_is_the_file_kubeadm_writes(release: str, tmp_path: Path) -> None:
    path = migrate_file(tmp_path, "join", MIGRATE["v1beta4-join"], release)
    theirs = kubeadm(kubeadm_of(release), "config", "migrate", "--old-config", path, "--new-config",
                     str(tmp_path / "theirs.yaml"))
    ours = kbootstrap("config", "migrate", "--old-config", path, "--new-config", str(tmp_path / "ours.yaml"),
                      "--kubernetes-version", release)
    assert theirs.returncode == 0 and ours.returncode == 0, theirs.stderr + ours.stderr
    assert theirs.stdout == ours.stdout == ""  # written, not printed
    assert (tmp_path / "ours.yaml").read_text() == (tmp_path / "theirs.yaml").read_text() != ""
    assert (tmp_path / "ours.yaml").stat().st_mode & 0o777 == 0o644
