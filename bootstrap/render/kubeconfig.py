"""Kubeconfig files exactly as kubeadm writes them (kubeconfigutil.CreateWithCerts + clientcmd.Write).

clientcmd marshals to JSON and converts to YAML, so every mapping comes out with its keys sorted:
apiVersion, clusters, contexts, current-context, kind, preferences: {}, users. Files are 0600.

Server URLs (phases/kubeconfig getKubeConfigSpecsBase):
- admin.conf, super-admin.conf: controlPlaneEndpoint, else the local endpoint;
- controller-manager.conf, scheduler.conf: always the local endpoint;
- kubelet.conf: controlPlaneEndpoint up to v1.32; from v1.33 the ControlPlaneKubeletLocalMode gate is
  beta and on by default, and `init` then points the kubelet at the local endpoint too (PR
  kubernetes#129956, confirmed by kubeadm#3243: `init phase kubeconfig kubelet` on v1.33 writes
  https://ADV:PORT although controlPlaneEndpoint is set). An explicit featureGates entry wins (v1.31+).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from bootstrap.errors import PKIError
from bootstrap.pki import catalog
from bootstrap.pki.authority import CertAndKey, KeyPool, key_matches, signed_by, subject_of, usages_of
from bootstrap.pki.catalog import CLUSTER_ADMINS, NODES_GROUP, SYSTEM_MASTERS, Subject
from bootstrap.pki.store import (
    Expiry,
    PKIContext,
    ca_externally_managed,
    cert_pem,
    issue_client_cert,
    key_pem,
    load_ca,
    parse_cert,
    parse_key,
    put,
    reader,
    require_ca,
)
from bootstrap.spec.model import KUBERNETES_DIR, ClusterSpec

KUBECONFIG_MODE = 0o600
GROUP_HELP = "Generate all kubeconfig files necessary to establish the control plane and the admin kubeconfig file"
LOCAL_MODE_GATE = "ControlPlaneKubeletLocalMode"


# ---- building and reading -------------------------------------------------------------------------
def build_kubeconfig(
    cluster_name: str,
    server: str,
    ca_pem: bytes,
    user: str,
    *,
    client_cert_pem: bytes | None = None,
    client_key_pem: bytes | None = None,
    token: str | None = None,
) -> bytes:
    """One cluster, one user, one context `<user>@<cluster>`; credentials: a client cert+key or a token."""
    if token is None and (client_cert_pem is None or client_key_pem is None):
        raise ValueError("a kubeconfig needs a token or a client certificate and key")
    auth: dict[str, str] = (
        {"token": token}
        if token is not None
        else {"client-certificate-data": _b64(client_cert_pem or b""), "client-key-data": _b64(client_key_pem or b"")}
    )
    context = f"{user}@{cluster_name}"
    return dump_kubeconfig({
        "apiVersion": "v1",
        "clusters": [{"cluster": {"certificate-authority-data": _b64(ca_pem), "server": server}, "name": cluster_name}],
        "contexts": [{"context": {"cluster": cluster_name, "user": user}, "name": context}],
        "current-context": context,
        "kind": "Config",
        "preferences": {},
        "users": [{"name": user, "user": auth}],
    })


def dump_kubeconfig(doc: dict[str, Any]) -> bytes:
    # Sorted keys as clientcmd's JSON->YAML; never fold the long base64 lines.
    return yaml.safe_dump(doc, sort_keys=True, default_flow_style=False, width=1 << 30).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class KubeconfigView:
    """The current context's cluster and user, decoded."""

    doc: dict[str, Any]
    cluster_name: str
    server: str
    ca_pem: bytes | None
    user: str
    client_cert_pem: bytes | None
    client_key_pem: bytes | None
    token: str | None
    client_cert_file: str | None = None  # a path instead of embedded data (the kubelet's rotated cert)


# kubeadm's kubelet-finalize points kubelet.conf at the kubelet's rotated client certificate.
KUBELET_CLIENT_CURRENT = "/var/lib/kubelet/pki/kubelet-client-current.pem"


