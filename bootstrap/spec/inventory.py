"""Fleet inventories in: Kubespray hosts.yaml / INI (+ group_vars, host_vars) and k0sctl.yaml.

The result is an `Inventory`: the hosts with their roles and connection settings, and the
cluster-wide values (spec field -> value) that build_spec merges under flags and config files.
Kubespray inventories are read by Ansible itself (spec/ansible_inventory.py); this module maps the
variables kbootstrap uses, each evaluated only when read.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from bootstrap.errors import ConfigError
from bootstrap.spec import ansible_inventory
from bootstrap.spec.endpoint import int_var
from bootstrap.spec.kubeadm_config import Values
from bootstrap.spec.model import is_ip

CONTROL_PLANE, ETCD, NODE = ansible_inventory.CONTROL_PLANE, ansible_inventory.ETCD, ansible_inventory.NODE
K0SCTL_API = "k0sctl.k0sproject.io/"
KUBESPRAY_SERVICE_SUBNET = "10.233.0.0/18"
KUBESPRAY_POD_SUBNET = "10.233.64.0/18"


@dataclass(frozen=True)
class InventoryHost:
    name: str
    address: str  # where SSH connects (ansible_host)
    ip: str  # the address Kubernetes binds and advertises (Kubespray `ip`)
    roles: frozenset[str]
    port: int = 22
    user: str = "root"
    key_file: str | None = None
    become: bool = False
    etcd_member_name: str = ""
    zone: str = ""
    connection: str = "ssh"  # ansible_connection: ssh, or local (this machine is the host)
    vars: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def is_control_plane(self) -> bool:
        return CONTROL_PLANE in self.roles

    @property
    def is_etcd(self) -> bool:
        return ETCD in self.roles

    @property
    def is_worker(self) -> bool:
        return NODE in self.roles


@dataclass(frozen=True)
class Inventory:
    path: Path
    hosts: tuple[InventoryHost, ...]
    cluster_values: Values
    vars: Mapping[str, Any]  # the cluster's variables: the first control plane's, as Kubespray reads them
    warnings: tuple[str, ...] = ()

    @property
    def known_hosts(self) -> Path | None:
        p = self.path.parent / "known_hosts"
        return p if p.is_file() else None

    def control_planes(self) -> list[InventoryHost]:
        return [h for h in self.hosts if h.is_control_plane]

    def host(self, name: str) -> InventoryHost:
        for h in self.hosts:
            if h.name == name:
                return h
        raise ConfigError(
            "--limit", f"host {name!r} is not in {self.path}", hint="names: " + ", ".join(h.name for h in self.hosts)
        )


def load_inventory(path: str, vault_password_file: str | None = None) -> Inventory:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            "-i", f"inventory {path} does not exist", hint="pass a Kubespray hosts.yaml, inventory.ini or k0sctl.yaml"
        )
    text = p.read_text()
    if p.suffix in (".ini", ".cfg"):
        return _from_ansible(p, "ini", vault_password_file)
    try:
        docs = [d for d in yaml.load_all(text, Loader=_TolerantLoader) if d is not None]
    except yaml.YAMLError as exc:
        docs = []
        if p.suffix in (".yaml", ".yml"):
            mark = getattr(exc, "problem_mark", None)
            raise ConfigError(str(p) + (f":{mark.line + 1}" if mark else ""), "not valid YAML") from None
    doc = docs[0] if docs else None
    if p.suffix not in (".yaml", ".yml") and not isinstance(doc, dict):
        # No telling suffix (Vagrant's vagrant_ansible_inventory, `inventory`, hosts): not a YAML
        # mapping, so Ansible's INI format.
        return _from_ansible(p, "ini", vault_password_file)
    k0sctl = [d for d in docs if isinstance(d, dict) and str(d.get("apiVersion", "")).startswith(K0SCTL_API)]
    if k0sctl:
        return _from_k0sctl(p, k0sctl[0])
    if not isinstance(doc, dict) or "all" not in doc:
        raise ConfigError(
            str(p),
            "not a Kubespray inventory: expected a top-level 'all' group",
            hint="see inventories/sample/hosts.yaml",
        )
    _check_yaml_groups(doc["all"], f"{p}: all")
    return _from_ansible(p, "yaml", vault_password_file)


class _TolerantLoader(yaml.SafeLoader):
    """Reads the shape of a file whose values may carry Ansible's tags (!vault, !unsafe)."""


_TolerantLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


