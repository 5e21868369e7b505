"""`endpoint health --cluster` read as etcdctl prints it: the member asked through is judged from the
cluster's list when its client URL is there (one etcdctl run), and asked on its own otherwise."""

from __future__ import annotations

from collections.abc import Callable

from bootstrap.etcd.members import cluster_health
from bootstrap.transport.base import CommandResult

CLUSTER = CommandResult(
    1,
    "https://10.0.0.1:2379 is healthy: successfully committed proposal: took = 2.1ms\n"
    "https://10.0.0.3:2379 is healthy: successfully committed proposal: took = 3.0ms\n",
    "https://10.0.0.2:2379 is unhealthy: failed to commit proposal: context deadline exceeded\n"
    "Error: unhealthy cluster\n",
)


def etcdctl(calls: list[str]) -> Callable[[str], CommandResult]:
    def run(args: str) -> CommandResult:
        calls.append(args)
        return CLUSTER if args == "endpoint health --cluster" else CommandResult(0, "ok\n", "")
    return run


def test_the_local_member_is_read_from_the_cluster_list() -> None:
    calls: list[str] = []
    health = cluster_health(etcdctl(calls), "https://10.0.0.1:2379")
    assert calls == ["endpoint health --cluster"]
    assert health.local_ok and health.quorum and health.unhealthy == ("https://10.0.0.2:2379",)
    calls.clear()
    assert not cluster_health(etcdctl(calls), "https://10.0.0.2:2379").local_ok
    assert calls == ["endpoint health --cluster"]


def test_an_unlisted_local_member_is_asked_on_its_own() -> None:
    calls: list[str] = []
    health = cluster_health(etcdctl(calls), "https://10.9.9.9:2379")
    assert calls == ["endpoint health --cluster", "endpoint health"] and health.local_ok
    calls.clear()
    assert cluster_health(etcdctl(calls)).local_ok and len(calls) == 2
