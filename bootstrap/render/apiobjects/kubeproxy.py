"""addon/kube-proxy: its ConfigMap, DaemonSet and RBAC as kubeadm installs them
(phases/addons/proxy/{proxy,manifests}.go, componentconfigs/kubeproxy.go).

Created in this order: ConfigMap kube-proxy (config.conf: the KubeProxyConfiguration; kubeconfig.conf:
the service-account kubeconfig pointing at the control-plane endpoint), DaemonSet kube-proxy,
ServiceAccount kube-proxy, ClusterRoleBinding kubeadm:node-proxier, Role and RoleBinding kube-proxy.

The KubeProxyConfiguration is Go's marshalling of the v1alpha1 struct: every field without
omitempty appears even at its zero value, so the field set follows k8s.io/kube-proxy of each minor
(logging from v1.28; nftables and three conntrack fields from v1.29). kubeadm's defaults on top:
bindAddress 0.0.0.0 (:: for an IPv6 advertise address), clusterCIDR from the pod subnet, the
kubeconfig path, and from v1.37 mode iptables (unset before).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Any

from bootstrap.render.apiobjects.common import (
    COMPONENT_CONFIG_HASH_ANNOTATION,
    KUBE_SYSTEM,
    NODE_BOOTSTRAP_TOKEN_GROUP,
    KubeObject,
    cluster_role_binding,
    component_config_hash,
    configmap,
    deep_merge,
    get_role,
    go_yaml,
    group,
    kubernetes_version,
    minor,
    role_binding,
    service_account,
)
from bootstrap.render.manifests import merge_env
from bootstrap.render.patching import apply_patch_sets
from bootstrap.spec.model import ClusterSpec
from bootstrap.spec.patches import KUBE_PROXY_DAEMONSET

KUBE_PROXY = "kube-proxy"
CONFIG_KEY = "config.conf"
KUBECONFIG_KEY = "kubeconfig.conf"
NODE_PROXIER_BINDING = "kubeadm:node-proxier"
NODE_PROXIER_ROLE = "system:node-proxier"
KUBE_PROXY_V1ALPHA1 = "kubeproxy.config.k8s.io/v1alpha1"
KUBECONFIG_PATH = "/var/lib/kube-proxy/kubeconfig.conf"
BIND_ADDRESS_V4 = "0.0.0.0"
BIND_ADDRESS_V6 = "::"


def _zero_value_configuration(mnr: int) -> dict[str, Any]:
    """KubeProxyConfiguration with every field at its Go zero value, as the encoder writes it."""
    conntrack: dict[str, Any] = {"maxPerCore": None, "min": None, "tcpCloseWaitTimeout": None,
                                 "tcpEstablishedTimeout": None}
    doc: dict[str, Any] = {
        "bindAddress": "",
        "bindAddressHardFail": False,
        "clientConnection": {"acceptContentTypes": "", "burst": 0, "contentType": "", "kubeconfig": "", "qps": 0},
        "clusterCIDR": "",
        "configSyncPeriod": "0s",
        "conntrack": conntrack,
        "detectLocal": {"bridgeInterface": "", "interfaceNamePrefix": ""},
        "detectLocalMode": "",
        "enableProfiling": False,
        "healthzBindAddress": "",
        "hostnameOverride": "",
        "iptables": {"localhostNodePorts": None, "masqueradeAll": False, "masqueradeBit": None,
                     "minSyncPeriod": "0s", "syncPeriod": "0s"},
        "ipvs": {"excludeCIDRs": None, "minSyncPeriod": "0s", "scheduler": "", "strictARP": False, "syncPeriod": "0s",
                 "tcpFinTimeout": "0s", "tcpTimeout": "0s", "udpTimeout": "0s"},
        "metricsBindAddress": "",
        "mode": "",
        "nodePortAddresses": None,
        "oomScoreAdj": None,
        "portRange": "",
        "showHiddenMetricsForVersion": "",
        "winkernel": {"enableDSR": False, "forwardHealthCheckVip": False, "networkName": "", "rootHnsEndpointName": "",
                      "sourceVip": ""},
    }
    if mnr >= 28:
        doc["logging"] = {"flushFrequency": 0, "options": {"json": {"infoBufferSize": "0"},
                                                           "text": {"infoBufferSize": "0"}}, "verbosity": 0}
    if mnr >= 29:
        conntrack.update({"tcpBeLiberal": False, "udpStreamTimeout": "0s", "udpTimeout": "0s"})
        doc["nftables"] = {"masqueradeAll": False, "masqueradeBit": None, "minSyncPeriod": "0s", "syncPeriod": "0s"}
    return doc


def _warning(param: str, recommended: Any, given: Any) -> str:
    # componentconfigs warnDefaultComponentConfigValue: %q and %v.
    return (f"The recommended value for {json.dumps(param)} in \"KubeProxyConfiguration\" is: {recommended}; "
            f"the provided value is: {given}")


def _wildcard_for(address: str) -> str | None:
    """0.0.0.0 or :: for an address's family; None if it is no IP address."""
    try:
        return BIND_ADDRESS_V4 if ipaddress.ip_address(address).version == 4 else BIND_ADDRESS_V6
    except ValueError:
        return None


