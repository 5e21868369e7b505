"""The real kubeadm judges kbootstrap's node files, field by field, for every release we build.

For each release and each kubeadm config below, the release's own kubeadm binary runs inside a lab
machine (never on this host) — `init phase certs all`, `kubeconfig all`, `etcd local`,
`control-plane all`, `kubelet-start` — and kbootstrap renders the same config with `init --rootfs`
and `--hardening kubeadm`. Then, ignoring only keys, serials and timestamps:

- every certificate: subject, issuer, SANs, key usage, extended key usage, CA flag, key type and
  size, validity length; the same set of files under the cert dir;
- every kubeconfig: cluster, user and context names, the server, the current context, the client
  certificate's subject (its CA data is checked to be the tree's own ca.crt);
- every static-pod manifest, as an object;
- the kubelet's config.yaml, instance-config.yaml (where kubeadm writes it) and kubeadm-flags.env.

One case gives kubeadm a patches directory (strategic, merge and JSON patches on the static pods
and the kubelet configuration): kbootstrap reads the same files on this machine.

With `--hardening kubeadm` there is no declared difference: any difference fails.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from kbtest import RELEASE_NAMES

from bootstrap.artifacts.components import load_components
from bootstrap.errors import RequirementError
from bootstrap.lab.state import LabState
from bootstrap.lab.testing import sh
from bootstrap.render.podspec import CA_CERTS_EXTRA_PATHS

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]
IN_MACHINE = "/opt/kbootstrap-oracle"
NODE = "oracle-node"

INIT = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: "{address}"
nodeRegistration:
  name: {node}
  criSocket: unix:///run/containerd/containerd.sock
"""
CLUSTER = """\
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: {version}
"""
CASES: dict[str, tuple[str, str]] = {  # name -> (advertise address, the ClusterConfiguration's body and more)
    "defaults": ("10.0.0.10", ""),
    "extra-args-and-endpoint": ("10.0.0.10", """\
controlPlaneEndpoint: "lb.oracle.test:8443"
apiServer:
  certSANs: [api.oracle.test, 10.0.0.100]
  extraArgs:
  - {name: audit-log-maxage, value: "30"}
  - {name: profiling, value: "false"}
controllerManager:
  extraArgs:
  - {name: node-cidr-mask-size, value: "25"}
scheduler:
  extraArgs:
  - {name: bind-address, value: 0.0.0.0}
networking:
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.112.0.0/12
  dnsDomain: oracle.local
clusterName: oracle
"""),
    "external-etcd": ("10.0.0.10", """\
etcd:
  external:
    endpoints: ["https://10.0.0.50:2379", "https://10.0.0.51:2379"]
    caFile: /etc/etcd/ca.crt
    certFile: /etc/etcd/client.crt
    keyFile: /etc/etcd/client.key
"""),
    "ipv6": ("fd00:10::10", """\
networking:
  podSubnet: fd00:244::/56
  serviceSubnet: fd00:96::/108
"""),
    "dual-stack": ("10.0.0.10", """\
networking:
  podSubnet: 10.244.0.0/16,fd00:244::/56
  serviceSubnet: 10.96.0.0/12,fd00:96::/108
"""),
    "custom-cert-dir-ecdsa-validity": ("10.0.0.10", """\
certificatesDir: /etc/oracle/pki
encryptionAlgorithm: ECDSA-P256
certificateValidityPeriod: 2160h
caCertificateValidityPeriod: 43800h
"""),
    "kubelet-configuration": ("10.0.0.10", """\
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
maxPods: 150
serializeImagePulls: false
evictionHard:
  memory.available: 200Mi
"""),
}
# A patches directory (InitConfiguration.patches.directory): every patch type, several targets, two
# documents in one file, a subdirectory, and files kubeadm ignores (another extension, an empty one).
PATCHES: dict[str, str] = {
    "kube-apiserver+json.yaml": """\
- op: add
  path: /spec/containers/0/command/-
  value: --event-ttl=2h
- op: replace
  path: /spec/containers/0/livenessProbe/failureThreshold
  value: 12
""",
    "kube-controller-manager.yaml": """\
spec:
  containers:
  - name: kube-controller-manager
    env:
    - name: GOMAXPROCS
      value: "2"
    resources:
      limits:
        memory: 512Mi
    volumeMounts:
    - name: extra-config
      mountPath: /etc/extra
      readOnly: true
  volumes:
  - name: extra-config
    hostPath:
      path: /etc/extra
      type: DirectoryOrCreate
""",
    "kube-scheduler+merge.json": '{"metadata": {"annotations": {"example.com/patched": "yes"}}}\n',
    "more/kube-scheduler0+json.yaml": """\
- op: add
  path: /metadata/labels/patched
  value: "twice"
""",
    "etcd.yaml": """\
spec:
  containers:
  - name: etcd
    resources:
      requests:
        memory: 200Mi
    volumeMounts:
    - mountPath: /var/lib/etcd
      $patch: delete
---
metadata:
  labels:
    backup: daily
""",
    "kubeletconfiguration+merge.yaml": """\
maxPods: 99
evictionHard:
  memory.available: 300Mi
""",
    "kubeletconfiguration0+json.json": '[{"op": "add", "path": "/systemReserved", "value": {"cpu": "100m"}}]\n',
    "kubeletconfiguration1.yaml": "containerLogMaxFiles: 3\n",
    "README.txt": "not a patch\n",
    "kube-apiserver-empty.yaml": "",
}
PATCHES_CASE = "patches"
CASES[PATCHES_CASE] = ("10.0.0.10", "")
PHASES = ("certs all", "kubeconfig all", "etcd local", "control-plane all", "kubelet-start")
FILES = ("etc/kubernetes", "etc/oracle", "var/lib/kubelet")


