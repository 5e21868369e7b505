"""Kubeconfig files: exact layout, users, servers per version, reuse and re-render."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from bootstrap.engine.context import RunContext
from bootstrap.engine.result import Status
from bootstrap.errors import PKIError
from bootstrap.phases.certs import PHASE as CERTS
from bootstrap.phases.kubeconfig import PHASE
from bootstrap.pki import authority
from bootstrap.render import kubeconfig as kc
from bootstrap.spec.load import build_spec
from bootstrap.spec.model import ClusterSpec
from bootstrap.transport.local import LocalTarget

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
KDIR = "/etc/kubernetes"


def make_spec(**flags: Any) -> ClusterSpec:
    base = {"apiserver_advertise_address": "10.0.0.5", "node_name": "cp1", "kubernetes_version": "v1.31.2",
            "control_plane_endpoint": "lb.example.com:6443", "encryption_algorithm": "ECDSA-P256"}
    return build_spec({**base, **flags})


def run(tmp: Path, spec: ClusterSpec, *, certs: bool = True, children: list[str] | None = None,
        dry_run: bool = False, now: datetime = NOW) -> RunContext:
    ctx = RunContext(spec, LocalTarget(tmp), dry_run=dry_run, now=now)
    if certs:
        assert CERTS.run is not None
        CERTS.run(ctx)
    ctx.phase.changes.clear()
    if children is None:
        assert PHASE.run is not None
        PHASE.run(ctx)
    else:
        by_name = {c.name: c for c in PHASE.children}
        for name in children:
            fn = by_name[name].run
            assert fn is not None
            fn(ctx)
    return ctx


def read(tmp: Path, name: str) -> kc.KubeconfigView:
    return kc.parse_kubeconfig((tmp / "etc/kubernetes" / name).read_bytes())


def client_cert(view: kc.KubeconfigView) -> x509.Certificate:
    assert view.client_cert_pem is not None
    return x509.load_pem_x509_certificate(view.client_cert_pem)


def test_build_kubeconfig_layout_matches_clientcmd() -> None:
    data = kc.build_kubeconfig("kubernetes", "https://lb:6443", b"CA", "kubernetes-admin",
                               client_cert_pem=b"CERT", client_key_pem=b"KEY")
    ca, cert, key = (base64.b64encode(x).decode() for x in (b"CA", b"CERT", b"KEY"))
    assert data.decode() == (
        "apiVersion: v1\n"
        "clusters:\n"
        "- cluster:\n"
        f"    certificate-authority-data: {ca}\n"
        "    server: https://lb:6443\n"
        "  name: kubernetes\n"
        "contexts:\n"
        "- context:\n"
        "    cluster: kubernetes\n"
        "    user: kubernetes-admin\n"
        "  name: kubernetes-admin@kubernetes\n"
        "current-context: kubernetes-admin@kubernetes\n"
        "kind: Config\n"
        "preferences: {}\n"
        "users:\n"
        "- name: kubernetes-admin\n"
        "  user:\n"
        f"    client-certificate-data: {cert}\n"
        f"    client-key-data: {key}\n"
    )


def test_build_kubeconfig_with_token_and_long_lines_unfolded() -> None:
    ca = b"x" * 3000
    data = kc.build_kubeconfig("kubernetes", "https://10.0.0.5:6443", ca, "tls-bootstrap-token-user",
                               token="abcdef.0123456789abcdef")
    doc = yaml.safe_load(data)
    assert doc["users"] == [{"name": "tls-bootstrap-token-user", "user": {"token": "abcdef.0123456789abcdef"}}]
    assert f"    certificate-authority-data: {base64.b64encode(ca).decode()}" in data.decode().splitlines()
    view = kc.parse_kubeconfig(data)
    assert view.token == "abcdef.0123456789abcdef" and view.ca_pem == ca
    with pytest.raises(ValueError):
        kc.build_kubeconfig("k", "s", b"", "u")


def test_all_kubeconfigs_v131(tmp_path: Path) -> None:
    spec = make_spec()
    ctx = run(tmp_path, spec)
    assert {c.item: c.status for c in ctx.phase.changes} == {
        f"{KDIR}/{f}": Status.CREATED
        for f in ("admin.conf", "super-admin.conf", "kubelet.conf", "controller-manager.conf", "scheduler.conf")
    }
    ca_pem = (tmp_path / "etc/kubernetes/pki/ca.crt").read_bytes()
    ca = x509.load_pem_x509_certificate(ca_pem)
    expected = {
        "admin.conf": ("kubernetes-admin", ("kubeadm:cluster-admins",), "https://lb.example.com:6443"),
        "super-admin.conf": ("kubernetes-super-admin", ("system:masters",), "https://lb.example.com:6443"),
        "kubelet.conf": ("system:node:cp1", ("system:nodes",), "https://lb.example.com:6443"),
        "controller-manager.conf": ("system:kube-controller-manager", (), "https://10.0.0.5:6443"),
        "scheduler.conf": ("system:kube-scheduler", (), "https://10.0.0.5:6443"),
    }
    for name, (cn, orgs, server) in expected.items():
        path = tmp_path / "etc/kubernetes" / name
        assert os.stat(path).st_mode & 0o777 == 0o600
        view = read(tmp_path, name)
        assert view.server == server, name
        assert view.cluster_name == "kubernetes" and view.user == cn
        assert view.doc["current-context"] == f"{cn}@kubernetes"
        assert view.ca_pem == ca_pem
        cert = client_cert(view)
        assert authority.subject_of(cert) == authority.Subject(cn, orgs)
        assert authority.usages_of(cert) == ("clientAuth",)
        cert.verify_directly_issued_by(ca)
        assert cert.not_valid_before_utc == NOW - timedelta(minutes=5)
        assert cert.not_valid_after_utc == NOW + timedelta(days=365)
        assert view.client_key_pem is not None and view.client_key_pem.startswith(b"-----BEGIN EC PRIVATE KEY-----")


def test_v128_admin_is_system_masters_and_no_super_admin(tmp_path: Path) -> None:
    ctx = run(tmp_path, make_spec(kubernetes_version="v1.28.4"))
    skipped = [c for c in ctx.phase.changes if c.status == Status.SKIPPED]
    assert [c.item for c in skipped] == [f"{KDIR}/super-admin.conf"]
    assert not (tmp_path / "etc/kubernetes/super-admin.conf").exists()
    assert authority.subject_of(client_cert(read(tmp_path, "admin.conf"))).orgs == ("system:masters",)


@pytest.mark.parametrize(("version", "gates", "server"), [
    ("v1.32.1", {}, "https://lb.example.com:6443"),
    ("v1.33.0", {}, "https://10.0.0.5:6443"),
    ("v1.34.0", {"ControlPlaneKubeletLocalMode": False}, "https://lb.example.com:6443"),
    ("v1.31.0", {"ControlPlaneKubeletLocalMode": True}, "https://10.0.0.5:6443"),
])
def test_kubelet_server_follows_local_mode(version: str, gates: dict[str, bool], server: str) -> None:
    spec = make_spec(kubernetes_version=version).model_copy(update={"feature_gates": gates})
    assert kc.KUBELET.server(spec) == server


def test_no_cpe_uses_local_endpoint(tmp_path: Path) -> None:
    spec = build_spec({"apiserver_advertise_address": "10.0.0.5", "node_name": "cp1",
                       "kubernetes_version": "v1.30.0", "encryption_algorithm": "ECDSA-P256"})
    run(tmp_path, spec)
    assert read(tmp_path, "admin.conf").server == "https://10.0.0.5:6443"
    assert read(tmp_path, "kubelet.conf").server == "https://10.0.0.5:6443"


def test_second_run_unchanged_and_same_bytes(tmp_path: Path) -> None:
    spec = make_spec()
    run(tmp_path, spec)
    before = {p.name: p.read_bytes() for p in (tmp_path / "etc/kubernetes").glob("*.conf")}
    ctx = run(tmp_path, spec, now=NOW + timedelta(days=1))
    assert {c.status for c in ctx.phase.changes} == {Status.UNCHANGED}
    assert {p.name: p.read_bytes() for p in (tmp_path / "etc/kubernetes").glob("*.conf")} == before


def test_children_equal_group(tmp_path: Path) -> None:
    g = run(tmp_path / "g", make_spec())
    c = run(tmp_path / "c", make_spec(), children=[p.name for p in PHASE.children])
    assert [(x.item, x.status) for x in g.phase.changes] == [(x.item, x.status) for x in c.phase.changes]


def test_endpoint_change_rerenders_only_affected_files(tmp_path: Path) -> None:
    run(tmp_path, make_spec())
    ctx = run(tmp_path, make_spec(control_plane_endpoint="lb2.example.com:6443"))
    changed = {c.item: c.detail for c in ctx.phase.changes if c.status == Status.UPDATED}
    assert changed == {
        f"{KDIR}/{f}": "server changed: https://lb.example.com:6443 -> https://lb2.example.com:6443"
        for f in ("admin.conf", "super-admin.conf", "kubelet.conf")
    }
    assert read(tmp_path, "admin.conf").server == "https://lb2.example.com:6443"


def test_node_rename_rerenders_kubelet_conf(tmp_path: Path) -> None:
    run(tmp_path, make_spec())
    ctx = run(tmp_path, make_spec(node_name="cp9"), certs=False)
    changed = {c.item: c.detail for c in ctx.phase.changes if c.status == Status.UPDATED}
    assert set(changed) == {f"{KDIR}/kubelet.conf"}
    assert "subject changed" in changed[f"{KDIR}/kubelet.conf"]


def test_foreign_ca_in_kubeconfig_is_rerendered(tmp_path: Path) -> None:
    run(tmp_path / "other", make_spec())
    run(tmp_path / "mine", make_spec())
    (tmp_path / "mine/etc/kubernetes/admin.conf").write_bytes(
        (tmp_path / "other/etc/kubernetes/admin.conf").read_bytes())
    ctx = run(tmp_path / "mine", make_spec(), certs=False)
    changed = {c.item: c.detail for c in ctx.phase.changes if c.status == Status.UPDATED}
    assert changed == {f"{KDIR}/admin.conf": "embedded CA differs from the cluster CA"}


def test_missing_ca_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PKIError) as exc:
        run(tmp_path, make_spec(), certs=False)
    assert "kbootstrap init phase certs ca" in exc.value.one_line()


def test_dry_run_after_dry_run_certs(tmp_path: Path) -> None:
    ctx = run(tmp_path, make_spec(), dry_run=True)
    assert len([c for c in ctx.phase.changes if c.status == Status.CREATED]) == 5
    assert not any(tmp_path.iterdir())


def test_external_ca_keeps_valid_kubeconfigs_and_refuses_missing(tmp_path: Path) -> None:
    run(tmp_path, make_spec())
    (tmp_path / "etc/kubernetes/pki/ca.key").unlink()
    ctx = run(tmp_path, make_spec(), certs=False)
    assert {c.status for c in ctx.phase.changes} == {Status.UNCHANGED}
    (tmp_path / "etc/kubernetes/scheduler.conf").unlink()
    with pytest.raises(PKIError, match="external CA mode"):
        run(tmp_path, make_spec(), certs=False)


def test_user_kubeconfig_for_kubeconfig_user_command(tmp_path: Path) -> None:
    spec = make_spec()
    run(tmp_path, spec)
    from bootstrap.pki import catalog
    from bootstrap.pki.store import load_ca, target_reader
    ca = load_ca(target_reader(LocalTarget(tmp_path)), catalog.CA, spec.cert_dir)
    assert ca is not None
    data = kc.user_kubeconfig(spec, ca, NOW, "alice", ["devs"], validity=timedelta(hours=2))
    view = kc.parse_kubeconfig(data)
    assert view.user == "alice" and view.server == "https://lb.example.com:6443"
    cert = client_cert(view)
    assert authority.subject_of(cert) == authority.Subject("alice", ("devs",))
    assert cert.not_valid_after_utc == NOW + timedelta(hours=2)
    cert.verify_directly_issued_by(ca.cert)
    tok = kc.parse_kubeconfig(kc.user_kubeconfig(spec, ca, NOW, "bob", token="abcdef.0123456789abcdef"))
    assert tok.token == "abcdef.0123456789abcdef" and tok.client_cert_pem is None


def test_finalized_kubelet_conf_is_kept_and_finalizing_is_idempotent(tmp_path: Path) -> None:
    """kubelet-finalize points kubelet.conf at the rotated client certificate; the kubeconfig phase
    keeps that form on a rerun instead of embedding a certificate again."""
    from bootstrap.render.kubeconfig import KUBELET_CLIENT_CURRENT, finalize_kubelet_conf, parse_kubeconfig

    spec = make_spec()
    run(tmp_path, spec)
    path = tmp_path / "etc/kubernetes/kubelet.conf"
    finalized = finalize_kubelet_conf(path.read_bytes(), str(path))
    view = parse_kubeconfig(finalized)
    assert view.client_cert_file == KUBELET_CLIENT_CURRENT and view.client_cert_pem is None
    assert finalize_kubelet_conf(finalized, str(path)) == finalized
    path.write_bytes(finalized)
    ctx = run(tmp_path, spec)
    kept = [c for c in ctx.phase.changes if c.item.endswith("/kubelet.conf")]
    assert [c.status.value for c in kept] == ["unchanged"] and path.read_bytes() == finalized
