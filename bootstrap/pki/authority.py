"""Keys, CAs and leaf certificates built in memory exactly as kubeadm (pkiutil + Go crypto/x509) does.

Nothing here touches a disk; store.py writes. Key generation is the only slow part (RSA), and
cryptography releases the GIL while OpenSSL generates a key, so a thread pool gives real
parallelism without pickling keys between processes (measured: 1.6-1.9x on 2 cores for RSA-2048).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import secrets
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bootstrap.errors import PKIError
from bootstrap.pki.catalog import CLIENT_AUTH, SERVER_AUTH, AltNames, Subject
from bootstrap.spec.model import ClusterSpec, EncryptionAlgorithm

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

CERTIFICATE_BACKDATE = timedelta(minutes=5)  # kubeadm constants.CertificateBackdate (v1.31+)
_SERIAL_LIMIT = 2**63 - 1  # Go: rand.Int(MaxInt64-1) + 1 -> [1, 2^63-1)

_EKU_OIDS = {SERVER_AUTH: ExtendedKeyUsageOID.SERVER_AUTH, CLIENT_AUTH: ExtendedKeyUsageOID.CLIENT_AUTH}
_EKU_NAMES = {v.dotted_string: k for k, v in _EKU_OIDS.items()}


# ---- keys -----------------------------------------------------------------------------------------
def generate_key(algorithm: EncryptionAlgorithm) -> PrivateKey:
    """One private key per kubeadm's encryptionAlgorithm (pkiutil.GeneratePrivateKey)."""
    if algorithm == EncryptionAlgorithm.RSA_2048:
        return rsa.generate_private_key(65537, 2048)
    if algorithm == EncryptionAlgorithm.RSA_3072:
        return rsa.generate_private_key(65537, 3072)
    if algorithm == EncryptionAlgorithm.RSA_4096:
        return rsa.generate_private_key(65537, 4096)
    if algorithm == EncryptionAlgorithm.ECDSA_P256:
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == EncryptionAlgorithm.ECDSA_P384:
        return ec.generate_private_key(ec.SECP384R1())
    raise PKIError(f"unsupported encryption algorithm {algorithm!r}")


class KeyPool:
    """Keys of one algorithm generated ahead of time on a thread pool; take() hands them out in order.

    Starts `count` generations at once and returns immediately, so a caller can sign CAs while the
    leaves' keys are still being made. take() beyond `count` generates on the spot, so a too-small
    estimate only costs speed, never correctness.
    """

    def __init__(self, algorithm: EncryptionAlgorithm, count: int = 0, *, workers: int | None = None) -> None:
        self.algorithm = algorithm
        self._executor: ThreadPoolExecutor | None = None
        self._pending: deque[Future[PrivateKey]] = deque()
        if count > 0:
            self._executor = ThreadPoolExecutor(
                max_workers=max(1, min(count, workers or os.cpu_count() or 1)), thread_name_prefix="keygen"
            )
            self._pending.extend(self._executor.submit(generate_key, algorithm) for _ in range(count))

    def take(self) -> PrivateKey:
        if self._pending:
            return self._pending.popleft().result()
        return generate_key(self.algorithm)

    @property
    def remaining(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        for fut in self._pending:
            fut.cancel()
        self._pending.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> KeyPool:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def generate_keys(algorithm: EncryptionAlgorithm, count: int, *, workers: int | None = None) -> list[PrivateKey]:
    """Pre-generate `count` keys in parallel (threads; cryptography drops the GIL in keygen)."""
    with KeyPool(algorithm, count, workers=workers) as pool:
        return [pool.take() for _ in range(count)]


def key_matches(key: PrivateKey, cert: x509.Certificate) -> bool:
    return public_der(key.public_key()) == public_der(cert.public_key())  # type: ignore[arg-type]


def public_der(pub: PublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def spki_sha256(cert: x509.Certificate) -> str:
    """kubeadm's discovery-token-ca-cert-hash: 'sha256:' + hex SHA-256 of the DER SPKI (pubkeypin.Hash)."""
    return "sha256:" + hashlib.sha256(public_der(cert.public_key())).hexdigest()  # type: ignore[arg-type]


def algorithm_of(key: PrivateKey) -> EncryptionAlgorithm:
    if isinstance(key, rsa.RSAPrivateKey):
        return {2048: EncryptionAlgorithm.RSA_2048, 3072: EncryptionAlgorithm.RSA_3072}.get(
            key.key_size, EncryptionAlgorithm.RSA_4096
        )
    return EncryptionAlgorithm.ECDSA_P384 if key.curve.name == "secp384r1" else EncryptionAlgorithm.ECDSA_P256


# ---- validity -------------------------------------------------------------------------------------
def _second(t: datetime) -> datetime:
    """X.509 times carry whole seconds; dropping the rest keeps parsed-back values equal."""
    return t.astimezone(UTC).replace(microsecond=0)


def ca_validity(spec: ClusterSpec, now: datetime) -> tuple[datetime, datetime]:
    """v1.31+: backdated 5 min; up to v1.30: notBefore = now. notAfter = now + caCertificateValidityPeriod."""
    start = _second(now)
    not_before = start - CERTIFICATE_BACKDATE if spec.version.at_least(31) else start
    return not_before, start + spec.ca_certificate_validity


def leaf_validity(spec: ClusterSpec, now: datetime, ca_cert: x509.Certificate) -> tuple[datetime, datetime]:
    """v1.31+: start - 5 min; up to v1.30 kubeadm copied the CA's notBefore. notAfter = now + validity."""
    start = _second(now)
    not_before = start - CERTIFICATE_BACKDATE if spec.version.at_least(31) else ca_cert.not_valid_before_utc
    return not_before, start + spec.certificate_validity


# ---- certificates ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CertAndKey:
    cert: x509.Certificate
    key: PrivateKey | None  # None: an external CA (certificate without its key)

    @property
    def external(self) -> bool:
        return self.key is None


def random_serial() -> int:
    return secrets.randbelow(_SERIAL_LIMIT - 1) + 1


def signature_hash(signer: PrivateKey) -> hashes.SHA256 | hashes.SHA384:
    """Go's default per signer key: SHA256 for RSA and P-256, SHA384 for P-384."""
    if isinstance(signer, ec.EllipticCurvePrivateKey) and signer.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def _is_printable(text: str) -> bool:
    return all(c.isascii() and (c.isalnum() or c in " '()+,-./:=?") for c in text)


def _attr(oid: x509.ObjectIdentifier, value: str) -> x509.NameAttribute:
    # Go encodes a name value as PrintableString when it can, else UTF8String; match it byte for byte.
    kind = _ASN1Type.PrintableString if _is_printable(value) else _ASN1Type.UTF8String
    return x509.NameAttribute(oid, value, _type=kind)


def build_name(subject: Subject) -> x509.Name:
    """O before CN, as Go's pkix.Name.ToRDNSequence orders them."""
    orgs = [_attr(NameOID.ORGANIZATION_NAME, o) for o in subject.orgs]
    return x509.Name([*orgs, _attr(NameOID.COMMON_NAME, subject.cn)])


def _san(alt: AltNames) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in alt.dns]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in alt.ips]
    return x509.SubjectAlternativeName(names)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=True, data_encipherment=False,
        key_agreement=False, key_cert_sign=ca, crl_sign=False, encipher_only=False, decipher_only=False,
    )


