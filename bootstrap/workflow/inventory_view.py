"""What an inventory means to kbootstrap before anything runs (`kbootstrap inventory show`, like
`ansible-inventory --list`): the cluster spec it builds, and per host its roles, addresses,
connection and etcd membership, with the inventory's warnings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bootstrap.spec.inventory import Inventory, InventoryHost, load_inventory
from bootstrap.spec.model import ClusterSpec
from bootstrap.workflow.fleet_spec import fleet_cluster_spec, node_specs

ROLE_NAMES = {"kube_control_plane": "control-plane", "etcd": "etcd", "kube_node": "worker"}


@dataclass(frozen=True)
class InventoryView:
    inv: Inventory
    cluster: ClusterSpec

    def host_json(self, h: InventoryHost) -> dict[str, Any]:
        return {
            "name": h.name, "roles": [ROLE_NAMES[r] for r in ROLE_NAMES if r in h.roles],
            "ip": h.ip, "address": h.address, "port": h.port, "user": h.user, "become": h.become,
            "connection": h.connection,
            "etcd_member": h.name if h.is_etcd else None,  # members are named after their hosts
        }

    def to_json(self) -> dict[str, Any]:
        c = self.cluster
        return {
            "inventory": str(self.inv.path),
            "cluster": {
                "kubernetes_version": c.kubernetes_version, "cluster_name": c.cluster_name,
                "control_plane_endpoint": c.control_plane_endpoint,
                "service_subnet": c.networking.service_subnet, "pod_subnet": c.networking.pod_subnet,
                "dns_domain": c.networking.dns_domain, "dns_service_ip": c.networking.dns_service_ip(),
                "network_plugin": c.network.plugin, "kube_proxy_mode": c.kube_proxy_configuration.get("mode", ""),
                "etcd": "external" if c.etcd_external else c.etcd_mode.value,
            },
            "hosts": [self.host_json(h) for h in self.inv.hosts],
            "warnings": list(self.inv.warnings),
        }

    def text(self) -> str:
        data = self.to_json()
        lines = [f"inventory {data['inventory']}", "cluster:"]
        lines += [f"  {k}: {v}" for k, v in data["cluster"].items() if v not in ("", None)]
        lines.append("hosts:")
        for h in data["hosts"]:
            via = "local" if h["connection"] == "local" else f"{h['user']}@{h['address']}:{h['port']}"
            extra = (" (sudo)" if h["become"] else "") + (", etcd member" if h["etcd_member"] else "")
            lines.append(f"  {h['name']}: {', '.join(h['roles'])}; ip {h['ip']}; via {via}{extra}")
        lines += [f"warning: {w}" for w in data["warnings"]]
        return "\n".join(lines)


def describe(path: str, vault_password_file: str | None = None, config: str | None = None) -> InventoryView:
    """The inventory as `init -i` would read it; every host's own spec is built too, so a bad
    per-host value is the same one-line error here as at the start of a run."""
    inv = load_inventory(path, vault_password_file)
    cluster = fleet_cluster_spec({"config": config}, inv)
    node_specs(cluster, inv)
    return InventoryView(inv, cluster)