def _bind_address(cfg: dict[str, Any], advertise_address: str, mnr: int, warnings: list[str]) -> None:
    bind = cfg.get("bindAddress") or ""
    default = _wildcard_for(advertise_address) or BIND_ADDRESS_V6
    if not bind:
        cfg["bindAddress"] = default
    elif mnr < 36:
        if bind != default:
            warnings.append(_warning("bindAddress", default, bind))
    elif bind in (BIND_ADDRESS_V4, BIND_ADDRESS_V6):
        pass  # v1.36: either wildcard is a valid explicit choice
    elif _wildcard_for(bind) is None:
        warnings.append(f"The bindAddress {json.dumps(bind)} in \"KubeProxyConfiguration\" is not a valid IP address")
    else:
        warnings.append(_warning("bindAddress", _wildcard_for(bind), bind))


def kube_proxy_configuration(spec: ClusterSpec, user: Mapping[str, Any] | None = None
                             ) -> tuple[dict[str, Any], list[str]]:
    """The KubeProxyConfiguration kubeadm writes, and its warnings for user values it would not pick.

    user: a KubeProxyConfiguration document from the config file (the spec has no field for it)."""
    mnr = minor(spec)
    given = {k: v for k, v in (user or {}).items() if k not in ("apiVersion", "kind")}
    cfg = deep_merge(_zero_value_configuration(mnr), given)
    warnings: list[str] = []
    _bind_address(cfg, spec.advertise_address, mnr, warnings)
    pod_subnet = spec.networking.pod_subnet
    if not cfg.get("clusterCIDR") and pod_subnet:
        cfg["clusterCIDR"] = pod_subnet
    elif pod_subnet and cfg.get("clusterCIDR") != pod_subnet:
        warnings.append(_warning("clusterCIDR", pod_subnet, cfg.get("clusterCIDR")))
    connection = cfg["clientConnection"]
    if not connection.get("kubeconfig"):
        connection["kubeconfig"] = KUBECONFIG_PATH
    elif connection["kubeconfig"] != KUBECONFIG_PATH:
        warnings.append(_warning("clientConnection.kubeconfig", KUBECONFIG_PATH, connection["kubeconfig"]))
    if mnr >= 37:
        if cfg.get("mode") == "ipvs":
            warnings.append(
                "The \"KubeProxyConfiguration\" field \"mode\" is set to \"ipvs\" which has been deprecated since "
                "version v1.35. For newer Linux kernel versions, we recommend using the \"nftables\" mode, which "
                "has been GA since v1.33. For older Linux kernel versions, you can use the \"iptables\" mode which "
                "is still the default one.")
        if not cfg.get("mode"):
            cfg["mode"] = "iptables"  # kube-proxy warns when the mode is left unset
    cfg["apiVersion"] = KUBE_PROXY_V1ALPHA1
    cfg["kind"] = "KubeProxyConfiguration"
    return cfg, warnings


def kube_proxy_kubeconfig(spec: ClusterSpec) -> str:
    """kubeconfig.conf: the pod's service-account token against the control-plane endpoint
    (kubeadm GetControlPlaneEndpoint: controlPlaneEndpoint, its port defaulting to bindPort, or the
    local API endpoint)."""
    return (
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        "- cluster:\n"
        "    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt\n"
        f"    server: {spec.control_plane_url}\n"
        "  name: default\n"
        "contexts:\n"
        "- context:\n"
        "    cluster: default\n"
        "    namespace: default\n"
        "    user: default\n"
        "  name: default\n"
        "current-context: default\n"
        "users:\n"
        "- name: default\n"
        "  user:\n"
        "    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token"
    )


