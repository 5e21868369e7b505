"""The node checks' prefetch, on this machine's real shell with files of our own (read-only commands):
the same results as one command per round trip, in one round trip for nearly every command."""

from __future__ import annotations

from pathlib import Path

import testinfra.host
from kbtest import CountingLocalTarget

from bootstrap.spec.load import build_spec
from bootstrap.validate.nodes import NodeCheck, TargetBackend, run_checks


def checks(tmp: Path) -> list[NodeCheck]:
    (tmp / "key").write_text("k")
    (tmp / "key").chmod(0o600)
    (tmp / "loose").write_text("x")
    (tmp / "loose").chmod(0o644)
    (tmp / "conf").write_text("SystemdCgroup = true\n")
    return [
        NodeCheck("a", "mode", str(tmp / "key"), forbid=0o177),
        NodeCheck("b", "mode", str(tmp / "loose"), forbid=0o177),
        NodeCheck("c", "exists", str(tmp / "conf")),
        NodeCheck("d", "absent", str(tmp / "nope")),
        NodeCheck("e", "contains", str(tmp / "conf"), "SystemdCgroup = true"),
        NodeCheck("f", "contains", str(tmp / "conf"), "missing text"),
        NodeCheck("g", "tree", str(tmp), pattern="*", forbid=0o177),
        NodeCheck("h", "mode", str(tmp / "nope"), forbid=0o177),  # answered by the batched stat too
        NodeCheck("i", "exists", str(tmp / "nope")),
    ]


def test_prefetch_gives_the_same_results_in_one_round_trip(tmp_path: Path) -> None:
    spec = build_spec({"apiserver_advertise_address": "10.0.0.1", "node_name": "cp1"})
    direct_target, fetched_target = CountingLocalTarget(), CountingLocalTarget()
    direct = [(r.check.id, r.status, r.message) for r in run_checks(
        testinfra.host.Host(_NoPrefetch(direct_target)), checks(tmp_path), spec)]
    fetched = [(r.check.id, r.status, r.message) for r in run_checks(
        testinfra.host.Host(TargetBackend(fetched_target)), checks(tmp_path), spec)]
    assert fetched == direct
    assert {s for _, s, _ in direct} == {"pass", "fail"}
    assert fetched_target.runs <= 2 < direct_target.runs


class _NoPrefetch(TargetBackend):
    """The same backend without its prefetch: every command is its own round trip."""

    def prefetch(self, commands: object) -> None:
        return None
