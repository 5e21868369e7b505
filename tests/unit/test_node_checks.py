"""Node checks: the list as data per role, and real testinfra evaluation through our Target backend.

Evaluation runs testinfra's modules (file, sysctl, ...) through `TargetBackend` over the local
machine (LocalTarget runs scripts with bash), on real files in a temp directory.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bootstrap.artifacts.bundle import Bundle
from bootstrap.spec.inventory import Inventory, load_inventory
from bootstrap.spec.model import ClusterSpec
from bootstrap.transport.local import LocalTarget
from bootstrap.validate.fleet import skipped_phases
from bootstrap.validate.nodes import (
    NodeCheck,
    NodeReport,
    TargetBackend,
    infra_host,
    node_checks,
    run_checks,
)
from bootstrap.validate.report import nodes_text
from bootstrap.workflow.fleet_spec import fleet_cluster_spec


@pytest.fixture
def inv(tmp_path: Path) -> Inventory:
    doc = {"all": {
        "hosts": {"cp1": {"ip": "10.9.0.11"}, "e1": {"ip": "10.9.0.15"}, "w1": {"ip": "10.9.0.21"}},
        "vars": {"kbootstrap_skip_phases": ["binaries/kubelet", "kubelet-start"], "etcd_deployment_type": "host",
                 "kube_version": "v1.34.0"},
        "children": {"kube_control_plane": {"hosts": {"cp1": None}}, "etcd": {"hosts": {"cp1": None, "e1": None}},
                     "kube_node": {"hosts": {"w1": None}}},
    }}
    p = tmp_path / "hosts.yaml"
    p.write_text(yaml.safe_dump(doc))
    return load_inventory(str(p))


@pytest.fixture
def spec(inv: Inventory) -> ClusterSpec:
    return fleet_cluster_spec({}, inv)


def ids(checks: list[NodeCheck]) -> set[str]:
    return {c.id for c in checks}


# ---- the checks as data -------------------------------------------------------------------------
def test_control_plane_checks(inv: Inventory, spec: ClusterSpec) -> None:
    bundle = Bundle(Path("/nowhere"), "v1.34.0", {"bin/kubectl": {"sha256": "ab" * 32}})
    checks = node_checks(inv.host("cp1"), spec, bundle, skipped_phases(inv, spec))
    got = ids(checks)
    assert {"service containerd", "sysctl net.ipv4.ip_forward", "swap off", "containerd SystemdCgroup",
            "file /etc/kubernetes/pki/ca.key", "file /etc/kubernetes/pki/etcd/peer.key", "file /etc/kubernetes/admin.conf",
            "file /etc/kubernetes/manifests/kube-apiserver.yaml", "keys in /etc/kubernetes/pki 0600"} <= got
    by_id = {c.id: c for c in checks}
    assert by_id["file /etc/kubernetes/pki/ca.key"].forbid == 0o177
    # Default CIS hardening: certificates 0600 too.
    assert by_id["file /etc/kubernetes/pki/ca.crt"].forbid == 0o177
    assert by_id["binary kubectl"].expect == "ab" * 32 and not by_id["binary kubectl"].skip
    assert by_id["binary kubelet"].skip == "phase binaries/kubelet was skipped"
    assert by_id["binary kubeadm"].skip == "the bundle has no bin/kubeadm"
    # etcd runs as a systemd unit in host mode.
    assert spec.etcd_mode == "host" and "service etcd" in got
    assert not any(c.kind == "absent" for c in checks)


def test_worker_has_no_ca_keys_and_no_control_plane_files(inv: Inventory, spec: ClusterSpec) -> None:
    checks = node_checks(inv.host("w1"), spec)
    absent = sorted(c.subject for c in checks if c.kind == "absent")
    assert absent == ["/etc/kubernetes/pki/ca.key", "/etc/kubernetes/pki/etcd/ca.key",
                      "/etc/kubernetes/pki/front-proxy-ca.key", "/etc/kubernetes/pki/sa.key"]
    assert "service etcd" not in ids(checks)
    assert not any("manifests" in c.subject or c.subject.endswith(".conf") for c in checks if c.kind == "mode")


def test_etcd_only_member_may_hold_the_etcd_ca_key(inv: Inventory, spec: ClusterSpec) -> None:
    checks = node_checks(inv.host("e1"), spec)
    absent = {c.subject for c in checks if c.kind == "absent"}
    assert "/etc/kubernetes/pki/etcd/ca.key" not in absent and "/etc/kubernetes/pki/ca.key" in absent
    assert "service etcd" in ids(checks)
    # No Kubernetes node: it trusts the etcd CA, and needs no cluster CA (init gives it none).
    assert "file /etc/kubernetes/pki/etcd/ca.crt" in ids(checks) and "file /etc/kubernetes/pki/ca.crt" not in ids(checks)


def test_kubeadm_profile_allows_0644_certs(inv: Inventory) -> None:
    spec = fleet_cluster_spec({}, inv).model_copy(update={"hardening": __import__(
        "bootstrap.spec.model", fromlist=["Hardening"]).Hardening.kubeadm()})
    by_id = {c.id: c for c in node_checks(inv.host("cp1"), spec)}
    assert by_id["file /etc/kubernetes/pki/ca.crt"].forbid == 0o133
    assert by_id["file /etc/kubernetes/pki/ca.key"].forbid == 0o177


def test_skipped_phase_covers_children(inv: Inventory, spec: ClusterSpec) -> None:
    checks = node_checks(inv.host("cp1"), spec, None, {"binaries", "certs"})
    by_id = {c.id: c for c in checks}
    assert by_id["binary kubectl"].skip == "phase binaries was skipped"
    assert by_id["CNI plugins"].skip == "phase binaries was skipped"
    assert by_id["file /etc/kubernetes/pki/ca.key"].skip == "phase certs was skipped"


# ---- real testinfra evaluation over our backend --------------------------------------------------
@pytest.fixture
def host() -> object:
    return infra_host(LocalTarget("/", name="local"))


def test_backend_runs_testinfra_modules(host: object) -> None:
    assert isinstance(host.backend, TargetBackend)  # type: ignore[attr-defined]
    assert host.run("echo %s", "it's quoted").stdout == "it's quoted\n"  # type: ignore[attr-defined]
    assert host.file("/etc/passwd").exists  # type: ignore[attr-defined]


def test_files_modes_trees_and_absence(tmp_path: Path, spec: ClusterSpec, host: object) -> None:
    pki = tmp_path / "pki"
    (pki / "etcd").mkdir(parents=True)
    for name, mode in (("ca.key", 0o600), ("apiserver.key", 0o644), ("etcd/peer.key", 0o640), ("ca.crt", 0o600)):
        (pki / name).write_text("x")
        os.chmod(pki / name, mode)
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "kube-apiserver.yaml").write_text("x")
    os.chmod(manifests / "kube-apiserver.yaml", 0o604)
    (tmp_path / "config.toml").write_text("  SystemdCgroup = true\n")
    checks = [
        NodeCheck("keys", "tree", str(pki), pattern="*.key", forbid=0o177),
        NodeCheck("file ca.key", "mode", str(pki / "ca.key"), forbid=0o177),
        NodeCheck("file apiserver.key", "mode", str(pki / "apiserver.key"), forbid=0o177),
        NodeCheck("manifests", "tree", str(manifests), pattern="*", forbid=0o077),
        NodeCheck("no sa.key", "absent", str(pki / "sa.key")),
        NodeCheck("no ca.key", "absent", str(pki / "ca.key")),
        NodeCheck("cgroup", "contains", str(tmp_path / "config.toml"), "SystemdCgroup = true"),
        NodeCheck("missing", "exists", str(tmp_path / "nope")),
        NodeCheck("skipped", "exists", "/x", skip="phase x was skipped"),
    ]
    results = run_checks(host, checks, spec)  # type: ignore[arg-type]
    failed = sorted((r.check.id, r.message) for r in results if r.status == "fail")
    owner_ok = os.geteuid() == 0  # files a non-root user makes are not owned by root
    if owner_ok:
        assert failed == sorted([
            (f"file {pki}/apiserver.key", "mode 0644, must be 0600 or stricter"),
            (f"file {pki}/etcd/peer.key", "mode 0640, must be 0600 or stricter"),
            (f"file {manifests}/kube-apiserver.yaml", "mode 0604, must be 0700 or stricter"),
            ("file apiserver.key", "mode 0644, must be 0600 or stricter"),
            ("missing", f"{tmp_path}/nope is missing"),
            ("no ca.key", f"{pki}/ca.key is present"),
        ])
    statuses = {r.check.id: r.status for r in results}
    assert statuses["no sa.key"] == "pass" and statuses["cgroup"] == "pass" and statuses["skipped"] == "skip"
    text = nodes_text([NodeReport("cp1", results)])
    assert f"cp1: file {pki}/apiserver.key: fail: mode 0644, must be 0600 or stricter" in text
    assert "validate: 1 nodes" in text


def test_binary_checksum_and_skew(tmp_path: Path, spec: ClusterSpec, host: object) -> None:
    kubectl = tmp_path / "kubectl"
    kubectl.write_text("#!/bin/sh\necho 'Client Version: v1.33.5'\n")
    kubectl.chmod(0o755)
    digest = hashlib.sha256(kubectl.read_bytes()).hexdigest()
    kubeadm = tmp_path / "kubeadm"
    kubeadm.write_text("#!/bin/sh\necho v1.32.0\n")
    kubeadm.chmod(0o755)
    results = run_checks(host, [  # type: ignore[arg-type]
        NodeCheck("binary kubectl", "binary", str(kubectl), digest),
        NodeCheck("binary kubectl bad sum", "binary", str(kubectl), "0" * 64),
        NodeCheck("binary kubeadm", "binary", str(kubeadm)),
    ], spec)
    assert [r.status for r in results] == ["pass", "fail", "fail"]
    assert results[0].message == "v1.33.5, sha256 matches the bundle"  # one minor behind: allowed for kubectl
    assert "sha256" in results[1].message and "the bundle has 000000000000" in results[1].message
    assert results[2].message.endswith("is v1.32.0; the skew policy allows 1.34 for a v1.34 cluster")


def test_a_check_that_cannot_run_is_an_error_not_a_crash(spec: ClusterSpec) -> None:
    class Broken(LocalTarget):
        def run(self, script: str, *, timeout: float | None = None) -> object:  # type: ignore[override]
            raise OSError("connection lost")

    results = run_checks(infra_host(Broken("/", name="x")), [NodeCheck("f", "exists", "/etc/passwd")], spec)
    assert [(r.status, r.message) for r in results] == [("error", "connection lost")]
    assert NodeReport("x", results).failed


def test_checks_import_no_testinfra_module_in_their_threads(tmp_path: Path) -> None:
    """Every testinfra module a check kind uses is imported with bootstrap.validate.nodes, in one thread.

    A first import from the check threads raced in CI: under pytest it is an assertion rewrite
    (ast.parse), and CPython 3.11 shares the AST builder's recursion counter between threads. A fresh
    interpreter, so that no other test has imported the modules already."""
    probe = f'''
import sys
from bootstrap.spec.model import ClusterSpec, NodeRegistration
from bootstrap.transport.local import LocalTarget
from bootstrap.validate.nodes import NodeCheck, infra_host, run_checks
before = {{m for m in sys.modules if m.startswith("testinfra.modules.")}}
spec = ClusterSpec(advertise_address="10.0.0.1", node=NodeRegistration(name="cp1"))
d = "{tmp_path}"
open(d + "/f", "w").write("SystemdCgroup = true\\\\n")
checks = [NodeCheck("s", "service", "kbootstrap-no-such-unit"), NodeCheck("k", "sysctl", "kernel.ostype", "Linux"),
          NodeCheck("c", "contains", d + "/f", "SystemdCgroup"), NodeCheck("m", "module", "overlay"),
          NodeCheck("w", "swap", "/proc/swaps"), NodeCheck("e", "exists", d), NodeCheck("a", "absent", d + "/x"),
          NodeCheck("o", "mode", d + "/f", forbid=0o7000), NodeCheck("t", "tree", d, pattern="*", forbid=0o7000),
          NodeCheck("b", "binary", "/bin/sh")]
results = run_checks(infra_host(LocalTarget("/", name="local")), checks, spec)
errors = [(r.check.kind, r.message) for r in results if r.status == "error"]
assert not errors, errors
after = {{m for m in sys.modules if m.startswith("testinfra.modules.")}}
print(sorted(after - before))
'''
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"imported by the check threads: {out.stdout.strip()}"