# ---- Kubespray YAML ------------------------------------------------------------------------------
def _check_yaml_groups(body: Any, path: str) -> None:
    """Ansible skips a misspelt group key with a warning; a misspelt `hosts` loses hosts: refused."""
    if body is None:
        return
    if not isinstance(body, dict):
        raise ConfigError(path, "a group must be a mapping with hosts/children/vars")
    for key in body:
        if key not in ("hosts", "children", "vars"):
            raise ConfigError(f"{path}.{key}", "unknown key in a group", hint="groups have hosts, children, vars")
    for host, hvars in (body.get("hosts") or {}).items():
        if hvars is not None and not isinstance(hvars, dict):
            raise ConfigError(f"{path}.hosts.{host}", "host vars must be a mapping")
    for child, cbody in (body.get("children") or {}).items():
        _check_yaml_groups(cbody, f"{path}.children.{child}")


def ansible_bool(value: Any) -> bool:
    """A boolean as Ansible reads one: a quoted or templated "false"/"no"/"0" is false."""
    if isinstance(value, str):
        return value.strip().lower() in ("yes", "on", "1", "true", "y", "t")
    return bool(value)


# ---- k0sctl.yaml ---------------------------------------------------------------------------------
_K0S_ROLES = {
    "controller": {CONTROL_PLANE, ETCD},
    "controller+worker": {CONTROL_PLANE, ETCD, NODE},
    "single": {CONTROL_PLANE, ETCD, NODE},
    "server": {CONTROL_PLANE, ETCD},
    "server+worker": {CONTROL_PLANE, ETCD, NODE},
    "worker": {NODE},
}


def _from_k0sctl(path: Path, doc: dict[str, Any]) -> Inventory:
    # k0sctl's own smoke tests write `kind: cluster`; k0sctl takes any case.
    if str(doc.get("kind", "")).lower() != "cluster":
        raise ConfigError(str(path), f"unknown k0sctl kind {doc.get('kind')!r}", hint="expected kind: Cluster")
    spec = doc.get("spec") or {}
    hosts = []
    for i, h in enumerate(spec.get("hosts") or []):
        where = f"{path}: spec.hosts[{i}]"
        role = h.get("role", "")
        if role not in _K0S_ROLES:
            raise ConfigError(
                f"{where}.role", f"unknown role {role!r}", hint="controller, controller+worker, worker or single"
            )
        # A host is reached over k0sctl's own SSH (ssh:) or the system's OpenSSH (openSSH:).
        kind = "ssh" if h.get("ssh") else "openSSH" if h.get("openSSH") else ""
        conn = h.get(kind) or {}
        if not conn.get("address"):
            raise ConfigError(f"{where}.ssh.address", "is required",
                              hint="each host needs ssh.address or openSSH.address")
        if conn.get("bastion"):
            raise ConfigError(f"{where}.{kind}.bastion", "jump hosts are not supported yet",
                              hint="reach the hosts directly, or through an SSH ProxyJump outside kbootstrap")
        address = str(conn["address"])
        name = str(h.get("hostname") or address)
        hosts.append(
            InventoryHost(
                name=name,
                address=address,
                ip=str(h.get("privateAddress") or address),
                roles=frozenset(_K0S_ROLES[role]),
                port=int(conn.get("port", 22)),
                user=str(conn.get("user", "root")),
                key_file=conn.get("keyPath"),
                # k0sctl runs everything through sudo when its user is not root.
                become=str(conn.get("user", "root")) != "root",
            )
        )
    values: Values = {}
    k0s = spec.get("k0s") or {}
    if k0s.get("version"):
        # v1.30.4+k0s.0 is k0s's build of Kubernetes v1.30.4: that release, or its refusal.
        version = str(k0s["version"]).split("+", 1)[0]
        version = version if version.startswith("v") else f"v{version}"
        values["kubernetes_version"] = (version, f"{path}: spec.k0s.version")
    k0s_spec = (k0s.get("config") or {}).get("spec") or {}
    api, net = k0s_spec.get("api") or {}, k0s_spec.get("network") or {}
    port = int(api.get("port", 6443))
    if port != 6443:
        values["bind_port"] = (port, "k0s api.port")
    if api.get("externalAddress"):
        values["control_plane_endpoint"] = (f"{api['externalAddress']}:{port}", "k0s api.externalAddress")
    if api.get("sans"):
        values["api_server.cert_sans"] = (list(api["sans"]), "k0s api.sans")
    if net.get("podCIDR"):
        values["networking.pod_subnet"] = (net["podCIDR"], "k0s network.podCIDR")
    if net.get("serviceCIDR"):
        values["networking.service_subnet"] = (net["serviceCIDR"], "k0s network.serviceCIDR")
    if net.get("clusterDomain"):
        values["networking.dns_domain"] = (net["clusterDomain"], "k0s network.clusterDomain")
    _k0s_storage(k0s_spec.get("storage") or {}, values, f"{path}: spec.k0s.config.spec.storage")
    inv = Inventory(path, tuple(hosts), values, {})
    _check_hosts(inv)
    return inv