def kubeadm_binary(release: str) -> Path:
    try:
        return load_components(release).binary("kubeadm")
    except RequirementError as exc:
        pytest.fail(exc.one_line())


@pytest.fixture(scope="module")
def machine(module_lab_factory: Any) -> tuple[LabState, str]:
    lab: LabState = module_lab_factory(control_planes=1, workers=0)
    return lab, lab.machines[0].name


def root_of(lab: LabState, name: str) -> Path:
    return lab.machine(name).dir(lab.name) / "merged"


def config_text(case: str, release: str, patches_dir: Path | str | None = None) -> str:
    address, body = CASES[case]
    init = INIT.format(address=address, node=NODE)
    if case == PATCHES_CASE:
        init += f"patches:\n  directory: {patches_dir}\n"
    return init + CLUSTER.format(version=release) + body


def write_patches(where: Path) -> Path:
    for rel, text in PATCHES.items():
        (where / rel).parent.mkdir(parents=True, exist_ok=True)
        (where / rel).write_text(text)
    return where


def kubeadm_tree(lab: LabState, name: str, release: str, case: str, dest: Path) -> Path:
    """The files kubeadm writes, copied out of the machine into dest."""
    root = root_of(lab, name)
    where = root / IN_MACHINE.lstrip("/")
    where.mkdir(parents=True, exist_ok=True)
    shutil.copy2(kubeadm_binary(release), where / "kubeadm")
    shutil.rmtree(where / "patches", ignore_errors=True)
    write_patches(where / "patches")
    (where / "config.yaml").write_text(config_text(case, release, f"{IN_MACHINE}/patches"))
    phases = [p for p in PHASES if not (p == "etcd local" and case == "external-etcd")]
    script = ["set -e", "rm -rf /etc/kubernetes /etc/oracle /var/lib/kubelet"]
    script += [f"{IN_MACHINE}/kubeadm init phase {p} --config {IN_MACHINE}/config.yaml" for p in phases]
    code, out, err = sh(lab, name, "bash -c " + shlex.quote("\n".join(script)), timeout=180)
    assert code == 0, f"kubeadm {release} {case}:\n{out[-1500:]}\n{err[-1500:]}"
    for rel in FILES:
        if (root / rel).exists():
            shutil.copytree(root / rel, dest / rel, symlinks=True)
    return dest


