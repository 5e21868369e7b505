"""What `kubeadm config migrate` prints: old kubeadm config documents in, v1beta4 documents out.

Followed from kubeadm v1.35-v1.37 (cmd/kubeadm/app/util/config: MigrateOldConfig and the
documentMapTo*Configuration it calls; apis/kubeadm/v1beta3/conversion.go; v1beta4/defaults.go).
kubeadm decodes each document strictly (unknown or repeated fields, wrong types are errors), applies
its version's defaults, converts it to the internal type, applies the dynamic defaults (node name =
this host's, advertise address = the default route's, detected CRI socket, a generated token),
validates it, and prints the full v1beta4 documents: Init+Cluster, then Join, Reset and Upgrade.
KubeletConfiguration and KubeProxyConfiguration are read (in the Init path) and not printed.

Per release (all checked against the real binaries, tests/integration/test_kubeadm_config_oracle.py):
- v1.35, v1.36 read v1beta3 (Init, Cluster, Join). v1beta3 `apiServer.timeoutForControlPlane`
  becomes `timeouts.controlPlaneComponentHealthCheck` of the Init (and of the Join) document; with a
  v1beta4 ClusterConfiguration (or none) their migrate mutator sets it to 0s (a kubeadm bug, kept).
- v1.35 skips UpgradeConfiguration; v1.36 fails on it ("could not find a mutator"); v1.37 migrates it.
- v1.37 refuses v1beta3 and reads kubeadm.k8s.io/v1 with --allow-experimental-api (its
  `mergeMethod` is validated, then dropped: the output is v1beta4).

Everything here works on plain values; what depends on the machine comes through `Host`.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import yaml

from bootstrap.durations import go_duration
from bootstrap.errors import ConfigError
from bootstrap.render import kubeadm_defaults as kd
from bootstrap.spec.kubeadm_config import (
    KUBE_PROXY_V1ALPHA1,
    KUBEADM_V1,
    KUBEADM_V1BETA3,
    KUBEADM_V1BETA4,
    KUBELET_V1BETA1,
    V1BETA3_REFUSED_FROM,
)
from bootstrap.spec.model import DEFAULT_CRI_SOCKET
from bootstrap.versions import KUBEADM_FEATURE_GATES, KubeVersion, resolve_version

MIGRATE_MIN_MINOR = 35  # the kubeadm releases whose migrate was followed and is checked
V1_FROM = 37  # kubeadm.k8s.io/v1 (experimental) is known from v1.37
MUTATOR_FIXED_IN = 37  # v1.35/v1.36's timeoutForControlPlane mutator and conversion variable
KUBEADM_GROUP = "kubeadm.k8s.io"
INIT, CLUSTER, JOIN, RESET, UPGRADE = (
    "InitConfiguration", "ClusterConfiguration", "JoinConfiguration", "ResetConfiguration", "UpgradeConfiguration")
KUBEADM_KINDS = (INIT, CLUSTER, JOIN, RESET, UPGRADE)
COMPONENT_CONFIG_GVKS = {(KUBELET_V1BETA1, "KubeletConfiguration"), (KUBE_PROXY_V1ALPHA1, "KubeProxyConfiguration")}
# validateSupportedVersion's oldKnownAPIVersions: the kubeadm release that still migrates each.
OLD_API_VERSIONS = {"v1alpha1": "v1.11", "v1alpha2": "v1.12", "v1alpha3": "v1.14", "v1beta1": "v1.15",
                    "v1beta2": "v1.22"}
# Known CRI endpoints in kubeadm's detection order (util/runtime defaultKnownCRISockets).
KNOWN_CRI_SOCKETS = ("unix:///var/run/containerd/containerd.sock", "unix:///var/run/crio/crio.sock",
                     "unix:///var/run/cri-dockerd.sock")
FEATURE_GATES = KUBEADM_FEATURE_GATES
UNMOUNT_FLAGS = frozenset({"MNT_FORCE", "MNT_DETACH", "MNT_EXPIRE", "UMOUNT_NOFOLLOW"})
PULL_POLICIES = frozenset({"", "Always", "IfNotPresent", "Never"})
_TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
_GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SEMVER_RE = re.compile(r"^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)([-0-9a-zA-Z_.+]*)?$")
_RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True)
class Host:
    """What kubeadm's dynamic defaults ask the machine; each is called only when a value is missing."""

    hostname: Callable[[], str]
    default_address: Callable[[], str | None]  # the default route's address; None: no default route
    cri_sockets: Callable[[], list[str]]  # which of KNOWN_CRI_SOCKETS answer here
    new_token: Callable[[], str]
    file_exists: Callable[[str], bool]


@dataclass
class Migrated:
    documents: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)


# ---- Go types: enough of encoding/json to decode strictly and print what kubeadm prints ----------
@dataclass(frozen=True)
class Ptr:
    elem: GoType


@dataclass(frozen=True)
class Slice:
    elem: GoType


@dataclass(frozen=True)
class Map:
    elem: GoType


@dataclass(frozen=True)
class Field:
    key: str
    type: GoType
    omitempty: bool = True


@dataclass(frozen=True)
class Struct:
    name: str
    fields: tuple[Field, ...]


# A scalar is named: string, bool, int32, int, duration, time, token (BootstrapTokenString), quantity.
GoType = str | Ptr | Slice | Map | Struct
_SCALAR_ZERO: dict[str, Any] = {"string": "", "bool": False, "int32": 0, "int": 0, "quantity": "0"}


def _s(name: str, *fields: Field) -> Struct:
    return Struct(name, fields)


def _f(key: str, t: GoType, omitempty: bool = True) -> Field:
    return Field(key, t, omitempty)


def zero(t: GoType) -> Any:
    """Go's zero value: structs hold every field; nil pointers, slices and maps are None."""
    if isinstance(t, Struct):
        return {fl.key: zero(fl.type) for fl in t.fields}
    if isinstance(t, Ptr | Slice | Map):
        return None
    return _SCALAR_ZERO[t]


