"""The one call `init -i` ends with: netcheck + node validation on the connections it already holds.

    result = validate_fleet(inv, specs, targets, bundle=bundle)   # specs: each host's ClusterSpec
    text = result.render(); failed = result.failed

Nothing here connects or prints; the commands in bootstrap/commands/{netcheck,validate}.py connect
(with the inventory's known_hosts) and then call the same functions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bootstrap.artifacts.bundle import Bundle
from bootstrap.spec.inventory import Inventory, InventoryHost
from bootstrap.spec.model import ClusterSpec
from bootstrap.transport.base import Target
from bootstrap.validate import report
from bootstrap.validate.netcheck import NetcheckReport, run_netcheck
from bootstrap.validate.nodes import NodeReport, validate_nodes


@dataclass
class ValidationResult:
    netcheck: NetcheckReport | None
    nodes: list[NodeReport] | None
    output: str = "text"  # how render() formats: text | json
    seconds: float = 0.0
    skipped: dict[str, str] = field(default_factory=dict)  # part -> why it was not run

    @property
    def failed(self) -> bool:
        return bool((self.netcheck and self.netcheck.failed) or (self.nodes and any(n.failed for n in self.nodes)))

    def summary(self) -> str:
        lines = []
        if self.netcheck is not None:
            lines.append(self.netcheck.summary())
        if self.nodes is not None:
            lines.append(report.nodes_summary(self.nodes))
        lines += [f"{part}: skipped ({why})" for part, why in self.skipped.items()]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": not self.failed, "seconds": round(self.seconds, 2)}
        if self.netcheck is not None:
            out["netcheck"] = self.netcheck.to_json()
        if self.nodes is not None:
            out["validate"] = {
                "ok": not any(n.failed for n in self.nodes),
                "summary": report.nodes_summary(self.nodes),
                "nodes": {n.node: n.to_json() for n in self.nodes},
            }
        if self.skipped:
            out["skipped"] = self.skipped
        return out

    def text(self, *, color: bool = False) -> str:
        parts = []
        if self.netcheck is not None:
            parts.append(report.netcheck_text(self.netcheck, color=color))
        if self.nodes is not None:
            parts.append(report.nodes_text(self.nodes, color=color))
        parts += [f"{part}: skipped ({why})" for part, why in self.skipped.items()]
        return "\n\n".join(parts)

    def render(self, output: str | None = None) -> str:
        if (output or self.output) == "json":
            return json.dumps(self.to_json(), indent=2)
        return self.text()


def skipped_phases(inv: Inventory, cluster: ClusterSpec, extra: Collection[str] = ()) -> set[str]:
    """Phases skipped for this cluster: the inventory's kbootstrap_skip_phases, the spec's, --skip-phases."""
    names = [*(inv.vars.get("kbootstrap_skip_phases") or []), *cluster.skipped_phases, *extra]
    return {str(n).strip().removesuffix("/all") for n in names if str(n).strip()}


VALIDATE_PHASES = ("validate", "validate/netcheck", "validate/nodes")  # names --skip-phases accepts


def validate_fleet(
    inv: Inventory,
    specs: Mapping[str, ClusterSpec],
    targets: Mapping[str, Target],
    *,
    bundle: Bundle | None,
    output: str = "text",
    skip_phases: Collection[str] = (),
    unreachable: Mapping[str, str] | None = None,
    forks: int = 64,
    netcheck: bool = True,
    nodes: bool = True,
) -> ValidationResult:
    """netcheck and node validation side by side, on open targets (never reconnects, never prints).

    specs: each host's ClusterSpec (as the run built it). skip_phases: the run's skipped phases; any
    other skipped phase than validate's own (e.g. binaries/kubelet) turns the checks of what it would
    have installed into skips with that reason. The inventory's and the spec's skips are added.
    unreachable: host -> why it has no target (a connect error, or a failure earlier in the run)."""
    started = time.monotonic()
    first = inv.control_planes()[0].name
    cluster_spec = specs.get(first) or next(iter(specs.values()))
    phases = skipped_phases(inv, cluster_spec, skip_phases)
    skipped: dict[str, str] = {}
    run_net = netcheck and not phases & {"validate", "validate/netcheck"}
    run_nodes = nodes and not phases & {"validate", "validate/nodes"}
    if not run_net:
        skipped["netcheck"] = "--skip-phases"
    if not run_nodes:
        skipped["validate"] = "--skip-phases"

    def spec_for(h: InventoryHost) -> ClusterSpec:
        return specs.get(h.name, cluster_spec)

    # Both wait on the nodes far more than they compute: side by side over the same connections.
    with ThreadPoolExecutor(max_workers=2) as pool:
        net_job = pool.submit(run_netcheck, inv, cluster_spec, targets, unreachable=unreachable,
                              forks=forks) if run_net else None
        nodes_job = pool.submit(validate_nodes, list(inv.hosts), spec_for, targets, bundle=bundle, skipped=phases,
                                unreachable=unreachable, forks=forks) if run_nodes else None
        net = net_job.result() if net_job is not None else None
        node_reports = nodes_job.result() if nodes_job is not None else None
    return ValidationResult(net, node_reports, output, time.monotonic() - started, skipped)