def like_the_machine(lab: LabState, name: str, dest: Path) -> None:
    """What kubeadm reads from the node it runs on, given to our --rootfs: its hostname (the kubelet
    flags add --hostname-override when the node name differs) and which CA directories exist (each
    one becomes a static-pod volume)."""
    root = root_of(lab, name)
    (dest / "etc").mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "etc" / "hostname", dest / "etc" / "hostname")
    for path in CA_CERTS_EXTRA_PATHS:
        if (root / path.lstrip("/")).is_dir():
            (dest / path.lstrip("/")).mkdir(parents=True, exist_ok=True)


def kbootstrap_tree(release: str, case: str, dest: Path, tmp: Path, hardening: str = "kubeadm") -> Path:
    config = tmp / f"{case}.yaml"
    config.write_text(config_text(case, release, write_patches(tmp / "patches")))
    proc = subprocess.run([sys.executable, "-m", "bootstrap.cli", "init", "--rootfs", str(dest), "--config",
                           str(config), "--hardening", hardening], capture_output=True, text=True, cwd=REPO,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-1000:]
    return dest


# ---- what is compared ---------------------------------------------------------------------------
def cert_facts(path: Path) -> dict[str, Any]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    key = cert.public_key()
    facts: dict[str, Any] = {
        "subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string(),
        "validity": round((cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds()),
        "key": (f"RSA-{key.key_size}" if isinstance(key, rsa.RSAPublicKey)
                else f"EC-{key.curve.name}" if isinstance(key, ec.EllipticCurvePublicKey) else type(key).__name__),
    }
    for ext in cert.extensions:
        value = ext.value
        if isinstance(value, x509.SubjectAlternativeName):
            facts["sans"] = sorted(str(n.value) for n in value)
        elif isinstance(value, x509.KeyUsage):
            facts["key_usage"] = sorted(k for k in ("digital_signature", "key_encipherment", "key_cert_sign",
                                                    "content_commitment", "data_encipherment", "crl_sign")
                                        if getattr(value, k))
        elif isinstance(value, x509.ExtendedKeyUsage):
            facts["ext_key_usage"] = sorted(u.dotted_string for u in value)
        elif isinstance(value, x509.BasicConstraints):
            facts["ca"] = value.ca
        elif not isinstance(value, x509.SubjectKeyIdentifier | x509.AuthorityKeyIdentifier):
            facts[ext.oid.dotted_string] = ext.critical
    return facts


def kubeconfig_facts(path: Path, tree: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    users = []
    for u in doc.get("users") or []:
        pem = base64.b64decode((u.get("user") or {}).get("client-certificate-data") or "")
        subject = x509.load_pem_x509_certificate(pem).subject.rfc4514_string() if pem else None
        users.append({"name": u["name"], "subject": subject, "fields": sorted(u.get("user") or {})})
    clusters = []
    for c in doc.get("clusters") or []:
        ca = base64.b64decode(c["cluster"].get("certificate-authority-data") or "")
        own = any(ca == p.read_bytes() for p in tree.rglob("ca.crt")) if ca else None
        clusters.append({"name": c["name"], "server": c["cluster"].get("server"), "own_ca": own})
    return {"clusters": clusters, "users": users, "contexts": doc.get("contexts"),
            "current-context": doc.get("current-context"), "kind": doc.get("kind")}


def flags_env(path: Path) -> list[str]:
    text = path.read_text().strip()
    assert text.startswith("KUBELET_KUBEADM_ARGS=\"") and text.endswith("\""), text
    return sorted(shlex.split(text.removeprefix("KUBELET_KUBEADM_ARGS=").strip('"')))


def content_facts(path: Path, rel: str, tree: Path) -> Any:
    if rel.endswith(".crt"):
        return cert_facts(path)
    if rel.endswith((".key", ".pub")):
        return "key"  # only that it is there: keys differ by design
    if rel.endswith(".conf") and rel.startswith("etc/kubernetes/") and "/" not in rel.removeprefix("etc/kubernetes/"):
        return kubeconfig_facts(path, tree)
    if rel.endswith(".yaml"):
        return yaml.safe_load(path.read_text())
    if rel.endswith("kubeadm-flags.env"):
        return flags_env(path)
    return path.read_text()


def tree_facts(tree: Path) -> dict[str, Any]:
    """relative path -> {mode, content facts}, for every file and directory under tree."""
    out: dict[str, Any] = {}
    for path in sorted(tree.rglob("*")):
        rel = str(path.relative_to(tree))
        if not any(rel == top or rel.startswith(top + "/") for top in FILES):
            continue  # what these phases write, nothing around it
        mode = f"{path.stat().st_mode & 0o7777:04o}"
        out[rel] = {"mode": mode, "content": content_facts(path, rel, tree) if path.is_file() else "directory"}
    return out




@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("release", RELEASE_NAMES)
def test_node_files_match_the_real_kubeadm(machine: tuple[LabState, str], release: str, case: str,
                                           tmp_path: Path) -> None:
    lab, name = machine
    theirs = tree_facts(kubeadm_tree(lab, name, release, case, tmp_path / "kubeadm"))
    # (kbootstrap also writes the kubelet unit, which kubeadm's packages ship: outside FILES.)
    like_the_machine(lab, name, tmp_path / "kbootstrap")
    ours = tree_facts(kbootstrap_tree(release, case, tmp_path / "kbootstrap", tmp_path))
    assert sorted(ours) == sorted(theirs), (f"only kubeadm: {sorted(set(theirs) - set(ours))}; "
                                            f"only kbootstrap: {sorted(set(ours) - set(theirs))}")
    different = [rel for rel in theirs if ours[rel] != theirs[rel]]
    assert not different, "\n".join(f"{rel}:\n  kubeadm:    {theirs[rel]}\n  kbootstrap: {ours[rel]}"
                                    for rel in different)
    if case == PATCHES_CASE:  # the case cannot pass by both sides ignoring the directory
        kcm = theirs["etc/kubernetes/manifests/kube-controller-manager.yaml"]["content"]
        assert kcm["spec"]["volumes"][0]["name"] == "extra-config"
        assert theirs["var/lib/kubelet/config.yaml"]["content"]["maxPods"] == 99
        assert theirs["etc/kubernetes/manifests/kube-scheduler.yaml"]["content"]["metadata"]["labels"]["patched"] == "twice"


# ---- the CIS profile: kubeadm's files plus exactly these differences (docs/hardening.md) -----------
APISERVER, KCM, SCHEDULER = (f"etc/kubernetes/manifests/{c}.yaml" for c in
                             ("kube-apiserver", "kube-controller-manager", "kube-scheduler"))
AUDIT_FLAGS = ("--audit-log-path=/var/log/kubernetes/audit/audit.log", "--audit-log-maxage=30",
               "--audit-log-maxbackup=10", "--audit-log-maxsize=100",
               "--audit-policy-file=/etc/kubernetes/audit-policy.yaml")
DECLARED = {
    *((APISERVER, f"flag {f}") for f in ("--profiling=false", *AUDIT_FLAGS)),
    (KCM, "flag --profiling=false"), (SCHEDULER, "flag --profiling=false"),
    (APISERVER, "volume audit-policy"), (APISERVER, "volume audit-log"),
    ("etc/kubernetes/audit-policy.yaml", "only kbootstrap"),
    ("var/lib/kubelet/config.yaml", "mode 0644 -> 0600"), ("var/lib/kubelet/instance-config.yaml", "mode 0644 -> 0600"),
}


def differences(theirs: dict[str, Any], ours: dict[str, Any]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for rel in sorted(set(theirs) | set(ours)):
        if rel not in ours:
            out.add((rel, "only kubeadm"))
            continue
        if rel not in theirs:
            out.add((rel, "only kbootstrap"))
            continue
        a, b = theirs[rel], ours[rel]
        if a["mode"] != b["mode"]:
            # Every certificate's mode is one item: the certFileMode switch.
            out.add(("*.crt" if rel.endswith(".crt") else rel, f"mode {a['mode']} -> {b['mode']}"))
        ca, cb = a["content"], b["content"]
        if rel.startswith("etc/kubernetes/manifests/") and isinstance(ca, dict) and isinstance(cb, dict):
            pa, pb = ca["spec"]["containers"][0], cb["spec"]["containers"][0]
            out |= {(rel, f"flag {f}") for f in set(pb["command"]) - set(pa["command"])}
            out |= {(rel, f"no flag {f}") for f in set(pa["command"]) - set(pb["command"])}
            va = {v["name"] for v in ca["spec"].get("volumes", [])}
            vb = {v["name"] for v in cb["spec"].get("volumes", [])}
            out |= {(rel, f"volume {v}") for v in vb - va} | {(rel, f"no volume {v}") for v in va - vb}
            rest = [{k: v for k, v in c.items() if k not in ("command", "volumeMounts")} for c in (pa, pb)]
            mounts = [{m["name"] for m in c.get("volumeMounts", [])} for c in (pa, pb)]
            if rest[0] != rest[1] or mounts[1] - mounts[0] != vb - va or mounts[0] - mounts[1] != va - vb:
                out.add((rel, "container differs beyond flags and volumes"))
            if {k: v for k, v in ca["spec"].items() if k not in ("containers", "volumes")} != {
                    k: v for k, v in cb["spec"].items() if k not in ("containers", "volumes")}:
                out.add((rel, "pod spec differs"))
        elif ca != cb:
            out.add((rel, "content"))
    return out


@pytest.mark.parametrize("release", RELEASE_NAMES)
def test_cis_profile_differs_from_kubeadm_by_the_declared_list_only(machine: tuple[LabState, str], release: str,
                                                                   tmp_path: Path) -> None:
    lab, name = machine
    theirs = tree_facts(kubeadm_tree(lab, name, release, "defaults", tmp_path / "kubeadm"))
    like_the_machine(lab, name, tmp_path / "kbootstrap")
    ours = tree_facts(kbootstrap_tree(release, "defaults", tmp_path / "kbootstrap", tmp_path, hardening="cis"))
    assert differences(theirs, ours) == DECLARED | {("*.crt", "mode 0644 -> 0600")}


# ---- the API objects: kubeadm's --dry-run of every API phase, captured fresh for each release ------
@pytest.mark.parametrize("release", RELEASE_NAMES)
def test_api_objects_match_the_real_kubeadm(machine: tuple[LabState, str], release: str, tmp_path: Path) -> None:
    """capture.py (tests/golden/apiobjects) runs this release's kubeadm in the lab machine, every API
    phase with --dry-run, for the fixtures' two configs; then the fixture tests
    (tests/unit/test_apiobjects_golden.py) judge kbootstrap's objects against that fresh output."""
    lab, name = machine
    sys.path.insert(0, str(REPO / "tests" / "golden" / "apiobjects"))
    try:
        from capture import capture  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    # What the node-file cases left (kubeadm's --dry-run still reads an existing CA) goes first.
    code, _, err = sh(lab, name, "rm -rf /etc/kubernetes /etc/oracle /var/lib/kubelet /opt/kbootstrap-capture/out")
    assert code == 0, err
    capture(lab.name, name, release, tmp_path)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/unit/test_apiobjects_golden.py"], capture_output=True, text=True, cwd=REPO,
                          timeout=600, env={**os.environ, "KBOOTSTRAP_APIOBJECTS_DIR": str(tmp_path),
                                            "KBOOTSTRAP_APIOBJECTS_VERSIONS": release})
    assert proc.returncode == 0, proc.stdout[-4000:]
    summary = proc.stdout.strip().splitlines()[-1]
    assert re.search(r"\b(1[0-9]|[2-9][0-9]) passed", summary) and "skipped" not in summary, summary