def _k0s_storage(storage: dict[str, Any], values: Values, where: str) -> None:
    """k0s's etcd (on the controllers, as ours) or an external etcd cluster; kine is refused."""
    kind = storage.get("type", "etcd")
    if kind != "etcd":
        raise ConfigError(f"{where}.type", f"{kind!r} is not supported", hint="use etcd (kine is k0s's own)")
    ext = (storage.get("etcd") or {}).get("externalCluster")
    if ext:
        values["etcd_external"] = ({"endpoints": list(ext.get("endpoints") or []), "ca_file": ext.get("caFile", ""),
                                    "cert_file": ext.get("clientCertFile", ""),
                                    "key_file": ext.get("clientKeyFile", "")}, f"{where}.etcd.externalCluster")


# ---- common --------------------------------------------------------------------------------------
def _from_ansible(path: Path, plugin: str, vault_password_file: str | None) -> Inventory:
    read = ansible_inventory.read(path, plugin, vault_password_file)
    if read.bastions:
        # Silently going around a bastion would reach (or fail to reach) hosts another way.
        raise ConfigError(f"{path}: bastion", f"jump hosts ({', '.join(read.bastions)}) are not supported yet",
                          hint="reach the hosts directly, or through an SSH ProxyJump outside kbootstrap")
    base = path.parent
    hosts = []
    for h in read.hosts:
        hv = h.vars
        # ansible_ssh_* are the names older inventories (Vagrant's) use; Ansible still reads them.
        address = str(hv.get("ansible_host") or hv.get("ansible_ssh_host") or hv.get("ip") or h.name)
        ip = str(hv.get("ip") or hv.get("access_ip") or address)
        key = hv.get("ansible_ssh_private_key_file") or hv.get("ansible_private_key_file")
        if key and not Path(str(key)).is_absolute():
            key = str((base / str(key)).resolve()) if (base / str(key)).exists() else str(key)
        connection = str(hv.get("ansible_connection") or "ssh")
        if connection in ("smart", "paramiko", "ssh"):
            connection = "ssh"
        elif connection != "local":
            raise ConfigError(f"{path}: {h.name}.ansible_connection", f"{connection!r} is not supported",
                              hint="use ssh, or local for the machine kbootstrap runs on")
        port = hv.get("ansible_port") or hv.get("ansible_ssh_port") or 22
        try:
            port = int(port)
        except (TypeError, ValueError):
            raise ConfigError(f"{path}: {h.name}.ansible_port", f"{port!r} is not a port") from None
        hosts.append(
            InventoryHost(
                name=h.name,
                address=address,
                ip=ip,
                roles=h.roles,
                port=port,
                user=str(hv.get("ansible_user") or hv.get("ansible_ssh_user") or "root"),
                key_file=str(key) if key else None,
                become=ansible_bool(hv.get("ansible_become", False)),
                etcd_member_name=str(hv.get("etcd_member_name") or ""),
                zone=str(hv.get("zone", hv.get("kbootstrap_zone", ""))),
                connection=connection,
                vars=hv,
            )
        )
    # Cluster-wide settings as Kubespray's playbooks see them on the first control plane.
    first = next((h for h in read.hosts if CONTROL_PLANE in h.roles), None)
    cluster_vars: Mapping[str, Any] = first.vars if first else {}
    values = kubespray_values(cluster_vars, str(path)) if first else {}
    renamed = [h.name for h in hosts if h.etcd_member_name and h.etcd_member_name != h.name]
    warnings = (*read.warnings, *(kubespray_warnings(cluster_vars) if first else ()),
                *([f"etcd_member_name ({', '.join(renamed)}): not honoured: etcd members are named after their "
                   "hosts, as kubeadm names them"] if renamed else []))
    inv = Inventory(path, tuple(hosts), values, cluster_vars, warnings)
    _check_hosts(inv)
    if not any(h.is_etcd for h in hosts):
        inv = replace(inv, hosts=tuple(_stacked_etcd(hosts, values, path)))
    return inv


