"""Kubelet files as kubeadm and the kubelet deb package write them (kubeadm.md section 6).

- /var/lib/kubelet/config.yaml: KubeletConfiguration v1beta1; kubeadm's defaults applied over the
  user's document (a differing user value is kept, with kubeadm's warning; rotateCertificates is forced).
- /var/lib/kubelet/kubeadm-flags.env: one line, KUBELET_KUBEADM_ARGS="<sorted flags>".
- /var/lib/kubelet/instance-config.yaml: the node-local CRI socket (NodeLocalCRISocket).
- the kubelet unit and the 10-kubeadm.conf drop-in exactly as the packages ship them.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from bootstrap.render.patching import apply_patch_sets
from bootstrap.render.podspec import arguments_to_command, to_yaml
from bootstrap.render.templates import render_template
from bootstrap.spec.model import MANIFESTS_DIR, Arg, ClusterSpec
from bootstrap.spec.patches import KUBELET_CONFIGURATION

KUBELET_CONFIG_PATH = "/var/lib/kubelet/config.yaml"
KUBELET_FLAGS_ENV_PATH = "/var/lib/kubelet/kubeadm-flags.env"
KUBELET_INSTANCE_CONFIG_PATH = "/var/lib/kubelet/instance-config.yaml"
KUBELET_UNIT_PATH = "/usr/lib/systemd/system/kubelet.service"
KUBELET_DROPIN_PATH = "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf"
SYSTEMD_RESOLVED_RESOLV_CONF = "/run/systemd/resolve/resolv.conf"
KUBELET_HEALTHZ_ADDRESS = "127.0.0.1"
KUBELET_HEALTHZ_PORT = 10248
# Where the packages point KUBELET_EXTRA_ARGS: deb and rpm differ only in this path.
EXTRA_ARGS_FILE = {"deb": "/etc/default/kubelet", "rpm": "/etc/sysconfig/kubelet"}


@dataclass
class KubeletFiles:
    """Rendered kubelet files (path -> bytes) plus kubeadm's warnings about user values."""

    files: dict[str, bytes] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def node_local_cri_socket(spec: ClusterSpec) -> bool:
    """NodeLocalCRISocket: alpha v1.32 (off), beta v1.34 (on), GA v1.36 (a false entry still honoured by
    kubeadm's features.Enabled), no gate from v1.37 (always on); a featureGates entry decides first."""
    if not spec.version.at_least(32):
        return False
    if spec.version.at_least(37):
        return True
    return spec.feature_gates.get("NodeLocalCRISocket", spec.version.at_least(34))


def _zero_value_skeleton(spec: ClusterSpec) -> dict[str, Any]:
    """Fields kubeadm's marshalled v1beta1 struct carries even when zero (no omitempty, or a struct).

    Per-version field additions: containerRuntimeEndpoint (1.27), logging text options (1.28),
    imageMaximumGCAge (1.29), crashLoopBackOff (1.32).
    """
    v = spec.version
    options: dict[str, Any] = {"json": {"infoBufferSize": "0"}}
    if v.at_least(28):
        options["text"] = {"infoBufferSize": "0"}
    out: dict[str, Any] = {
        "authentication": {"webhook": {"cacheTTL": "0s"}, "x509": {}, "anonymous": {}},
        "authorization": {"webhook": {"cacheAuthorizedTTL": "0s", "cacheUnauthorizedTTL": "0s"}},
        "containerRuntimeEndpoint": "",
        "cpuManagerReconcilePeriod": "0s",
        "evictionPressureTransitionPeriod": "0s",
        "fileCheckFrequency": "0s",
        "httpCheckFrequency": "0s",
        "imageMinimumGCAge": "0s",
        "logging": {"flushFrequency": 0, "options": options, "verbosity": 0},
        "memorySwap": {},
        "nodeStatusReportFrequency": "0s",
        "nodeStatusUpdateFrequency": "0s",
        "runtimeRequestTimeout": "0s",
        "shutdownGracePeriod": "0s",
        "shutdownGracePeriodCriticalPods": "0s",
        "streamingConnectionIdleTimeout": "0s",
        "syncFrequency": "0s",
        "volumeStatsAggPeriod": "0s",
    }
    if v.at_least(29):
        out["imageMaximumGCAge"] = "0s"
    if v.at_least(32):
        out["crashLoopBackOff"] = {}
    return out


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, val in over.items():
        if isinstance(val, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], val)
        else:
            out[k] = copy.deepcopy(val)
    return out


