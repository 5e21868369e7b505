"""The API endpoint: how clients and nodes reach the API servers of a cluster with several control planes.

kubeadm leaves the load balancer to the user; Kubespray runs a proxy on every node; Talos and k0s
ship a virtual IP. We offer three modes (docs/ha.md):

- `external`: the user's load balancer at ADDRESS:PORT. We only check it answers.
- `vip`: a virtual IP that moves between control planes. `provider: keepalived` runs keepalived
  (VRRP, unicast) plus HAProxy on every control plane, the VIP's port being HAProxy's frontend;
  `provider: kube-vip` runs kube-vip as a static pod (needs a kubelet) and the VIP's port is the
  API server's own.
- `localhost`: HAProxy on 127.0.0.1:PORT on every worker, forwarding to all control planes, as
  Kubespray's localhost load balancer. Control planes use their own API server.

The model is small and frozen, like ClusterSpec, and is built once from inventory variables.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from bootstrap.errors import ConfigError

DEFAULT_VIP_PORT = 8443  # HAProxy's frontend beside an API server bound to *:6443 (kubeadm's HA guide)
DEFAULT_APISERVER_PORT = 6443
KUBE_VIP_IMAGE = "ghcr.io/kube-vip/kube-vip:v1.0.1"


class Frozen(BaseModel):
    # Same config as spec.model.Frozen; this module imports nothing from model.py, so that
    # ClusterSpec can carry an `api_endpoint: EndpointSpec | None` without an import cycle.
    model_config = ConfigDict(frozen=True, extra="forbid")


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class EndpointMode(StrEnum):
    EXTERNAL = "external"
    VIP = "vip"
    LOCALHOST = "localhost"


class VipProvider(StrEnum):
    KEEPALIVED = "keepalived"  # keepalived (VRRP) + HAProxy, as systemd services
    KUBE_VIP = "kube-vip"  # kube-vip static pod: ARP leader election through the API server


class Backend(Frozen):
    """One control plane's API server, as the load balancers see it."""

    name: str
    address: str
    port: int = DEFAULT_APISERVER_PORT


class EndpointSpec(Frozen):
    mode: EndpointMode
    address: str = ""  # external: the LB's host; vip: the virtual IP; localhost: unused
    port: int = DEFAULT_APISERVER_PORT  # the port clients dial at `address` (or at 127.0.0.1)
    provider: VipProvider = VipProvider.KEEPALIVED
    interface: str = ""  # vip: the NIC carrying the VIP; empty: the one holding the node's own ip
    vip_prefix: int = 32
    virtual_router_id: int = 0  # VRRP id (1..255); 0: derived from the VIP
    advert_int: int = 1  # VRRP advertisement interval, seconds: failover takes about 3x this
    health_path: str = "/readyz"
    backends: tuple[Backend, ...] = ()
    kube_vip_image: str = KUBE_VIP_IMAGE

    @field_validator("port")
    @classmethod
    def _port(cls, v: int) -> int:
        if not 0 < v < 65536:
            raise ValueError(f"{v} is not a port")
        return v

    @property
    def router_id(self) -> int:
        if self.virtual_router_id:
            return self.virtual_router_id
        # Stable per VIP, so two clusters on one segment do not collide by default.
        return int(hashlib.sha256(self.address.encode()).hexdigest(), 16) % 255 + 1

    @property
    def uses_haproxy_on_control_planes(self) -> bool:
        return self.mode == EndpointMode.VIP and self.provider == VipProvider.KEEPALIVED

    def backend_for(self, address: str) -> Backend | None:
        return next((b for b in self.backends if b.address == address), None)


def url_host(host: str) -> str:
    """An address as it stands in a URL: IPv6 in brackets."""
    return f"[{host}]" if ":" in host else host


def endpoint_sans(endpoint: EndpointSpec | None) -> list[str]:
    """What must be in the apiserver certificate's SANs for clients of this endpoint to verify it."""
    if endpoint is None:
        return []
    if endpoint.mode == EndpointMode.LOCALHOST:
        return ["localhost", "127.0.0.1"]  # workers dial https://localhost:PORT through HAProxy
    return [endpoint.address] if endpoint.address else []