def _stacked_etcd(hosts: list[InventoryHost], values: Values, path: Path) -> list[InventoryHost]:
    """An empty etcd group, as Kubespray reads it: kubeadm's etcd runs on every control plane;
    etcd on hosts of its own needs its hosts."""
    if values.get("etcd_mode", ("host", ""))[0] != "static-pod":
        raise ConfigError(f"{path}: etcd", "the group is empty, and with etcd_deployment_type host (Kubespray's "
                          "default) etcd runs on the etcd group's hosts only",
                          hint="list the etcd hosts in the etcd group, or set etcd_deployment_type: kubeadm")
    return [replace(h, roles=h.roles | {ETCD}) if h.is_control_plane else h for h in hosts]


def runtime_values(v: Mapping[str, Any], where: str, put: Callable[[str, Any, str], None]) -> None:
    """containerd registry mirrors (+ their CA), the kubelet's cgroup v1 switch, restrict_oom_score_adj."""
    from bootstrap.render import containerd_registry

    mirrors = v.get(containerd_registry.MIRRORS_VAR)
    ca_pem = b""
    if v.get(containerd_registry.CA_VAR):
        path = Path(str(v[containerd_registry.CA_VAR])).expanduser()
        try:
            ca_pem = containerd_registry.check_ca(path.read_bytes(), f"{where}: {containerd_registry.CA_VAR}")
        except OSError as exc:
            raise ConfigError(f"{where}: {containerd_registry.CA_VAR}", f"cannot read {path}: {exc.strerror}") from None
    if mirrors:
        containerd_registry.render(mirrors, ca_pem=ca_pem or None)  # every problem named before any host
        put("container_runtime.registries_mirrors", list(mirrors), containerd_registry.MIRRORS_VAR)
    if ca_pem:
        put("container_runtime.registry_ca_pem", ca_pem.decode(), containerd_registry.CA_VAR)
    if ansible_bool(v.get("kbootstrap_containerd_restrict_oom_score_adj")):
        put("container_runtime.restrict_oom_score_adj", True, "kbootstrap_containerd_restrict_oom_score_adj")
    if "kubelet_fail_cgroup_v1" in v:
        # kubelet >= v1.35 refuses cgroup v1 unless its config says failCgroupV1: false (KEP-5573).
        put("kubelet_configuration.failCgroupV1", ansible_bool(v["kubelet_fail_cgroup_v1"]), "kubelet_fail_cgroup_v1")


# The kubelet's eviction signals (Linux) and what a threshold may be: a quantity or a percentage.
EVICTION_SIGNALS = ("memory.available", "nodefs.available", "nodefs.inodesFree", "imagefs.available",
                    "imagefs.inodesFree", "containerfs.available", "containerfs.inodesFree", "pid.available",
                    "allocatableMemory.available")
_THRESHOLD = re.compile(r"^(\d+(\.\d+)?%|\d+(\.\d+)?([KMGTPE]i?|[mkMGTPE])?)$")


def eviction_thresholds(value: Any, where: str) -> dict[str, str]:
    """Kubespray's eviction_hard / eviction_hard_control_plane: signal -> threshold, checked here
    because the kubelet would only say so in its journal and never start."""
    if not isinstance(value, dict):
        raise ConfigError(where, "must be a mapping of eviction signal to threshold",
                          hint="e.g. {memory.available: 100Mi, nodefs.available: 10%}")
    out: dict[str, str] = {}
    for signal, threshold in value.items():
        if signal not in EVICTION_SIGNALS:
            raise ConfigError(f"{where}.{signal}", "is not a kubelet eviction signal",
                              hint=f"use one of {', '.join(EVICTION_SIGNALS)}")
        if not _THRESHOLD.match(str(threshold).strip()):
            raise ConfigError(f"{where}.{signal}", f"{threshold!r} is not a quantity or a percentage",
                              hint="e.g. 100Mi, 2Gi or 10%")
        out[str(signal)] = str(threshold).strip()
    return out


