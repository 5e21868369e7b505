"""`kbootstrap certs check-expiration | renew | certificate-key` against a --rootfs PKI."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509

from bootstrap.commands.certs import RESTART_REMINDER, certs, short_human_duration, tabwrite
from bootstrap.engine.context import RunContext
from bootstrap.phases.certs import PHASE as CERTS
from bootstrap.phases.kubeconfig import PHASE as KUBECONFIG
from bootstrap.pki import authority
from bootstrap.render import kubeconfig as kc
from bootstrap.spec.load import build_spec
from bootstrap.spec.model import ClusterSpec
from bootstrap.transport.local import LocalTarget

PKI = "etc/kubernetes/pki"


def make_spec(**flags: Any) -> ClusterSpec:
    base = {"apiserver_advertise_address": "10.0.0.5", "node_name": "cp1", "kubernetes_version": "v1.34.0",
            "control_plane_endpoint": "lb.example.com:6443", "encryption_algorithm": "ECDSA-P256",
            "apiserver_cert_extra_sans": "extra.example.com,10.1.2.3"}
    return build_spec({**base, **flags})


def bootstrap(root: Path, spec: ClusterSpec | None = None, now: datetime | None = None) -> None:
    ctx = RunContext(spec or make_spec(), LocalTarget(root), now=now or datetime.now(UTC))
    assert CERTS.run is not None and KUBECONFIG.run is not None
    CERTS.run(ctx)
    KUBECONFIG.run(ctx)


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(certs, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def load(root: Path, rel: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((root / PKI / rel).read_bytes())


def test_check_expiration_text(tmp_path: Path) -> None:
    bootstrap(tmp_path)
    out = invoke("check-expiration", "--rootfs", str(tmp_path)).output
    lines = out.splitlines()
    assert lines[0] == ("CERTIFICATE                EXPIRES                  RESIDUAL TIME   "
                        "CERTIFICATE AUTHORITY   EXTERNALLY MANAGED")
    names = [ln.split()[0] for ln in lines[1:12]]
    assert names == ["admin.conf", "apiserver", "apiserver-etcd-client", "apiserver-kubelet-client",
                     "controller-manager.conf", "etcd-healthcheck-client", "etcd-peer", "etcd-server",
                     "front-proxy-client", "scheduler.conf", "super-admin.conf"]
    assert re.fullmatch(r"apiserver {18}\w{3} \d\d, \d{4} \d\d:\d\d UTC   364d {12}ca {22}no {6}", lines[2])
    assert lines[12] == ""
    assert lines[13] == "CERTIFICATE AUTHORITY   EXPIRES                  RESIDUAL TIME   EXTERNALLY MANAGED"
    assert [ln.split()[0] for ln in lines[14:]] == ["ca", "etcd-ca", "front-proxy-ca"]
    assert all("   9y   " in ln for ln in lines[14:])
    assert "front-proxy-client         " in out and "front-proxy-ca " in lines[9]
    assert "kubelet.conf" not in out


def test_check_expiration_missing_and_external(tmp_path: Path) -> None:
    bootstrap(tmp_path)
    (tmp_path / "etc/kubernetes/super-admin.conf").unlink()
    (tmp_path / PKI / "front-proxy-ca.key").unlink()
    out = invoke("check-expiration", "--rootfs", str(tmp_path)).output
    assert "!MISSING! super-admin.conf" in out
    row = next(ln for ln in out.splitlines() if ln.startswith("front-proxy-client"))
    assert row.rstrip().endswith("yes")
    ca_row = next(ln for ln in out.splitlines() if ln.startswith("front-proxy-ca "))
    assert ca_row.rstrip().endswith("yes")


def test_check_expiration_json(tmp_path: Path) -> None:
    bootstrap(tmp_path)
    data = json.loads(invoke("check-expiration", "--rootfs", str(tmp_path), "-o", "json").output)
    assert data["kind"] == "CertificateExpirationInfo"
    assert data["apiVersion"] == "output.kubeadm.k8s.io/v1alpha3"
    api = next(c for c in data["certificates"] if c["name"] == "apiserver")
    cert = load(tmp_path, "apiserver.crt")
    assert api["expirationDate"] == cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert api["caName"] == "ca" and api["externallyManaged"] is False
    assert 364 * 86400 < api["residualTime"] <= 365 * 86400
    assert [c["name"] for c in data["certificateAuthorities"]] == ["ca", "etcd-ca", "front-proxy-ca"]
    assert "caName" not in data["certificateAuthorities"][0]


def test_check_expiration_with_config_external_etcd_and_cert_dir(tmp_path: Path) -> None:
    cfg = tmp_path / "kubeadm.yaml"
    cfg.write_text("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.28.0\n"
                   "etcd:\n  external:\n    endpoints: [https://10.0.0.9:2379]\n")
    spec = make_spec(kubernetes_version="v1.28.0", cert_dir="/srv/pki")
    root = tmp_path / "root"
    bootstrap(root, spec)
    out = invoke("check-expiration", "--rootfs", str(root), "--config", str(cfg), "--cert-dir", "/srv/pki").output
    assert "etcd" not in out and "super-admin" not in out  # external etcd, v1.28
    assert "apiserver " in out and "!MISSING!" not in out


def test_renew_single_cert_keeps_subject_and_sans(tmp_path: Path) -> None:
    old_now = datetime.now(UTC) - timedelta(days=100)
    bootstrap(tmp_path, now=old_now)
    old = load(tmp_path, "apiserver.crt")
    old_key = (tmp_path / PKI / "apiserver.key").read_bytes()
    ca_before = (tmp_path / PKI / "ca.crt").read_bytes()
    out = invoke("renew", "apiserver", "--rootfs", str(tmp_path)).output
    assert out.splitlines()[0] == "certificate for serving the Kubernetes API renewed"
    assert RESTART_REMINDER in out
    new = load(tmp_path, "apiserver.crt")
    assert new.subject == old.subject
    assert authority.alt_names_of(new) == authority.alt_names_of(old)
    assert "extra.example.com" in authority.alt_names_of(new).dns
    assert authority.usages_of(new) == authority.usages_of(old)
    assert new.serial_number != old.serial_number
    assert (tmp_path / PKI / "apiserver.key").read_bytes() != old_key
    assert new.not_valid_after_utc > old.not_valid_after_utc + timedelta(days=99)
    assert new.not_valid_before_utc > old.not_valid_before_utc
    new.verify_directly_issued_by(load(tmp_path, "ca.crt"))
    assert (tmp_path / PKI / "ca.crt").read_bytes() == ca_before
    # other certs untouched
    assert load(tmp_path, "front-proxy-client.crt").not_valid_after_utc < new.not_valid_after_utc


def test_renew_uses_existing_sans_not_the_spec(tmp_path: Path) -> None:
    bootstrap(tmp_path)
    # a --config without the extra SANs must not drop them (kubeadm reads the existing cert)
    cfg = tmp_path / "kubeadm.yaml"
    cfg.write_text("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.34.0\n"
                   "encryptionAlgorithm: RSA-2048\n")
    invoke("renew", "apiserver", "--rootfs", str(tmp_path), "--config", str(cfg))
    new = load(tmp_path, "apiserver.crt")
    assert "extra.example.com" in authority.alt_names_of(new).dns
    assert (tmp_path / PKI / "apiserver.key").read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----")


def test_renew_all_including_kubeconfigs(tmp_path: Path) -> None:
    bootstrap(tmp_path)
    before = kc.parse_kubeconfig((tmp_path / "etc/kubernetes/admin.conf").read_bytes())
    kubelet_before = (tmp_path / "etc/kubernetes/kubelet.conf").read_bytes()
    sa_before = (tmp_path / PKI / "sa.key").read_bytes()
    ca_before = (tmp_path / PKI / "ca.key").read_bytes()
    out = invoke("renew", "all", "--rootfs", str(tmp_path)).output
    assert out.count(" renewed") == 11
    assert "certificate embedded in the kubeconfig file for the admin to use and for kubeadm itself renewed" in out
    assert out.rstrip().endswith(RESTART_REMINDER)
    after = kc.parse_kubeconfig((tmp_path / "etc/kubernetes/admin.conf").read_bytes())
    assert after.server == before.server and after.ca_pem == before.ca_pem and after.user == before.user
    assert after.client_cert_pem != before.client_cert_pem and after.client_key_pem != before.client_key_pem
    assert after.client_cert_pem is not None
    cert = x509.load_pem_x509_certificate(after.client_cert_pem)
    assert authority.subject_of(cert).orgs == ("kubeadm:cluster-admins",)
    assert (tmp_path / "etc/kubernetes/kubelet.conf").read_bytes() == kubelet_before  # kubelet rotates itself
    assert (tmp_path / PKI / "sa.key").read_bytes() == sa_before
    assert (tmp_path / PKI / "ca.key").read_bytes() == ca_before


def test_renew_json_and_external_ca(tmp_path: Path) -> None:
    bootstrap(tmp_path)
    (tmp_path / PKI / "ca.key").unlink()
    result = invoke("renew", "all", "--rootfs", str(tmp_path), "-o", "json")
    data = json.loads(result.output)
    status = {c["name"]: c["status"] for c in data["certificates"]}
    assert status["apiserver"] == "external" and status["admin.conf"] == "external"
    assert status["etcd-server"] == "renewed" and status["front-proxy-client"] == "renewed"
    text = invoke("renew", "apiserver", "--rootfs", str(tmp_path)).output
    assert text.strip() == "Detected external ca, certificate for serving the Kubernetes API can't be renewed"


def test_renew_unknown_name(tmp_path: Path) -> None:
    from bootstrap.errors import UsageError
    bootstrap(tmp_path)
    with pytest.raises(UsageError, match="unknown certificate"):
        invoke("renew", "kubelet.conf", "--rootfs", str(tmp_path))


def test_renew_missing(tmp_path: Path) -> None:
    bootstrap(tmp_path)
    (tmp_path / "etc/kubernetes/super-admin.conf").unlink()
    out = invoke("renew", "super-admin.conf", "--rootfs", str(tmp_path)).output
    assert out.strip() == "MISSING! certificate embedded in the kubeconfig file for the super-admin"


def test_certificate_key() -> None:
    a, b = invoke("certificate-key").output.strip(), invoke("certificate-key").output.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", a) and a != b


@pytest.mark.parametrize(("delta", "text"), [
    (timedelta(seconds=-5), "<invalid>"), (timedelta(seconds=-1), "0s"), (timedelta(seconds=30), "30s"),
    (timedelta(minutes=59, seconds=59), "59m"), (timedelta(hours=23), "23h"), (timedelta(hours=24), "1d"),
    (timedelta(days=364, hours=23), "364d"), (timedelta(days=365), "1y"), (timedelta(days=3649), "9y"),
])
def test_short_human_duration(delta: timedelta, text: str) -> None:
    assert short_human_duration(delta) == text


def test_tabwrite_like_go() -> None:
    out = tabwrite(["A\tBB\tlast", "CCCCCCCCCCCCC\tD\tx", "", "E\tF"])
    assert out.splitlines() == [
        "A               BB        last",
        "CCCCCCCCCCCCC   D         x",
        "",
        "E         F",
    ]