def control_plane_endpoint_for(endpoint: EndpointSpec | None, control_planes: Iterable[Any]) -> str:
    """kubeadm's controlPlaneEndpoint (HOST:PORT) for this endpoint.

    control_planes: InventoryHost-like objects (`.ip`) or Backends (`.address`), first is the init node.
    localhost mode keeps the first control plane (as Kubespray does): joining nodes discover the
    cluster through it, and only workers' kubelets are pointed at https://localhost:PORT
    (see `node_api_server`).
    """
    if endpoint is not None and endpoint.mode != EndpointMode.LOCALHOST:
        return f"{url_host(endpoint.address)}:{endpoint.port}"
    first = next(iter(control_planes), None)
    if first is None:
        raise ConfigError("kube_control_plane", "no control plane to take the API endpoint from")
    addr = getattr(first, "ip", None) or first.address
    port = endpoint.backends[0].port if endpoint is not None and endpoint.backends else DEFAULT_APISERVER_PORT
    return f"{url_host(addr)}:{port}"


def node_api_server(endpoint: EndpointSpec | None, is_control_plane: bool, default: str) -> str:
    """The server URL a node's kubelet should use: workers in localhost mode go through their proxy."""
    if endpoint is not None and endpoint.mode == EndpointMode.LOCALHOST and not is_control_plane:
        return f"https://localhost:{endpoint.port}"
    return default


