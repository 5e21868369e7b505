"""Every certificate kubeadm makes, as data: name, files, signer, subject, usages and SAN rule.

One entry per `kubeadm init phase certs <name>`; the phases, `certs renew` and `check-expiration`
all read this table, so a cert is described exactly once. Subjects are version-aware (v1.29
moved admin-ish identities off `system:masters`, KEP-4214 / kubeadm#2926 / kubeadm#2915).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from bootstrap.spec.model import ClusterSpec, is_ip, split_host_port

SERVER_AUTH = "serverAuth"
CLIENT_AUTH = "clientAuth"

SYSTEM_MASTERS = "system:masters"
CLUSTER_ADMINS = "kubeadm:cluster-admins"  # v1.29+: a revocable group bound to cluster-admin
NODES_GROUP = "system:nodes"

SA_BASE = "sa"
SA_HELP = "Generate a private key for signing service account tokens along with its public key"
CERTS_HELP = "Certificate generation"


@dataclass(frozen=True)
class Subject:
    cn: str
    orgs: tuple[str, ...] = ()

    def __str__(self) -> str:
        return ",".join([*(f"O={o}" for o in self.orgs), f"CN={self.cn}"])


@dataclass(frozen=True)
class AltNames:
    """SANs normalised as kubeadm does: DNS de-duplicated and sorted, IPs de-duplicated in order."""

    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()

    @classmethod
    def build(cls, dns: Iterable[str] = (), ips: Iterable[str] = ()) -> AltNames:
        seen: dict[str, None] = {}
        for ip in ips:
            seen.setdefault(str(ipaddress.ip_address(ip)), None)
        return cls(tuple(sorted(set(dns))), tuple(seen))

    def entries(self) -> set[str]:
        return {f"DNS:{d}" for d in self.dns} | {f"IP:{i}" for i in self.ips}

    def diff(self, other: AltNames) -> str:
        """'+DNS:new -IP:10.0.0.1' from other (existing) to self (desired); '' when equal."""
        want, have = self.entries(), other.entries()
        parts = [f"+{e}" for e in sorted(want - have)] + [f"-{e}" for e in sorted(have - want)]
        return " ".join(parts)

    def __bool__(self) -> bool:
        return bool(self.dns or self.ips)


@dataclass(frozen=True)
class CertDef:
    """One kubeadm certificate. `ca` is the signer's name; None means a self-signed CA."""

    name: str  # kubeadm's phase / renew name: "etcd-server"
    base: str  # files relative to the cert dir, without extension: "etcd/server"
    long_name: str  # kubeadm's LongName, used for help ("Generate the ...") and renew output
    ca: str | None
    usages: tuple[str, ...] = ()
    subject_rule: Callable[[ClusterSpec], Subject] = field(default=lambda s: Subject(""), repr=False)
    san_rule: Callable[[ClusterSpec], AltNames] | None = field(default=None, repr=False)

    @property
    def is_ca(self) -> bool:
        return self.ca is None

    @property
    def help(self) -> str:
        return f"Generate the {self.long_name}"

    @property
    def uses_etcd_ca(self) -> bool:
        return self.name == "etcd-ca" or self.ca == "etcd-ca"

    def subject(self, spec: ClusterSpec) -> Subject:
        return self.subject_rule(spec)

    def alt_names(self, spec: ClusterSpec) -> AltNames:
        if self.is_ca:  # kubeadm (client-go) puts the CA's own CN in its SAN list
            return AltNames.build(dns=[self.subject(spec).cn])
        return self.san_rule(spec) if self.san_rule else AltNames()

    def cert_path(self, cert_dir: str) -> str:
        return f"{cert_dir.rstrip('/')}/{self.base}.crt"

    def key_path(self, cert_dir: str) -> str:
        return f"{cert_dir.rstrip('/')}/{self.base}.key"


# ---- SAN rules (kubeadm pkiutil GetAPIServerAltNames / GetEtcdAltNames / GetEtcdPeerAltNames) ----
def split_sans(sans: Iterable[str]) -> tuple[list[str], list[str]]:
    """Extra SAN strings: an IP if it parses as one, else a DNS name (the spec already validated them)."""
    dns: list[str] = []
    ips: list[str] = []
    for san in sans:
        (ips if is_ip(san) else dns).append(san)
    return dns, ips


def apiserver_alt_names(spec: ClusterSpec) -> AltNames:
    domain = spec.networking.dns_domain
    dns = [
        spec.node.name,
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        f"kubernetes.default.svc.{domain}",
    ]
    ips = [spec.networking.api_service_ip(), spec.advertise_address]
    if spec.control_plane_endpoint:
        host, _ = split_host_port(spec.control_plane_endpoint, spec.bind_port)
        (ips if is_ip(host) else dns).append(host)
    extra_dns, extra_ips = split_sans(spec.api_server.cert_sans)
    return AltNames.build(dns + extra_dns, ips + extra_ips)


def _etcd_alt_names(spec: ClusterSpec, extra: Iterable[str]) -> AltNames:
    extra_dns, extra_ips = split_sans(extra)
    return AltNames.build(
        [spec.node.name, "localhost", *extra_dns],
        [spec.advertise_address, "127.0.0.1", "::1", *extra_ips],
    )