def parse_kubeconfig(data: bytes, where: str = "kubeconfig") -> KubeconfigView:
    try:
        doc = yaml.safe_load(data)
        ctx_name = doc["current-context"]
        context = next(c["context"] for c in doc["contexts"] if c["name"] == ctx_name)
        cluster = next(c for c in doc["clusters"] if c["name"] == context["cluster"])
        user = next(u for u in doc["users"] if u["name"] == context["user"])
        auth = user.get("user") or {}
        return KubeconfigView(
            doc=doc,
            cluster_name=str(cluster["name"]),
            server=str(cluster["cluster"].get("server", "")),
            ca_pem=_unb64(cluster["cluster"].get("certificate-authority-data")),
            user=str(user["name"]),
            client_cert_pem=_unb64(auth.get("client-certificate-data")),
            client_key_pem=_unb64(auth.get("client-key-data")),
            token=auth.get("token"),
            client_cert_file=auth.get("client-certificate"),
        )
    except (yaml.YAMLError, KeyError, TypeError, StopIteration, ValueError):
        raise PKIError(f"{where} is not a valid kubeconfig (no usable current-context)",
                       hint="move it away to have it regenerated") from None


def _unb64(text: str | None) -> bytes | None:
    return base64.b64decode(text) if text else None


# ---- kubeadm's kubeconfig files -------------------------------------------------------------------
@dataclass(frozen=True)
class KubeconfigDef:
    name: str  # phase name
    file: str
    help: str
    renew_long_name: str  # `certs renew` wording; "" if not renewable (kubelet.conf)
    user_rule: Callable[[ClusterSpec], Subject]
    server_rule: Callable[[ClusterSpec], str]
    min_minor: int = 0

    def user(self, spec: ClusterSpec) -> Subject:
        return self.user_rule(spec)

    def server(self, spec: ClusterSpec) -> str:
        return self.server_rule(spec)

    def exists_for(self, spec: ClusterSpec) -> bool:
        return spec.version.at_least(self.min_minor)

    def path(self, kubeconfig_dir: str = KUBERNETES_DIR) -> str:
        return f"{kubeconfig_dir.rstrip('/')}/{self.file}"


def kubelet_local_mode(spec: ClusterSpec) -> bool:
    gate = spec.feature_gates.get(LOCAL_MODE_GATE)
    if gate is not None and spec.version.at_least(31):
        return bool(gate)
    return spec.version.at_least(33)  # beta, on by default, from v1.33


def kubelet_server(spec: ClusterSpec) -> str:
    return spec.local_endpoint_url if kubelet_local_mode(spec) else spec.control_plane_url


_EMBEDDED = "certificate embedded in the kubeconfig file for the"
ADMIN = KubeconfigDef(
    "admin", "admin.conf", "Generate a kubeconfig file for the admin to use and for kubeadm itself",
    f"{_EMBEDDED} admin to use and for kubeadm itself",
    lambda s: Subject("kubernetes-admin", (CLUSTER_ADMINS if s.version.at_least(29) else SYSTEM_MASTERS,)),
    lambda s: s.control_plane_url,
)
SUPER_ADMIN = KubeconfigDef(
    "super-admin", "super-admin.conf", "Generate a kubeconfig file for the super-admin",
    f"{_EMBEDDED} super-admin",
    lambda s: Subject("kubernetes-super-admin", (SYSTEM_MASTERS,)),
    lambda s: s.control_plane_url,
    min_minor=29,
)
KUBELET = KubeconfigDef(
    "kubelet", "kubelet.conf",
    "Generate a kubeconfig file for the kubelet to use *only* for cluster bootstrapping purposes",
    "",  # the kubelet rotates its own client certificate; kubeadm neither renews nor lists it
    lambda s: Subject(f"system:node:{s.node.name}", (NODES_GROUP,)),
    kubelet_server,
)
CONTROLLER_MANAGER = KubeconfigDef(
    "controller-manager", "controller-manager.conf", "Generate a kubeconfig file for the controller manager to use",
    f"{_EMBEDDED} controller manager to use",
    lambda s: Subject("system:kube-controller-manager"),
    lambda s: s.local_endpoint_url,
)
SCHEDULER = KubeconfigDef(
    "scheduler", "scheduler.conf", "Generate a kubeconfig file for the scheduler to use",
    f"{_EMBEDDED} scheduler manager to use",  # sic, kubeadm's wording
    lambda s: Subject("system:kube-scheduler"),
    lambda s: s.local_endpoint_url,
)
ALL_KUBECONFIGS: tuple[KubeconfigDef, ...] = (ADMIN, SUPER_ADMIN, KUBELET, CONTROLLER_MANAGER, SCHEDULER)


def node_kubeconfigs(spec: ClusterSpec, *, init_node: bool) -> list[KubeconfigDef]:
    """The kubeconfigs a control plane holds. As kubeadm: super-admin.conf (system:masters) only on
    the node where the cluster was initialised; control planes that joined never get it."""
    return [k for k in ALL_KUBECONFIGS if k.exists_for(spec) and (init_node or k is not SUPER_ADMIN)]
