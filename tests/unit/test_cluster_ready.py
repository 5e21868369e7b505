"""cluster-ready's verdict from the API's objects: what is still missing, and what is waited for
when a host of the run failed (its pods may never come back)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from bootstrap.phases import cluster_ready


class ObjectsAPI:
    """The two reads cluster-ready makes, over a fixed set of objects (pure logic: no server)."""

    def __init__(self, objects: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.objects = objects

    def list(self, api_version: str, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return [o for (k, _), o in self.objects.items() if k == kind]

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.objects.get((kind, name))


def node(name: str, ready: bool) -> dict[str, Any]:
    return {"metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def daemonset(available: int, desired: int) -> dict[str, Any]:
    return {"status": {"desiredNumberScheduled": desired, "numberAvailable": available,
                       "updatedNumberScheduled": desired}}


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> ObjectsAPI:
    found = ObjectsAPI({
        ("Node", "cp1"): node("cp1", True),
        ("Node", "w1"): node("w1", False),
        ("Deployment", "coredns"): {"spec": {"replicas": 2}, "status": {"availableReplicas": 1}},
        ("DaemonSet", "kube-proxy"): daemonset(2, 2),
        ("DaemonSet", "kube-router"): daemonset(1, 2),
    })
    monkeypatch.setattr(cluster_ready, "cluster_api", lambda ctx: found)
    return found


def test_missing_names_every_gap(api: ObjectsAPI) -> None:
    ctx: Any = SimpleNamespace()
    assert cluster_ready.missing(ctx, ["cp1", "w1", "w2"]) == [
        "Node w1 not Ready", "Node w2 not registered", "CoreDNS 1/2 available", "DaemonSet kube-router 1/2 available",
    ]


def test_without_workloads_only_the_nodes_count(api: ObjectsAPI) -> None:
    ctx: Any = SimpleNamespace()
    assert cluster_ready.missing(ctx, ["cp1"], workloads=False) == []
    api.objects[("Node", "w1")] = node("w1", True)
    assert cluster_ready.missing(ctx, ["cp1", "w1"]) == ["CoreDNS 1/2 available", "DaemonSet kube-router 1/2 available"]
