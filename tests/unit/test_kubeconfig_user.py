"""`kbootstrap kubeconfig user`: subject and groups, no system:masters unless asked loudly, validity,
the CA found by --rootfs / --cert-dir / --config, the server from the flag or the config; kubectl reads it."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kbtest import KUBECTL, KUBECTL_MISSING

from bootstrap.commands.common import EdgeGroup
from bootstrap.commands.kubeconfig import MASTERS_WARNING, kubeconfig
from bootstrap.engine.context import RunContext
from bootstrap.pki.store import ensure_pki
from bootstrap.render.kubeconfig import parse_kubeconfig
from bootstrap.spec.load import build_spec
from bootstrap.transport.local import LocalTarget

PKI = "etc/kubernetes/pki"
VIP_ENDPOINT = "10.0.0.250:8443"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    r = tmp_path_factory.mktemp("rootfs")
    spec = build_spec({"apiserver_advertise_address": "10.0.0.11", "node_name": "cp1",
                       "encryption_algorithm": "ECDSA-P256"})
    ensure_pki(RunContext(spec, LocalTarget(r)), ["ca"])
    return r


def cli() -> EdgeGroup:
    group = EdgeGroup()
    group.add_command(kubeconfig)
    return group


def run(*args: str) -> Any:
    return CliRunner().invoke(cli(), ["kubeconfig", "user", *args])


def cert_of(output: str) -> x509.Certificate:
    view = parse_kubeconfig(output.encode())
    assert view.client_cert_pem is not None
    return x509.load_pem_x509_certificate(view.client_cert_pem)


def test_user_in_group_dev_has_the_right_subject_and_no_masters(root: Path) -> None:
    r = run("--client-name", "alice", "--org", "dev", "--rootfs", str(root), "--control-plane-endpoint", VIP_ENDPOINT)
    assert r.exit_code == 0, r.output
    view = parse_kubeconfig(r.stdout.encode())
    assert view.server == f"https://{VIP_ENDPOINT}" and view.user == "alice"
    assert view.doc["current-context"] == "alice@kubernetes"
    cert = cert_of(r.stdout)
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == ["alice"]
    groups = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert groups == ["dev"] and "system:masters" not in groups
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ca = x509.load_pem_x509_certificate((root / PKI / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert view.ca_pem == (root / PKI / "ca.crt").read_bytes()
    assert MASTERS_WARNING not in r.stderr


def test_several_groups_and_validity(root: Path) -> None:
    before = datetime.now(UTC)
    r = run("--client-name", "bob", "--org", "dev", "--org", "ops", "--validity", "24h", "--rootfs", str(root),
            "--control-plane-endpoint", VIP_ENDPOINT)
    assert r.exit_code == 0, r.output
    cert = cert_of(r.stdout)
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["dev", "ops"]
    lifetime = cert.not_valid_after_utc - before
    assert timedelta(hours=23, minutes=59) < lifetime <= timedelta(hours=24, seconds=5)
    # kubeadm's own flag name works too; the default is the cluster's certificate validity (1 year).
    r2 = run("--client-name", "carol", "--validity-period", "1h30m", "--rootfs", str(root),
             "--control-plane-endpoint", VIP_ENDPOINT)
    assert r2.exit_code == 0
    assert cert_of(r2.stdout).not_valid_after_utc - before <= timedelta(minutes=90, seconds=5)
    r3 = run("--client-name", "dave", "--rootfs", str(root), "--control-plane-endpoint", VIP_ENDPOINT)
    assert cert_of(r3.stdout).not_valid_after_utc - before > timedelta(days=364)


def test_system_masters_needs_the_loud_flag(root: Path) -> None:
    r = run("--client-name", "root", "--org", "system:masters", "--rootfs", str(root),
            "--control-plane-endpoint", VIP_ENDPOINT)
    assert r.exit_code == 2 and r.stdout == ""
    assert "system:masters" in r.stderr and "--allow-system-masters" in r.stderr
    assert "Traceback" not in r.output and len(r.stderr.strip().splitlines()) == 1
    ok = run("--client-name", "root", "--org", "system:masters", "--allow-system-masters", "--rootfs", str(root),
             "--control-plane-endpoint", VIP_ENDPOINT)
    assert ok.exit_code == 0 and MASTERS_WARNING in ok.stderr
    groups = [a.value for a in cert_of(ok.stdout).subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert groups == ["system:masters"]


def test_server_and_cert_dir_from_a_kubeadm_config(root: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "kubeadm.yaml"
    cfg.write_text(f"""apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