def decode(t: GoType, value: Any, where: str) -> Any:
    """Strict decoding (kubeadm's VerifyUnmarshalStrict + UniversalDecoder): YAML null keeps the zero value."""
    if value is None:
        return zero(t)
    if isinstance(t, Struct):
        if not isinstance(value, dict):
            raise ConfigError(where, f"must be a mapping, not {_yaml_type(value)}")
        out = zero(t)
        fields = {fl.key: fl for fl in t.fields}
        for key, item in value.items():
            fl = fields.get(key) if isinstance(key, str) else None
            if fl is None:
                raise ConfigError(f"{where}.{key}", "unknown field", hint=f"{t.name} has no such field")
            out[key] = decode(fl.type, item, f"{where}.{key}")
        return out
    if isinstance(t, Ptr):
        return decode(t.elem, value, where)
    if isinstance(t, Slice):
        if not isinstance(value, list):
            raise ConfigError(where, f"must be a list, not {_yaml_type(value)}")
        return [decode(t.elem, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(t, Map):
        if not isinstance(value, dict):
            raise ConfigError(where, f"must be a mapping, not {_yaml_type(value)}")
        return {str(k): decode(t.elem, v, f"{where}.{k}") for k, v in value.items()}
    return _decode_scalar(t, value, where)


def _decode_scalar(t: str, value: Any, where: str) -> Any:
    if t == "string":
        if not isinstance(value, str):
            raise ConfigError(where, f"must be a string, not {_yaml_type(value)}", hint="quote it")
        return value
    if t == "bool":
        if not isinstance(value, bool):
            raise ConfigError(where, f"must be true or false, not {_yaml_type(value)}")
        return value
    if t in ("int32", "int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(where, f"must be an integer, not {_yaml_type(value)}")
        if t == "int32" and not -(2**31) <= value < 2**31:
            raise ConfigError(where, f"{value} does not fit in an int32")
        return value
    if t == "duration":
        parsed = parse_go_duration(value) if isinstance(value, str) else None
        if parsed is None:
            raise ConfigError(where, f"{value!r} is not a duration", hint="use Go syntax such as 4m0s or 24h")
        return parsed
    if t == "time":
        if not isinstance(value, str) or not _RFC3339_RE.match(value):
            raise ConfigError(where, f"{value!r} is not an RFC 3339 time", hint="e.g. 2030-01-01T00:00:00Z")
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    if t == "token":
        if not isinstance(value, str) or not _TOKEN_RE.match(value):
            raise ConfigError(where, "the bootstrap token is not of the form [a-z0-9]{6}.[a-z0-9]{16}",
                              hint="generate one with `kbootstrap token generate`")
        return value
    if t == "quantity":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(where, f"{value!r} is not a quantity")
        return str(int(value)) if isinstance(value, int) or re.fullmatch(r"\d+", str(value)) else str(value)
    raise AssertionError(t)


def _yaml_type(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "a mapping"}.get(type(value), type(value).__name__)


def encode(t: GoType, value: Any) -> Any:
    """encoding/json of the value (omitempty as Go: structs are never empty), ready for go_yaml."""
    if isinstance(t, Struct):
        out = {}
        for fl in t.fields:
            item = value[fl.key]
            if fl.omitempty and _empty(fl.type, item):
                continue
            out[fl.key] = encode(fl.type, item)
        return out
    if isinstance(t, Ptr):
        return None if value is None else encode(t.elem, value)
    if isinstance(t, Slice):
        return None if value is None else [encode(t.elem, v) for v in value]
    if isinstance(t, Map):
        return None if value is None else {k: encode(t.elem, v) for k, v in value.items()}
    if t == "duration":
        return go_duration(value)
    if t == "time":
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def _empty(t: GoType, value: Any) -> bool:
    if isinstance(t, Struct) or t == "quantity":
        return False
    if isinstance(t, Ptr):
        return value is None
    return not value


# ---- Durations: Go's time.ParseDuration and Duration.String -------------------------------------
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9,
            "h": 3600 * 10**9}


def parse_go_duration(text: str) -> timedelta | None:
    """time.ParseDuration: 90s, 1.5h, 1h30m, -2m, 0. None when Go would refuse it."""
    s, sign = text, 1
    if s[:1] in ("-", "+"):
        sign, s = (-1 if s[0] == "-" else 1), s[1:]
    if s == "0":
        return timedelta(0)
    if not s:
        return None
    total = 0
    while s:
        m = re.match(r"(\d*)(?:\.(\d*))?", s)
        assert m is not None
        whole, frac = m.group(1), m.group(2) or ""
        if not whole and not frac:
            return None
        s = s[m.end():]
        u = re.match(r"[^\d.]+", s)
        if u is None or u.group(0) not in _UNIT_NS:
            return None
        unit = _UNIT_NS[u.group(0)]
        s = s[u.end():]
        total += int(whole or 0) * unit + (int(frac) * unit // 10 ** len(frac) if frac else 0)
    return timedelta(microseconds=sign * total // 1000)


def _duration(text: str) -> timedelta:
    d = parse_go_duration(text)
    assert d is not None, text
    return d


# ---- The API types ------------------------------------------------------------------------------
_TYPE_META = (_f("apiVersion", "string"), _f("kind", "string"))
_STRS = Slice("string")
_OPTIONAL = _f("optional", Ptr("bool"))
_KEY_REF = (_f("name", "string"), _f("key", "string", False), _OPTIONAL)  # LocalObjectReference inline
_ENV_SOURCE = _s(
    "EnvVarSource",
    _f("fieldRef", Ptr(_s("ObjectFieldSelector", _f("apiVersion", "string"), _f("fieldPath", "string", False)))),
    _f("resourceFieldRef", Ptr(_s("ResourceFieldSelector", _f("containerName", "string"),
                                  _f("resource", "string", False), _f("divisor", "quantity")))),
    _f("configMapKeyRef", Ptr(_s("ConfigMapKeySelector", *_KEY_REF))),
    _f("secretKeyRef", Ptr(_s("SecretKeySelector", *_KEY_REF))),
    _f("fileKeyRef", Ptr(_s("FileKeySelector", _f("volumeName", "string", False), _f("path", "string", False),
                            _f("key", "string", False), _OPTIONAL))),
)
_ENV = _s("EnvVar", _f("name", "string", False), _f("value", "string"), _f("valueFrom", Ptr(_ENV_SOURCE)))
_HOST_PATH = _s("HostPathMount", _f("name", "string", False), _f("hostPath", "string", False),
                _f("mountPath", "string", False), _f("readOnly", "bool"), _f("pathType", "string"))
_TAINT = _s("Taint", _f("key", "string", False), _f("value", "string"), _f("effect", "string", False),
            _f("timeAdded", Ptr("time")))
_TOKEN = _s("BootstrapToken", _f("token", Ptr("token"), False), _f("description", "string"),
            _f("ttl", Ptr("duration")), _f("expires", Ptr("time")), _f("usages", _STRS), _f("groups", _STRS))
_TIMEOUT_KEYS = ("controlPlaneComponentHealthCheck", "kubeletHealthCheck", "kubernetesAPICall", "etcdAPICall",
                 "tlsBootstrap", "discovery", "upgradeManifests")
_TIMEOUTS = _s("Timeouts", *(_f(k, Ptr("duration")) for k in _TIMEOUT_KEYS))
_PATCHES = Ptr(_s("Patches", _f("directory", "string")))
_ENDPOINT = _s("APIEndpoint", _f("advertiseAddress", "string"), _f("bindPort", "int32"))
_IMAGE_META = (_f("imageRepository", "string"), _f("imageTag", "string"))
_TOKEN_DISCOVERY = _s("BootstrapTokenDiscovery", _f("token", "string", False), _f("apiServerEndpoint", "string"),
                      _f("caCertHashes", _STRS), _f("unsafeSkipCAVerification", "bool"))
_FILE_DISCOVERY = _s("FileDiscovery", _f("kubeConfigPath", "string", False))
_JOIN_CONTROL_PLANE = _s("JoinControlPlane", _f("localAPIEndpoint", _ENDPOINT), _f("certificateKey", "string"))
_EXTERNAL_ETCD3 = (_f("endpoints", _STRS, False), _f("caFile", "string", False), _f("certFile", "string", False),
                   _f("keyFile", "string", False))


def _v1beta4_types(arg: Struct) -> dict[str, Struct]:
    """v1beta4's types; kubeadm.k8s.io/v1 is the same with mergeMethod on Arg."""
    args, pbool = Slice(arg), Ptr("bool")
    component = (_f("extraArgs", args), _f("extraVolumes", Slice(_HOST_PATH)), _f("extraEnvs", Slice(_ENV)))
    node = _s("NodeRegistrationOptions", _f("name", "string"), _f("criSocket", "string"),
              _f("taints", Slice(_TAINT), False), _f("kubeletExtraArgs", args), _f("ignorePreflightErrors", _STRS),
              _f("imagePullPolicy", "string"), _f("imagePullSerial", pbool))
    local = _s("LocalEtcd", *_IMAGE_META, _f("dataDir", "string", False), _f("extraArgs", args),
               _f("extraEnvs", Slice(_ENV)), _f("serverCertSANs", _STRS), _f("peerCertSANs", _STRS))
    external = _s("ExternalEtcd", _EXTERNAL_ETCD3[0], _f("httpEndpoints", _STRS), *_EXTERNAL_ETCD3[1:])
    cluster = _s(
        CLUSTER, *_TYPE_META,
        _f("etcd", _s("Etcd", _f("local", Ptr(local)), _f("external", Ptr(external)))),
        _f("networking", _s("Networking", _f("serviceSubnet", "string"), _f("podSubnet", "string"),
                            _f("dnsDomain", "string"))),
        _f("kubernetesVersion", "string"), _f("controlPlaneEndpoint", "string"),
        _f("apiServer", _s("APIServer", *component, _f("certSANs", _STRS))),
        _f("controllerManager", _s("ControlPlaneComponent", *component)),
        _f("scheduler", _s("ControlPlaneComponent", *component)),
        _f("dns", _s("DNS", *_IMAGE_META, _f("disabled", "bool"))),
        _f("proxy", _s("Proxy", _f("disabled", "bool"))),
        _f("certificatesDir", "string"), _f("imageRepository", "string"), _f("featureGates", Map("bool")),
        _f("clusterName", "string"), _f("encryptionAlgorithm", "string"),
        _f("certificateValidityPeriod", Ptr("duration")), _f("caCertificateValidityPeriod", Ptr("duration")),
    )
    init = _s(INIT, *_TYPE_META, _f("bootstrapTokens", Slice(_TOKEN)), _f("dryRun", "bool"),
              _f("nodeRegistration", node), _f("localAPIEndpoint", _ENDPOINT), _f("certificateKey", "string"),
              _f("skipPhases", _STRS), _f("patches", _PATCHES), _f("timeouts", Ptr(_TIMEOUTS)))
    discovery = _s("Discovery", _f("bootstrapToken", Ptr(_TOKEN_DISCOVERY)), _f("file", Ptr(_FILE_DISCOVERY)),
                   _f("tlsBootstrapToken", "string"))
    join = _s(JOIN, *_TYPE_META, _f("dryRun", "bool"), _f("nodeRegistration", node), _f("caCertPath", "string"),
              _f("discovery", discovery, False), _f("controlPlane", Ptr(_JOIN_CONTROL_PLANE)),
              _f("skipPhases", _STRS), _f("patches", _PATCHES), _f("timeouts", Ptr(_TIMEOUTS)))
    reset = _s(RESET, *_TYPE_META, _f("cleanupTmpDir", "bool"), _f("certificatesDir", "string"),
               _f("criSocket", "string"), _f("dryRun", "bool"), _f("force", "bool"),
               _f("ignorePreflightErrors", _STRS), _f("skipPhases", _STRS), _f("unmountFlags", _STRS),
               _f("timeouts", Ptr(_TIMEOUTS)))
    pull = (_f("imagePullPolicy", "string"), _f("imagePullSerial", pbool))
    upgrade = _s(
        UPGRADE, *_TYPE_META,
        _f("apply", _s("UpgradeApplyConfiguration", _f("kubernetesVersion", "string"),
                       _f("allowExperimentalUpgrades", pbool), _f("allowRCUpgrades", pbool),
                       _f("certificateRenewal", pbool), _f("dryRun", pbool), _f("etcdUpgrade", pbool),
                       _f("forceUpgrade", pbool), _f("ignorePreflightErrors", _STRS), _f("patches", _PATCHES),
                       _f("printConfig", pbool), _f("skipPhases", _STRS), *pull)),
        _f("diff", _s("UpgradeDiffConfiguration", _f("kubernetesVersion", "string"), _f("contextLines", "int"))),
        _f("node", _s("UpgradeNodeConfiguration", _f("certificateRenewal", pbool), _f("dryRun", pbool),
                      _f("etcdUpgrade", pbool), _f("ignorePreflightErrors", _STRS), _f("skipPhases", _STRS),
                      _f("patches", _PATCHES), *pull)),
        _f("plan", _s("UpgradePlanConfiguration", _f("kubernetesVersion", "string"),
                      _f("allowExperimentalUpgrades", pbool), _f("allowRCUpgrades", pbool), _f("dryRun", pbool),
                      _f("etcdUpgrade", pbool), _f("ignorePreflightErrors", _STRS), _f("printConfig", pbool))),
        _f("timeouts", Ptr(_TIMEOUTS)),
    )
    return {INIT: init, CLUSTER: cluster, JOIN: join, RESET: reset, UPGRADE: upgrade}


def _v1beta3_types() -> dict[str, Struct]:
    """v1beta3: extraArgs are maps, no extraEnvs/timeouts/dryRun/proxy, two timeouts of its own."""
    args = Map("string")
    component = (_f("extraArgs", args), _f("extraVolumes", Slice(_HOST_PATH)))
    node = _s("NodeRegistrationOptions", _f("name", "string"), _f("criSocket", "string"),
              _f("taints", Slice(_TAINT), False), _f("kubeletExtraArgs", args), _f("ignorePreflightErrors", _STRS),
              _f("imagePullPolicy", "string"))
    local = _s("LocalEtcd", *_IMAGE_META, _f("dataDir", "string", False), _f("extraArgs", args),
               _f("serverCertSANs", _STRS), _f("peerCertSANs", _STRS))
    cluster = _s(
        CLUSTER, *_TYPE_META,
        _f("etcd", _s("Etcd", _f("local", Ptr(local)), _f("external", Ptr(_s("ExternalEtcd", *_EXTERNAL_ETCD3))))),
        _f("networking", _s("Networking", _f("serviceSubnet", "string"), _f("podSubnet", "string"),
                            _f("dnsDomain", "string"))),
        _f("kubernetesVersion", "string"), _f("controlPlaneEndpoint", "string"),
        _f("apiServer", _s("APIServer", *component, _f("certSANs", _STRS),
                           _f("timeoutForControlPlane", Ptr("duration")))),
        _f("controllerManager", _s("ControlPlaneComponent", *component)),
        _f("scheduler", _s("ControlPlaneComponent", *component)),
        _f("dns", _s("DNS", *_IMAGE_META)),
        _f("certificatesDir", "string"), _f("imageRepository", "string"), _f("featureGates", Map("bool")),
        _f("clusterName", "string"),
    )
    init = _s(INIT, *_TYPE_META, _f("bootstrapTokens", Slice(_TOKEN)), _f("nodeRegistration", node),
              _f("localAPIEndpoint", _ENDPOINT), _f("certificateKey", "string"), _f("skipPhases", _STRS),
              _f("patches", _PATCHES))
    discovery = _s("Discovery", _f("bootstrapToken", Ptr(_TOKEN_DISCOVERY)), _f("file", Ptr(_FILE_DISCOVERY)),
                   _f("tlsBootstrapToken", "string"), _f("timeout", Ptr("duration")))
    join = _s(JOIN, *_TYPE_META, _f("nodeRegistration", node), _f("caCertPath", "string"),
              _f("discovery", discovery, False), _f("controlPlane", Ptr(_JOIN_CONTROL_PLANE)),
              _f("skipPhases", _STRS), _f("patches", _PATCHES))
    return {INIT: init, CLUSTER: cluster, JOIN: join}


_ARG = _s("Arg", _f("name", "string", False), _f("value", "string", False))
V1BETA4_TYPES = _v1beta4_types(_ARG)
V1_TYPES = _v1beta4_types(_s("Arg", _f("name", "string", False), _f("value", "string", False),
                              _f("mergeMethod", "string")))
V1BETA3_TYPES = _v1beta3_types()
TYPES = {KUBEADM_V1BETA4: V1BETA4_TYPES, KUBEADM_V1BETA3: V1BETA3_TYPES, KUBEADM_V1: V1_TYPES}


def _type_at(t: GoType, *keys: str) -> GoType:
    """The type of a nested field (through pointers), e.g. ClusterConfiguration etcd.local."""
    for key in keys:
        while isinstance(t, Ptr):
            t = t.elem
        assert isinstance(t, Struct)
        t = next(fl.type for fl in t.fields if fl.key == key)
    while isinstance(t, Ptr):
        t = t.elem
    return t


_LOCAL_ETCD = _type_at(V1BETA4_TYPES[CLUSTER], "etcd", "local")


# ---- Reading the file as kubeadm does -----------------------------------------------------------
class _KubeadmYAML(yaml.SafeLoader):
    """YAML as sigs.k8s.io/yaml reads it: dates stay strings, no base-60 numbers, a key twice is an error."""


_KubeadmYAML.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:int")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_KubeadmYAML.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int) -> None:
        super().__init__(key, line)
        self.key, self.line = key, line


def _mapping(loader: _KubeadmYAML, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise _DuplicateKey(key, key_node.start_mark.line + 1)
        seen.add(key)
    return loader.construct_mapping(node)


_KubeadmYAML.add_constructor("tag:yaml.org,2002:map", _mapping)


def parse_documents(text: str, name: str) -> list[Any]:
    """The file's YAML documents (empty ones dropped), read with kubeadm's YAML rules."""
    try:
        return [d for d in yaml.load_all(text, Loader=_KubeadmYAML) if d is not None]  # a SafeLoader
    except _DuplicateKey as exc:
        raise ConfigError(f"{name}: line {exc.line}", f"key {exc.key!r} is already set in this mapping",
                          hint="kubeadm decodes strictly: give each field once") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(name, f"not valid YAML{where}") from None


def file_kubernetes_version(docs: list[Any]) -> str | None:
    """The ClusterConfiguration's kubernetesVersion as written, if the file has one."""
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == CLUSTER and str(doc.get("apiVersion", "")).startswith(
                KUBEADM_GROUP + "/"):
            value = doc.get("kubernetesVersion")
            return value if isinstance(value, str) and value else None
    return None


# ---- The migration ------------------------------------------------------------------------------
@dataclass
class _Run:
    kubeadm: KubeVersion
    host: Host
    warnings: list[str]
    # v1.35/v1.36: a v1beta3 ClusterConfiguration's timeoutForControlPlane, which their v1beta4
    # conversion writes into every Init and Join document it prints (a package-level variable there).
    conversion_timeout: timedelta | None = None


def migrate(docs: list[Any], kubeadm: KubeVersion, host: Host, *, allow_experimental: bool = False) -> Migrated:
    """The documents `kubeadm config migrate` of release `kubeadm` prints for these, and its warnings."""
    if kubeadm.minor < MIGRATE_MIN_MINOR:
        raise ConfigError("", f"kbootstrap follows the config migrate of kubeadm v1.{MIGRATE_MIN_MINOR} to "
                          f"v1.{max(FEATURE_GATES)}, not v1.{kubeadm.minor}")
    run = _Run(kubeadm, host, [])
    found = _split(docs, kubeadm, allow_experimental)
    components = [kind for (gv, kind) in found if (gv, kind) in COMPONENT_CONFIG_GVKS]
    out: list[dict[str, Any]] = []
    kinds = {kind: gv for (gv, kind) in found if gv.startswith(KUBEADM_GROUP + "/")}
    if INIT in kinds or CLUSTER in kinds:
        out += _init_cluster(found, kinds, run)
        if components:
            run.warnings.append(f"{' and '.join(components)}: read and validated, not carried over (kubeadm's "
                                "config migrate prints kubeadm's own kinds only)")
    elif components:
        run.warnings.append(f"{' and '.join(components)}: not read without an InitConfiguration or "
                            "ClusterConfiguration, and not carried over")
    join = _decode_with(found, kinds, JOIN)
    if join is not None:
        out.append(_join(*join, run))
    reset = _decode_with(found, kinds, RESET)
    if reset is not None:
        out.append(_reset(reset[0], run))
    if UPGRADE in kinds and kubeadm.minor == 35:  # checked above with Init/Cluster only, as kubeadm does
        run.warnings.append("UpgradeConfiguration: kubeadm v1.35's config migrate skips it; not carried over")
    elif UPGRADE in kinds:
        upgrade = _decode_with(found, kinds, UPGRADE)
        if kubeadm.minor == 36:  # it decodes and validates the document, then has no mutator for it
            raise ConfigError(UPGRADE, "kubeadm v1.36's config migrate cannot migrate it (it fails with "
                              "\"could not find a mutator\")",
                              hint="remove it from the file, or migrate it with --kubernetes-version v1.37.x")
        if upgrade is not None:
            out.append(_upgrade(upgrade[0]))
    if not out:
        run.warnings.append("no InitConfiguration, ClusterConfiguration, JoinConfiguration, ResetConfiguration "
                            "or UpgradeConfiguration: nothing to migrate")
    return Migrated(out, run.warnings)


def _split(docs: list[Any], kubeadm: KubeVersion, allow_experimental: bool) -> dict[tuple[str, str], dict[str, Any]]:
    """SplitConfigDocuments + validateKnownGVKs + validateSupportedVersion, for the whole file."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    kinds: set[str] = set()
    unknown: list[str] = []
    for index, doc in enumerate(docs):
        where = f"document {index + 1}"
        if not isinstance(doc, dict):
            raise ConfigError(where, "is not a YAML mapping")
        gv, kind = doc.get("apiVersion"), doc.get("kind")
        if not isinstance(gv, str) or not isinstance(kind, str) or "/" not in gv or not kind:
            raise ConfigError(where, "kind and apiVersion (GROUP/VERSION) are mandatory")
        if kind in kinds:
            raise ConfigError(kind, "is specified twice in the file", hint="keep one document of each kind")
        kinds.add(kind)
        group, version = gv.split("/", 1)
        if group == KUBEADM_GROUP and (version in OLD_API_VERSIONS or (
                version == "v1beta3" and kubeadm.minor >= V1BETA3_REFUSED_FROM)):
            last = f"v1.{V1BETA3_REFUSED_FROM - 1}"
            hint = (f"kubeadm {OLD_API_VERSIONS[version]}'s `kubeadm config migrate` writes it as a newer version"
                    if version in OLD_API_VERSIONS else
                    f"`kbootstrap config migrate --old-config FILE --kubernetes-version {last}.x` (kubeadm {last}'s "
                    "migrate) writes it as v1beta4")
            raise ConfigError(f"{kind} ({gv})", f"uses an old API spec, which kubeadm v1.{kubeadm.minor} no longer "
                              "reads", hint=hint)
        if (gv, kind) not in COMPONENT_CONFIG_GVKS and not _known(gv, kind, kubeadm):
            unknown.append(f"{gv} {kind}")
        found[(gv, kind)] = doc
    if unknown:
        known = f"{KUBEADM_V1BETA4} " + "|".join(KUBEADM_KINDS)
        if kubeadm.minor < V1BETA3_REFUSED_FROM:
            known += f", {KUBEADM_V1BETA3} {INIT}|{CLUSTER}|{JOIN}"
        if kubeadm.minor >= V1_FROM:
            known += f", {KUBEADM_V1} (the same kinds, with --allow-experimental-api)"
        known += ", " + ", ".join(sorted(f"{gv} {k}" for gv, k in COMPONENT_CONFIG_GVKS))
        raise ConfigError("", f"unknown configuration API(s) for kubeadm v1.{kubeadm.minor}: {', '.join(unknown)}",
                          hint=f"known: {known}")
    experimental = sorted(kind for (gv, kind) in found if gv == KUBEADM_V1)
    if experimental and not allow_experimental:
        raise ConfigError(f"{experimental[0]} ({KUBEADM_V1})", "is an experimental API spec",
                          hint="pass --allow-experimental-api to read it")
    return found


def _known(gv: str, kind: str, kubeadm: KubeVersion) -> bool:
    """In this release's kubeadm scheme (v1beta3 until v1.36, v1 from v1.37)."""
    if gv == KUBEADM_V1BETA3 and kubeadm.minor >= V1BETA3_REFUSED_FROM:
        return False
    if gv == KUBEADM_V1 and kubeadm.minor < V1_FROM:
        return False
    return kind in TYPES.get(gv, {})


def _drop_merge_methods(doc: Any, where: str) -> None:
    """kubeadm.k8s.io/v1 -> v1beta4: mergeMethod is validated (append|prepend) and then dropped."""
    if isinstance(doc, dict):
        if set(doc) == {"name", "value", "mergeMethod"}:  # a decoded v1 Arg holds exactly these
            if doc["mergeMethod"] not in ("", "append", "prepend"):
                raise ConfigError(f"{where}.mergeMethod", f"{doc['mergeMethod']!r} is not a merge method",
                                  hint="use append or prepend")
            del doc["mergeMethod"]
            return
        for key, value in doc.items():
            _drop_merge_methods(value, f"{where}.{key}")
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            _drop_merge_methods(value, f"{where}[{i}]")


def _decode_with(found: Mapping[tuple[str, str], dict[str, Any]], kinds: Mapping[str, str],
                 kind: str) -> tuple[Any, bool] | None:
    """(the decoded document, whether it is v1beta3's shape) or None when the file has no such kind.
    A kubeadm.k8s.io/v1 document comes back in v1beta4's shape."""
    if kind not in kinds:
        return None
    gv = kinds[kind]
    doc = decode(TYPES[gv][kind], found[(gv, kind)], kind)
    if gv == KUBEADM_V1:
        _drop_merge_methods(doc, kind)
    return doc, gv == KUBEADM_V1BETA3


# ---- InitConfiguration + ClusterConfiguration ---------------------------------------------------
def _init_cluster(found: Mapping[tuple[str, str], dict[str, Any]], kinds: Mapping[str, str],
                  run: _Run) -> list[dict[str, Any]]:
    # kubeadm validates every document of the file in this path, Join/Reset/Upgrade too.
    for kind in (JOIN, RESET, UPGRADE):
        if kind in kinds:
            _decode_with(found, kinds, kind)
    cluster_in = _decode_with(found, kinds, CLUSTER)
    init_in = _decode_with(found, kinds, INIT)
    timeout_for_control_plane = timedelta(0)  # v1beta4's conversion gives the internal field &Duration{}
    if cluster_in is None:
        cluster = _default_cluster4(zero(V1BETA4_TYPES[CLUSTER]))
    elif cluster_in[1]:
        cluster, timeout_for_control_plane = _convert_cluster3(_default_cluster3(cluster_in[0]))
        if timeout_for_control_plane:
            run.conversion_timeout = timeout_for_control_plane
    else:
        cluster = _default_cluster4(cluster_in[0])
    if init_in is None:
        init = _default_init4(zero(V1BETA4_TYPES[INIT]))
    elif init_in[1]:
        init = _convert_init3(_default_init3(init_in[0]))
    else:
        init = _default_init4(init_in[0])
    if run.kubeadm.minor < MUTATOR_FIXED_IN:
        # Their mutator: Timeouts.ControlPlaneComponentHealthCheck = APIServer.TimeoutForControlPlane,
        # which is 0 unless a v1beta3 ClusterConfiguration gave it.
        init["timeouts"]["controlPlaneComponentHealthCheck"] = timeout_for_control_plane

    for token in init["bootstrapTokens"]:
        if not token["token"]:
            token["token"] = run.host.new_token()
    _node_dynamic(init["nodeRegistration"], True, f"{INIT}.nodeRegistration", run)
    _endpoint_dynamic(init["localAPIEndpoint"], f"{INIT}.localAPIEndpoint", run)
    _cluster_dynamic(cluster, init["localAPIEndpoint"]["bindPort"], run)

    _validate_node(init["nodeRegistration"], f"{INIT}.nodeRegistration")
    _validate_tokens(init["bootstrapTokens"])
    _validate_endpoint(init["localAPIEndpoint"], f"{INIT}.localAPIEndpoint")
    _validate_certificate_key(init["certificateKey"], f"{INIT}.certificateKey")
    _validate_cluster(cluster, run.kubeadm)

    init.update(apiVersion=KUBEADM_V1BETA4, kind=INIT)
    cluster.update(apiVersion=KUBEADM_V1BETA4, kind=CLUSTER)
    return [encode(V1BETA4_TYPES[INIT], init), encode(V1BETA4_TYPES[CLUSTER], cluster)]


def _default_timeouts(timeouts: dict[str, Any] | None) -> dict[str, Any]:
    out = timeouts if timeouts is not None else zero(_TIMEOUTS)
    for key, value in kd.TIMEOUTS.items():
        if out[key] is None:
            out[key] = _duration(value)
    return out


def _default_tokens(tokens: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    out = tokens or [zero(_TOKEN)]  # SetDefaults_BootstrapTokens: none means one, to be generated
    for token in out:
        if token["ttl"] is None:
            token["ttl"] = _duration(kd.TOKEN_TTL)
        if not token["usages"]:
            token["usages"] = list(kd.TOKEN_USAGES)
        if not token["groups"]:
            token["groups"] = list(kd.TOKEN_GROUPS)
    return out


def _default_init4(init: dict[str, Any]) -> dict[str, Any]:
    init["bootstrapTokens"] = _default_tokens(init["bootstrapTokens"])
    if not init["localAPIEndpoint"]["bindPort"]:
        init["localAPIEndpoint"]["bindPort"] = kd.BIND_PORT
    _default_node4(init["nodeRegistration"])
    init["timeouts"] = _default_timeouts(init["timeouts"])
    return init


def _default_node4(node: dict[str, Any]) -> None:
    if not node["imagePullPolicy"]:
        node["imagePullPolicy"] = kd.IMAGE_PULL_POLICY
    if node["imagePullSerial"] is None:
        node["imagePullSerial"] = True


def _default_init3(init: dict[str, Any]) -> dict[str, Any]:
    init["bootstrapTokens"] = _default_tokens(init["bootstrapTokens"])
    if not init["localAPIEndpoint"]["bindPort"]:
        init["localAPIEndpoint"]["bindPort"] = kd.BIND_PORT
    if not init["nodeRegistration"]["imagePullPolicy"]:
        init["nodeRegistration"]["imagePullPolicy"] = kd.IMAGE_PULL_POLICY
    return init


def _convert_node3(node: dict[str, Any]) -> dict[str, Any]:
    # v1beta3 has no imagePullSerial: its conversion sets true.
    return {**node, "kubeletExtraArgs": _args_from_map(node["kubeletExtraArgs"]), "imagePullSerial": True}


def _convert_init3(init: dict[str, Any]) -> dict[str, Any]:
    out = zero(V1BETA4_TYPES[INIT])
    for key in ("bootstrapTokens", "localAPIEndpoint", "certificateKey", "skipPhases", "patches"):
        out[key] = init[key]
    out["nodeRegistration"] = _convert_node3(init["nodeRegistration"])
    out["timeouts"] = _default_timeouts(None)  # the conversion's kubeadm.SetDefaultTimeouts
    return out


def _args_from_map(args: dict[str, str] | None) -> list[dict[str, str]] | None:
    """v1beta3 convertToArgs: a map becomes name/value pairs sorted by name, then value."""
    if args is None:
        return None
    return [{"name": k, "value": v} for k, v in sorted(args.items())]


def _default_cluster_common(cluster: dict[str, Any]) -> None:
    for keys, value in ((("networking", "serviceSubnet"), kd.SERVICE_SUBNET), (("networking", "dnsDomain"),
                        kd.DNS_DOMAIN), (("certificatesDir",), kd.CERTIFICATES_DIR),
                        (("imageRepository",), kd.IMAGE_REPOSITORY), (("clusterName",), kd.CLUSTER_NAME)):
        holder = cluster
        for key in keys[:-1]:
            holder = holder[key]
        if not holder[keys[-1]]:
            holder[keys[-1]] = value
    etcd = cluster["etcd"]
    if etcd["local"] is None and etcd["external"] is None:
        etcd["local"] = zero(_LOCAL_ETCD)
    if etcd["local"] is not None and not etcd["local"]["dataDir"]:
        etcd["local"]["dataDir"] = kd.ETCD_DATA_DIR


def _default_cluster4(cluster: dict[str, Any]) -> dict[str, Any]:
    _default_cluster_common(cluster)
    if not cluster["encryptionAlgorithm"]:
        cluster["encryptionAlgorithm"] = kd.ENCRYPTION_ALGORITHM
    if cluster["certificateValidityPeriod"] is None:
        cluster["certificateValidityPeriod"] = _duration(kd.CERTIFICATE_VALIDITY)
    if cluster["caCertificateValidityPeriod"] is None:
        cluster["caCertificateValidityPeriod"] = _duration(kd.CA_CERTIFICATE_VALIDITY)
    external = cluster["etcd"]["external"]
    if external is not None and not external["httpEndpoints"] and external["endpoints"]:
        external["httpEndpoints"] = list(external["endpoints"])  # SetDefaults_ExternalEtcd
    envs = [cluster[c]["extraEnvs"] for c in ("apiServer", "controllerManager", "scheduler")]
    if cluster["etcd"]["local"] is not None:
        envs.append(cluster["etcd"]["local"]["extraEnvs"])
    for env in (e for group in envs for e in group or ()):
        ref = (env["valueFrom"] or {}).get("fieldRef")
        if ref is not None and not ref["apiVersion"]:
            ref["apiVersion"] = "v1"  # SetDefaults_EnvVar
    return cluster


def _default_cluster3(cluster: dict[str, Any]) -> dict[str, Any]:
    _default_cluster_common(cluster)
    if cluster["apiServer"]["timeoutForControlPlane"] is None:
        cluster["apiServer"]["timeoutForControlPlane"] = _duration(kd.TIMEOUTS["controlPlaneComponentHealthCheck"])
    return cluster


def _convert_component3(component: dict[str, Any]) -> dict[str, Any]:
    return {"extraArgs": _args_from_map(component["extraArgs"]), "extraVolumes": component["extraVolumes"],
            "extraEnvs": None}


def _convert_cluster3(cluster: dict[str, Any]) -> tuple[dict[str, Any], timedelta]:
    """v1beta3 -> v1beta4's shape, and the timeoutForControlPlane v1beta4 has no field for."""
    out = zero(V1BETA4_TYPES[CLUSTER])
    for key in ("networking", "kubernetesVersion", "controlPlaneEndpoint", "certificatesDir", "imageRepository",
                "featureGates", "clusterName"):
        out[key] = cluster[key]
    api = cluster["apiServer"]
    out["apiServer"] = {**_convert_component3(api), "certSANs": api["certSANs"]}
    out["controllerManager"] = _convert_component3(cluster["controllerManager"])
    out["scheduler"] = _convert_component3(cluster["scheduler"])
    out["dns"] = {**cluster["dns"], "disabled": False}
    local, external = cluster["etcd"]["local"], cluster["etcd"]["external"]
    if local is not None:
        out["etcd"]["local"] = {**local, "extraArgs": _args_from_map(local["extraArgs"]), "extraEnvs": None}
    if external is not None:
        # The conversion keeps HTTP (metrics, health) on the gRPC endpoints.
        out["etcd"]["external"] = {**external, "httpEndpoints": external["endpoints"]}
    # v1beta3 has none of these: the conversion sets kubeadm's defaults.
    out["encryptionAlgorithm"] = kd.ENCRYPTION_ALGORITHM
    out["certificateValidityPeriod"] = _duration(kd.CERTIFICATE_VALIDITY)
    out["caCertificateValidityPeriod"] = _duration(kd.CA_CERTIFICATE_VALIDITY)
    return out, api["timeoutForControlPlane"]


# ---- JoinConfiguration, ResetConfiguration, UpgradeConfiguration --------------------------------
def _join(doc: dict[str, Any], v1beta3: bool, run: _Run) -> dict[str, Any]:
    join = _convert_join3(_default_join3(doc)) if v1beta3 else _default_join4(doc)
    if run.kubeadm.minor < MUTATOR_FIXED_IN and run.conversion_timeout is not None:
        join["timeouts"]["controlPlaneComponentHealthCheck"] = run.conversion_timeout
    _node_dynamic(join["nodeRegistration"], join["controlPlane"] is not None, f"{JOIN}.nodeRegistration", run)
    if join["controlPlane"] is not None:
        _endpoint_dynamic(join["controlPlane"]["localAPIEndpoint"], f"{JOIN}.controlPlane.localAPIEndpoint", run)
    _validate_join(join, run.host)
    join.update(apiVersion=KUBEADM_V1BETA4, kind=JOIN)
    return encode(V1BETA4_TYPES[JOIN], join)


def _default_discovery(discovery: dict[str, Any]) -> None:
    if not discovery["tlsBootstrapToken"] and discovery["bootstrapToken"] is not None:
        discovery["tlsBootstrapToken"] = discovery["bootstrapToken"]["token"]
    file = discovery["file"]
    if file is not None and file["kubeConfigPath"]:
        url = urlsplit(file["kubeConfigPath"])
        if url.scheme == "file":
            file["kubeConfigPath"] = url.path


def _default_join_common(join: dict[str, Any]) -> None:
    if not join["caCertPath"]:
        join["caCertPath"] = kd.CA_CERT_PATH
    if join["controlPlane"] is not None and not join["controlPlane"]["localAPIEndpoint"]["bindPort"]:
        join["controlPlane"]["localAPIEndpoint"]["bindPort"] = kd.BIND_PORT
    _default_discovery(join["discovery"])


def _default_join4(join: dict[str, Any]) -> dict[str, Any]:
    _default_join_common(join)
    _default_node4(join["nodeRegistration"])
    join["timeouts"] = _default_timeouts(join["timeouts"])
    return join


def _default_join3(join: dict[str, Any]) -> dict[str, Any]:
    _default_join_common(join)
    if join["discovery"]["timeout"] is None:
        join["discovery"]["timeout"] = _duration(kd.TIMEOUTS["discovery"])
    if not join["nodeRegistration"]["imagePullPolicy"]:
        join["nodeRegistration"]["imagePullPolicy"] = kd.IMAGE_PULL_POLICY
    return join


def _convert_join3(join: dict[str, Any]) -> dict[str, Any]:
    out = zero(V1BETA4_TYPES[JOIN])
    for key in ("caCertPath", "controlPlane", "skipPhases", "patches"):
        out[key] = join[key]
    out["nodeRegistration"] = _convert_node3(join["nodeRegistration"])
    discovery = dict(join["discovery"])
    out["timeouts"] = _default_timeouts(None)
    out["timeouts"]["discovery"] = discovery.pop("timeout")  # v1beta3's discovery.timeout moved
    out["discovery"] = discovery
    return out


def _reset(reset: dict[str, Any], run: _Run) -> dict[str, Any]:
    if not reset["certificatesDir"]:
        reset["certificatesDir"] = kd.CERTIFICATES_DIR
    reset["timeouts"] = _default_timeouts(reset["timeouts"])
    reset["criSocket"] = _cri_socket(reset["criSocket"], f"{RESET}.criSocket", run)
    _validate_socket(reset["criSocket"], f"{RESET}.criSocket")
    _validate_absolute(reset["certificatesDir"], f"{RESET}.certificatesDir")
    for i, flag in enumerate(reset["unmountFlags"] or ()):
        if flag not in UNMOUNT_FLAGS:
            raise ConfigError(f"{RESET}.unmountFlags[{i}]", f"unknown unmount flag {flag}",
                              hint=f"use {', '.join(sorted(UNMOUNT_FLAGS))}")
    reset.update(apiVersion=KUBEADM_V1BETA4, kind=RESET)
    return encode(V1BETA4_TYPES[RESET], reset)


def _upgrade(upgrade: dict[str, Any]) -> dict[str, Any]:
    for part, defaults in kd.UPGRADE_DEFAULTS.items():
        for key, value in defaults.items():
            if upgrade[part][key] in (None, ""):
                upgrade[part][key] = value
    upgrade["timeouts"] = _default_timeouts(upgrade["timeouts"])
    for part in ("apply", "node"):
        if upgrade[part]["patches"] is not None:
            _validate_absolute(upgrade[part]["patches"]["directory"], f"{UPGRADE}.{part}.patches.directory")
        _validate_pull_policy(upgrade[part]["imagePullPolicy"], f"{UPGRADE}.{part}.imagePullPolicy")
    upgrade.update(apiVersion=KUBEADM_V1BETA4, kind=UPGRADE)
    return encode(V1BETA4_TYPES[UPGRADE], upgrade)


# ---- Dynamic defaults: what kubeadm takes from the machine --------------------------------------
def _node_dynamic(node: dict[str, Any], control_plane_taint: bool, where: str, run: _Run) -> None:
    name = (node["name"] or run.host.hostname()).lower().strip()  # nodeutil.GetHostname
    if not name:
        raise ConfigError(f"{where}.name", "empty hostname is invalid", hint="set nodeRegistration.name")
    node["name"] = name
    if control_plane_taint and node["taints"] is None:  # an empty list means no taint, on purpose
        node["taints"] = [{**zero(_TAINT), **kd.CONTROL_PLANE_TAINT}]
    node["criSocket"] = _cri_socket(node["criSocket"], f"{where}.criSocket", run)


def _cri_socket(socket: str, where: str, run: _Run) -> str:
    if not socket:
        found = run.host.cri_sockets()
        if len(found) > 1:
            raise ConfigError(where, f"found multiple CRI endpoints on the host: {', '.join(found)}",
                              hint="set the one to use in the file")
        return found[0] if found else DEFAULT_CRI_SOCKET
    if not socket.startswith("unix"):
        run.warnings.append(f"{where}: CRI endpoints without URL scheme are deprecated; prepending \"unix://\" "
                            f"to {socket!r} as kubeadm does (update your configuration)")
        return f"unix://{socket}"
    return socket


def _endpoint_dynamic(endpoint: dict[str, Any], where: str, run: _Run) -> None:
    """SetAPIEndpointDynamicDefaults: an unset or unspecified address becomes the default route's."""
    text = endpoint["advertiseAddress"]
    ip = _parse_ip(text)
    if ip is None and text:
        raise ConfigError(f"{where}.advertiseAddress", f"couldn't use {text!r}: must be an IPv4 or IPv6 address")
    if ip is not None and ip.is_loopback:
        # kubeadm looks for a global address on the lo interface instead; hosts rarely have one.
        raise ConfigError(f"{where}.advertiseAddress", f"{text!r} is a loopback address",
                          hint="use the node's own address")
    if ip is None or ip.is_unspecified:
        found = run.host.default_address()
        if found is None:
            run.warnings.append("could not obtain a bind address for the API Server: no default route; using: "
                                "0.0.0.0 (as kubeadm does)")
            found = "0.0.0.0"
        endpoint["advertiseAddress"] = found
    else:
        endpoint["advertiseAddress"] = str(ip)  # Go's net.IP.String(): the canonical form


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """netutils.ParseIPSloppy: IPv4 may have leading zeros; an IPv4-mapped IPv6 address is IPv4."""
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", text):
        text = ".".join(str(int(p)) for p in text.split("."))
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _cluster_dynamic(cluster: dict[str, Any], bind_port: int, run: _Run) -> None:
    cluster["kubernetesVersion"] = _normalize_version(cluster["kubernetesVersion"], run.kubeadm)
    endpoint = cluster["controlPlaneEndpoint"]
    if endpoint:
        host, port = _parse_host_port(endpoint, f"{CLUSTER}.controlPlaneEndpoint")
        if not port:  # the local API endpoint's port, so control planes may differ in bindPort
            cluster["controlPlaneEndpoint"] = _join_host_port(host, str(bind_port))
    sans = cluster["apiServer"]["certSANs"]
    if sans:
        cluster["apiServer"]["certSANs"] = [s.lower() for s in sans]


def _normalize_version(text: str, kubeadm: KubeVersion) -> str:
    """NormalizeKubernetesVersion, with kbootstrap's offline release table for the labels."""
    where = f"{CLUSTER}.kubernetesVersion"
    label = text or "stable-1"  # v1beta4's default
    resolved = resolve_version(label, where)
    # A label: kubeadm never takes a newer minor than its own (validateStableVersion).
    if resolved != label.strip() and KubeVersion.parse(resolved, where).minor > kubeadm.minor:
        resolved = resolve_version(f"stable-1.{kubeadm.minor}", where)
    if not _SEMVER_RE.match(resolved):
        raise ConfigError(where, f"{text!r} is neither a version nor a label (stable, latest, ...)")
    resolved = resolved if resolved.startswith("v") else f"v{resolved}"
    version = KubeVersion.parse(resolved, where)
    if version.minor < kubeadm.minor - 1:
        raise ConfigError(where, f"{resolved}: kubeadm v1.{kubeadm.minor} only supports control plane versions "
                          f">= v1.{kubeadm.minor - 1}.0", hint=f"migrate with --kubernetes-version {resolved}")
    return resolved


def _split_host_port(text: str) -> tuple[str, str] | None:
    """Go's net.SplitHostPort; None where it returns an error."""
    i = text.rfind(":")
    if i < 0:
        return None
    j = k = 0
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or end + 1 != i:
            return None
        host, j, k = text[1:end], 1, end + 1
    else:
        host = text[:i]
        if ":" in host:
            return None
    if "[" in text[j:] or "]" in text[k:]:
        return None
    return host, text[i + 1:]


def _parse_host_port(text: str, where: str) -> tuple[str, str]:
    """kubeadmutil.ParseHostPort: HOST or HOST:PORT, HOST an IP or an RFC 1123 subdomain."""
    split = _split_host_port(text)
    host, port = split if split is not None else (text, "")
    if port and not _valid_port(port):
        raise ConfigError(where, f"{text}: port {port} must be a valid number between 1 and 65535, inclusive")
    if _parse_ip(host) is None and not _is_dns1123_subdomain(host):
        raise ConfigError(where, f"{text}: host {host!r} must be a valid IP address or a valid RFC-1123 DNS "
                          "subdomain", hint="lower-case letters, digits, '-' and '.'")
    return host, port


def _join_host_port(host: str, port: str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _valid_port(text: str) -> bool:
    return text.isdigit() and 1 <= int(text) <= 65535


def _is_dns1123_subdomain(text: str) -> bool:
    return len(text) <= 253 and bool(_DNS1123_SUBDOMAIN.match(text))


# ---- Validation (kubeadm's apis/kubeadm/validation, the parts kbootstrap's reader does not do) ---
def _validate_node(node: dict[str, Any], where: str) -> None:
    if not _is_dns1123_subdomain(node["name"]):
        raise ConfigError(f"{where}.name", f"{node['name']!r} is not a valid node name (RFC 1123 subdomain)",
                          hint="lower-case letters, digits, '-' and '.', e.g. cp-1")
    _validate_socket(node["criSocket"], f"{where}.criSocket")
    _validate_args(node["kubeletExtraArgs"], f"{where}.kubeletExtraArgs")
    _validate_pull_policy(node["imagePullPolicy"], f"{where}.imagePullPolicy")


def _validate_socket(socket: str, where: str) -> None:
    scheme = urlsplit(socket).scheme
    if scheme != "unix":
        raise ConfigError(where, f"only URL scheme \"unix\" is supported, got {scheme!r}",
                          hint="e.g. unix:///run/containerd/containerd.sock")


def _validate_args(args: list[dict[str, str]] | None, where: str) -> None:
    for i, arg in enumerate(args or ()):
        if not arg["name"]:
            raise ConfigError(f"{where}[{i}]", "argument has no name")


def _validate_pull_policy(policy: str, where: str) -> None:
    if policy not in PULL_POLICIES:
        raise ConfigError(where, f"invalid pull policy {policy!r}", hint="use Always, IfNotPresent or Never")


def _validate_absolute(path: str, where: str) -> None:
    if not path.startswith("/"):
        raise ConfigError(where, f"{path!r} is not an absolute path")


def _validate_tokens(tokens: list[dict[str, Any]]) -> None:
    for i, token in enumerate(tokens):
        where = f"{INIT}.bootstrapTokens[{i}]"
        bad = [u for u in token["usages"] if u not in ("signing", "authentication")]
        if bad:
            raise ConfigError(f"{where}.usages", f"invalid extra usage(s): {', '.join(bad)}",
                              hint="use signing and/or authentication")
        if token["groups"] and "authentication" not in token["usages"]:
            raise ConfigError(f"{where}.groups", "token groups cannot be specified unless usages include "
                              "\"authentication\"", hint="kubeadm defaults groups: add authentication to usages")
        for group in token["groups"]:
            if not _GROUP_RE.match(group):
                raise ConfigError(f"{where}.groups", f"{group!r} must match {_GROUP_RE.pattern}")
        if token["expires"] is not None and token["ttl"] is not None:
            # ttl is always defaulted (24h), so kubeadm refuses every expires.
            raise ConfigError(where, "the BootstrapToken .TTL and .Expires fields are mutually exclusive",
                              hint="kubeadm defaults ttl (24h): use ttl instead of expires")


def _validate_endpoint(endpoint: dict[str, Any], where: str) -> None:
    if _parse_ip(endpoint["advertiseAddress"]) is None:
        raise ConfigError(f"{where}.advertiseAddress", f"{endpoint['advertiseAddress']!r} is not a valid IP address")
    if not 1 <= endpoint["bindPort"] <= 65535:
        raise ConfigError(f"{where}.bindPort", f"{endpoint['bindPort']} is not a valid port number")


def _validate_certificate_key(key: str, where: str) -> None:
    if not key:
        return
    try:
        size = len(bytes.fromhex(key))
    except ValueError:
        raise ConfigError(where, "is not hex-encoded", hint="`kbootstrap certs certificate-key` makes one") from None
    if size != 32:
        raise ConfigError(where, f"invalid certificate key size {size}, the key must be an AES key of size 32")


def _validate_cluster(cluster: dict[str, Any], kubeadm: KubeVersion) -> None:
    """Feature gates and argument names; the rest of ClusterConfiguration is checked by kbootstrap's
    own reader (spec/load.py), which the command runs on the result."""
    gates = FEATURE_GATES[min(kubeadm.minor, max(FEATURE_GATES))]
    for name in cluster["featureGates"] or {}:
        if name not in gates:
            raise ConfigError(f"{CLUSTER}.featureGates", f"{name} is not a valid feature name in kubeadm "
                              f"v1.{kubeadm.minor}", hint=f"known: {', '.join(sorted(gates))}")
    for component in ("apiServer", "controllerManager", "scheduler"):
        _validate_args(cluster[component]["extraArgs"], f"{CLUSTER}.{component}.extraArgs")
    if cluster["etcd"]["local"] is not None:
        _validate_args(cluster["etcd"]["local"]["extraArgs"], f"{CLUSTER}.etcd.local.extraArgs")


def _validate_join(join: dict[str, Any], host: Host) -> None:
    discovery, where = join["discovery"], f"{JOIN}.discovery"
    token, file = discovery["bootstrapToken"], discovery["file"]
    if (token is None) == (file is None):
        raise ConfigError(where, "bootstrapToken or file must be set, and not both",
                          hint="token discovery: bootstrapToken.{token,apiServerEndpoint,caCertHashes}")
    if token is not None:
        if not token["apiServerEndpoint"]:
            raise ConfigError(f"{where}.bootstrapToken.apiServerEndpoint", "is not set", hint="e.g. 192.0.2.10:6443")
        if not token["caCertHashes"] and not token["unsafeSkipCAVerification"]:
            raise ConfigError(f"{where}.bootstrapToken.caCertHashes", "token-based discovery without caCertHashes "
                              "can be unsafe", hint="set caCertHashes, or unsafeSkipCAVerification: true")
        if not _TOKEN_RE.match(token["token"]):
            raise ConfigError(f"{where}.bootstrapToken.token", "the bootstrap token is invalid")
        if _split_host_port(token["apiServerEndpoint"]) is None:
            raise ConfigError(f"{where}.bootstrapToken.apiServerEndpoint",
                              f"{token['apiServerEndpoint']!r} is not HOST:PORT")
    if file is not None:
        path, url = file["kubeConfigPath"], urlsplit(file["kubeConfigPath"])
        if not url.scheme and not host.file_exists(path):
            raise ConfigError(f"{where}.file.kubeConfigPath", f"{path!r}: not a valid HTTPS URL or a file on disk")
        if url.scheme and url.scheme != "https":
            raise ConfigError(f"{where}.file.kubeConfigPath", "if a URL is used, the scheme must be https")
    if (token is not None or discovery["tlsBootstrapToken"]) and not _TOKEN_RE.match(discovery["tlsBootstrapToken"]):
        raise ConfigError(f"{where}.tlsBootstrapToken", "the bootstrap token is invalid")
    _validate_node(join["nodeRegistration"], f"{JOIN}.nodeRegistration")
    if join["controlPlane"] is not None:
        _validate_endpoint(join["controlPlane"]["localAPIEndpoint"], f"{JOIN}.controlPlane.localAPIEndpoint")
        _validate_certificate_key(join["controlPlane"]["certificateKey"], f"{JOIN}.controlPlane.certificateKey")
    ca = join["caCertPath"]
    if not ca.startswith("/") or not ca.endswith(".crt"):
        raise ConfigError(f"{JOIN}.caCertPath", f"{ca!r}: the ca certificate path must be an absolute path",
                          hint="ending in .crt")


def reader_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A migrated Init/Cluster document as kbootstrap's own reader (spec/kubeadm_config.py) takes it,
    to check it with the same rules as `config validate`: without the fields that reader has no
    model for yet (etcd.external.httpEndpoints, extraEnvs valueFrom), and with kubeadm's 0.0.0.0
    fallback (no default route here) replaced by a placeholder the reader accepts."""
    out = copy.deepcopy(dict(doc))
    external = out.get("etcd", {}).get("external")
    if external is not None:
        external.pop("httpEndpoints", None)
    for holder in (out.get("apiServer"), out.get("controllerManager"), out.get("scheduler"),
                   out.get("etcd", {}).get("local")):
        for env in (holder or {}).get("extraEnvs", ()):
            env.pop("valueFrom", None)
    endpoint = out.get("localAPIEndpoint")
    if endpoint is not None and endpoint.get("advertiseAddress") in ("0.0.0.0", "::"):
        endpoint["advertiseAddress"] = kd.PLACEHOLDER_ADDRESS
    return out
