"""PKI files on a target: PEM exactly as kubeadm writes them, modes, and the reuse rules.

Rules (kubeadm's, plus re-issue on drift):
- a CA is never replaced or deleted: an existing valid ca.crt is reused; ca.crt without ca.key is
  kubeadm's "external CA" mode, where every leaf it signs must already exist and be valid;
- a leaf signed by the current CA, not expired, with the wanted subject, usages and SANs, and with
  its matching key, is kept byte for byte; any drift re-issues it with a new key (reported as
  updated, with the reason); a missing one is created;
- sa.key is reused if present and sa.pub is derived from it.

Every read and write goes through the run's context (PKIContext: RunContext satisfies it), so
--dry-run and the change report work. In a dry run nothing is written; what a phase "would have
written" stays in the context's overlay, so a later phase of the same run (kubeconfig after certs,
or `certs apiserver` after `certs ca`) sees the same CA it would see for real.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bootstrap.errors import PKIError
from bootstrap.pki import catalog
from bootstrap.pki.authority import (
    CertAndKey,
    KeyPool,
    PrivateKey,
    PublicKey,
    alt_names_of,
    ca_validity,
    generate_key,
    is_ca_cert,
    issue,
    key_matches,
    leaf_validity,
    new_ca,
    signed_by,
    subject_of,
    usages_of,
)
from bootstrap.pki.catalog import AltNames, CertDef, Subject
from bootstrap.spec.model import ClusterSpec
from bootstrap.transport.base import Target

KEY_MODE = 0o600
SA_PUB_MODE = 0o600  # kubeadm writes sa.pub with keyutil.WriteKey
DIR_MODE = 0o755


# ---- PEM ------------------------------------------------------------------------------------------
def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: PrivateKey) -> bytes:
    """RSA: 'RSA PRIVATE KEY' (PKCS#1); EC: 'EC PRIVATE KEY' (SEC1) - keyutil.MarshalPrivateKeyToPEM."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


def public_key_pem(pub: PublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def parse_cert(data: bytes, where: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise PKIError(f"{where} is not a PEM certificate", hint="restore it or move it away") from None


def parse_key(data: bytes, where: str, *, check: bool = True) -> PrivateKey:
    """check=False skips OpenSSL's RSA consistency check (~30 ms a key). Fine for a key we only
    compare with its certificate's public key, and for CA keys, whose every signature issue()
    verifies against the CA certificate."""
    try:
        key = serialization.load_pem_private_key(data, password=None, unsafe_skip_rsa_key_validation=not check)
    except (ValueError, TypeError):
        raise PKIError(f"{where} is not an unencrypted PEM private key", hint="restore it or move it away") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise PKIError(f"{where} holds an unsupported key type", hint="use an RSA or ECDSA key")
    return key


# ---- where PKI files are read and written --------------------------------------------------------
class PKIContext(Protocol):
    """What the PKI needs of a run: the spec, the run's clock, and files through the run's one gate
    (RunContext: dry-run, the change report and its overlay of what a dry run would have written)."""

    @property
    def spec(self) -> ClusterSpec: ...

    @property
    def now(self) -> datetime: ...

    def read(self, path: str) -> bytes | None: ...

    def put(self, path: str, data: bytes, mode: int, detail: str = "") -> bool: ...

    def ensure_dir(self, path: str, mode: int) -> bool: ...

    def skip(self, item: str, reason: str) -> None: ...


def reader(ctx: PKIContext) -> Callable[[str], bytes | None]:
    return ctx.read


def target_reader(target: Target) -> Callable[[str], bytes | None]:
    def read(path: str) -> bytes | None:
        state = target.read(path)
        return state.content if state else None

    return read


def put(ctx: PKIContext, path: str, data: bytes, mode: int, detail: str = "") -> bool:
    return ctx.put(path, data, mode, detail)


def cert_mode(ctx: PKIContext) -> int:
    return ctx.spec.hardening.cert_file_mode


def ensure_dirs(ctx: PKIContext, defs: Iterable[CertDef]) -> None:
    cert_dir = ctx.spec.cert_dir.rstrip("/")
    ctx.ensure_dir(cert_dir, DIR_MODE)
    if any(d.base.startswith("etcd/") for d in defs):
        ctx.ensure_dir(f"{cert_dir}/etcd", DIR_MODE)


# ---- CAs ------------------------------------------------------------------------------------------
def load_ca(read: Callable[[str], bytes | None], cdef: CertDef, cert_dir: str) -> CertAndKey | None:
    """The CA on disk (key None in external-CA mode), or None if there is no ca.crt."""
    crt_path, key_path = cdef.cert_path(cert_dir), cdef.key_path(cert_dir)
    crt = read(crt_path)
    key_data = read(key_path)
    if crt is None:
        if key_data is not None:
            raise PKIError(f"{key_path} exists without {crt_path}",
                           hint="restore the CA certificate; a CA key is never overwritten")
        return None
    cert = parse_cert(crt, crt_path)
    if not is_ca_cert(cert):
        raise PKIError(f"{crt_path} is not a CA certificate (basicConstraints CA:FALSE)",
                       hint="put the CA certificate there, not a leaf")
    if key_data is None:
        return CertAndKey(cert, None)
    key = parse_key(key_data, key_path, check=False)  # issue() verifies every signature it makes
    if not key_matches(key, cert):
        raise PKIError(f"{key_path} does not match {crt_path}", hint="restore the CA's own key")
    return CertAndKey(cert, key)


def require_ca(ctx: PKIContext, cdef: CertDef) -> CertAndKey:
    """For a phase that signs with a CA it does not create (e.g. `certs apiserver` alone)."""
    ca = load_ca(reader(ctx), cdef, ctx.spec.cert_dir)
    if ca is None:
        raise PKIError(
            f"couldn't load the {cdef.name} certificate authority from {cdef.cert_path(ctx.spec.cert_dir)}",
            hint=f"run `kbootstrap init phase certs {cdef.name}` first",
        )
    _check_ca_time(ctx, cdef, ca.cert)
    return ca


def _check_ca_time(ctx: PKIContext, cdef: CertDef, cert: x509.Certificate) -> None:
    if cert.not_valid_after_utc <= ctx.now:
        raise PKIError(f"the {cdef.name} CA expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
                       hint="CA rotation is manual: see `kubeadm certs` CA rotation docs; it is never replaced")


def ensure_ca(ctx: PKIContext, cdef: CertDef, keys: KeyPool) -> CertAndKey:
    cert_dir = ctx.spec.cert_dir
    crt_path, key_path = cdef.cert_path(cert_dir), cdef.key_path(cert_dir)
    read = reader(ctx)
    ca = load_ca(read, cdef, cert_dir)
    if ca is None:
        key = keys.take()
        not_before, not_after = ca_validity(ctx.spec, ctx.now)
        cert = new_ca(cdef.subject(ctx.spec).cn, key, not_before=not_before, not_after=not_after)
        put(ctx, key_path, key_pem(key), KEY_MODE)
        put(ctx, crt_path, cert_pem(cert), cert_mode(ctx))
        return CertAndKey(cert, key)
    _check_ca_time(ctx, cdef, ca.cert)
    # Re-"write" the same bytes: reported unchanged, and a wrong mode gets fixed.
    if ca.key is not None:
        put(ctx, key_path, read(key_path) or b"", KEY_MODE)
    put(ctx, crt_path, read(crt_path) or b"", cert_mode(ctx), detail="" if ca.key else "external CA (no key)")
    return ca


# ---- leaves ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Wanted:
    subject: Subject
    usages: tuple[str, ...]
    alt_names: AltNames


def leaf_problem(
    cert: x509.Certificate | None, key: PrivateKey | None, ca_cert: x509.Certificate, want: Wanted, now: datetime
) -> str | None:
    """Why an existing leaf cannot be kept, or None if it can."""
    if cert is None:
        return "missing"
    if key is None:
        return "key missing"
    if not key_matches(key, cert):
        return "key does not match the certificate"
    if not signed_by(cert, ca_cert):
        return "not signed by the current CA"
    if cert.not_valid_after_utc <= now:
        return f"expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    have = subject_of(cert)
    if have != want.subject:
        return f"subject changed: {have} -> {want.subject}"
    if set(usages_of(cert)) != set(want.usages):
        return f"usages changed: {','.join(usages_of(cert))} -> {','.join(want.usages)}"
    diff = want.alt_names.diff(alt_names_of(cert))
    if diff:
        return f"SANs changed: {diff}"
    return None


def _try_cert(data: bytes | None, where: str) -> x509.Certificate | None:
    if data is None:
        return None
    try:
        return parse_cert(data, where)
    except PKIError:
        return None


def _try_key(data: bytes | None, where: str) -> PrivateKey | None:
    if data is None:
        return None
    try:
        return parse_key(data, where, check=False)
    except PKIError:
        return None


def wanted(ctx: PKIContext, cdef: CertDef) -> Wanted:
    return Wanted(cdef.subject(ctx.spec), cdef.usages, cdef.alt_names(ctx.spec))


def ensure_leaf(ctx: PKIContext, cdef: CertDef, ca: CertAndKey, keys: KeyPool) -> x509.Certificate:
    cert_dir = ctx.spec.cert_dir
    crt_path, key_path = cdef.cert_path(cert_dir), cdef.key_path(cert_dir)
    read = reader(ctx)
    crt_data, key_data = read(crt_path), read(key_path)
    old_cert, old_key = _try_cert(crt_data, crt_path), _try_key(key_data, key_path)
    if crt_data is not None and old_cert is None:
        problem: str | None = "unreadable certificate"
    elif key_data is not None and old_key is None and old_cert is not None:
        problem = "unreadable key"
    else:
        problem = leaf_problem(old_cert, old_key, ca.cert, wanted(ctx, cdef), ctx.now)
    if problem is None and old_cert is not None:
        put(ctx, key_path, key_data or b"", KEY_MODE)
        put(ctx, crt_path, crt_data or b"", cert_mode(ctx))
        return old_cert
    if ca.external:
        raise PKIError(
            f"external CA mode: {crt_path} is {problem} and cannot be signed without {cdef.ca}.key",
            hint=f"provide a valid {cdef.base}.crt/.key signed by {cdef.ca}, or the {cdef.ca}.key",
        )
    want = wanted(ctx, cdef)
    key = keys.take()
    not_before, not_after = leaf_validity(ctx.spec, ctx.now, ca.cert)
    cert = issue(ca, key.public_key(), want.subject, want.usages, want.alt_names,
                 not_before=not_before, not_after=not_after)
    detail = "" if problem == "missing" else problem or ""
    put(ctx, key_path, key_pem(key), KEY_MODE, detail)
    put(ctx, crt_path, cert_pem(cert), cert_mode(ctx), detail)
    return cert


# ---- service-account key pair ---------------------------------------------------------------------
def ensure_sa(ctx: PKIContext, keys: KeyPool) -> None:
    cert_dir = ctx.spec.cert_dir.rstrip("/")
    key_path, pub_path = f"{cert_dir}/{catalog.SA_BASE}.key", f"{cert_dir}/{catalog.SA_BASE}.pub"
    read = reader(ctx)
    existing = read(key_path)
    if existing is not None:
        key = parse_key(existing, key_path)  # never regenerate: every issued token depends on it
        put(ctx, key_path, existing, KEY_MODE)
        put(ctx, pub_path, public_key_pem(key.public_key()), SA_PUB_MODE, detail="derived from sa.key")
        return
    key = keys.take()
    put(ctx, key_path, key_pem(key), KEY_MODE)
    put(ctx, pub_path, public_key_pem(key.public_key()), SA_PUB_MODE)


# ---- the whole PKI --------------------------------------------------------------------------------
SA = "sa"


def keys_needed(ctx: PKIContext, names: Iterable[str]) -> int:
    """How many new keys these certs need (missing files); drift re-issues generate on demand."""
    read = reader(ctx)
    cert_dir = ctx.spec.cert_dir.rstrip("/")
    count = 0
    for name in names:
        if name == SA:
            count += read(f"{cert_dir}/{catalog.SA_BASE}.key") is None
            continue
        cdef = catalog.get(name)
        missing_crt = read(cdef.cert_path(cert_dir)) is None
        count += missing_crt if cdef.is_ca else (missing_crt or read(cdef.key_path(cert_dir)) is None)
    return count


def phase_names() -> list[str]:
    """Every child of `certs`, in order; ensure_pki skips the etcd ones under external etcd."""
    return [c.name for c in catalog.ALL_CERTS] + [SA]


def ensure_pki(ctx: PKIContext, names: Iterable[str] | None = None, *, parallel: bool = True) -> dict[str, CertAndKey]:
    """Create or reuse certs (kubeadm phase names, in the given order; default: all of `certs all`).

    New keys are generated up front, in parallel, for every missing file. Returns the CAs used.
    """
    todo = list(names) if names is not None else phase_names()
    external_etcd = ctx.spec.etcd_external is not None
    active = [n for n in todo if n == SA or not (external_etcd and catalog.get(n).uses_etcd_ca)]
    for n in todo:
        if n not in active:
            ctx.skip(n, "external etcd mode: no etcd certificates are generated")
    ensure_dirs(ctx, [catalog.get(n) for n in active if n != SA])
    cas: dict[str, CertAndKey] = {}
    with KeyPool(ctx.spec.encryption_algorithm, keys_needed(ctx, active) if parallel else 0) as keys:
        for name in active:
            if name == SA:
                ensure_sa(ctx, keys)
                continue
            cdef = catalog.get(name)
            if cdef.is_ca:
                cas[name] = ensure_ca(ctx, cdef, keys)
                continue
            assert cdef.ca is not None
            if cdef.ca not in cas:
                cas[cdef.ca] = require_ca(ctx, catalog.get(cdef.ca))
            ensure_leaf(ctx, cdef, cas[cdef.ca], keys)
    return cas


def issue_client_cert(
    ca: CertAndKey, subject: Subject, spec: ClusterSpec, now: datetime, *, key: PrivateKey | None = None
) -> tuple[x509.Certificate, PrivateKey]:
    """A clientAuth cert signed by ca with kubeadm's validity rules (kubeconfigs, `kubeconfig user`)."""
    key = key or generate_key(spec.encryption_algorithm)
    not_before, not_after = leaf_validity(spec, now, ca.cert)
    cert = issue(ca, key.public_key(), subject, (catalog.CLIENT_AUTH,), None,
                 not_before=not_before, not_after=not_after)
    return cert, key


# ---- renewal and expiry (kubeadm certs renew / check-expiration) ----------------------------------
def renew_leaf(ctx: PKIContext, cdef: CertDef) -> str:
    """'renewed', 'missing' or 'external'. Subject, usages and SANs come from the existing cert."""
    cert_dir = ctx.spec.cert_dir
    crt_path = cdef.cert_path(cert_dir)
    read = reader(ctx)
    data = read(crt_path)
    if data is None:
        return "missing"
    old = parse_cert(data, crt_path)
    assert cdef.ca is not None
    ca = load_ca(read, catalog.get(cdef.ca), cert_dir)
    if ca is None:
        raise PKIError(f"couldn't load the {cdef.ca} CA to renew {cdef.name}",
                       hint=f"restore {catalog.get(cdef.ca).cert_path(cert_dir)}")
    if ca.external:
        return "external"
    key = generate_key(ctx.spec.encryption_algorithm)
    not_before, not_after = leaf_validity(ctx.spec, ctx.now, ca.cert)
    cert = issue(ca, key.public_key(), subject_of(old), usages_of(old), alt_names_of(old),
                 not_before=not_before, not_after=not_after)
    put(ctx, cdef.key_path(cert_dir), key_pem(key), KEY_MODE, "renewed")
    put(ctx, crt_path, cert_pem(cert), cert_mode(ctx), "renewed")
    return "renewed"


@dataclass(frozen=True)
class Expiry:
    name: str
    not_after: datetime | None
    ca_name: str
    externally_managed: bool

    @property
    def missing(self) -> bool:
        return self.not_after is None


def ca_externally_managed(read: Callable[[str], bytes | None], ca_name: str, cert_dir: str) -> bool:
    cdef = catalog.get(ca_name)
    return read(cdef.cert_path(cert_dir)) is not None and read(cdef.key_path(cert_dir)) is None


def cert_expiry(read: Callable[[str], bytes | None], cdef: CertDef, cert_dir: str) -> Expiry:
    data = read(cdef.cert_path(cert_dir))
    ca_name = cdef.ca or cdef.name
    external = ca_externally_managed(read, ca_name, cert_dir)
    if data is None:
        return Expiry(cdef.name, None, cdef.ca or "", external)
    cert = parse_cert(data, cdef.cert_path(cert_dir))
    return Expiry(cdef.name, cert.not_valid_after_utc, cdef.ca or "", external)
