"""Read kubeadm config files (kubeadm.k8s.io/v1beta3 and v1beta4) into flat spec values.

Each document is parsed by a pydantic model that mirrors kubeadm's YAML (camelCase, unknown fields
forbidden) so an error names its path. The result is `Values`: spec field path -> (value, origin),
which spec/load.py merges with flags.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from bootstrap.errors import ConfigError

KUBEADM_V1BETA3 = "kubeadm.k8s.io/v1beta3"
KUBEADM_V1BETA4 = "kubeadm.k8s.io/v1beta4"
KUBELET_V1BETA1 = "kubelet.config.k8s.io/v1beta1"
KUBE_PROXY_V1ALPHA1 = "kubeproxy.config.k8s.io/v1alpha1"
OURS_V1ALPHA1 = "kbootstrap.io/v1alpha1"

# Spec field path (dotted, snake_case, as in ClusterSpec) -> (value, where it came from).
Values = dict[str, tuple[Any, str]]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- v1beta4 shapes -----------------------------------------------------------------------------
class ArgDoc(_Doc):
    name: str
    value: str


class EnvDoc(_Doc):
    name: str
    value: str = ""


class VolumeDoc(_Doc):
    name: str
    hostPath: str
    mountPath: str
    readOnly: bool = False
    pathType: str = ""


class TaintDoc(_Doc):
    key: str
    value: str = ""
    effect: str
    timeAdded: str | None = None


class ComponentDoc4(_Doc):
    extraArgs: list[ArgDoc] = []
    extraVolumes: list[VolumeDoc] = []
    extraEnvs: list[EnvDoc] = []


class APIServerDoc4(ComponentDoc4):
    certSANs: list[str] = []


class LocalEtcdDoc4(_Doc):
    imageRepository: str = ""
    imageTag: str = ""
    dataDir: str = ""
    extraArgs: list[ArgDoc] = []
    extraEnvs: list[EnvDoc] = []
    serverCertSANs: list[str] = []
    peerCertSANs: list[str] = []


class ExternalEtcdDoc(_Doc):
    endpoints: list[str]
    caFile: str = ""
    certFile: str = ""
    keyFile: str = ""


class EtcdDoc4(_Doc):
    local: LocalEtcdDoc4 | None = None
    external: ExternalEtcdDoc | None = None


class NetworkingDoc(_Doc):
    serviceSubnet: str | None = None
    podSubnet: str | None = None
    dnsDomain: str | None = None


class DNSDoc(_Doc):
    disabled: bool = False
    imageRepository: str = ""
    imageTag: str = ""


class ProxyDoc(_Doc):
    disabled: bool = False


class ClusterConfigurationV1beta4(_Doc):
    apiVersion: str
    kind: str
    etcd: EtcdDoc4 | None = None
    networking: NetworkingDoc | None = None
    kubernetesVersion: str | None = None
    controlPlaneEndpoint: str | None = None
    apiServer: APIServerDoc4 | None = None
    controllerManager: ComponentDoc4 | None = None
    scheduler: ComponentDoc4 | None = None
    dns: DNSDoc | None = None
    proxy: ProxyDoc | None = None
    certificatesDir: str | None = None
    imageRepository: str | None = None
    featureGates: dict[str, bool] | None = None
    clusterName: str | None = None
    encryptionAlgorithm: str | None = None
    certificateValidityPeriod: str | None = None
    caCertificateValidityPeriod: str | None = None


class NodeRegistrationDoc4(_Doc):
    name: str | None = None
    criSocket: str | None = None
    taints: list[TaintDoc] | None = None
    kubeletExtraArgs: list[ArgDoc] = []
    ignorePreflightErrors: list[str] = []
    imagePullPolicy: str | None = None
    imagePullSerial: bool | None = None


class APIEndpointDoc(_Doc):
    advertiseAddress: str | None = None
    bindPort: int | None = None


class BootstrapTokenDoc(_Doc):
    token: str
    description: str = ""
    ttl: str | None = None
    expires: str | None = None
    usages: list[str] = []
    groups: list[str] = []


class PatchesDoc(_Doc):
    directory: str = ""


class InitConfigurationV1beta4(_Doc):
    apiVersion: str
    kind: str
    bootstrapTokens: list[BootstrapTokenDoc] = []
    dryRun: bool = False
    nodeRegistration: NodeRegistrationDoc4 | None = None
    localAPIEndpoint: APIEndpointDoc | None = None
    certificateKey: str | None = None
    skipPhases: list[str] = []
    patches: PatchesDoc | None = None
    timeouts: dict[str, str] | None = None


# ---- v1beta3 shapes: maps instead of name/value lists, fewer fields ------------------------------
class ComponentDoc3(_Doc):
    extraArgs: dict[str, str] = {}
    extraVolumes: list[VolumeDoc] = []


class APIServerDoc3(ComponentDoc3):
    certSANs: list[str] = []
    timeoutForControlPlane: str | None = None


class LocalEtcdDoc3(_Doc):
    imageRepository: str = ""
    imageTag: str = ""
    dataDir: str = ""
    extraArgs: dict[str, str] = {}
    serverCertSANs: list[str] = []
    peerCertSANs: list[str] = []


class EtcdDoc3(_Doc):
    local: LocalEtcdDoc3 | None = None
    external: ExternalEtcdDoc | None = None


class ClusterConfigurationV1beta3(_Doc):
    apiVersion: str
    kind: str
    etcd: EtcdDoc3 | None = None
    networking: NetworkingDoc | None = None
    kubernetesVersion: str | None = None
    controlPlaneEndpoint: str | None = None
    apiServer: APIServerDoc3 | None = None
    controllerManager: ComponentDoc3 | None = None
    scheduler: ComponentDoc3 | None = None
    dns: DNSDoc | None = None
    certificatesDir: str | None = None
    imageRepository: str | None = None
    featureGates: dict[str, bool] | None = None
    clusterName: str | None = None


class NodeRegistrationDoc3(_Doc):
    name: str | None = None
    criSocket: str | None = None
    taints: list[TaintDoc] | None = None
    kubeletExtraArgs: dict[str, str] = {}
    ignorePreflightErrors: list[str] = []
    imagePullPolicy: str | None = None


class InitConfigurationV1beta3(_Doc):
    apiVersion: str
    kind: str
    bootstrapTokens: list[BootstrapTokenDoc] = []
    nodeRegistration: NodeRegistrationDoc3 | None = None
    localAPIEndpoint: APIEndpointDoc | None = None
    certificateKey: str | None = None
    skipPhases: list[str] = []
    patches: PatchesDoc | None = None


# ---- JoinConfiguration, ResetConfiguration, UpgradeConfiguration --------------------------------
class TokenDiscoveryDoc(_Doc):
    token: str
    apiServerEndpoint: str = ""
    caCertHashes: list[str] = []
    unsafeSkipCAVerification: bool = False


class FileDiscoveryDoc(_Doc):
    kubeConfigPath: str


class DiscoveryDoc4(_Doc):
    bootstrapToken: TokenDiscoveryDoc | None = None
    file: FileDiscoveryDoc | None = None
    tlsBootstrapToken: str = ""


class DiscoveryDoc3(DiscoveryDoc4):
    timeout: str | None = None


class JoinControlPlaneDoc(_Doc):
    localAPIEndpoint: APIEndpointDoc | None = None
    certificateKey: str = ""


class JoinConfigurationV1beta4(_Doc):
    apiVersion: str
    kind: str
    dryRun: bool = False
    nodeRegistration: NodeRegistrationDoc4 | None = None
    caCertPath: str = ""
    discovery: DiscoveryDoc4
    controlPlane: JoinControlPlaneDoc | None = None
    skipPhases: list[str] = []
    patches: PatchesDoc | None = None
    timeouts: dict[str, str] | None = None


class JoinConfigurationV1beta3(_Doc):
    apiVersion: str
    kind: str
    nodeRegistration: NodeRegistrationDoc3 | None = None
    caCertPath: str = ""
    discovery: DiscoveryDoc3
    controlPlane: JoinControlPlaneDoc | None = None
    skipPhases: list[str] = []
    patches: PatchesDoc | None = None


class ResetConfigurationV1beta4(_Doc):
    apiVersion: str
    kind: str
    cleanupTmpDir: bool = False
    certificatesDir: str = ""
    criSocket: str = ""
    dryRun: bool = False
    force: bool = False
    ignorePreflightErrors: list[str] = []
    skipPhases: list[str] = []
    unmountFlags: list[str] = []
    timeouts: dict[str, str] | None = None


class UpgradeApplyDoc(_Doc):
    kubernetesVersion: str = ""
    allowExperimentalUpgrades: bool | None = None
    allowRCUpgrades: bool | None = None
    certificateRenewal: bool | None = None
    dryRun: bool | None = None
    etcdUpgrade: bool | None = None
    forceUpgrade: bool | None = None
    ignorePreflightErrors: list[str] = []
    patches: PatchesDoc | None = None
    printConfig: bool | None = None
    skipPhases: list[str] = []
    imagePullPolicy: str = ""
    imagePullSerial: bool | None = None


class UpgradeDiffDoc(_Doc):
    kubernetesVersion: str = ""
    contextLines: int = 0


class UpgradeNodeDoc(_Doc):
    certificateRenewal: bool | None = None
    dryRun: bool | None = None
    etcdUpgrade: bool | None = None
    ignorePreflightErrors: list[str] = []
    skipPhases: list[str] = []
    patches: PatchesDoc | None = None
    imagePullPolicy: str = ""
    imagePullSerial: bool | None = None


class UpgradePlanDoc(_Doc):
    kubernetesVersion: str = ""
    allowExperimentalUpgrades: bool | None = None
    allowRCUpgrades: bool | None = None
    dryRun: bool | None = None
    etcdUpgrade: bool | None = None
    ignorePreflightErrors: list[str] = []
    printConfig: bool | None = None


class UpgradeConfigurationV1beta4(_Doc):
    apiVersion: str
    kind: str
    apply: UpgradeApplyDoc | None = None
    diff: UpgradeDiffDoc | None = None
    node: UpgradeNodeDoc | None = None
    plan: UpgradePlanDoc | None = None
    timeouts: dict[str, str] | None = None


class HardeningDoc(_Doc):
    profile: str | None = None
    disableProfiling: bool | None = None
    auditLog: bool | None = None
    certFileMode: str | None = None
    kubeletConfigMode: str | None = None
    kubeletUnitMode: str | None = None


class BootstrapConfigurationV1alpha1(_Doc):
    """Our own knobs that kubeadm has no field for."""

    apiVersion: str
    kind: str
    etcdMode: str | None = None
    hardening: HardeningDoc | None = None


# KubeletConfiguration v1beta1 top-level fields (k8s.io/kubelet/config/v1beta1 types.go).
KUBELET_FIELDS = frozenset(
    """apiVersion kind enableServer staticPodPath podLogsDir syncFrequency fileCheckFrequency
    httpCheckFrequency staticPodURL staticPodURLHeader address port readOnlyPort tlsCertFile
    tlsPrivateKeyFile tlsCipherSuites tlsMinVersion rotateCertificates serverTLSBootstrap
    authentication authorization registryPullQPS registryBurst imagePullCredentialsVerificationPolicy
    preloadedImagesVerificationAllowlist eventRecordQPS eventBurst enableDebuggingHandlers
    enableContentionProfiling healthzPort healthzBindAddress oomScoreAdj clusterDomain clusterDNS
    streamingConnectionIdleTimeout nodeStatusUpdateFrequency nodeStatusReportFrequency
    nodeLeaseDurationSeconds imageMinimumGCAge imageMaximumGCAge imageGCHighThresholdPercent
    imageGCLowThresholdPercent volumeStatsAggPeriod kubeletCgroups systemCgroups cgroupRoot
    cgroupsPerQOS cgroupDriver cpuManagerPolicy singleProcessOOMKill cpuManagerPolicyOptions
    cpuManagerReconcilePeriod memoryManagerPolicy topologyManagerPolicy topologyManagerScope
    topologyManagerPolicyOptions qosReserved runtimeRequestTimeout hairpinMode maxPods podCIDR
    podPidsLimit resolvConf runOnce cpuCFSQuota cpuCFSQuotaPeriod nodeStatusMaxImages maxOpenFiles
    contentType kubeAPIQPS kubeAPIBurst serializeImagePulls maxParallelImagePulls evictionHard
    evictionSoft evictionSoftGracePeriod evictionPressureTransitionPeriod evictionMaxPodGracePeriod
    evictionMinimumReclaim mergeDefaultEvictionSettings podsPerCore enableControllerAttachDetach
    protectKernelDefaults makeIPTablesUtilChains iptablesMasqueradeBit iptablesDropBit featureGates
    failSwapOn memorySwap containerLogMaxSize containerLogMaxFiles containerLogMaxWorkers
    containerLogMonitorInterval configMapAndSecretChangeDetectionStrategy systemReserved kubeReserved
    reservedSystemCPUs showHiddenMetricsForVersion systemReservedCgroup kubeReservedCgroup
    enforceNodeAllocatable allowedUnsafeSysctls volumePluginDir providerID kernelMemcgNotification
    logging enableSystemLogHandler enableSystemLogQuery shutdownGracePeriod
    shutdownGracePeriodCriticalPods shutdownGracePeriodByPodPriority crashLoopBackOff reservedMemory
    enableProfilingHandler enableDebugFlagsHandler seccompDefault memoryThrottlingFactor
    registerWithTaints registerNode tracing localStorageCapacityIsolation containerRuntimeEndpoint
    imageServiceEndpoint failCgroupV1 userNamespaces""".split()  # noqa: SIM905
)

_MODELS: dict[tuple[str, str], type[_Doc]] = {
    (KUBEADM_V1BETA4, "ClusterConfiguration"): ClusterConfigurationV1beta4,
    (KUBEADM_V1BETA4, "InitConfiguration"): InitConfigurationV1beta4,
    (KUBEADM_V1BETA3, "ClusterConfiguration"): ClusterConfigurationV1beta3,
    (KUBEADM_V1BETA3, "InitConfiguration"): InitConfigurationV1beta3,
    (OURS_V1ALPHA1, "BootstrapConfiguration"): BootstrapConfigurationV1alpha1,
    (KUBEADM_V1BETA4, "JoinConfiguration"): JoinConfigurationV1beta4,
    (KUBEADM_V1BETA3, "JoinConfiguration"): JoinConfigurationV1beta3,
    (KUBEADM_V1BETA4, "ResetConfiguration"): ResetConfigurationV1beta4,
    (KUBEADM_V1BETA4, "UpgradeConfiguration"): UpgradeConfigurationV1beta4,
}
# Which documents a command reads; kubeadm validates the others and ignores them with a warning.
INIT_KINDS = frozenset({"InitConfiguration", "ClusterConfiguration", "KubeletConfiguration",
                        "KubeProxyConfiguration", "BootstrapConfiguration"})
# join takes the cluster's documents from the cluster (kubeadm-config, kubelet-config), as kubeadm does.
PURPOSE_KINDS = {"init": INIT_KINDS, "join": frozenset({"JoinConfiguration", "BootstrapConfiguration"}),
                 "validate": INIT_KINDS, "reset": frozenset({"ResetConfiguration"}),
                 "cluster": frozenset({"ClusterConfiguration", "KubeletConfiguration"})}


KUBEADM_V1 = "kubeadm.k8s.io/v1"
V1BETA3_REFUSED_FROM = 37  # kubeadm v1.37 dropped v1beta3 (v1.36 read it with a deprecation warning)


UPGRADE_VALIDATED_FROM = 36  # kubeadm v1.35's config validate does not decode an UpgradeConfiguration


def check_api_versions(path: str, minor: int) -> None:
    """kubeadm's per-release rules on the config file: v1beta3 is refused from v1.37 on; an
    UpgradeConfiguration is validated from v1.36 on."""
    if minor >= UPGRADE_VALIDATED_FROM:
        for doc in _documents(path):
            if isinstance(doc, dict) and doc.get("kind") == "UpgradeConfiguration" and (
                    doc.get("apiVersion") == KUBEADM_V1BETA4):
                try:
                    UpgradeConfigurationV1beta4.model_validate(doc)
                except ValidationError as exc:
                    raise ConfigError(f"UpgradeConfiguration.{_loc(exc)}", _why(exc)) from None
    if minor < V1BETA3_REFUSED_FROM:
        return
    for doc in _documents(path):
        if isinstance(doc, dict) and doc.get("apiVersion") == KUBEADM_V1BETA3:
            raise ConfigError(
                path, f'uses an old API spec: "{KUBEADM_V1BETA3}" (kind: "{doc.get("kind")}"), which kubeadm '
                f"v1.{minor} no longer reads", hint="write it as kubeadm.k8s.io/v1beta4: `kbootstrap config migrate "
                "--old-config FILE --kubernetes-version v1.36.3` does, as kubeadm v1.36's migrate")


def _documents(path: str) -> list[Any]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {path}: {exc.strerror}") from None
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(path, f"not valid YAML{where}") from None


def ignored_documents(path: str, purpose: str) -> list[str]:
    """kubeadm's warning for each document the command does not read (the file already loaded)."""
    wanted = PURPOSE_KINDS[purpose]
    return [f"[config] WARNING: Ignored configuration document with GroupVersionKind {d.get('apiVersion')}, "
            f"Kind={d.get('kind')}" for d in _documents(path) if isinstance(d, dict) and d.get("kind") not in wanted]


