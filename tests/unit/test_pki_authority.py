"""Keys, CA and leaf certificates parsed back field by field."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bootstrap.pki import authority, catalog
from bootstrap.pki.authority import CertAndKey, KeyPool, generate_key, generate_keys
from bootstrap.pki.catalog import AltNames, Subject
from bootstrap.spec.load import build_spec
from bootstrap.spec.model import ClusterSpec, EncryptionAlgorithm

NOW = datetime(2025, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)


def make_spec(**flags: Any) -> ClusterSpec:
    base = {"apiserver_advertise_address": "10.0.0.5", "node_name": "cp1", "kubernetes_version": "v1.31.2"}
    return build_spec({**base, **flags})


def make_ca(alg: EncryptionAlgorithm = EncryptionAlgorithm.ECDSA_P256, cn: str = "kubernetes") -> CertAndKey:
    key = generate_key(alg)
    nb, na = authority.ca_validity(make_spec(), NOW)
    return CertAndKey(authority.new_ca(cn, key, not_before=nb, not_after=na), key)


@pytest.mark.parametrize(("alg", "kind", "size"), [
    (EncryptionAlgorithm.RSA_2048, rsa.RSAPrivateKey, 2048),
    (EncryptionAlgorithm.RSA_3072, rsa.RSAPrivateKey, 3072),
    (EncryptionAlgorithm.ECDSA_P256, ec.EllipticCurvePrivateKey, 256),
    (EncryptionAlgorithm.ECDSA_P384, ec.EllipticCurvePrivateKey, 384),
])
def test_key_per_algorithm(alg: EncryptionAlgorithm, kind: type, size: int) -> None:
    key = generate_key(alg)
    assert isinstance(key, kind)
    assert key.key_size == size
    assert authority.algorithm_of(key) == alg
    if isinstance(key, rsa.RSAPrivateKey):
        assert key.private_numbers().public_numbers.e == 65537


def test_rsa_4096() -> None:
    assert generate_key(EncryptionAlgorithm.RSA_4096).key_size == 4096


def test_generate_keys_parallel_distinct() -> None:
    keys = generate_keys(EncryptionAlgorithm.RSA_2048, 4)
    assert len(keys) == 4
    assert len({authority.public_der(k.public_key()) for k in keys}) == 4


def test_key_pool_generates_on_demand_beyond_estimate() -> None:
    with KeyPool(EncryptionAlgorithm.ECDSA_P256, 1) as pool:
        a, b = pool.take(), pool.take()
        assert pool.remaining == 0
    assert authority.public_der(a.public_key()) != authority.public_der(b.public_key())


@pytest.mark.parametrize(("alg", "hash_name"), [
    (EncryptionAlgorithm.RSA_2048, "sha256"), (EncryptionAlgorithm.ECDSA_P256, "sha256"),
    (EncryptionAlgorithm.ECDSA_P384, "sha384"),
])
def test_ca_certificate(alg: EncryptionAlgorithm, hash_name: str) -> None:
    ca = make_ca(alg)
    cert = ca.cert
    assert cert.version == x509.Version.v3
    assert cert.subject == cert.issuer
    assert [a.oid for a in cert.subject] == [NameOID.COMMON_NAME]
    assert cert.subject.rfc4514_string() == "CN=kubernetes"
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature and ku.value.key_encipherment and ku.value.key_cert_sign
    assert not ku.value.crl_sign
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length is None
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["kubernetes"]
    skid = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert skid == x509.SubjectKeyIdentifier.from_public_key(ca.key.public_key())  # type: ignore[union-attr]
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert cert.signature_hash_algorithm is not None and cert.signature_hash_algorithm.name == hash_name
    assert 1 <= cert.serial_number < 2**63 - 1
    cert.verify_directly_issued_by(cert)


def test_leaf_certificate_ecdsa_keeps_key_encipherment() -> None:
    ca = make_ca()
    key = generate_key(EncryptionAlgorithm.ECDSA_P256)
    alt = AltNames.build(["b.example", "a.example"], ["10.0.0.5", "::1"])
    cert = authority.issue(ca, key.public_key(), Subject("cp1", ("grp",)), ("serverAuth", "clientAuth"), alt,
                           not_before=NOW, not_after=NOW + timedelta(days=1))
    assert cert.subject.rfc4514_string() == "CN=cp1,O=grp"
    assert [a.oid for a in cert.subject] == [NameOID.ORGANIZATION_NAME, NameOID.COMMON_NAME]  # Go's order
    assert cert.issuer == ca.cert.subject
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and ku.value.key_encipherment and not ku.value.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    akid = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    skid = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert akid.key_identifier == skid.digest
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["a.example", "b.example"]
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.5", "::1"]
    assert authority.signed_by(cert, ca.cert)
    assert not authority.signed_by(cert, make_ca().cert)


def test_client_cert_without_sans_has_no_san_extension() -> None:
    ca = make_ca()
    key = generate_key(EncryptionAlgorithm.ECDSA_P256)
    cert = authority.issue(ca, key.public_key(), Subject("x"), ("clientAuth",),
                           not_before=NOW, not_after=NOW + timedelta(days=1))
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_printable_string_as_go_encodes_names() -> None:
    ca = make_ca()
    key = generate_key(EncryptionAlgorithm.ECDSA_P256)
    cert = authority.issue(ca, key.public_key(), Subject("system:node:cp1", ("kubeadm:cluster-admins",)),
                           ("clientAuth",), not_before=NOW, not_after=NOW + timedelta(days=1))
    der = cert.public_bytes(serialization.Encoding.DER)
    # 0x13 = PrintableString; Go picks it for every value made of printable characters.
    assert b"\x13\x0fsystem:node:cp1" in der
    assert b"\x13\x16kubeadm:cluster-admins" in der


def test_validity_backdating_by_version() -> None:
    new, old = make_spec(kubernetes_version="v1.31.0"), make_spec(kubernetes_version="v1.30.5")
    start = NOW.replace(microsecond=0)
    nb, na = authority.ca_validity(new, NOW)
    assert nb == start - timedelta(minutes=5) and na == start + timedelta(days=3650)
    nb, na = authority.ca_validity(old, NOW)
    assert nb == start and na == start + timedelta(days=3650)
    ca = make_ca()
    old_ca_cert = authority.new_ca("kubernetes", ca.key, not_before=NOW - timedelta(days=30),  # type: ignore[arg-type]
                                   not_after=NOW + timedelta(days=3000))
    nb, na = authority.leaf_validity(old, NOW, old_ca_cert)
    assert nb == old_ca_cert.not_valid_before_utc  # <= v1.30: copied from the CA
    assert na == start + timedelta(days=365)
    nb, _ = authority.leaf_validity(new, NOW, old_ca_cert)
    assert nb == start - timedelta(minutes=5)


def test_custom_validity() -> None:
    spec = make_spec().model_copy(update={"certificate_validity": timedelta(hours=48),
                                          "ca_certificate_validity": timedelta(hours=1000)})
    assert authority.leaf_validity(spec, NOW, make_ca().cert)[1] == NOW.replace(microsecond=0) + timedelta(hours=48)
    assert authority.ca_validity(spec, NOW)[1] == NOW.replace(microsecond=0) + timedelta(hours=1000)


def test_serials_random_in_range() -> None:
    serials = {authority.random_serial() for _ in range(200)}
    assert len(serials) == 200
    assert all(1 <= s < 2**63 - 1 for s in serials)


def test_issue_refuses_external_ca() -> None:
    ca = make_ca()
    from bootstrap.errors import PKIError
    with pytest.raises(PKIError):
        authority.issue(CertAndKey(ca.cert, None), ca.cert.public_key(), Subject("x"), ("clientAuth",),  # type: ignore[arg-type]
                        not_before=NOW, not_after=NOW)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed (independent checker)")
def test_spki_hash_matches_openssl(tmp_path: Any) -> None:
    ca = make_ca(EncryptionAlgorithm.RSA_2048)
    p = tmp_path / "ca.crt"
    p.write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    pub = subprocess.run(["openssl", "x509", "-in", str(p), "-pubkey", "-noout"], capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub, capture_output=True,
                         check=True).stdout
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    assert authority.spki_sha256(ca.cert) == "sha256:" + digest.finalize().hex()
    assert catalog.CA.name == "ca"