# ---- from inventory variables ---------------------------------------------------------------------
def endpoint_from_vars(
    v: Mapping[str, Any],
    control_planes: Iterable[Any],
    where: str = "inventory",
    *,
    kubespray_localhost_default: bool = True,
) -> EndpointSpec | None:
    """Our vars (kbootstrap_api_endpoint_mode, kbootstrap_vip, ...) and Kubespray's
    (loadbalancer_apiserver, loadbalancer_apiserver_localhost, loadbalancer_apiserver_port,
    kube_vip_*) -> an EndpointSpec, or None for a single API server with no load balancer.

    control_planes: objects with `.name` and `.ip` (InventoryHost). Kubespray turns its localhost
    load balancer on whenever there is no external one; with kubespray_localhost_default we do the
    same, for clusters with more than one control plane.
    """
    cps = list(control_planes)
    bind_port = int_var(v.get("kube_apiserver_port", DEFAULT_APISERVER_PORT), f"{where}: kube_apiserver_port")
    backends = tuple(Backend(name=h.name, address=h.ip, port=bind_port) for h in cps)
    lb = v.get("loadbalancer_apiserver")
    kube_vip = bool(v.get("kube_vip_enabled")) and bool(v.get("kube_vip_controlplane_enabled", True))
    mode_text = v.get("kbootstrap_api_endpoint_mode")
    if mode_text:
        try:
            mode = EndpointMode(str(mode_text))
        except ValueError:
            raise ConfigError(
                f"{where}: kbootstrap_api_endpoint_mode",
                f"{mode_text!r} is not a mode",
                hint="external, vip or localhost",
            ) from None
    elif v.get("kbootstrap_vip") or kube_vip:
        mode = EndpointMode.VIP
    elif lb:
        mode = EndpointMode.EXTERNAL
    elif v.get("loadbalancer_apiserver_localhost") or (
        kubespray_localhost_default and "loadbalancer_apiserver_localhost" not in v and len(cps) > 1
    ):
        mode = EndpointMode.LOCALHOST
    else:
        return None

    lb_address, lb_port = "", None
    if lb:
        if not isinstance(lb, dict) or not lb.get("address"):
            raise ConfigError(f"{where}: loadbalancer_apiserver", "needs an address (and optionally a port)")
        lb_address = str(v.get("apiserver_loadbalancer_domain_name") or lb["address"])
        lb_port = int_var(lb.get("port", DEFAULT_APISERVER_PORT), f"{where}: loadbalancer_apiserver.port")

    if v.get("loadbalancer_apiserver_type") not in (None, "", "haproxy", "nginx"):
        raise ConfigError(
            f"{where}: loadbalancer_apiserver_type",
            f"{v['loadbalancer_apiserver_type']!r} is not supported",
            hint="haproxy (nginx is served by HAProxy too)",
        )

    if mode == EndpointMode.EXTERNAL:
        from bootstrap.spec.model import split_host_port  # here: model.py may import this module

        address = str(v.get("kbootstrap_api_endpoint") or lb_address)
        if not address:
            raise ConfigError(
                f"{where}: loadbalancer_apiserver",
                "external mode needs the load balancer's address",
                hint="set loadbalancer_apiserver: {address: LB, port: 6443} or kbootstrap_api_endpoint: HOST:PORT",
            )
        try:
            host, port = split_host_port(address, lb_port or DEFAULT_APISERVER_PORT)
        except ValueError:
            raise ConfigError(f"{where}: kbootstrap_api_endpoint", f"{address!r} is not HOST[:PORT]") from None
        return EndpointSpec(mode=mode, address=host, port=port, backends=backends)

    if mode == EndpointMode.LOCALHOST:
        port = int_var(v.get("loadbalancer_apiserver_port", bind_port), f"{where}: loadbalancer_apiserver_port")
        return EndpointSpec(mode=mode, address="localhost", port=port, backends=backends)

    # vip
    try:
        provider = VipProvider.KUBE_VIP if kube_vip else VipProvider(str(v.get("kbootstrap_vip_provider",
                                                                                "keepalived")))
    except ValueError:
        raise ConfigError(f"{where}: kbootstrap_vip_provider", f"{v['kbootstrap_vip_provider']!r} is not a provider",
                          hint="keepalived or kube-vip") from None
    vip = str(v.get("kbootstrap_vip") or v.get("kube_vip_address") or lb_address or "")
    if not vip:
        raise ConfigError(f"{where}: kbootstrap_vip", "vip mode needs the virtual IP", hint="set kbootstrap_vip: IP")
    if not is_ip(vip):
        raise ConfigError(f"{where}: kbootstrap_vip", f"{vip!r} is not an IP address")
    taken = {b.address: b.name for b in backends}
    if vip in taken:
        raise ConfigError(f"{where}: kbootstrap_vip", f"{vip} is the address of {taken[vip]}",
                          hint="a virtual IP must be a free address on the control planes' segment")
    default_port = DEFAULT_VIP_PORT if provider == VipProvider.KEEPALIVED else bind_port
    port = int_var(v.get("kbootstrap_vip_port", lb_port or default_port), f"{where}: kbootstrap_vip_port")
    if provider == VipProvider.KEEPALIVED and port == bind_port:
        # HAProxy binds *:PORT on the control planes, where the API server already binds *:bind_port.
        raise ConfigError(
            f"{where}: kbootstrap_vip_port",
            f"port {port} is the API server's own port on the control planes",
            hint=f"use another port for HAProxy's frontend (default {DEFAULT_VIP_PORT}), or kube-vip",
        )
    if provider == VipProvider.KUBE_VIP and port != bind_port:
        raise ConfigError(f"{where}: kbootstrap_vip_port", f"kube-vip forwards nothing: the port must be "
                          f"the API server's ({bind_port}), not {port}")
    router = int_var(v.get("kbootstrap_vrrp_router_id", 0), f"{where}: kbootstrap_vrrp_router_id")
    if router and not 1 <= router <= 255:
        raise ConfigError(f"{where}: kbootstrap_vrrp_router_id", f"{router} is not in 1..255")
    prefix = int_var(v.get("kbootstrap_vip_prefix", 32 if ipaddress.ip_address(vip).version == 4 else 128),
                  f"{where}: kbootstrap_vip_prefix")
    return EndpointSpec(
        mode=mode,
        address=vip,
        port=port,
        provider=provider,
        interface=str(v.get("kbootstrap_vip_interface") or v.get("kube_vip_interface") or ""),
        vip_prefix=prefix,
        virtual_router_id=router,
        backends=backends,
    )


def endpoint_from_inventory(inv: Any, **kw: Any) -> EndpointSpec | None:
    """endpoint_from_vars over a loaded Inventory (its cluster-wide vars and its control planes)."""
    return endpoint_from_vars(inv.vars, inv.control_planes(), str(inv.path), **kw)


def int_var(value: Any, where: str) -> int:
    """An inventory variable that must be a whole number, or one line naming it."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(where, f"{value!r} is not a number") from None