def load_config_file(path: str, purpose: str = "init") -> Values:
    """Parse a multi-document kubeadm config file into spec values. Every document is validated; only
    those `purpose` (init, join, validate, reset) reads give values. Raises ConfigError."""
    return load_documents(_documents(path), path, purpose)


def cluster_documents_values(texts: list[str], where: str) -> Values:
    """Spec values from a running cluster's own documents (kubeadm-config's ClusterConfiguration,
    kubelet-config's KubeletConfiguration), as kubeadm join reads them. Raises ConfigError."""
    docs: list[Any] = []
    for text in texts:
        try:
            docs.extend(d for d in yaml.safe_load_all(text) if d is not None)
        except yaml.YAMLError:
            raise ConfigError(where, "not valid YAML") from None
    return load_documents(docs, where, "cluster")


def load_documents(docs: list[Any], path: str, purpose: str) -> Values:
    values: Values = {}
    seen: set[str] = set()
    wanted = PURPOSE_KINDS[purpose]
    for index, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise ConfigError(f"{path}: document {index + 1}", "is not a YAML mapping")
        api_version, kind = str(doc.get("apiVersion", "")), str(doc.get("kind", ""))
        if kind in seen:
            raise ConfigError(f"{path}: {kind}", "appears twice")
        seen.add(kind)
        target = values if kind in wanted else {}
        if api_version == KUBELET_V1BETA1 and kind == "KubeletConfiguration":
            _kubelet(doc, target)
            continue
        if api_version == KUBE_PROXY_V1ALPHA1 and kind == "KubeProxyConfiguration":
            # kube-proxy validates its own fields when it loads the ConfigMap; kubeadm passes it through.
            body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind")}
            target["kube_proxy_configuration"] = (body, "KubeProxyConfiguration")
            continue
        model = _MODELS.get((api_version, kind))
        if api_version == KUBEADM_V1:
            raise ConfigError(f"{path}: document {index + 1}",
                              f'experimental API spec: "{KUBEADM_V1}" (kind: "{kind}") is not read by kbootstrap',
                              hint="kubeadm v1.37 reads it only with --allow-experimental-api; write it as "
                              "kubeadm.k8s.io/v1beta4")
        if model is None:
            extra = {f"{KUBELET_V1BETA1} KubeletConfiguration", f"{KUBE_PROXY_V1ALPHA1} KubeProxyConfiguration"}
            known = ", ".join(sorted({f"{a} {k}" for a, k in _MODELS} | extra))
            raise ConfigError(
                f"{path}: document {index + 1}",
                f"unknown apiVersion/kind {api_version or '<none>'}/{kind or '<none>'}",
                hint=f"known: {known}",
            )
        if model is UpgradeConfigurationV1beta4:
            continue  # validated per release by check_api_versions, once the release is known
        try:
            parsed = model.model_validate(doc)
        except ValidationError as exc:
            raise ConfigError(f"{kind}.{_loc(exc)}", _why(exc)) from None
        _CONVERTERS[model](parsed, target, kind)
    needs = {"init": ("InitConfiguration", "ClusterConfiguration"), "join": ("JoinConfiguration",),
             "reset": ("ResetConfiguration",)}.get(purpose, ())
    if needs and not seen & set(needs):
        raise ConfigError(path, f"no {' or '.join(needs)} kind was found in the configuration file",
                          hint="kubeadm reads the file the same way")
    return values