BY_NAME: dict[str, KubeconfigDef] = {k.name: k for k in ALL_KUBECONFIGS}
BY_FILE: dict[str, KubeconfigDef] = {k.file: k for k in ALL_KUBECONFIGS}


def kubeconfig_problem(data: bytes, where: str, want_server: str, want_user: Subject, cluster_name: str,
                       ca: CertAndKey, now: datetime) -> str | None:
    """Why an existing kubeconfig must be re-rendered, or None to keep it."""
    try:
        view = parse_kubeconfig(data, where)
    except PKIError:
        return "not a valid kubeconfig"
    if view.ca_pem is None or _der(view.ca_pem) != _der(cert_pem(ca.cert)):
        return "embedded CA differs from the cluster CA"
    if view.server != want_server:
        return f"server changed: {view.server} -> {want_server}"
    if view.cluster_name != cluster_name:
        return f"cluster name changed: {view.cluster_name} -> {cluster_name}"
    if view.client_cert_pem is None or view.client_key_pem is None:
        return "no embedded client certificate"
    try:
        cert = parse_cert(view.client_cert_pem, where)
        key = parse_key(view.client_key_pem, where, check=False)
    except PKIError:
        return "unreadable client certificate or key"
    if not key_matches(key, cert):
        return "client key does not match the certificate"
    if not signed_by(cert, ca.cert):
        return "client certificate not signed by the current CA"
    if cert.not_valid_after_utc <= now:
        return f"client certificate expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    have = subject_of(cert)
    if have != want_user or view.user != want_user.cn:
        return f"subject changed: {have} -> {want_user}"
    if catalog.CLIENT_AUTH not in usages_of(cert):
        return "client certificate lacks clientAuth"
    return None


def finalized(data: bytes, where: str, want_server: str, ca: CertAndKey) -> bool:
    """kubelet.conf as kubelet-finalize leaves it: the cluster's CA and server, and the kubelet's own
    rotated client certificate file instead of embedded data (kept, not re-rendered)."""
    try:
        view = parse_kubeconfig(data, where)
    except PKIError:
        return False
    return (view.client_cert_file == KUBELET_CLIENT_CURRENT and view.server == want_server
            and view.ca_pem is not None and _der(view.ca_pem) == _der(cert_pem(ca.cert)))


def finalize_kubelet_conf(data: bytes, where: str) -> bytes:
    """kubeadm kubelet-finalize: the embedded client certificate and key replaced by the kubelet's
    rotated one, so the kubelet renews its own credentials."""
    view = parse_kubeconfig(data, where)
    doc = view.doc
    for entry in doc["users"]:
        if entry["name"] == view.user:
            entry["user"] = {"client-certificate": KUBELET_CLIENT_CURRENT, "client-key": KUBELET_CLIENT_CURRENT}
    return dump_kubeconfig(doc)


def with_server(data: bytes, server: str, where: str) -> bytes:
    """The kubeconfig with its current context's cluster pointed at `server` (everything else kept)."""
    view = parse_kubeconfig(data, where)
    doc = view.doc
    context = next((c for c in doc.get("contexts") or [] if c.get("name") == doc.get("current-context")), None)
    cluster_name = (context or {}).get("context", {}).get("cluster")
    for entry in doc.get("clusters") or []:
        if entry.get("name") == cluster_name:
            entry["cluster"]["server"] = server
    return dump_kubeconfig(doc)


def _der(pem: bytes) -> bytes | None:
    try:
        return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    except ValueError:
        return None


def ensure_kubeconfig(ctx: PKIContext, kdef: KubeconfigDef, ca: CertAndKey, keys: KeyPool,
                      kubeconfig_dir: str = KUBERNETES_DIR) -> None:
    spec = ctx.spec
    path = kdef.path(kubeconfig_dir)
    if not kdef.exists_for(spec):
        ctx.skip(path, f"{kdef.file} exists from v1.{kdef.min_minor} only")
        return
    existing = reader(ctx)(path)
    server, user = kdef.server(spec), kdef.user(spec)
    problem = None
    if existing is not None and kdef is KUBELET and finalized(existing, path, server, ca):
        put(ctx, path, existing, KUBECONFIG_MODE, "finalized: the kubelet's rotated client certificate")
        return
    if existing is not None:
        problem = kubeconfig_problem(existing, path, server, user, spec.cluster_name, ca, ctx.now)
        if problem is None:
            put(ctx, path, existing, KUBECONFIG_MODE)
            return
    if ca.external:
        raise PKIError(f"external CA mode: {path} is {problem or 'missing'} and cannot be signed without ca.key",
                       hint=f"provide a valid {kdef.file} or the CA key")
    cert, key = issue_client_cert(ca, user, spec, ctx.now, key=keys.take())
    data = build_kubeconfig(spec.cluster_name, server, cert_pem(ca.cert), user.cn,
                            client_cert_pem=cert_pem(cert), client_key_pem=key_pem(key))
    put(ctx, path, data, KUBECONFIG_MODE, problem or "")