controlPlaneEndpoint: {VIP_ENDPOINT}
certificatesDir: {root / PKI}
""")
    r = run("--client-name", "eve", "--org", "dev", "--config", str(cfg))
    assert r.exit_code == 0, r.output
    assert parse_kubeconfig(r.stdout.encode()).server == f"https://{VIP_ENDPOINT}"
    # --cert-dir finds the CA the same way.
    r2 = run("--client-name", "eve", "--cert-dir", str(root / PKI), "--control-plane-endpoint", VIP_ENDPOINT)
    assert r2.exit_code == 0, r2.output


def test_token_kubeconfig(root: Path) -> None:
    r = run("--client-name", "robot", "--token", "abcdef.0123456789abcdef", "--rootfs", str(root),
            "--control-plane-endpoint", VIP_ENDPOINT)
    assert r.exit_code == 0
    view = parse_kubeconfig(r.stdout.encode())
    assert view.token == "abcdef.0123456789abcdef" and view.client_cert_pem is None


@pytest.mark.parametrize(("args", "message", "code"), [
    (["--client-name", "x", "--control-plane-endpoint", VIP_ENDPOINT], "couldn't load the cluster CA", 1),
    (["--client-name", "x"], "no API server address", 2),
    (["--client-name", "x", "--control-plane-endpoint", VIP_ENDPOINT, "--validity", "soon"], "is not a duration", 2),
    (["--client-name", "x", "--control-plane-endpoint", VIP_ENDPOINT, "--validity", "999999h"],
     "outlives the cluster CA", 2),
    (["--client-name", "x", "--control-plane-endpoint", "a:b:c:d"], "is not HOST[:PORT]", 2),
])
def test_errors_are_one_line(root: Path, tmp_path: Path, args: list[str], message: str, code: int) -> None:
    where = tmp_path if "couldn't" in message else root
    r = run(*args, "--rootfs", str(where))
    assert r.exit_code == code, r.output
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""


def test_external_ca_without_key_refuses_to_sign(root: Path, tmp_path: Path) -> None:
    (tmp_path / PKI).mkdir(parents=True)
    shutil.copy(root / PKI / "ca.crt", tmp_path / PKI / "ca.crt")
    r = run("--client-name", "x", "--rootfs", str(tmp_path), "--control-plane-endpoint", VIP_ENDPOINT)
    assert r.exit_code == 1 and "external CA" in r.stderr


@pytest.mark.skipif(KUBECTL is None, reason=KUBECTL_MISSING)
def test_kubectl_reads_the_kubeconfig(root: Path, tmp_path: Path) -> None:
    r = run("--client-name", "alice", "--org", "dev", "--rootfs", str(root), "--control-plane-endpoint", VIP_ENDPOINT)
    path = tmp_path / "alice.conf"
    path.write_text(r.stdout)
    path.chmod(0o600)
    env = {"KUBECONFIG": str(path), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin:/usr/local/bin"}
    view = subprocess.run([str(KUBECTL), "config", "view", "--raw", "-o", "jsonpath={.users[0].name} "
                           "{.clusters[0].cluster.server} {.current-context}"],
                          capture_output=True, text=True, env=env, timeout=30)
    assert view.returncode == 0, view.stderr
    assert view.stdout.split() == ["alice", f"https://{VIP_ENDPOINT}", "alice@kubernetes"]
    # kubectl decodes the embedded cert and key (it would fail to build a client otherwise).
    who = subprocess.run([str(KUBECTL), "config", "view", "--minify", "--flatten", "-o",
                          "jsonpath={.users[0].user.client-certificate-data}"],
                         capture_output=True, text=True, env=env, timeout=30)
    assert who.returncode == 0 and who.stdout.strip()