def kubelet_role_values(v: Mapping[str, Any], where: str, put: Callable[[str, Any, str], None]) -> None:
    """As Kubespray's kubelet template: control planes take eviction_hard_control_plane, every other
    node eviction_hard; either one replaces the kubelet's defaults for that role."""
    for var, role in (("eviction_hard", "worker"), ("eviction_hard_control_plane", "control-plane")):
        if v.get(var):
            put(f"kubelet_role_configuration.{role}", {"evictionHard": eviction_thresholds(v[var], f"{where}: {var}")},
                var)


def network_values(v: Mapping[str, Any], where: str, put: Callable[[str, Any, str], None]) -> None:
    """kube_network_plugin (our default kube-router: Kubespray's calico is not built here) and the
    kube_router_* switches; kube_proxy_mode into the KubeProxyConfiguration."""
    from bootstrap.spec.load import check_network_plugin

    plugin = str(v.get("kube_network_plugin", "kube-router"))
    check_network_plugin(plugin, f"{where}: kube_network_plugin")
    put("network.plugin", plugin, "kube_network_plugin")
    switches = (("kube_router_run_firewall", "run_firewall"), ("kube_router_run_service_proxy", "run_service_proxy"),
                ("kube_router_support_hairpin_mode", "hairpin_mode"))
    for var, key in switches:
        if var in v:
            put(f"network.{key}", ansible_bool(v[var]), var)
    if v.get("kube_router_image_repo") or v.get("kube_router_version"):
        from bootstrap.spec.model import KUBE_ROUTER_IMAGE

        repo, _, tag = KUBE_ROUTER_IMAGE.rpartition(":")
        version = str(v.get("kube_router_version") or tag)
        image = f"{v.get('kube_router_image_repo') or repo}:{version if version.startswith('v') else 'v' + version}"
        put("network.image", image, "kube_router_image_repo/kube_router_version")
    if v.get("kube_proxy_mode"):
        mode = str(v["kube_proxy_mode"])
        if mode not in ("iptables", "ipvs", "nftables"):
            raise ConfigError(f"{where}: kube_proxy_mode", f"{mode!r} is not a kube-proxy mode",
                              hint="use iptables, ipvs or nftables")
        put("kube_proxy_configuration.mode", mode, "kube_proxy_mode")


# Kubespray variables that change a cluster and that kbootstrap does not honour yet: each is named
# at the start of a run when set to something other than what kbootstrap does anyway.
NOT_HONOURED: dict[str, tuple[Callable[[Any], bool], str]] = {
    "enable_nodelocaldns": (ansible_bool, "no nodelocaldns is deployed; the kubelet's cluster DNS is "
                            "CoreDNS's service IP (Kubespray's would be 169.254.25.10)"),
    "dns_mode": (lambda x: str(x) != "coredns", "only CoreDNS is deployed"),
    "ipv6_stack": (ansible_bool, "dual-stack is not set up: the cluster is single-stack"),
    "kube_feature_gates": (bool, "the components' feature gates are not set (use a kubeadm --config)"),
    "kube_oidc_auth": (ansible_bool, "the API server gets no OIDC flags (use kube_kubeadm_apiserver_extra_args)"),
    "kube_encrypt_secret_data": (ansible_bool, "Secrets are not encrypted at rest yet"),
    "kube_cert_dir": (lambda x: str(x).rstrip("/") not in ("/etc/kubernetes/ssl", "/etc/kubernetes/pki"),
                      "certificates stay in /etc/kubernetes/pki"),
    "kube_network_plugin_multus": (ansible_bool, "Multus is not deployed"),
}


def kubespray_warnings(v: Mapping[str, Any]) -> list[str]:
    """One line per variable set here that would change a Kubespray cluster and is not honoured."""
    out = []
    for var, (matters, what) in NOT_HONOURED.items():
        if var not in v:
            continue
        try:
            value = v[var]
        except ConfigError:
            out.append(f"{var} is set but cannot be evaluated; it is not used either")
            continue
        if matters(value):
            out.append(f"{var}: not honoured: {what}")
    return out