def etcd_server_alt_names(spec: ClusterSpec) -> AltNames:
    return _etcd_alt_names(spec, spec.etcd_local.server_cert_sans if spec.etcd_local else ())


def etcd_peer_alt_names(spec: ClusterSpec) -> AltNames:
    return _etcd_alt_names(spec, spec.etcd_local.peer_cert_sans if spec.etcd_local else ())


def _masters_before_129(spec: ClusterSpec) -> tuple[str, ...]:
    """etcd client certs carried system:masters until v1.29 (kubernetes#119859, #120521)."""
    return () if spec.version.at_least(29) else (SYSTEM_MASTERS,)


def _kubelet_client_orgs(spec: ClusterSpec) -> tuple[str, ...]:
    """kubeadm's certlist.go: system:masters before v1.29, kubeadm:cluster-admins v1.29-v1.35, and from
    v1.36 no group at all (the user is bound to system:kubelet-api-admin by bootstrap-token instead)."""
    if spec.version.at_least(36):
        return ()
    return (CLUSTER_ADMINS,) if spec.version.at_least(29) else (SYSTEM_MASTERS,)


def _fixed(cn: str) -> Callable[[ClusterSpec], Subject]:
    return lambda spec: Subject(cn)


def _node(spec: ClusterSpec) -> Subject:
    return Subject(spec.node.name)


CA = CertDef(
    "ca", "ca", "self-signed Kubernetes CA to provision identities for other Kubernetes components", None,
    subject_rule=_fixed("kubernetes"),
)
APISERVER = CertDef(
    "apiserver", "apiserver", "certificate for serving the Kubernetes API", "ca", (SERVER_AUTH,),
    subject_rule=_fixed("kube-apiserver"), san_rule=apiserver_alt_names,
)
APISERVER_KUBELET_CLIENT = CertDef(
    "apiserver-kubelet-client", "apiserver-kubelet-client", "certificate for the API server to connect to kubelet",
    "ca", (CLIENT_AUTH,),
    subject_rule=lambda spec: Subject("kube-apiserver-kubelet-client", _kubelet_client_orgs(spec)),
)
FRONT_PROXY_CA = CertDef(
    "front-proxy-ca", "front-proxy-ca", "self-signed CA to provision identities for front proxy", None,
    subject_rule=_fixed("front-proxy-ca"),
)
FRONT_PROXY_CLIENT = CertDef(
    "front-proxy-client", "front-proxy-client", "certificate for the front proxy client", "front-proxy-ca",
    (CLIENT_AUTH,), subject_rule=_fixed("front-proxy-client"),
)
ETCD_CA = CertDef(
    "etcd-ca", "etcd/ca", "self-signed CA to provision identities for etcd", None, subject_rule=_fixed("etcd-ca"),
)
ETCD_SERVER = CertDef(
    # serverAuth+clientAuth: etcd dials itself with its server cert (etcd#9785).
    "etcd-server", "etcd/server", "certificate for serving etcd", "etcd-ca", (SERVER_AUTH, CLIENT_AUTH),
    subject_rule=_node, san_rule=etcd_server_alt_names,
)
ETCD_PEER = CertDef(
    "etcd-peer", "etcd/peer", "certificate for etcd nodes to communicate with each other", "etcd-ca",
    (SERVER_AUTH, CLIENT_AUTH), subject_rule=_node, san_rule=etcd_peer_alt_names,
)
ETCD_HEALTHCHECK_CLIENT = CertDef(
    "etcd-healthcheck-client", "etcd/healthcheck-client", "certificate for liveness probes to healthcheck etcd",
    "etcd-ca", (CLIENT_AUTH,),
    subject_rule=lambda spec: Subject("kube-etcd-healthcheck-client", _masters_before_129(spec)),
)
APISERVER_ETCD_CLIENT = CertDef(
    "apiserver-etcd-client", "apiserver-etcd-client", "certificate the apiserver uses to access etcd", "etcd-ca",
    (CLIENT_AUTH,), subject_rule=lambda spec: Subject("kube-apiserver-etcd-client", _masters_before_129(spec)),
)

# kubeadm's phase order (cmd/phases/init/certs.go); sa comes last and is not X.509.
ALL_CERTS: tuple[CertDef, ...] = (
    CA, APISERVER, APISERVER_KUBELET_CLIENT, FRONT_PROXY_CA, FRONT_PROXY_CLIENT,
    ETCD_CA, ETCD_SERVER, ETCD_PEER, ETCD_HEALTHCHECK_CLIENT, APISERVER_ETCD_CLIENT,
)
BY_NAME: dict[str, CertDef] = {c.name: c for c in ALL_CERTS}
CA_NAMES: tuple[str, ...] = ("ca", "etcd-ca", "front-proxy-ca")  # check-expiration's CA table order


def certs_for(spec: ClusterSpec) -> list[CertDef]:
    """The certs this spec needs: with external etcd, no etcd CA or etcd certs (GetCertsWithoutEtcd)."""
    if spec.etcd_external is not None:
        return [c for c in ALL_CERTS if not c.uses_etcd_ca]
    return list(ALL_CERTS)


def get(name: str) -> CertDef:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown certificate {name!r}") from None