def ensure_kubeconfigs(ctx: PKIContext, names: Iterable[str] | None = None, *,
                       kubeconfig_dir: str = KUBERNETES_DIR, parallel: bool = True) -> None:
    """Create or reuse kubeconfigs (phase names; default all). Keys for missing files made in parallel."""
    defs = [BY_NAME[n] for n in names] if names is not None else list(ALL_KUBECONFIGS)
    ca = require_ca(ctx, catalog.CA)
    ctx.ensure_dir(kubeconfig_dir, 0o755)
    read = reader(ctx)
    needed = sum(1 for d in defs if d.exists_for(ctx.spec) and read(d.path(kubeconfig_dir)) is None)
    with KeyPool(ctx.spec.encryption_algorithm, needed if parallel else 0) as keys:
        for kdef in defs:
            ensure_kubeconfig(ctx, kdef, ca, keys, kubeconfig_dir)


def user_kubeconfig(spec: ClusterSpec, ca: CertAndKey, now: datetime, client_name: str, orgs: Iterable[str] = (),
                    *, server: str | None = None, validity: timedelta | None = None,
                    token: str | None = None) -> bytes:
    """`kubeadm kubeconfig user`: a kubeconfig for any identity, with a fresh client cert or a token."""
    server = server or spec.control_plane_url
    if token is not None:
        return build_kubeconfig(spec.cluster_name, server, cert_pem(ca.cert), client_name, token=token)
    if validity is not None:
        spec = spec.model_copy(update={"certificate_validity": validity})
    cert, key = issue_client_cert(ca, Subject(client_name, tuple(orgs)), spec, now)
    return build_kubeconfig(spec.cluster_name, server, cert_pem(ca.cert), client_name,
                            client_cert_pem=cert_pem(cert), client_key_pem=key_pem(key))


# ---- renewal and expiry ---------------------------------------------------------------------------
def renewable(spec: ClusterSpec) -> list[KubeconfigDef]:
    return [k for k in ALL_KUBECONFIGS if k.renew_long_name and k.exists_for(spec)]


def renew_kubeconfig(ctx: PKIContext, kdef: KubeconfigDef, kubeconfig_dir: str = KUBERNETES_DIR) -> str:
    """Replace the embedded client cert/key, reusing subject and usages: 'renewed'|'missing'|'external'."""
    path = kdef.path(kubeconfig_dir)
    read = reader(ctx)
    data = read(path)
    if data is None:
        return "missing"
    view = parse_kubeconfig(data, path)
    if view.client_cert_pem is None:
        raise PKIError(f"{path} has no embedded client certificate to renew")
    old = parse_cert(view.client_cert_pem, path)
    ca = load_ca(read, catalog.CA, ctx.spec.cert_dir)
    if ca is None:
        raise PKIError(f"couldn't load the ca CA to renew {kdef.file}",
                       hint=f"restore {catalog.CA.cert_path(ctx.spec.cert_dir)}")
    if ca.external:
        return "external"
    cert, key = issue_client_cert(ca, subject_of(old), ctx.spec, ctx.now)
    doc = view.doc
    for entry in doc["users"]:
        if entry["name"] == view.user:
            entry["user"]["client-certificate-data"] = _b64(cert_pem(cert))
            entry["user"]["client-key-data"] = _b64(key_pem(key))
    put(ctx, path, dump_kubeconfig(doc), KUBECONFIG_MODE, "renewed")
    return "renewed"


def kubeconfig_expiry(read: Callable[[str], bytes | None], kdef: KubeconfigDef, kubeconfig_dir: str,
                      cert_dir: str) -> Expiry:
    external = ca_externally_managed(read, "ca", cert_dir)
    data = read(kdef.path(kubeconfig_dir))
    if data is None:
        return Expiry(kdef.file, None, "ca", external)
    view = parse_kubeconfig(data, kdef.path(kubeconfig_dir))
    if view.client_cert_pem is None:
        raise PKIError(f"{kdef.path(kubeconfig_dir)} has no embedded client certificate")
    cert = parse_cert(view.client_cert_pem, kdef.path(kubeconfig_dir))
    return Expiry(kdef.file, cert.not_valid_after_utc, "ca", external)