def kubespray_values(v: Mapping[str, Any], where: str) -> Values:
    """Kubespray group_vars -> spec fields. Kubespray's own defaults apply to its inventories."""
    values: Values = {}

    def put(key: str, value: Any, origin: str) -> None:
        if value not in (None, "", [], {}):
            values[key] = (value, f"{where}: {origin}")

    put("kubernetes_version", v.get("kube_version"), "kube_version")
    put(
        "networking.service_subnet", v.get("kube_service_addresses", KUBESPRAY_SERVICE_SUBNET), "kube_service_addresses"
    )
    put("networking.pod_subnet", v.get("kube_pods_subnet", KUBESPRAY_POD_SUBNET), "kube_pods_subnet")
    put("networking.dns_domain", v.get("dns_domain") or v.get("cluster_name"), "dns_domain")
    put("bind_port", v.get("kube_apiserver_port"), "kube_apiserver_port")
    # Kubespray's kubeadm config: clusterName is cluster_name (its default, like the DNS domain's).
    put("cluster_name", v.get("cluster_name"), "cluster_name")
    if v.get("kubelet_max_pods"):
        put("kubelet_configuration.maxPods", int_var(v["kubelet_max_pods"], f"{where}: kubelet_max_pods"),
            "kubelet_max_pods")
    for var, component in (("kube_kubeadm_apiserver_extra_args", "api_server"),
                           ("kube_kubeadm_controller_extra_args", "controller_manager"),
                           ("kube_kubeadm_scheduler_extra_args", "scheduler")):
        extra = v.get(var)
        if extra:
            if not isinstance(extra, Mapping):
                raise ConfigError(f"{where}: {var}", "must be a mapping of flag name to value")
            put(f"{component}.extra_args", [{"name": str(k), "value": str(x).lower() if isinstance(x, bool) else str(x)}
                                            for k, x in extra.items()], var)
    put("api_server.cert_sans", v.get("supplementary_addresses_in_ssl_keys"), "supplementary_addresses_in_ssl_keys")
    put("etcd_local.data_dir", v.get("etcd_data_dir"), "etcd_data_dir")
    deployment = v.get("etcd_deployment_type")
    if deployment is None and "etcd_kubeadm_enabled" in v:
        deployment = "kubeadm" if v["etcd_kubeadm_enabled"] else "host"
    if deployment is not None:
        mode = {"host": "host", "kubeadm": "static-pod"}.get(str(deployment))
        if mode is None:
            raise ConfigError(
                f"{where}: etcd_deployment_type", f"{deployment!r} is not supported", hint="use host or kubeadm"
            )
        put("etcd_mode", mode, "etcd_deployment_type")
    else:
        put("etcd_mode", "host", "etcd_deployment_type (Kubespray default: host)")
    lb = v.get("loadbalancer_apiserver")
    if lb:
        if not isinstance(lb, dict) or not lb.get("address"):
            raise ConfigError(f"{where}: loadbalancer_apiserver", "needs an address (and optionally a port)")
        host = v.get("apiserver_loadbalancer_domain_name") or lb["address"]
        put("control_plane_endpoint", f"{host}:{lb.get('port', 6443)}", "loadbalancer_apiserver")
    manager = v.get("container_manager", "containerd")
    if manager != "containerd":
        raise ConfigError(f"{where}: container_manager", f"{manager!r} is not supported yet", hint="use containerd")
    # Kubespray's proxy_env: both spellings of each variable, as kubeadm then finds in its environment.
    proxy = [
        {"name": name, "value": str(v[var])}
        for var in ("http_proxy", "https_proxy", "no_proxy")
        if v.get(var)
        for name in (var.upper(), var)
    ]
    put("proxy_env", proxy, "http_proxy/https_proxy/no_proxy")
    runtime_values(v, where, put)
    kubelet_role_values(v, where, put)
    network_values(v, where, put)
    for ours in ("kbootstrap_hardening",):
        if v.get(ours):
            values["hardening"] = ({"profile": v[ours]}, f"{where}: {ours}")
    return values


def _check_hosts(inv: Inventory) -> None:
    if not inv.hosts:
        raise ConfigError(str(inv.path), "no hosts in kube_control_plane, etcd or kube_node")
    if not inv.control_planes():
        raise ConfigError(
            str(inv.path), "no host in kube_control_plane", hint="a cluster needs at least one control plane"
        )
    seen: dict[str, str] = {}
    for h in inv.hosts:
        if not is_ip(h.ip):
            raise ConfigError(
                f"{inv.path}: {h.name}.ip",
                f"{h.ip!r} is not an IP address",
                hint="set ip (the address Kubernetes advertises) to an IP",
            )
        if h.ip in seen:
            raise ConfigError(f"{inv.path}: {h.name}.ip", f"{h.ip} is also the ip of {seen[h.ip]}")
        seen[h.ip] = h.name
        if not 0 < h.port < 65536:
            raise ConfigError(f"{inv.path}: {h.name}.ansible_port", f"{h.port} is not a port")
        ipaddress.ip_address(h.ip)
