"""Join discovery, kubeadm's way: learn the cluster's API endpoint and CA before trusting either.

Token discovery (kubeadm discovery/token): fetch kube-public/cluster-info without TLS verification;
check the detached JWS the bootstrap signer put there for our token id (only a holder of the token
secret could have made it); pin the CA in it against --discovery-token-ca-cert-hash (any one
matching is enough); fetch it again over TLS trusting only that CA and require the same bytes.
File discovery: a kubeconfig file names the server and CA; nothing is fetched.

Nothing here writes anything: callers write only after discovery has fully succeeded.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from bootstrap.errors import KbootstrapError, TransportError, UsageError
from bootstrap.join.apiclient import APIClient
from bootstrap.join.jws import JWS_KEY_PREFIX, KUBECONFIG_KEY, detached_token_is_valid
from bootstrap.join.tokens import Token

CLUSTER_INFO = "cluster-info"
PUBLIC_NAMESPACE = "kube-public"
DEFAULT_TIMEOUT = 300.0  # kubeadm's discovery timeout: 5 min
RETRY_INTERVAL = 5.0  # kubeadm's DiscoveryRetryInterval
IDENTITY = "couldn't validate the identity of the API Server"


class DiscoveryError(KbootstrapError):
    """Discovery failed: the message is kubeadm's, after its `couldn't validate the identity...` prefix."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{IDENTITY}: {message}", hint=hint)


@dataclass(frozen=True)
class ClusterInfo:
    server: str  # https://host:port, from cluster-info (the controlPlaneEndpoint)
    ca_pem: bytes
    kubeconfig: str  # the exact text that was signed (token) or read (file)


# ---- CA pinning (kubeadm util/pubkeypin) -----------------------------------------------------------
def spki_hash(cert: x509.Certificate) -> str:
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def parse_pins(hashes: Iterable[str]) -> set[str]:
    """--discovery-token-ca-cert-hash values -> lowercase hex digests; kubeadm's messages when bad."""
    pins: set[str] = set()
    for h in hashes:
        fmt, sep, value = h.strip().partition(":")
        if not sep:
            raise UsageError(
                'invalid discovery token CA certificate hash: invalid public key hash, expected "format:value"'
            )
        if fmt.lower() != "sha256":
            raise UsageError(f"invalid discovery token CA certificate hash: unknown hash format {fmt!r}")
        if len(value) // 2 != 32 or len(value) % 2:
            raise UsageError(
                "invalid discovery token CA certificate hash: "
                f"expected a 32 byte SHA-256 hash, found {len(value) // 2} bytes"
            )
        try:
            bytes.fromhex(value)
        except ValueError:
            raise UsageError("invalid discovery token CA certificate hash: not hex") from None
        pins.add(value.lower())
    return pins


def check_pins(ca_pem: bytes, pins: set[str]) -> None:
    try:
        certs = x509.load_pem_x509_certificates(ca_pem)
    except ValueError:
        raise DiscoveryError(f"failed to parse cluster CA from the {CLUSTER_INFO} ConfigMap") from None
    hashes = [spki_hash(c) for c in certs]
    if any(h.split(":", 1)[1] in pins for h in hashes):
        return
    raise DiscoveryError(
        f"cluster CA found in {CLUSTER_INFO} ConfigMap is invalid: none of the public keys "
        f'"{":".join(hashes)}" are pinned',
        hint="the --discovery-token-ca-cert-hash does not match this cluster's CA: take it from "
        "`kbootstrap token create --print-join-command` on a control-plane node",
    )


# ---- the cluster-info kubeconfig ------------------------------------------------------------------
def parse_cluster_kubeconfig(text: str, where: str) -> tuple[str, bytes | None]:
    """The single cluster of cluster-info's kubeconfig -> (server, CA PEM or None)."""
    try:
        doc = yaml.safe_load(text)
        clusters = doc.get("clusters") or []
    except (yaml.YAMLError, AttributeError):
        raise DiscoveryError(f"couldn't parse the kubeconfig file in the {where}") from None
    if len(clusters) != 1:
        raise DiscoveryError(
            f"expected the kubeconfig file in the {where} to have a single cluster, but it had {len(clusters)}"
        )
    cluster = clusters[0].get("cluster") or {}
    server = str(cluster.get("server") or "")
    ca = cluster.get("certificate-authority-data")
    if not server:
        raise DiscoveryError(f"the kubeconfig file in the {where} has no server")
    return server, base64.b64decode(ca) if ca else None


def validate_cluster_info_token(data: dict[str, str], token: Token) -> str:
    kubeconfig = data.get(KUBECONFIG_KEY) or ""
    if not kubeconfig:
        raise DiscoveryError(
            f"there is no {KUBECONFIG_KEY} key in the {CLUSTER_INFO} ConfigMap. "
            "This API Server isn't set up for token bootstrapping, can't connect"
        )
    detached = data.get(JWS_KEY_PREFIX + token.id) or ""
    if not detached:
        msg, hint = _invalid_token(token.id)
        raise DiscoveryError(msg, hint=hint)
    if not detached_token_is_valid(detached, kubeconfig, token.id, token.secret):
        raise DiscoveryError(
            "failed to verify JWS signature of received cluster info object, can't trust this API Server",
            hint="the token secret is wrong: the token id exists but was signed with another secret",
        )
    return kubeconfig


def _invalid_token(token_id: str) -> tuple[str, str]:
    return (
        f'token id "{token_id}" is invalid for this cluster or it has expired. '
        'Use "kbootstrap token create" on the control-plane node to create a new valid token',
        "tokens live 24h by default (`kbootstrap token list` shows them)",
    )


# ---- token discovery ------------------------------------------------------------------------------
Fetch = Callable[[str, bytes | None, float], dict[str, str]]


def fetch_cluster_info(endpoint: str, ca_pem: bytes | None, timeout: float) -> dict[str, str]:
    """GET the cluster-info ConfigMap: without TLS verification when ca_pem is None."""
    client = APIClient(f"https://{endpoint}", ca_pem=ca_pem, insecure=ca_pem is None, timeout=min(timeout, 10.0))
    cm: dict[str, Any] = client.get_configmap(PUBLIC_NAMESPACE, CLUSTER_INFO)
    return {str(k): str(v) for k, v in (cm.get("data") or {}).items()}


def _poll(
    endpoint: str, token: Token, ca_pem: bytes | None, timeout: float, interval: float, fetch: Fetch
) -> dict[str, str]:
    """kubeadm getClusterInfo: retry until the ConfigMap is there and signed for our token id."""
    deadline = time.monotonic() + timeout
    while True:
        error: KbootstrapError
        try:
            data = fetch(endpoint, ca_pem, max(0.5, deadline - time.monotonic()))
            if data.get(JWS_KEY_PREFIX + token.id):
                return data
            # The signer patches new tokens in within seconds; a missing one after the timeout
            # means an unknown or expired token.
            msg, hint = _invalid_token(token.id)
            error = DiscoveryError(
                f'could not find a JWS signature in the cluster-info ConfigMap for token ID "{token.id}": {msg}',
                hint=hint,
            )
        except TransportError as exc:
            error = DiscoveryError(exc.message, hint=exc.hint)
        if time.monotonic() + interval > deadline:
            raise error
        time.sleep(interval)


def discover_token(
    endpoint: str,
    token: Token,
    ca_hashes: Iterable[str],
    *,
    unsafe_skip_ca_verification: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = RETRY_INTERVAL,
    fetch: Fetch = fetch_cluster_info,
) -> ClusterInfo:
    pins = parse_pins(ca_hashes)
    if not pins and not unsafe_skip_ca_verification:
        raise UsageError(
            "using token-based discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification "
            "as true in your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification "
            "flag to continue"
        )
    interval = min(interval, timeout)
    insecure = _poll(endpoint, token, None, timeout, interval, fetch)
    kubeconfig = validate_cluster_info_token(insecure, token)
    server, ca_pem = parse_cluster_kubeconfig(kubeconfig, f"{CLUSTER_INFO} ConfigMap")
    if ca_pem is None:
        raise DiscoveryError(f"the kubeconfig in the {CLUSTER_INFO} ConfigMap has no certificate-authority-data")
    if not pins:
        return ClusterInfo(server, ca_pem, kubeconfig)
    check_pins(ca_pem, pins)
    # Connect back over TLS trusting only the pinned CA: the answer must be the same bytes.
    secure = _poll(endpoint, token, ca_pem, timeout, interval, fetch)
    if secure.get(KUBECONFIG_KEY) != kubeconfig:
        raise DiscoveryError(
            f"the second kubeconfig from the {CLUSTER_INFO} ConfigMap (using validated TLS) "
            "was different from the first"
        )
    return ClusterInfo(server, ca_pem, kubeconfig)


# ---- file discovery -------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileDiscovery:
    info: ClusterInfo
    has_credentials: bool


def discover_file(data: bytes, where: str) -> FileDiscovery:
    """A kubeconfig naming the cluster (current context's, else the only one). Nothing is fetched."""
    try:
        doc = yaml.safe_load(data)
        if not isinstance(doc, dict):
            raise ValueError
    except (yaml.YAMLError, ValueError):
        raise DiscoveryError(f"couldn't parse the discovery file {where}") from None
    clusters = {str(c.get("name", "")): c.get("cluster") or {} for c in doc.get("clusters") or []}
    users = {str(u.get("name", "")): u.get("user") or {} for u in doc.get("users") or []}
    contexts = {str(c.get("name", "")): c.get("context") or {} for c in doc.get("contexts") or []}
    ctx = contexts.get(str(doc.get("current-context") or ""), {})
    cluster = clusters.get(str(ctx.get("cluster", ""))) or (
        next(iter(clusters.values())) if len(clusters) == 1 else None
    )
    if not cluster:
        raise DiscoveryError(
            f"the discovery file {where} names no cluster (no current-context and not exactly one cluster)"
        )
    server, ca = str(cluster.get("server") or ""), cluster.get("certificate-authority-data")
    if not server:
        raise DiscoveryError(f"the discovery file {where} has no server")
    if not ca:
        raise DiscoveryError(
            f"the discovery file {where} has no certificate-authority-data",
            hint="embed the cluster CA; kbootstrap never trusts an unverified server",
        )
    ca_pem = base64.b64decode(ca)
    try:
        x509.load_pem_x509_certificates(ca_pem)
    except ValueError:
        raise DiscoveryError(f"the certificate-authority-data in {where} is not a PEM certificate") from None
    user = users.get(str(ctx.get("user", ""))) or {}
    creds = bool(user.get("token") or (user.get("client-certificate-data") and user.get("client-key-data")))
    return FileDiscovery(ClusterInfo(server, ca_pem, data.decode(errors="replace")), creds)
