"""Build the ClusterSpec from flags and an optional kubeadm config file, validating once.

A flag and the config file may not both set the same value (a clear error, not a silent winner).
Every check raises ConfigError naming the field or flag, so the CLI prints one line and exits 2.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from bootstrap.durations import go_duration
from bootstrap.errors import ConfigError, ConfigErrors
from bootstrap.spec.kubeadm_config import Values, check_api_versions, load_config_file
from bootstrap.spec.model import (
    NETWORK_PLUGINS,
    ClusterSpec,
    EncryptionAlgorithm,
    EtcdMode,
    ExternalEtcd,
    Hardening,
    is_ip,
    split_host_port,
)
from bootstrap.spec.patches import read_patches_dir
from bootstrap.versions import DEFAULT_KUBERNETES_VERSION, KUBEADM_FEATURE_GATES, KubeVersion, resolve_version

# CLI flag -> spec field path. Names are kubeadm's where kubeadm has the flag.
FLAG_FIELDS: dict[str, str] = {
    "control_plane_endpoint": "control_plane_endpoint",
    "apiserver_advertise_address": "advertise_address",
    "apiserver_bind_port": "bind_port",
    "apiserver_cert_extra_sans": "api_server.cert_sans",
    "node_name": "node.name",
    "pod_network_cidr": "networking.pod_subnet",
    "service_cidr": "networking.service_subnet",
    "service_dns_domain": "networking.dns_domain",
    "kubernetes_version": "kubernetes_version",
    "cert_dir": "cert_dir",
    "skip_phases": "skip_phases",
    "cri_socket": "node.cri_socket",
    "image_repository": "image_repository",
    "ignore_preflight_errors": "node.ignore_preflight_errors",
    "encryption_algorithm": "encryption_algorithm",
    "etcd_mode": "etcd_mode",
    "network_plugin": "network.plugin",
    "patches": "patches_dir",
}

_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_GO_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|m|s|ms))+$")
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")


def flag_values(flags: Mapping[str, Any]) -> Values:
    """Only flags the user actually set (None / empty mean unset)."""
    out: Values = {}
    for name, field in FLAG_FIELDS.items():
        value = flags.get(name)
        if value is None or value == () or value == "":
            continue
        if field in ("api_server.cert_sans", "skip_phases", "node.ignore_preflight_errors") and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        out[field] = (value, "--" + name.replace("_", "-"))
    if flags.get("hardening"):
        out["hardening"] = ({"profile": flags["hardening"]}, "--hardening")
    return out


def check_network_plugin(plugin: str, where: str) -> None:
    """One line naming the supported plugins for any other (Kubespray's kube_network_plugin values)."""
    if plugin in NETWORK_PLUGINS:
        return
    why = "is not supported"
    if plugin == "flannel":
        why = "is not available: the module proxy refuses flannel's Go modules (docs/components.md)"
    raise ConfigError(where, f"{plugin!r} {why}",
                      hint="use kube-router, or none / cni and install your own (e.g. Cilium via Helm)")


def environment_defaults(environ: Mapping[str, str]) -> Values:
    """What a single-node init takes from the environment it runs in, as kubeadm does: the *_proxy
    variables for the control-plane static pods. Fleet runs take them from the inventory instead."""
    proxy = [{"name": k, "value": v} for k, v in sorted(environ.items()) if k.lower().endswith("_proxy") and v]
    return {"proxy_env": (proxy, "the environment (*_proxy)")} if proxy else {}


def build_spec(
    flags: Mapping[str, Any], config_path: str | None = None, *, defaults: Values | None = None,
    purpose: str = "init",
) -> ClusterSpec:
    """defaults (e.g. from an inventory) lose to the config file and to flags without conflict.
    purpose: which documents of the file the command reads (spec/kubeadm_config.PURPOSE_KINDS)."""
    merged: Values = dict(defaults or {})
    from_file = load_config_file(config_path, purpose) if config_path else {}
    from_flags = flag_values(flags)
    for key, (_, flag_origin) in from_flags.items():
        if key in from_file:
            raise ConfigError(
                flag_origin,
                f"also set by {from_file[key][1]} in {config_path}",
                hint="set it in one place only",
            )
    merged.update(from_file)
    merged.update(from_flags)
    spec = _construct(merged)
    if config_path:
        check_api_versions(config_path, spec.version.minor)
    return spec


def _construct(values: Values) -> ClusterSpec:
    raw: dict[str, Any] = {}
    origins = {k: o for k, (_, o) in values.items()}
    for key, (value, _) in values.items():
        _put(raw, key, value)

    def origin(key: str) -> str:
        return origins.get(key, key)

    if "kubernetes_version" in raw:
        v = resolve_version(str(raw["kubernetes_version"]), origin("kubernetes_version"))
        KubeVersion.parse(v, origin("kubernetes_version"))
        raw["kubernetes_version"] = v if v.startswith("v") else "v" + v
    if "encryption_algorithm" in raw:
        try:
            EncryptionAlgorithm(raw["encryption_algorithm"])
        except ValueError:
            allowed = ", ".join(a.value for a in EncryptionAlgorithm)
            raise ConfigError(
                origin("encryption_algorithm"),
                f"unknown algorithm {raw['encryption_algorithm']!r}",
                hint=f"use one of {allowed}",
            ) from None
    plugin = (raw.get("network") or {}).get("plugin")
    if plugin is not None:
        check_network_plugin(str(plugin), origin("network.plugin"))
    if "etcd_mode" in raw:
        try:
            EtcdMode(raw["etcd_mode"])
        except ValueError:
            raise ConfigError(
                origin("etcd_mode"), f"unknown etcd mode {raw['etcd_mode']!r}", hint="use static-pod or host"
            ) from None
    for key in ("certificate_validity", "ca_certificate_validity"):
        if key in raw and not isinstance(raw[key], timedelta):
            raw[key] = parse_duration(str(raw[key]), origin(key))
    for i, tok in enumerate(raw.get("bootstrap_tokens", [])):
        tok["ttl"] = (
            parse_duration(tok["ttl"], f"{origin('bootstrap_tokens')}[{i}].ttl")
            if tok.get("ttl")
            else timedelta(hours=24)
        )
        for k in ("usages", "groups"):
            if tok.get(k) is None:
                tok.pop(k, None)
    if "hardening" in raw:
        raw["hardening"] = _hardening(raw["hardening"], origin("hardening"))
    if raw.get("patches_dir"):
        minor = KubeVersion.parse(str(raw.get("kubernetes_version", DEFAULT_KUBERNETES_VERSION))).minor
        raw["patches"], _ = read_patches_dir(str(raw["patches_dir"]), origin("patches_dir"), minor)
    if "etcd_external" in raw:
        raw["etcd_local"] = None

    raw.setdefault("advertise_address", default_advertise_address())
    raw.setdefault("node", {})
    raw["node"].setdefault("name", socket.gethostname().lower())
    if isinstance(raw.get("bind_port"), str):
        if not raw["bind_port"].isdigit():
            raise ConfigError(origin("bind_port"), f"{raw['bind_port']!r} is not a port number")
        raw["bind_port"] = int(raw["bind_port"])

    try:
        spec = ClusterSpec.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        path = ".".join(str(p) for p in err["loc"])
        raise ConfigError(origin(path), err["msg"]) from None
    validate(spec, origin)
    return spec


def _put(raw: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _hardening(body: dict[str, Any], where: str) -> Hardening:
    profile = body.get("profile", "cis")
    if profile not in ("cis", "kubeadm"):
        raise ConfigError(where, f"unknown hardening profile {profile!r}", hint="use cis or kubeadm")
    base = Hardening.kubeadm() if profile == "kubeadm" else Hardening()
    updates: dict[str, Any] = {}
    names = {"disableProfiling": "disable_profiling", "auditLog": "audit_log"}
    for camel, snake in names.items():
        if camel in body:
            updates[snake] = bool(body[camel])
    for camel, snake in (
        ("certFileMode", "cert_file_mode"),
        ("kubeletConfigMode", "kubelet_config_mode"),
        ("kubeletUnitMode", "kubelet_unit_mode"),
    ):
        if camel in body:
            try:
                updates[snake] = int(str(body[camel]), 8)
            except ValueError:
                raise ConfigError(f"{where}.{camel}", f"{body[camel]!r} is not an octal file mode") from None
    return base.model_copy(update=updates)


def parse_duration(text: str, where: str) -> timedelta:
    """Go duration strings as kubeadm takes them: 8760h, 87600h0m0s, 90m, 1h30m."""
    t = text.strip()
    if not _GO_DURATION.match(t):
        raise ConfigError(where, f"{text!r} is not a duration", hint="use Go syntax such as 8760h or 24h0m0s")
    unit = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    seconds = sum(float(n) * unit[u] for n, u in _GO_DURATION_PART.findall(t))
    return timedelta(seconds=seconds)


def default_advertise_address() -> str:
    """kubeadm's choice: the address of the interface holding the default route (IPv4)."""
    try:
        with open("/proc/net/route") as fh:
            lines = fh.read().splitlines()[1:]
    except OSError:
        lines = []
    iface = next((ln.split()[0] for ln in lines if len(ln.split()) > 2 and ln.split()[1] == "00000000"), None)
    if iface:
        import fcntl
        import struct

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", iface[:15].encode()))  # SIOCGIFADDR
                return socket.inet_ntoa(packed[20:24])
            except OSError:
                pass
    raise ConfigError(
        "--apiserver-advertise-address",
        "not set and no default route to take an address from",
        hint="pass --apiserver-advertise-address IP",
    )


def validate(spec: ClusterSpec, origin: Any) -> None:
    """Cross-field checks (kubeadm's ValidateInitConfiguration, the parts that apply); every
    problem at once, each with its location."""
    found = problems(spec, origin)
    if len(found) == 1:
        raise found[0]
    if found:
        raise ConfigErrors(found)


# Paths that go into unit files, manifests and node commands: absolute, no spaces or shell syntax.
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._+@/-]*$")


def problems(spec: ClusterSpec, origin: Any) -> list[ConfigError]:
    out: list[ConfigError] = []

    def bad(where: str, message: str, hint: str | None = None) -> None:
        out.append(ConfigError(where, message, hint=hint))

    gates = KUBEADM_FEATURE_GATES.get(spec.version.minor)
    for name in sorted(spec.feature_gates) if gates is not None else ():
        if gates is not None and name not in gates:
            bad(origin("feature_gates"), f"{name} is not a valid feature name in kubeadm v1.{spec.version.minor}",
                hint=f"known: {', '.join(sorted(gates))}")
    if not is_ip(spec.advertise_address):
        bad(origin("advertise_address"), f"{spec.advertise_address!r} is not an IP address")
    elif ipaddress.ip_address(spec.advertise_address).is_unspecified:
        bad(origin("advertise_address"), "cannot be 0.0.0.0 or ::", "use the node's own address")
    if not 0 < spec.bind_port < 65536:
        bad(origin("bind_port"), f"{spec.bind_port} is not a valid port")
    if spec.control_plane_endpoint:
        try:
            host, _ = split_host_port(spec.control_plane_endpoint, spec.bind_port)
        except ValueError:
            bad(origin("control_plane_endpoint"), f"{spec.control_plane_endpoint!r} is not HOST[:PORT]",
                "e.g. lb.example.com:6443 or 10.0.0.10:6443")
        else:
            if not is_ip(host) and not _DNS1123_SUBDOMAIN.match(host):
                bad(origin("control_plane_endpoint"), f"{host!r} is neither an IP nor a DNS name")
    if not _DNS1123_SUBDOMAIN.match(spec.node.name) or len(spec.node.name) > 253:
        bad(origin("node.name"), f"{spec.node.name!r} is not a valid node name (RFC 1123 subdomain)",
            "lower-case letters, digits, '-' and '.', e.g. cp-1")
    if not _DNS1123_SUBDOMAIN.match(spec.networking.dns_domain):
        bad(origin("networking.dns_domain"), f"{spec.networking.dns_domain!r} is not a DNS domain")
    for name, path in (("cert_dir", spec.cert_dir), *((("etcd_local.data_dir", spec.etcd_local.data_dir),)
                                                        if spec.etcd_local else ())):
        if not _SAFE_PATH.match(path) or "/../" in path + "/" or path.rstrip("/") == "":
            bad(origin(name), f"{path!r} is not a plain absolute path",
                "use letters, digits and . _ - + @ / only, e.g. /var/lib/etcd")
    for comp_name, comp in (("api_server", spec.api_server), ("controller_manager", spec.controller_manager),
                            ("scheduler", spec.scheduler), *((("etcd_local", spec.etcd_local),)
                                                             if spec.etcd_local else ())):
        for arg in comp.extra_args:
            if any(ord(c) < 32 for c in arg.name + arg.value) or not re.fullmatch(r"[A-Za-z0-9-]+", arg.name):
                bad(origin(f"{comp_name}.extra_args"), f"--{arg.name!r}: names are letters, digits and '-', "
                    "values one line without control characters")
    try:
        services = _cidrs(spec.networking.service_subnet, origin("networking.service_subnet"))
    except ConfigError as exc:
        out.append(exc)
        services = []
    for net in services:
        if net.version == 4 and net.prefixlen < 12:
            bad(origin("networking.service_subnet"), f"{net} is too large",
                "the mask must be /12 or longer (at most 2^20 addresses)")
        if net.version == 6 and net.prefixlen < 108:
            bad(origin("networking.service_subnet"), f"{net} is too large", "use /108 or longer")
    pods: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    if spec.networking.pod_subnet:
        try:
            pods = _cidrs(spec.networking.pod_subnet, origin("networking.pod_subnet"))
        except ConfigError as exc:
            out.append(exc)
    for p in pods:
        for s in services:
            if p.version == s.version and p.overlaps(s):
                bad(origin("networking.pod_subnet"), f"{p} overlaps the service subnet {s}",
                    "choose non-overlapping --pod-network-cidr and --service-cidr")
    sans = [(f"{origin('api_server.cert_sans')}[{i}]", san) for i, san in enumerate(spec.api_server.cert_sans)]
    if spec.etcd_local:
        for field in ("server_cert_sans", "peer_cert_sans"):
            sans += [(f"{origin('etcd_local.' + field)}[{i}]", san)
                     for i, san in enumerate(getattr(spec.etcd_local, field))]
    for where, san in sans:
        try:
            _check_san(san, where)
        except ConfigError as exc:
            out.append(exc)
    if spec.etcd_external is not None:
        out.extend(_external_etcd_problems(spec.etcd_external, origin("etcd_external")))
    for t in spec.bootstrap_tokens:
        if not re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", t.token):
            bad(origin("bootstrap_tokens"), "a token does not match [a-z0-9]{6}.[a-z0-9]{16}")
    for m in spec.etcd_members:
        if not _DNS1123_SUBDOMAIN.match(m.name) and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", m.name):
            bad(origin("etcd_members"), f"etcd member name {m.name!r}: letters, digits, '.', '_' and '-' only")
        if not re.fullmatch(r"https://[0-9A-Za-z.:\[\]-]+:[0-9]+", m.peer_url):
            bad(origin("etcd_members"), f"etcd peer URL {m.peer_url!r} is not https://ADDRESS:PORT")
    return out


def _external_etcd_problems(ext: ExternalEtcd, where: str) -> list[ConfigError]:
    """kubeadm's ValidateEtcd for an external cluster: https endpoints once any TLS file is given,
    the client pair both or neither, a CA with the pair."""
    out = []
    tls = bool(ext.ca_file or ext.cert_file or ext.key_file)
    if bool(ext.cert_file) != bool(ext.key_file):
        out.append(ConfigError(where, "either both or none of the client certificate and key must be set"))
    if ext.cert_file and ext.key_file and not ext.ca_file:
        out.append(ConfigError(where, "a client certificate and key need the etcd CA file as well"))
    if not ext.endpoints:
        out.append(ConfigError(f"{where}.endpoints", "at least one endpoint must be specified"))
    for url in ext.endpoints:
        scheme = url.partition("://")[0] if "://" in url else ""
        if not scheme:
            out.append(ConfigError(f"{where}.endpoints", f"{url!r}: the URL without scheme is not allowed",
                                   hint=f"e.g. https://{url}"))
        elif tls and scheme != "https":
            out.append(ConfigError(f"{where}.endpoints", f"{url!r}: the URL must be using the HTTPS scheme"))
    return out


RECOMMENDED_VALIDITY = timedelta(hours=8760)
RECOMMENDED_CA_VALIDITY = timedelta(hours=87600)


def validity_warnings(spec: ClusterSpec) -> list[str]:
    """kubeadm's ValidateCertValidity: warnings, never errors (since v1.31)."""
    leaf, ca = spec.certificate_validity, spec.ca_certificate_validity
    out = []
    if ca > RECOMMENDED_CA_VALIDITY:
        out.append(f"caCertificateValidityPeriod: the value {go_duration(ca)} is more than the recommended default "
                   f"for CA certificate expiration: {go_duration(RECOMMENDED_CA_VALIDITY)}")
    if leaf > RECOMMENDED_VALIDITY:
        out.append(f"certificateValidityPeriod: the value {go_duration(leaf)} is more than the recommended default "
                   f"for certificate expiration: {go_duration(RECOMMENDED_VALIDITY)}")
    if leaf > ca:
        out.append(f"certificateValidityPeriod: the value {go_duration(leaf)} is more than the "
                   f"caCertificateValidityPeriod: {go_duration(ca)}")
    return out


def _cidrs(text: str, where: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    out = []
    for part in text.split(","):
        try:
            out.append(ipaddress.ip_network(part.strip(), strict=False))  # host bits allowed, as kubeadm
        except ValueError:
            raise ConfigError(where, f"{part.strip()!r} is not a valid CIDR", hint="e.g. 10.244.0.0/16") from None
    if len(out) > 2 or (len(out) == 2 and out[0].version == out[1].version):
        raise ConfigError(where, "at most one IPv4 and one IPv6 CIDR (dual-stack)")
    return out


def _check_san(san: str, where: str) -> None:
    if is_ip(san):
        return
    name = san[2:] if san.startswith("*.") else san
    if not _DNS1123_SUBDOMAIN.match(name):
        raise ConfigError(where, f"{san!r} is not an IP address, DNS name or wildcard DNS name")