def kubelet_config(spec: ClusterSpec, *, systemd_resolved: bool = False) -> tuple[dict[str, Any], list[str]]:
    """The KubeletConfiguration kubeadm writes, and kubeadm's warnings for user values it would not pick.

    systemd_resolved: systemd-resolved is active on the node (kubeadm then points resolvConf at its file).
    """
    user = {k: v for k, v in spec.kubelet_configuration.items() if k not in ("apiVersion", "kind")}
    cfg = _deep_merge(_zero_value_skeleton(spec), user)
    warnings: list[str] = []

    def recommend(path: str, value: Any, current: Any) -> None:
        warnings.append(
            f"The recommended value for {path!r} in KubeletConfiguration is: {value}; "
            f"the provided value is: {current}"
        )

    def default(path: str, value: Any) -> None:
        node = cfg
        keys = path.split(".")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        current = node.get(keys[-1])
        if current is None or current == "":
            node[keys[-1]] = value
        elif current != value:
            recommend(path, value, current)

    default("staticPodPath", MANIFESTS_DIR)
    default("clusterDNS", [spec.networking.dns_service_ip()])
    default("clusterDomain", spec.networking.dns_domain)
    default("authentication.x509.clientCAFile", f"{spec.cert_dir}/ca.crt")
    default("authentication.anonymous.enabled", False)
    default("authorization.mode", "Webhook")
    default("authentication.webhook.enabled", True)
    default("healthzBindAddress", KUBELET_HEALTHZ_ADDRESS)
    default("healthzPort", KUBELET_HEALTHZ_PORT)
    if cfg.get("readOnlyPort", 0) not in (0, None):
        recommend("readOnlyPort", 0, cfg["readOnlyPort"])
    # A non-pointer bool in kubeadm's struct: it cannot tell "unset" from false, so it forces true.
    cfg["rotateCertificates"] = True
    if not cfg.get("cgroupDriver"):
        cfg["cgroupDriver"] = "systemd"
    if not cfg.get("resolvConf") and systemd_resolved:
        cfg["resolvConf"] = SYSTEMD_RESOLVED_RESOLV_CONF
    if node_local_cri_socket(spec):
        # The instance-config.yaml patch is merged into config.yaml by kubeadm.
        cfg["containerRuntimeEndpoint"] = spec.node.cri_socket
    cfg["apiVersion"] = "kubelet.config.k8s.io/v1beta1"
    cfg["kind"] = "KubeletConfiguration"
    return cfg, warnings


def kubelet_config_yaml(spec: ClusterSpec, *, systemd_resolved: bool = False) -> tuple[bytes, list[str]]:
    """The node's config.yaml: kubeadm applies the kubeletconfiguration patches, then instance-config.yaml."""
    cfg, warnings = kubelet_config(spec, systemd_resolved=systemd_resolved)
    if spec.patches:
        cfg = apply_patch_sets(cfg, KUBELET_CONFIGURATION, spec.patches)
        if node_local_cri_socket(spec):
            cfg["containerRuntimeEndpoint"] = spec.node.cri_socket
    return to_yaml(cfg, creation_timestamp=False), warnings


def instance_config_yaml(spec: ClusterSpec) -> bytes:
    return f"containerRuntimeEndpoint: {json.dumps(spec.node.cri_socket)}\n".encode()


def kubelet_flags(spec: ClusterSpec, *, hostname: str, register_taints: bool = False) -> list[str]:
    """The --flags of KUBELET_KUBEADM_ARGS (kubeadm's ArgumentsToCommand order). hostname: the node's
    own hostname (kubeadm adds --hostname-override only when the node name differs).
    register_taints: join passes taints by flag."""
    args: list[tuple[str, str]] = []
    if not node_local_cri_socket(spec):
        args.append(("container-runtime-endpoint", spec.node.cri_socket))
    if not spec.version.at_least(35):
        # Still written by kubeadm up to v1.34 (removed by kubernetes PR #133778 in v1.35).
        args.append(("pod-infra-container-image", f"{spec.image_repository}/pause:{spec.version.pause_version}"))
    if register_taints and spec.node.taints:
        taints = ",".join(f"{t.key}={t.value}:{t.effect}" if t.value else f"{t.key}:{t.effect}"
                          for t in spec.node.taints)
        args.append(("register-with-taints", taints))
    if spec.node.name != hostname.strip().lower():
        args.append(("hostname-override", spec.node.name))
    extra = tuple(Arg(name=a.name, value=a.value) for a in spec.node.kubelet_extra_args)
    return arguments_to_command(spec, args, extra)


def kubelet_flags_env(spec: ClusterSpec, *, hostname: str, register_taints: bool = False) -> bytes:
    line = " ".join(kubelet_flags(spec, hostname=hostname, register_taints=register_taints))
    # kubeadm formats with Go's %q; JSON string quoting is identical for these characters.
    return f"KUBELET_KUBEADM_ARGS={json.dumps(line, ensure_ascii=False)}\n".encode()


def kubelet_unit() -> bytes:
    return render_template("kubelet/kubelet.service").encode()


def kubeadm_dropin(flavor: str = "deb") -> bytes:
    if flavor not in EXTRA_ARGS_FILE:
        raise ValueError(f"unknown package flavor {flavor!r}")
    return render_template("kubelet/10-kubeadm.conf.j2", extra_args_file=EXTRA_ARGS_FILE[flavor]).encode()


def render_kubelet_files(spec: ClusterSpec, *, hostname: str, systemd_resolved: bool = False,
                         register_taints: bool = False, flavor: str = "deb") -> KubeletFiles:
    """Everything kubelet-start writes, keyed by path on the node."""
    config, warnings = kubelet_config_yaml(spec, systemd_resolved=systemd_resolved)
    out = KubeletFiles(warnings=warnings)
    out.files[KUBELET_CONFIG_PATH] = config
    out.files[KUBELET_FLAGS_ENV_PATH] = kubelet_flags_env(spec, hostname=hostname, register_taints=register_taints)
    if node_local_cri_socket(spec):
        out.files[KUBELET_INSTANCE_CONFIG_PATH] = instance_config_yaml(spec)
    out.files[KUBELET_UNIT_PATH] = kubelet_unit()
    out.files[KUBELET_DROPIN_PATH] = kubeadm_dropin(flavor)
    return out