def _loc(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return ".".join(str(p) for p in err["loc"])


def _why(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return "unknown field" if err["type"] == "extra_forbidden" else err["msg"]


def _kubelet(doc: dict[str, Any], values: Values) -> None:
    for key in doc:
        if key not in KUBELET_FIELDS:
            raise ConfigError(f"KubeletConfiguration.{key}", "unknown field")
    body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind")}
    values["kubelet_configuration"] = (body, "KubeletConfiguration")


def _set(values: Values, key: str, value: Any, origin: str) -> None:
    if value is None or value == [] or value == {} or value == "":
        return
    values[key] = (value, origin)


def _args(raw: list[ArgDoc] | dict[str, str]) -> list[dict[str, str]]:
    if isinstance(raw, dict):
        return [{"name": k, "value": v} for k, v in raw.items()]
    return [{"name": a.name, "value": a.value} for a in raw]


def _volumes(raw: list[VolumeDoc]) -> list[dict[str, Any]]:
    return [
        {
            "name": v.name,
            "host_path": v.hostPath,
            "mount_path": v.mountPath,
            "read_only": v.readOnly,
            "path_type": v.pathType,
        }
        for v in raw
    ]


def _component(doc: ComponentDoc4 | ComponentDoc3 | None, key: str, values: Values, origin: str) -> None:
    if doc is None:
        return
    _set(values, f"{key}.extra_args", _args(doc.extraArgs), f"{origin}.extraArgs")
    _set(values, f"{key}.extra_volumes", _volumes(doc.extraVolumes), f"{origin}.extraVolumes")
    envs = getattr(doc, "extraEnvs", [])
    _set(values, f"{key}.extra_envs", [{"name": e.name, "value": e.value} for e in envs], f"{origin}.extraEnvs")


def _cluster(doc: Any, values: Values, kind: str) -> None:
    o = kind
    _set(values, "kubernetes_version", doc.kubernetesVersion, f"{o}.kubernetesVersion")
    _set(values, "control_plane_endpoint", doc.controlPlaneEndpoint, f"{o}.controlPlaneEndpoint")
    _set(values, "cert_dir", doc.certificatesDir, f"{o}.certificatesDir")
    _set(values, "image_repository", doc.imageRepository, f"{o}.imageRepository")
    _set(values, "cluster_name", doc.clusterName, f"{o}.clusterName")
    _set(values, "feature_gates", doc.featureGates, f"{o}.featureGates")
    for field, key in (
        ("encryptionAlgorithm", "encryption_algorithm"),
        ("certificateValidityPeriod", "certificate_validity"),
        ("caCertificateValidityPeriod", "ca_certificate_validity"),
    ):
        _set(values, key, getattr(doc, field, None), f"{o}.{field}")
    if doc.networking:
        n = doc.networking
        _set(values, "networking.service_subnet", n.serviceSubnet, f"{o}.networking.serviceSubnet")
        _set(values, "networking.pod_subnet", n.podSubnet, f"{o}.networking.podSubnet")
        _set(values, "networking.dns_domain", n.dnsDomain, f"{o}.networking.dnsDomain")
    if doc.dns:
        _set(values, "dns.disabled", doc.dns.disabled or None, f"{o}.dns.disabled")
        _set(values, "dns.image_repository", doc.dns.imageRepository or None, f"{o}.dns.imageRepository")
        _set(values, "dns.image_tag", doc.dns.imageTag or None, f"{o}.dns.imageTag")
    if getattr(doc, "proxy", None):
        _set(values, "proxy_disabled", doc.proxy.disabled or None, f"{o}.proxy.disabled")
    _component(doc.apiServer, "api_server", values, f"{o}.apiServer")
    if doc.apiServer:
        _set(values, "api_server.cert_sans", doc.apiServer.certSANs, f"{o}.apiServer.certSANs")
    _component(doc.controllerManager, "controller_manager", values, f"{o}.controllerManager")
    _component(doc.scheduler, "scheduler", values, f"{o}.scheduler")
    if doc.etcd and doc.etcd.local and doc.etcd.external:
        raise ConfigError(f"{o}.etcd", "local and external are mutually exclusive")
    if doc.etcd and doc.etcd.local:
        loc, lo = doc.etcd.local, f"{o}.etcd.local"
        _set(values, "etcd_local.data_dir", loc.dataDir, f"{lo}.dataDir")
        _set(values, "etcd_local.image_repository", loc.imageRepository, f"{lo}.imageRepository")
        _set(values, "etcd_local.image_tag", loc.imageTag, f"{lo}.imageTag")
        _set(values, "etcd_local.server_cert_sans", loc.serverCertSANs, f"{lo}.serverCertSANs")
        _set(values, "etcd_local.peer_cert_sans", loc.peerCertSANs, f"{lo}.peerCertSANs")
        _set(values, "etcd_local.extra_args", _args(loc.extraArgs), f"{lo}.extraArgs")
        envs = getattr(loc, "extraEnvs", [])
        _set(values, "etcd_local.extra_envs", [{"name": e.name, "value": e.value} for e in envs], f"{lo}.extraEnvs")
    if doc.etcd and doc.etcd.external:
        ext = doc.etcd.external
        values["etcd_external"] = (
            {"endpoints": ext.endpoints, "ca_file": ext.caFile, "cert_file": ext.certFile, "key_file": ext.keyFile},
            f"{o}.etcd.external",
        )


def _init(doc: Any, values: Values, kind: str) -> None:
    o = kind
    if doc.localAPIEndpoint:
        ep = doc.localAPIEndpoint
        _set(values, "advertise_address", ep.advertiseAddress, f"{o}.localAPIEndpoint.advertiseAddress")
        _set(values, "bind_port", ep.bindPort, f"{o}.localAPIEndpoint.bindPort")
    _node_registration(doc.nodeRegistration, values, f"{o}.nodeRegistration")
    _set(values, "skip_phases", doc.skipPhases, f"{o}.skipPhases")
    if doc.patches:
        _set(values, "patches_dir", doc.patches.directory, f"{o}.patches.directory")
    tokens = [
        {
            "token": t.token,
            "description": t.description,
            "ttl": t.ttl,
            "usages": t.usages or None,
            "groups": t.groups or None,
        }
        for t in doc.bootstrapTokens
    ]
    _set(values, "bootstrap_tokens", tokens, f"{o}.bootstrapTokens")


def _node_registration(nr: Any, values: Values, no: str) -> None:
    if nr:
        _set(values, "node.name", nr.name, f"{no}.name")
        _set(values, "node.cri_socket", nr.criSocket, f"{no}.criSocket")
        if nr.taints is not None:
            values["node.taints"] = (
                [{"key": t.key, "value": t.value, "effect": t.effect} for t in nr.taints],
                f"{no}.taints",
            )
        _set(values, "node.kubelet_extra_args", _args(nr.kubeletExtraArgs), f"{no}.kubeletExtraArgs")
        _set(values, "node.ignore_preflight_errors", nr.ignorePreflightErrors, f"{no}.ignorePreflightErrors")


def _join(doc: Any, values: Values, kind: str) -> None:
    """The node's values of a JoinConfiguration; its discovery goes to join_request (not the spec)."""
    _node_registration(doc.nodeRegistration, values, f"{kind}.nodeRegistration")
    if doc.controlPlane and doc.controlPlane.localAPIEndpoint:
        ep, eo = doc.controlPlane.localAPIEndpoint, f"{kind}.controlPlane.localAPIEndpoint"
        _set(values, "advertise_address", ep.advertiseAddress, f"{eo}.advertiseAddress")
        _set(values, "bind_port", ep.bindPort, f"{eo}.bindPort")
    _set(values, "skip_phases", doc.skipPhases, f"{kind}.skipPhases")
    if doc.patches:
        _set(values, "patches_dir", doc.patches.directory, f"{kind}.patches.directory")


def join_request(path: str) -> dict[str, tuple[Any, str]]:
    """The JoinConfiguration's discovery, as `kbootstrap join` flag names -> (value, origin); {} without one."""
    docs = [d for d in _documents(path) if isinstance(d, dict) and d.get("kind") == "JoinConfiguration"]
    model = _MODELS.get((str(docs[0].get("apiVersion")), "JoinConfiguration")) if docs else None
    if model is None:
        return {}
    parsed: Any = model.model_validate(docs[0])
    d = parsed.discovery
    out: dict[str, tuple[Any, str]] = {}

    def put(flag: str, value: Any, origin: str) -> None:
        if value not in (None, "", [], False, ()):
            out[flag] = (value, f"JoinConfiguration.{origin}")

    if d.bootstrapToken:
        t = d.bootstrapToken
        put("discovery_token", t.token, "discovery.bootstrapToken.token")
        put("endpoint", t.apiServerEndpoint, "discovery.bootstrapToken.apiServerEndpoint")
        put("discovery_token_ca_cert_hash", tuple(t.caCertHashes), "discovery.bootstrapToken.caCertHashes")
        put("discovery_token_unsafe_skip_ca_verification", t.unsafeSkipCAVerification,
            "discovery.bootstrapToken.unsafeSkipCAVerification")
    if d.file:
        put("discovery_file", d.file.kubeConfigPath, "discovery.file.kubeConfigPath")
    put("tls_bootstrap_token", d.tlsBootstrapToken, "discovery.tlsBootstrapToken")
    timeout = getattr(d, "timeout", None) or (getattr(parsed, "timeouts", None) or {}).get("discovery")
    put("discovery_timeout", timeout, "timeouts.discovery")
    if parsed.controlPlane is not None:
        put("control_plane", True, "controlPlane")
        put("certificate_key", parsed.controlPlane.certificateKey, "controlPlane.certificateKey")
    put("dry_run", getattr(parsed, "dryRun", False), "dryRun")
    return out


def reset_options(path: str) -> dict[str, tuple[Any, str]]:
    """The ResetConfiguration as `kbootstrap reset` option names -> (value, origin)."""
    for doc in _documents(path):
        if isinstance(doc, dict) and doc.get("kind") == "ResetConfiguration":
            parsed = ResetConfigurationV1beta4.model_validate(doc)
            pairs = (("force", parsed.force, "force"), ("dry_run", parsed.dryRun, "dryRun"),
                     ("cleanup_tmp_dir", parsed.cleanupTmpDir, "cleanupTmpDir"),
                     ("cert_dir", parsed.certificatesDir, "certificatesDir"))
            return {k: (v, f"ResetConfiguration.{o}") for k, v, o in pairs if v}
    return {}


def _validated_only(doc: Any, values: Values, kind: str) -> None:
    """A document no spec value comes from: parsing it (strictly) was the point."""


def _ours(doc: Any, values: Values, kind: str) -> None:
    _set(values, "etcd_mode", doc.etcdMode, f"{kind}.etcdMode")
    if doc.hardening:
        h = doc.hardening
        body = {k: v for k, v in h.model_dump().items() if v is not None}
        values["hardening"] = (body, f"{kind}.hardening")


_CONVERTERS = {
    ClusterConfigurationV1beta4: _cluster,
    ClusterConfigurationV1beta3: _cluster,
    InitConfigurationV1beta4: _init,
    InitConfigurationV1beta3: _init,
    BootstrapConfigurationV1alpha1: _ours,
    JoinConfigurationV1beta4: _join,
    JoinConfigurationV1beta3: _join,
    ResetConfigurationV1beta4: _validated_only,  # reset_options reads it
}
