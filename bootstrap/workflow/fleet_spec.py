"""A whole cluster from an inventory: the cluster spec (the first control plane's view, the API
endpoint and its SANs) and each host's own spec, every one validated, all problems at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from bootstrap.errors import ConfigError, ConfigErrors, UsageError
from bootstrap.spec.endpoint import control_plane_endpoint_for, endpoint_from_inventory, endpoint_sans, url_host
from bootstrap.spec.inventory import Inventory, InventoryHost
from bootstrap.spec.load import build_spec, problems
from bootstrap.spec.model import Arg, ClusterSpec, EtcdMember

PER_HOST_FLAGS = ("apiserver_advertise_address", "node_name")


def fleet_cluster_spec(flags: Mapping[str, Any], inv: Inventory) -> ClusterSpec:
    """The cluster as every fleet command sees it (init, join, validate): the first control plane's
    view, the API endpoint from the inventory (external LB, VIP or localhost proxies), its SANs."""
    first = inv.control_planes()[0]
    merged = dict(flags)
    for per_host in PER_HOST_FLAGS:
        if merged.get(per_host):
            raise UsageError(
                f"--{per_host.replace('_', '-')} is per host", hint="set `ip` for each host in the inventory"
            )
    merged["apiserver_advertise_address"], merged["node_name"] = first.ip, first.name
    endpoint = endpoint_from_inventory(inv)
    if not merged.get("control_plane_endpoint") and "control_plane_endpoint" not in inv.cluster_values:
        if endpoint is None:
            port = merged.get("apiserver_bind_port") or inv.cluster_values.get("bind_port", (6443, ""))[0]
            merged["control_plane_endpoint"] = f"{url_host(first.ip)}:{port}"
        else:
            merged["control_plane_endpoint"] = control_plane_endpoint_for(endpoint, inv.control_planes())
    cluster = build_spec(merged, merged.get("config"), defaults=inv.cluster_values)
    if endpoint is None:
        return cluster
    sans = tuple(dict.fromkeys((*cluster.api_server.cert_sans, *endpoint_sans(endpoint))))
    return cluster.model_copy(
        update={"api_endpoint": endpoint, "api_server": cluster.api_server.model_copy(update={"cert_sans": sans})}
    )


def etcd_members(inv: Inventory) -> tuple[EtcdMember, ...]:
    return tuple(
        EtcdMember(name=h.name, peer_url=f"https://{url_host(h.ip)}:2380")
        for h in inv.hosts
        if h.is_etcd
    )


def node_spec(cluster: ClusterSpec, host: InventoryHost, members: tuple[EtcdMember, ...]) -> ClusterSpec:
    """The cluster spec as seen from one host: its address, its name, the etcd members, validated
    as a spec of its own (a per-host value can be as wrong as a cluster one). The kubelet gets
    --node-ip = the inventory's ip, as Kubespray sets it: on a host with more than one address it
    would otherwise register the default route's. A node-ip in kubeletExtraArgs wins. The host's
    role picks its kubelet fields from kubelet_role_configuration."""
    extra = cluster.node.kubelet_extra_args
    if not any(a.name == "node-ip" for a in extra):
        extra = (*extra, Arg(name="node-ip", value=host.ip))
    raw = cluster.model_dump()
    raw.update(advertise_address=host.ip, etcd_members=[m.model_dump() for m in members])
    raw["node"].update(name=host.name, kubelet_extra_args=[a.model_dump() for a in extra])
    # The role's kubelet fields (inventory variables) under what a KubeletConfiguration document set.
    role = cluster.kubelet_role_configuration.get("control-plane" if host.is_control_plane else "worker", {})
    raw["kubelet_configuration"] = {**role, **raw["kubelet_configuration"]}
    where = f"host {host.name}"
    try:
        spec = ClusterSpec.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"{where}: {'.'.join(str(p) for p in err['loc'])}", err["msg"]) from None
    found = problems(spec, lambda key: f"{where}: {_inventory_name(key)}")
    if found:
        raise found[0] if len(found) == 1 else ConfigErrors(found)
    return spec


def node_specs(cluster: ClusterSpec, inv: Inventory, names: list[str] | None = None) -> dict[str, ClusterSpec]:
    """Every host's spec (or those in names), all problems of all hosts in one error."""
    members = etcd_members(inv)
    out: dict[str, ClusterSpec] = {}
    errors: list[ConfigError] = []
    for host in inv.hosts:
        if names is not None and host.name not in names:
            continue
        try:
            out[host.name] = node_spec(cluster, host, members)
        except ConfigErrors as many:
            errors.extend(many.errors)
        except ConfigError as exc:
            errors.append(exc)
    if errors:
        raise errors[0] if len(errors) == 1 else ConfigErrors(errors)
    return out


def _inventory_name(key: str) -> str:
    """Where a per-host value comes from in a Kubespray inventory."""
    return {
        "node.name": "name (inventory hostname)",
        "advertise_address": "ip",
        "etcd_members": "etcd members (etcd_member_name, ip)",
    }.get(key, key)
