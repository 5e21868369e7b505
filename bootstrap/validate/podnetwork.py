"""The pod-network probe on a running cluster: deploy, wait for every agent's full round, read, remove.

Data flows one way: the objects (render/podprobe.py) are applied, the agents' reports are read
through the API server's pod proxy until every node's agent has resolved the peers, reached the
Service and every other agent (or the time is up), and the result is a PodNetworkReport. The probe's
namespace is deleted afterwards unless `keep`; one still terminating from an earlier run is waited for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bootstrap.errors import TransportError
from bootstrap.kube.api import ClusterAPI
from bootstrap.render.podprobe import APP, PORT, REPORT_PATH, AgentReport, ProbeOptions, parse_report, render_objects

POLL = 2.0


@dataclass(frozen=True)
class Agent:
    pod: str
    node: str
    ip: str | None
    problem: str | None = None  # why it is not running (ImagePullBackOff: ...), when it is not
    report: AgentReport | None = None


@dataclass(frozen=True)
class PeerResult:
    source: str  # node names
    target: str
    ip: str
    ok: bool
    detail: str


@dataclass
class PodNetworkReport:
    namespace: str
    image: str
    agents: list[Agent] = field(default_factory=list)
    nodes_without_agent: list[str] = field(default_factory=list)
    seconds: float = 0.0
    kept: bool = False

    @property
    def peers(self) -> list[PeerResult]:
        """Every running agent to every other running agent, as the source saw it."""
        out = []
        running = [a for a in self.agents if a.ip is not None and a.problem is None]
        for src in running:
            for dst in running:
                if dst is src:
                    continue
                answer = src.report.peers.get(dst.ip or "", "") if src.report else ""
                if answer is None:
                    out.append(PeerResult(src.node, dst.node, dst.ip or "", False, f"no answer on :{PORT}"))
                elif answer == "":
                    out.append(PeerResult(src.node, dst.node, dst.ip or "", False, "not in the peers' DNS answer"))
                else:
                    out.append(PeerResult(src.node, dst.node, dst.ip or "", answer == dst.pod,
                                          "ok" if answer == dst.pod else f"answered as {answer}"))
        return out

    def failures(self) -> list[str]:
        lines = [f"{n}: no probe pod (the DaemonSet did not place one: is the node schedulable?)"
                 for n in self.nodes_without_agent]
        for a in self.agents:
            if a.problem is not None:
                lines.append(f"{a.node}: probe pod {a.pod} is not running: {a.problem}")
            elif a.report is None:
                lines.append(f"{a.node}: probe pod {a.pod} wrote no report")
            else:
                if not a.report.dns_ok:
                    lines.append(f"{a.node}: cluster DNS did not resolve {a.report.dns_name}")
                if not a.report.service_ok:
                    lines.append(f"{a.node}: the Service {a.report.service_answer} did not answer")
        lines += [f"{p.source} -> {p.target} ({p.ip}): {p.detail}" for p in self.peers if not p.ok]
        return lines

    @property
    def ok(self) -> bool:
        return bool(self.agents) and not self.failures()

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "source": "kbootstrap pod-network probe", "namespace": self.namespace,
            "image": self.image, "seconds": round(self.seconds, 1), "kept": self.kept,
            "agents": [{"pod": a.pod, "node": a.node, "ip": a.ip, "problem": a.problem,
                        "dns": None if a.report is None else a.report.dns_ok,
                        "service": None if a.report is None else a.report.service_ok} for a in self.agents],
            "nodes_without_agent": self.nodes_without_agent,
            "peers": [{"from": p.source, "to": p.target, "ip": p.ip, "ok": p.ok, "detail": p.detail}
                      for p in self.peers],
            "failures": self.failures(),
        }


def _pod_problem(pod: dict[str, Any]) -> str | None:
    status = pod.get("status") or {}
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        for key in ("waiting", "terminated"):
            info = state.get(key)
            if info:
                reason = info.get("reason") or key
                message = (info.get("message") or "").strip().splitlines()
                return f"{reason}: {message[0]}" if message else reason
    if status.get("phase") != "Running":
        # A pod the kubelet refused (Evicted under disk pressure, OutOfcpu, ...) says why here.
        why = ": ".join(str(status[k]).strip() for k in ("reason", "message") if status.get(k))
        return f"phase {status.get('phase') or 'unknown'}" + (f" ({why})" if why else "")
    return None


def _agents(api: ClusterAPI, opts: ProbeOptions) -> list[Agent]:
    pods = api.list("v1", "Pod", opts.namespace, label_selector=f"app={APP}")
    out = []
    for pod in pods:
        meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
        if meta.get("deletionTimestamp"):
            continue
        node = spec.get("nodeName") or ""
        ip = status.get("podIP")
        out.append(Agent(meta.get("name", ""), node, ip, _pod_problem(pod)))
    return sorted(out, key=lambda a: a.node)


def _read_report(api: ClusterAPI, opts: ProbeOptions, agent: Agent) -> AgentReport | None:
    try:
        text = api.raw(f"/api/v1/namespaces/{opts.namespace}/pods/{agent.pod}:{PORT}/proxy{REPORT_PATH}")
    except TransportError:
        return None  # not serving yet; a later round says why if it never does
    return parse_report(text)


def _complete(agents: list[Agent]) -> bool:
    """Every agent runs and its last round saw DNS, the Service and every other agent answer."""
    if not agents or any(a.problem or a.report is None for a in agents):
        return False
    ips = {a.ip for a in agents}
    for a in agents:
        assert a.report is not None
        seen = {ip for ip, who in a.report.peers.items() if who}
        if not (a.report.dns_ok and a.report.service_ok and ips - {a.ip} <= seen):
            return False
    return True


def _schedulable_nodes(api: ClusterAPI) -> list[str]:
    return sorted(n["metadata"]["name"] for n in api.list("v1", "Node")
                  if not (n.get("spec") or {}).get("unschedulable"))


def _wait_namespace_gone(api: ClusterAPI, namespace: str, timeout: float,
                         clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
    deadline = clock() + timeout
    while True:
        ns = api.get("v1", "Namespace", namespace)
        meta = (ns or {}).get("metadata") or {}
        if ns is None or not meta.get("deletionTimestamp"):
            return
        if clock() > deadline:
            raise TransportError(f"namespace {namespace} is still terminating after {timeout:.0f}s",
                                 hint=f"see `kubectl get ns {namespace} -o yaml`")
        sleep(POLL)


def probe_pod_network(api: ClusterAPI, opts: ProbeOptions, *, timeout: float = 120.0, keep: bool = False,
                      clock: Callable[[], float] = time.monotonic,
                      sleep: Callable[[float], None] = time.sleep) -> PodNetworkReport:
    started = clock()
    objects = render_objects(opts)
    _wait_namespace_gone(api, opts.namespace, timeout, clock, sleep)
    for obj in objects:
        api.apply(obj)
    report = PodNetworkReport(opts.namespace, opts.image, kept=keep)
    try:
        deadline = clock() + timeout
        while True:
            nodes = _schedulable_nodes(api)
            agents = [Agent(a.pod, a.node, a.ip, a.problem, _read_report(api, opts, a) if a.problem is None else None)
                      for a in _agents(api, opts)]
            placed = {a.node for a in agents}
            report.agents = agents
            report.nodes_without_agent = [n for n in nodes if n not in placed]
            if (not report.nodes_without_agent and _complete(agents)) or clock() > deadline:
                break
            sleep(POLL)
    finally:
        if not keep:
            api.delete("v1", "Namespace", opts.namespace)
    report.seconds = clock() - started
    return report
