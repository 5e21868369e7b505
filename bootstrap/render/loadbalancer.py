"""Load balancer and virtual IP configs for the API endpoint (spec/endpoint.py): pure, spec -> text.

- haproxy.cfg on control planes (vip mode, keepalived provider): *:PORT -> every API server.
- haproxy.cfg on workers (localhost mode): 127.0.0.1:PORT -> every API server (Kubespray's
  localhost load balancer, with HAProxy).
- keepalived.conf on control planes: one VRRP instance, unicast to the other control planes,
  distinct priorities (first control plane highest), a track script that checks the local path.
- kube-vip static pod manifest on control planes (vip mode, kube-vip provider).

Both HAProxy flavours health-check each API server with GET /readyz over TLS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from bootstrap.render.templates import render_template
from bootstrap.spec.endpoint import EndpointMode, EndpointSpec, VipProvider

HAPROXY_CONFIG = "/etc/haproxy/haproxy.cfg"
HAPROXY_STATS_SOCKET = "/run/haproxy/admin.sock"
KEEPALIVED_CONFIG = "/etc/keepalived/keepalived.conf"
CHECK_SCRIPT = "/etc/keepalived/check_apiserver.sh"
KUBE_VIP_MANIFEST = "kube-vip.yaml"  # under the static pod manifests dir
TOP_PRIORITY = 200  # first control plane; the next ones count down (all below 255, the address owner's)


@dataclass(frozen=True)
class _Server:
    name: str
    host_port: str


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def haproxy_cfg(endpoint: EndpointSpec, role: str) -> str:
    """role: 'control-plane' (vip mode: listen on every address) or 'worker' (localhost mode)."""
    if role == "control-plane":
        if not endpoint.uses_haproxy_on_control_planes:
            raise ValueError("control planes run HAProxy only in vip mode with the keepalived provider")
        binds = [f"*:{endpoint.port}"]
        if ":" in endpoint.address:
            binds = [f":::{endpoint.port} v4v6"]
        purpose = f"the VIP {endpoint.address}:{endpoint.port} -> every API server"
    elif role == "worker":
        if endpoint.mode != EndpointMode.LOCALHOST:
            raise ValueError("workers run HAProxy only in localhost mode")
        binds = [f"127.0.0.1:{endpoint.port}"]
        if any(":" in b.address for b in endpoint.backends):
            binds.append(f"[::1]:{endpoint.port}")
        purpose = f"localhost:{endpoint.port} -> every API server"
    else:
        raise ValueError(f"unknown role {role!r}")
    if not endpoint.backends:
        raise ValueError("no API servers to balance")
    servers = [_Server(b.name, host_port(b.address, b.port)) for b in endpoint.backends]
    return render_template(
        "loadbalancer/haproxy.cfg.j2",
        role=role,
        purpose=purpose,
        binds=binds,
        backends=servers,
        health_path=endpoint.health_path,
        stats_socket=HAPROXY_STATS_SOCKET,
    )


def priority_for(endpoint: EndpointSpec, self_ip: str) -> int:
    for i, b in enumerate(endpoint.backends):
        if b.address == self_ip:
            return TOP_PRIORITY - i
    raise ValueError(f"{self_ip} is not a control plane of this endpoint")


def keepalived_conf(
    endpoint: EndpointSpec, self_ip: str, node_name: str, interface: str, *, check_script_path: str = CHECK_SCRIPT
) -> str:
    if not endpoint.uses_haproxy_on_control_planes:
        raise ValueError("keepalived runs only in vip mode with the keepalived provider")
    if not interface:
        raise ValueError("keepalived needs the interface that carries the VIP")
    return render_template(
        "loadbalancer/keepalived.conf.j2",
        node_name=node_name,
        check_script=check_script_path,
        interface=interface,
        router_id=endpoint.router_id,
        priority=priority_for(endpoint, self_ip),
        advert_int=endpoint.advert_int,
        self_ip=self_ip,
        peers=[b.address for b in endpoint.backends if b.address != self_ip],
        vip=endpoint.address,
        vip_prefix=endpoint.vip_prefix,
    )


def check_script(endpoint: EndpointSpec) -> str:
    return render_template("loadbalancer/check_apiserver.sh.j2", port=endpoint.port, health_path=endpoint.health_path)


def kube_vip_manifest(endpoint: EndpointSpec, interface: str, kubeconfig: str = "/etc/kubernetes/admin.conf") -> str:
    """kube-vip as a static pod in ARP mode with leader election (a Lease in kube-system).

    kubeconfig: on the first control plane of a v1.29+ cluster kube-vip needs super-admin.conf,
    because admin.conf's group is only bound to cluster-admin once the API server is up.
    """
    if endpoint.mode != EndpointMode.VIP or endpoint.provider != VipProvider.KUBE_VIP:
        raise ValueError("kube-vip runs only in vip mode with the kube-vip provider")
    env: list[dict[str, Any]] = [
        {"name": "vip_arp", "value": "true"},
        {"name": "port", "value": str(endpoint.port)},
        {"name": "vip_nodename", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "vip_interface", "value": interface},
        {"name": "vip_subnet", "value": str(endpoint.vip_prefix)},
        {"name": "cp_enable", "value": "true"},
        {"name": "cp_namespace", "value": "kube-system"},
        {"name": "vip_leaderelection", "value": "true"},
        {"name": "vip_leasename", "value": "plndr-cp-lock"},
        {"name": "vip_leaseduration", "value": "5"},
        {"name": "vip_renewdeadline", "value": "3"},
        {"name": "vip_retryperiod", "value": "1"},
        {"name": "address", "value": endpoint.address},
    ]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kube-vip", "namespace": "kube-system",
                     "labels": {"component": "kube-vip", "tier": "control-plane"}},
        "spec": {
            "containers": [{
                "name": "kube-vip",
                "image": endpoint.kube_vip_image,
                "imagePullPolicy": "IfNotPresent",
                "args": ["manager"],
                "env": env,
                "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]}},
                "volumeMounts": [{"mountPath": "/etc/kubernetes/admin.conf", "name": "kubeconfig", "readOnly": True}],
            }],
            # kube-vip talks to the local API server by the name in the kubeconfig's cert.
            "hostAliases": [{"hostnames": ["kubernetes"], "ip": "127.0.0.1"}],
            "hostNetwork": True,
            "priorityClassName": "system-node-critical",
            "volumes": [{"name": "kubeconfig", "hostPath": {"path": kubeconfig, "type": "FileOrCreate"}}],
        },
    }
    return yaml.safe_dump(pod, sort_keys=False, default_flow_style=False)