def kube_proxy_configmap(spec: ClusterSpec, user: Mapping[str, Any] | None = None) -> KubeObject:
    """Signed (the component-config hash) only when kubeadm generated the configuration itself."""
    cfg, _ = kube_proxy_configuration(spec, user)
    # Both values sit in `|-` blocks of kubeadm's template: no trailing newline.
    data = {CONFIG_KEY: go_yaml(cfg).rstrip("\n"), KUBECONFIG_KEY: kube_proxy_kubeconfig(spec)}
    annotations = None if user is not None else {COMPONENT_CONFIG_HASH_ANNOTATION: component_config_hash(data)}
    return configmap(KUBE_PROXY, KUBE_SYSTEM, data, labels={"app": KUBE_PROXY}, annotations=annotations)


def kube_proxy_image(spec: ClusterSpec) -> str:
    return f"{spec.image_repository}/{KUBE_PROXY}:{kubernetes_version(spec)}"


def kube_proxy_daemonset(spec: ClusterSpec) -> KubeObject:
    """The container also gets the *_proxy variables kubeadm's own process had (spec.proxy_env),
    sorted by name (kubeadm MergeKubeadmEnvVars)."""
    labels = {"k8s-app": KUBE_PROXY}
    env: list[dict[str, Any]] = [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
    daemonset: KubeObject = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": KUBE_PROXY, "namespace": KUBE_SYSTEM, "labels": dict(labels)},
        "spec": {
            "selector": {"matchLabels": dict(labels)},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "priorityClassName": "system-node-critical",
                    "containers": [{
                        "name": KUBE_PROXY,
                        "image": kube_proxy_image(spec),
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["/usr/local/bin/kube-proxy", f"--config=/var/lib/kube-proxy/{CONFIG_KEY}",
                                    "--hostname-override=$(NODE_NAME)"],
                        "securityContext": {"privileged": True},
                        "volumeMounts": [
                            {"mountPath": "/var/lib/kube-proxy", "name": KUBE_PROXY},
                            {"mountPath": "/run/xtables.lock", "name": "xtables-lock"},
                            {"mountPath": "/lib/modules", "name": "lib-modules", "readOnly": True},
                        ],
                        "env": env,
                    }],
                    "hostNetwork": True,
                    "serviceAccountName": KUBE_PROXY,
                    "volumes": [
                        {"name": KUBE_PROXY, "configMap": {"name": KUBE_PROXY}},
                        {"name": "xtables-lock", "hostPath": {"path": "/run/xtables.lock", "type": "FileOrCreate"}},
                        {"name": "lib-modules", "hostPath": {"path": "/lib/modules"}},
                    ],
                    # Every node, whatever its taints: Services must work everywhere.
                    "tolerations": [{"operator": "Exists"}],
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                },
            },
        },
    }
    # kubeadm patches its template, then appends the proxy variables to the first container.
    daemonset = apply_patch_sets(daemonset, KUBE_PROXY_DAEMONSET, spec.patches)
    first = daemonset["spec"]["template"]["spec"]["containers"][0]
    first["env"] = [*(first.get("env") or []), *merge_env(spec.proxy_env)]
    return daemonset


def kube_proxy_rbac() -> list[KubeObject]:
    """ServiceAccount, its binding to system:node-proxier, and read access to the ConfigMap for
    bootstrap tokens (kubeadm join reads the kube-proxy configuration)."""
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": KUBE_PROXY, "namespace": KUBE_SYSTEM}},
        cluster_role_binding(NODE_PROXIER_BINDING, NODE_PROXIER_ROLE, [service_account(KUBE_PROXY, KUBE_SYSTEM)]),
        get_role(KUBE_PROXY, KUBE_SYSTEM, "configmaps", KUBE_PROXY),
        role_binding(KUBE_PROXY, KUBE_SYSTEM, KUBE_PROXY, [group(NODE_BOOTSTRAP_TOKEN_GROUP)]),
    ]


def kube_proxy_objects(spec: ClusterSpec, user: Mapping[str, Any] | None = None) -> list[KubeObject]:
    """The addon in kubeadm's creation order."""
    return [kube_proxy_configmap(spec, user), kube_proxy_daemonset(spec), *kube_proxy_rbac()]
