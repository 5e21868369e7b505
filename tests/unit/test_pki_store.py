"""The PKI on a --rootfs target: files, PEM types, modes, reuse, re-issue, external CA, dry-run."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from bootstrap.engine.context import RunContext
from bootstrap.engine.result import Status
from bootstrap.errors import PKIError
from bootstrap.phases.certs import PHASE
from bootstrap.pki import authority, catalog
from bootstrap.pki.store import ensure_pki, load_ca, target_reader
from bootstrap.spec.load import build_spec
from bootstrap.spec.model import ClusterSpec, ExternalEtcd, Hardening
from bootstrap.transport.local import LocalTarget

PKI = "/etc/kubernetes/pki"
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def make_spec(**flags: Any) -> ClusterSpec:
    base = {"apiserver_advertise_address": "10.0.0.5", "node_name": "cp1", "kubernetes_version": "v1.31.2",
            "control_plane_endpoint": "lb.example.com:6443", "encryption_algorithm": "ECDSA-P256"}
    return build_spec({**base, **flags})


def run(tmp: Path, spec: ClusterSpec, *, dry_run: bool = False, now: datetime = NOW,
        children: list[str] | None = None) -> RunContext:
    ctx = RunContext(spec, LocalTarget(tmp), dry_run=dry_run, now=now)
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


def statuses(ctx: RunContext) -> dict[str, Status]:
    return {c.item: c.status for c in ctx.phase.changes}


def load(tmp: Path, rel: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((tmp / PKI.lstrip("/") / rel).read_bytes())


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def mode(p: Path) -> int:
    return os.stat(p).st_mode & 0o7777


ALL_FILES = sorted(
    [f"{c.base}.{ext}" for c in catalog.ALL_CERTS for ext in ("crt", "key")] + ["sa.key", "sa.pub"]
)


def test_all_files_created_with_modes(tmp_path: Path) -> None:
    ctx = run(tmp_path, make_spec())
    pki = tmp_path / PKI.lstrip("/")
    assert sorted(str(p.relative_to(pki)) for p in pki.rglob("*") if p.is_file()) == ALL_FILES
    assert all(s == Status.CREATED for s in statuses(ctx).values())
    for name in ALL_FILES:
        assert mode(pki / name) == 0o600, name  # CIS profile: *.crt 0600 too
    assert mode(pki) == 0o755 and mode(pki / "etcd") == 0o755


def test_kubeadm_hardening_profile_writes_crt_0644(tmp_path: Path) -> None:
    spec = make_spec().model_copy(update={"hardening": Hardening.kubeadm()})
    run(tmp_path, spec)
    pki = tmp_path / PKI.lstrip("/")
    for name in ALL_FILES:
        assert mode(pki / name) == (0o644 if name.endswith(".crt") else 0o600), name


@pytest.mark.parametrize(("alg", "header"), [("RSA-2048", b"RSA PRIVATE KEY"), ("ECDSA-P256", b"EC PRIVATE KEY"),
                                             ("ECDSA-P384", b"EC PRIVATE KEY")])
def test_pem_types_per_algorithm(tmp_path: Path, alg: str, header: bytes) -> None:
    run(tmp_path, make_spec(encryption_algorithm=alg))
    pki = tmp_path / PKI.lstrip("/")
    for name in ALL_FILES:
        data = (pki / name).read_bytes()
        if name.endswith(".crt"):
            assert data.startswith(b"-----BEGIN CERTIFICATE-----\n")
        elif name == "sa.pub":
            assert data.startswith(b"-----BEGIN PUBLIC KEY-----\n")
        else:
            assert data.startswith(b"-----BEGIN " + header + b"-----\n"), name


def test_every_cert_parses_back_as_the_catalog_says(tmp_path: Path) -> None:
    spec = make_spec(kubernetes_version="v1.29.3")
    run(tmp_path, spec)
    for cdef in catalog.ALL_CERTS:
        cert = load(tmp_path, cdef.base + ".crt")
        want = cdef.subject(spec)
        assert authority.subject_of(cert) == want, cdef.name
        if cdef.is_ca:
            assert authority.is_ca_cert(cert)
            cert.verify_directly_issued_by(cert)
        else:
            ca = load(tmp_path, catalog.get(cdef.ca or "").base + ".crt")
            cert.verify_directly_issued_by(ca)
            assert authority.usages_of(cert) == cdef.usages
            assert authority.alt_names_of(cert) == cdef.alt_names(spec)
    api = authority.alt_names_of(load(tmp_path, "apiserver.crt"))
    assert api.dns == ("cp1", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                       "kubernetes.default.svc.cluster.local", "lb.example.com")
    assert api.ips == ("10.96.0.1", "10.0.0.5")
    assert authority.subject_of(load(tmp_path, "apiserver-kubelet-client.crt")).orgs == ("kubeadm:cluster-admins",)
    assert authority.subject_of(load(tmp_path, "apiserver-etcd-client.crt")).orgs == ()


def test_v128_subjects(tmp_path: Path) -> None:
    run(tmp_path, make_spec(kubernetes_version="v1.28.4"))
    assert authority.subject_of(load(tmp_path, "apiserver-kubelet-client.crt")).orgs == ("system:masters",)
    assert authority.subject_of(load(tmp_path, "etcd/healthcheck-client.crt")).orgs == ("system:masters",)


def test_validity_v130_vs_v131(tmp_path: Path) -> None:
    run(tmp_path / "a", make_spec(kubernetes_version="v1.30.0"))
    ca, leaf = load(tmp_path / "a", "ca.crt"), load(tmp_path / "a", "apiserver.crt")
    assert ca.not_valid_before_utc == NOW and leaf.not_valid_before_utc == NOW
    assert leaf.not_valid_after_utc == NOW + timedelta(days=365)
    assert ca.not_valid_after_utc == NOW + timedelta(days=3650)
    run(tmp_path / "b", make_spec(kubernetes_version="v1.31.0"))
    for rel in ("ca.crt", "apiserver.crt", "etcd/ca.crt", "front-proxy-client.crt"):
        assert load(tmp_path / "b", rel).not_valid_before_utc == NOW - timedelta(minutes=5)


def test_second_run_changes_nothing(tmp_path: Path) -> None:
    spec = make_spec()
    run(tmp_path, spec)
    before = snapshot(tmp_path)
    ctx = run(tmp_path, spec, now=NOW + timedelta(hours=1))
    assert set(statuses(ctx).values()) == {Status.UNCHANGED}
    assert snapshot(tmp_path) == before


def test_group_and_children_give_the_same_report(tmp_path: Path) -> None:
    spec = make_spec()
    group = run(tmp_path / "g", spec)
    kids = run(tmp_path / "c", spec, children=[c.name for c in PHASE.children])
    assert [(c.item, c.status) for c in group.phase.changes] == [(c.item, c.status) for c in kids.phase.changes]
    assert sorted(snapshot(tmp_path / "g")) == sorted(snapshot(tmp_path / "c"))


def test_san_change_reissues_only_the_apiserver(tmp_path: Path) -> None:
    run(tmp_path, make_spec())
    before = snapshot(tmp_path)
    ctx = run(tmp_path, make_spec(apiserver_cert_extra_sans="foo.example.com"))
    changed = {c.item: c for c in ctx.phase.changes if c.status != Status.UNCHANGED}
    assert set(changed) == {f"{PKI}/apiserver.crt", f"{PKI}/apiserver.key"}
    assert changed[f"{PKI}/apiserver.crt"].status == Status.UPDATED
    assert changed[f"{PKI}/apiserver.crt"].detail == "SANs changed: +DNS:foo.example.com"
    after = snapshot(tmp_path)
    assert [k for k in after if after[k] != before[k]] == [
        "etc/kubernetes/pki/apiserver.crt", "etc/kubernetes/pki/apiserver.key"]
    assert "foo.example.com" in authority.alt_names_of(load(tmp_path, "apiserver.crt")).dns


def test_node_rename_reissues_etcd_certs_subject(tmp_path: Path) -> None:
    run(tmp_path, make_spec())
    ctx = run(tmp_path, make_spec(node_name="cp2"))
    details = {c.item: c.detail for c in ctx.phase.changes if c.status == Status.UPDATED}
    assert details[f"{PKI}/etcd/server.crt"] == "subject changed: CN=cp1 -> CN=cp2"
    assert f"{PKI}/ca.crt" not in details


def test_expired_leaf_is_reissued_but_ca_kept(tmp_path: Path) -> None:
    spec = make_spec()
    run(tmp_path, spec)
    ca_before = (tmp_path / "etc/kubernetes/pki/ca.crt").read_bytes()
    ctx = run(tmp_path, spec, now=NOW + timedelta(days=400))
    st = statuses(ctx)
    assert st[f"{PKI}/apiserver.crt"] == Status.UPDATED
    assert st[f"{PKI}/ca.crt"] == Status.UNCHANGED
    assert (tmp_path / "etc/kubernetes/pki/ca.crt").read_bytes() == ca_before


def test_wrong_mode_is_fixed_without_rewriting(tmp_path: Path) -> None:
    spec = make_spec()
    run(tmp_path, spec)
    key = tmp_path / "etc/kubernetes/pki/apiserver.key"
    os.chmod(key, 0o644)
    data = key.read_bytes()
    ctx = run(tmp_path, spec)
    assert statuses(ctx)[f"{PKI}/apiserver.key"] == Status.UPDATED
    assert mode(key) == 0o600 and key.read_bytes() == data


def test_existing_ca_is_reused_for_new_leaves(tmp_path: Path) -> None:
    spec = make_spec()
    run(tmp_path, spec)
    pki = tmp_path / PKI.lstrip("/")
    ca_bytes, ca_key = (pki / "ca.crt").read_bytes(), (pki / "ca.key").read_bytes()
    (pki / "apiserver.crt").unlink()
    ctx = run(tmp_path, make_spec(encryption_algorithm="RSA-2048"))  # algorithm change never replaces a CA
    assert (pki / "ca.crt").read_bytes() == ca_bytes and (pki / "ca.key").read_bytes() == ca_key
    assert statuses(ctx)[f"{PKI}/apiserver.crt"] == Status.CREATED
    load(tmp_path, "apiserver.crt").verify_directly_issued_by(load(tmp_path, "ca.crt"))


def test_ca_key_without_cert_is_an_error_and_nothing_is_overwritten(tmp_path: Path) -> None:
    run(tmp_path, make_spec())
    pki = tmp_path / PKI.lstrip("/")
    (pki / "ca.crt").unlink()
    key = (pki / "ca.key").read_bytes()
    with pytest.raises(PKIError, match=r"ca\.key exists without"):
        run(tmp_path, make_spec())
    assert (pki / "ca.key").read_bytes() == key and not (pki / "ca.crt").exists()


def test_ca_key_mismatch_and_non_ca_are_errors(tmp_path: Path) -> None:
    run(tmp_path, make_spec())
    pki = tmp_path / PKI.lstrip("/")
    (pki / "ca.key").write_bytes((pki / "front-proxy-ca.key").read_bytes())
    with pytest.raises(PKIError, match="does not match"):
        run(tmp_path, make_spec())
    (pki / "ca.crt").write_bytes((pki / "apiserver.crt").read_bytes())
    with pytest.raises(PKIError, match="not a CA"):
        run(tmp_path, make_spec())


def test_external_ca_mode(tmp_path: Path) -> None:
    spec = make_spec()
    run(tmp_path, spec)
    pki = tmp_path / PKI.lstrip("/")
    (pki / "ca.key").unlink()
    ctx = run(tmp_path, spec)
    assert statuses(ctx)[f"{PKI}/apiserver.crt"] == Status.UNCHANGED
    assert not (pki / "ca.key").exists()
    (pki / "apiserver.crt").unlink()
    with pytest.raises(PKIError, match=r"external CA mode.*apiserver\.crt"):
        run(tmp_path, spec)
    assert not (pki / "ca.key").exists()


def test_single_phase_without_its_ca_explains(tmp_path: Path) -> None:
    with pytest.raises(PKIError) as exc:
        run(tmp_path, make_spec(), children=["apiserver"])
    assert "couldn't load the ca certificate authority" in exc.value.one_line()
    assert "kbootstrap init phase certs ca" in exc.value.one_line()
    assert not (tmp_path / "etc").exists() or not list((tmp_path / "etc").rglob("*.crt"))
    with pytest.raises(PKIError) as exc:
        run(tmp_path, make_spec(), children=["etcd-server"])
    assert "init phase certs etcd-ca" in exc.value.one_line()


def test_single_phase_after_ca(tmp_path: Path) -> None:
    run(tmp_path, make_spec(), children=["ca"])
    ctx = run(tmp_path, make_spec(), children=["apiserver"])
    assert statuses(ctx) == {f"{PKI}/apiserver.key": Status.CREATED, f"{PKI}/apiserver.crt": Status.CREATED}


def test_dry_run_writes_nothing_and_reports_everything(tmp_path: Path) -> None:
    ctx = run(tmp_path, make_spec(), dry_run=True)
    assert not any(tmp_path.iterdir())
    assert len(ctx.phase.changes) == len(ALL_FILES)
    assert all(c.status == Status.CREATED for c in ctx.phase.changes)
    # the same through the children: later children see the CA "created" by the earlier one
    kids = run(tmp_path, make_spec(), dry_run=True, children=[c.name for c in PHASE.children],
               now=NOW + timedelta(seconds=1))
    assert [(c.item, c.status) for c in kids.phase.changes] == [(c.item, c.status) for c in ctx.phase.changes]
    assert not any(tmp_path.iterdir())


def test_dry_run_on_existing_pki_reports_the_drift_only(tmp_path: Path) -> None:
    run(tmp_path, make_spec())
    before = snapshot(tmp_path)
    ctx = run(tmp_path, make_spec(apiserver_cert_extra_sans="10.9.9.9"), dry_run=True)
    assert {c.item for c in ctx.phase.changes if c.status.changed} == {f"{PKI}/apiserver.crt", f"{PKI}/apiserver.key"}
    assert snapshot(tmp_path) == before


def test_sa_key_reused(tmp_path: Path) -> None:
    run(tmp_path, make_spec())
    pki = tmp_path / PKI.lstrip("/")
    sa = (pki / "sa.key").read_bytes()
    (pki / "sa.pub").unlink()
    ctx = run(tmp_path, make_spec())
    assert (pki / "sa.key").read_bytes() == sa
    assert statuses(ctx)[f"{PKI}/sa.pub"] == Status.CREATED
    assert mode(pki / "sa.pub") == 0o600


def test_external_etcd_generates_no_etcd_certs(tmp_path: Path) -> None:
    spec = make_spec().model_copy(update={"etcd_local": None,
                                          "etcd_external": ExternalEtcd(endpoints=("https://10.0.0.9:2379",))})
    ctx = run(tmp_path, spec)
    pki = tmp_path / PKI.lstrip("/")
    assert not (pki / "etcd").exists() and not (pki / "apiserver-etcd-client.crt").exists()
    skipped = [c.item for c in ctx.phase.changes if c.status == Status.SKIPPED]
    assert skipped == ["etcd-ca", "etcd-server", "etcd-peer", "etcd-healthcheck-client", "apiserver-etcd-client"]
    assert (pki / "front-proxy-client.crt").exists()


def test_custom_cert_dir_and_validity(tmp_path: Path) -> None:
    spec = make_spec(cert_dir="/srv/pki").model_copy(update={"certificate_validity": timedelta(days=30)})
    run(tmp_path, spec)
    cert = x509.load_pem_x509_certificate((tmp_path / "srv/pki/apiserver.crt").read_bytes())
    assert cert.not_valid_after_utc == NOW + timedelta(days=30)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_ensure_pki_returns_cas_and_load_ca(tmp_path: Path) -> None:
    ctx = RunContext(make_spec(), LocalTarget(tmp_path), now=NOW)
    cas = ensure_pki(ctx)
    assert set(cas) == {"ca", "front-proxy-ca", "etcd-ca"}
    loaded = load_ca(target_reader(LocalTarget(tmp_path)), catalog.CA, PKI)
    assert loaded is not None and loaded.cert == cas["ca"].cert and not loaded.external