def new_ca(cn: str, key: PrivateKey, *, not_before: datetime, not_after: datetime) -> x509.Certificate:
    """Self-signed CA as pkiutil.NewSelfSignedCACert: CN only, SAN DNS=CN, SKID, no AKID."""
    name = build_name(Subject(cn))
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(random_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        # Extension order follows Go's buildCertExtensions.
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_san(AltNames.build(dns=[cn])), critical=False)
    )
    return builder.sign(key, signature_hash(key))


def issue(
    ca: CertAndKey,
    public_key: PublicKey,
    subject: Subject,
    usages: Iterable[str],
    alt_names: AltNames | None = None,
    *,
    not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    """A leaf signed by ca (pkiutil.NewSignedCert): KU digitalSignature+keyEncipherment, EKU, CA:FALSE, AKID."""
    if ca.key is None:
        raise PKIError(f"cannot sign {subject.cn!r}: the CA {ca.cert.subject.rfc4514_string()} has no private key",
                       hint="external CA mode: provide the signed certificate yourself")
    ekus = [_EKU_OIDS[u] for u in usages]
    if not ekus:
        raise PKIError(f"certificate {subject.cn!r} has no extended key usage")
    builder = (
        x509.CertificateBuilder()
        .subject_name(build_name(subject))
        .issuer_name(ca.cert.subject)
        .public_key(public_key)
        .serial_number(random_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_authority_key_id(ca.cert), critical=False)
    )
    if alt_names:
        builder = builder.add_extension(_san(alt_names), critical=False)
    cert = builder.sign(ca.key, signature_hash(ca.key))
    # CA keys are loaded without OpenSSL's slow RSA consistency check; checking each signature
    # against the CA certificate catches a damaged key where it matters, at a fraction of the cost.
    try:
        cert.verify_directly_issued_by(ca.cert)
    except (ValueError, TypeError, InvalidSignature):
        raise PKIError(f"the CA key for {ca.cert.subject.rfc4514_string()} produced an invalid signature",
                       hint="the CA key file is damaged; restore it from a backup") from None
    return cert


def _authority_key_id(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        skid = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(skid)
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())  # type: ignore[arg-type]


# ---- reading certificates back --------------------------------------------------------------------
def subject_of(cert: x509.Certificate) -> Subject:
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return Subject(str(cns[0].value) if cns else "", tuple(str(o.value) for o in orgs))


def alt_names_of(cert: x509.Certificate) -> AltNames:
    """SANs exactly as stored (order kept), for renewals that must reproduce them."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return AltNames()
    return AltNames(
        tuple(san.get_values_for_type(x509.DNSName)),
        tuple(str(i) for i in san.get_values_for_type(x509.IPAddress)),
    )


def usages_of(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(_EKU_NAMES.get(oid.dotted_string, oid.dotted_string) for oid in eku)


def is_ca_cert(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def signed_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
