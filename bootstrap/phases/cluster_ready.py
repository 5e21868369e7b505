"""cluster-ready: `init -i` and `join -i` return when the cluster works, not when the last object was
posted: every node of the run Ready, CoreDNS available, the kube-proxy and pod-network DaemonSets
rolled out on every node. Waited for through the API, up to a few minutes; what is still missing
then is the phase's error, named. kbootstrap's, fleet runs only (kubeadm returns after its addons)."""

from __future__ import annotations

from typing import Any

from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import FIRST_CONTROL_PLANE, Phase
from bootstrap.engine.result import Status
from bootstrap.errors import PhaseError, TransportError
from bootstrap.kube.api import wait_for
from bootstrap.phases.cluster_api import cluster_api, offline
from bootstrap.render import kuberouter
from bootstrap.render.apiobjects import coredns, kubeproxy

READY_TIMEOUT = 300.0


def _ready(node: dict[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _daemonset_done(ds: dict[str, Any] | None) -> bool:
    status = (ds or {}).get("status") or {}
    want = status.get("desiredNumberScheduled")
    return bool(want) and status.get("numberAvailable") == want and status.get("updatedNumberScheduled") == want


def missing(ctx: RunContext, nodes: list[str], *, workloads: bool = True) -> list[str]:
    """What is not there yet ([] when the cluster is ready)."""
    api = cluster_api(ctx)
    out = []
    found = {n["metadata"]["name"]: n for n in api.list("v1", "Node")}
    out += [f"Node {n} not Ready" if n in found else f"Node {n} not registered"
            for n in nodes if n not in found or not _ready(found[n])]
    if not workloads:
        return out
    dns = api.get("apps/v1", "Deployment", coredns.COREDNS, "kube-system")
    if dns is not None:
        status, want = dns.get("status") or {}, (dns.get("spec") or {}).get("replicas", 1)
        if (status.get("availableReplicas") or 0) < want:
            out.append(f"CoreDNS {status.get('availableReplicas') or 0}/{want} available")
    for name in (kubeproxy.KUBE_PROXY, kuberouter.KUBE_ROUTER):
        ds = api.get("apps/v1", "DaemonSet", name, "kube-system")
        if ds is not None and not _daemonset_done(ds):
            status = ds.get("status") or {}
            out.append(f"DaemonSet {name} {status.get('numberAvailable') or 0}/"
                       f"{status.get('desiredNumberScheduled') or '?'} available")
    return out


def run(ctx: RunContext) -> None:
    assert ctx.run is not None
    nodes = [ctx.run.contexts[n].spec.node.name for n in ctx.run.alive()
             if ctx.run.nodes[n].is_control_plane or getattr(ctx.run.nodes[n], "is_worker", False)]
    # A host that failed in this run may be down: its pods (CoreDNS, DaemonSet pods) would not come
    # back within the wait, so then only the nodes that are up are waited for (the run fails anyway).
    lost = [n for n in ctx.run.nodes if n not in ctx.run.alive()]
    wait_ready(ctx, nodes, lost)


def wait_ready(ctx: RunContext, nodes: list[str], lost: list[str]) -> None:
    """Wait until `nodes` are Ready (and, when no host was lost, CoreDNS and the DaemonSets)."""
    why = offline(ctx)
    if why is not None:
        ctx.skip("cluster", f"{why}: nothing is waited for")
        return
    last: list[str] = []

    def check() -> bool | None:
        nonlocal last
        last = missing(ctx, nodes, workloads=not lost)
        return True if not last else None

    try:
        wait_for("the cluster to be ready", check, timeout=READY_TIMEOUT, interval=2.0, stopping=lambda: ctx.stopping)
    except TransportError as exc:  # the wait ran out (other errors, e.g. no credentials, say themselves)
        raise PhaseError(f"the cluster is not ready after {READY_TIMEOUT / 60:.0f}m: "
                         + ("; ".join(last[:6]) or exc.one_line()),
                         hint="kubectl get pods -A; journalctl -u kubelet on the nodes named") from None
    if lost:
        ctx.record("cluster", Status.WARNING, f"{len(nodes)} nodes Ready; CoreDNS and the DaemonSets not waited for: "
                                              f"{', '.join(lost)} failed in this run")
        return
    ctx.record("cluster", Status.UNCHANGED, f"{len(nodes)} nodes Ready, CoreDNS and the DaemonSets available")


PHASE = Phase("cluster-ready", "Wait until every node is Ready and CoreDNS and the node DaemonSets are available",
              run, hosts=FIRST_CONTROL_PLANE, fleet_only=True, needs_api_server=True)
