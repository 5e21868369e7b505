"""The engine with a fake live node: the runner returns a result, the context is the one gate, a
second run changes and restarts nothing, a dry run lists exactly the first run's changes, one host
failing leaves the others converged, restarts roll one host at a time, Ctrl-C stops at a safe point."""

from __future__ import annotations

import _thread
import threading
import time
from typing import Any

import pytest
from fake_node import FakeNode

from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import CONTROL_PLANES, Phase, Tree
from bootstrap.engine.result import RunResult, Status
from bootstrap.engine.runner import INTERRUPTED, RunState, run_tree
from bootstrap.errors import PhaseError
from bootstrap.phases import kubelet
from bootstrap.spec.inventory import CONTROL_PLANE, ETCD, NODE, InventoryHost
from bootstrap.spec.load import build_spec
from bootstrap.spec.model import ClusterSpec


def spec(name: str = "cp1") -> ClusterSpec:
    return build_spec({"apiserver_advertise_address": "10.0.0.1", "node_name": name})


def host(name: str, *roles: str) -> InventoryHost:
    return InventoryHost(name=name, address="127.0.0.1", ip="10.0.0.1", roles=frozenset(roles))


HOSTS = [host("cp1", CONTROL_PLANE, ETCD), host("cp2", CONTROL_PLANE, ETCD), host("w1", NODE)]


def config_phase(ctx: RunContext) -> None:
    """Two files, a service restarted only when its config changed."""
    written = ctx.ensure_files([
        ("/etc/demo/demo.conf", f"node={ctx.name}\nversion={ctx.spec.kubernetes_version}\n".encode(), 0o644),
        ("/etc/demo/secret.key", b"k", 0o600),
    ])
    ctx.ensure_dir("/var/lib/demo", 0o700)
    ctx.service("demo", restart=written["/etc/demo/demo.conf"], why="demo.conf changed")


def cp_only_phase(ctx: RunContext) -> None:
    state = ctx.fact("systemctl is-active demo-cp")
    if state is not None and not state.ok:
        ctx.run_change("systemctl start demo-cp", "start demo-cp", changes=["start demo-cp"])
        ctx.record("start demo-cp", Status.UPDATED)


TREE = Tree((
    Phase("config", "demo config", config_phase),
    Phase("cp", "control planes only", cp_only_phase, hosts=CONTROL_PLANES),
))


def make_run(nodes: dict[str, FakeNode], *, dry_run: bool = False, tree_spec: ClusterSpec | None = None) -> RunState:
    contexts = {
        h.name: RunContext(tree_spec or spec(h.name), nodes[h.name], dry_run=dry_run, roles=h.roles)
        for h in HOSTS if h.name in nodes
    }
    return RunState({h.name: h for h in HOSTS}, contexts, RunResult({}), first_control_plane="cp1", dry_run=dry_run)


def fresh() -> dict[str, FakeNode]:
    return {h.name: FakeNode(h.name) for h in HOSTS}


def changes(result: RunResult) -> set[tuple[str, str, str, str]]:
    return {(h, c.phase, c.item, c.status.value) for h, r in result.hosts.items()
            for p in r.phases for c in p.changes if c.status.changed}


def test_second_run_changes_and_restarts_nothing() -> None:
    nodes = fresh()
    first = run_tree(TREE, make_run(nodes), set())
    assert not first.failed and sum(r.changed for r in first.hosts.values()) > 0
    assert {n: nodes[n].unit("demo").starts for n in nodes} == {"cp1": 1, "cp2": 1, "w1": 1}
    assert nodes["w1"].unit("demo-cp").starts == 0 and nodes["cp2"].unit("demo-cp").starts == 1
    assert nodes["cp1"].dirs["/var/lib/demo"] == 0o700
    second = run_tree(TREE, make_run(nodes), set())
    assert not second.failed and changes(second) == set()
    assert {n: nodes[n].unit("demo").starts for n in nodes} == {"cp1": 1, "cp2": 1, "w1": 1}  # not restarted


def test_changed_input_restarts_and_says_why() -> None:
    nodes = fresh()
    run_tree(TREE, make_run(nodes), set())
    newer = build_spec({"apiserver_advertise_address": "10.0.0.1", "node_name": "cp1", "kubernetes_version": "v1.33.1"})
    result = run_tree(TREE, make_run(nodes, tree_spec=newer), set())
    restarts = [c for c in result.hosts["cp1"].phases[0].changes if c.item == "start demo"]
    assert restarts[0].status == Status.UPDATED and restarts[0].detail == "restarted (demo.conf changed)"
    assert nodes["cp1"].unit("demo").starts == 2


def test_dry_run_lists_exactly_the_first_runs_changes_and_does_nothing() -> None:
    dry_nodes, real_nodes = fresh(), fresh()
    dry = run_tree(TREE, make_run(dry_nodes, dry_run=True), set())
    assert all(not n.files and all(not u.active for u in n.units.values()) for n in dry_nodes.values())
    real = run_tree(TREE, make_run(real_nodes), set())
    assert changes(dry) == changes(real)


def test_existing_directory_mode_is_fixed_and_reported() -> None:
    nodes = fresh()
    nodes["cp1"].dirs["/var/lib/demo"] = 0o755
    result = run_tree(TREE, make_run(nodes), set())
    fixed = [c for c in result.hosts["cp1"].phases[0].changes if c.item == "/var/lib/demo/"]
    assert fixed and fixed[0].detail == "mode 0755 -> 0700" and nodes["cp1"].dirs["/var/lib/demo"] == 0o700


def test_a_failing_host_fails_alone_and_the_others_converge() -> None:
    nodes = fresh()
    nodes["cp2"].down = True
    result = run_tree(TREE, make_run(nodes), set())
    assert result.hosts["cp2"].failed and "lost" in result.hosts["cp2"].to_json()["error"]
    assert not result.hosts["cp1"].failed and not result.hosts["w1"].failed
    assert nodes["cp1"].unit("demo-cp").active  # cp1 went on to the next phase
    assert [p.name for p in result.hosts["cp2"].phases] == ["config"]  # left out of later phases
    nodes["cp2"].down = False
    again = run_tree(TREE, make_run(nodes), set())
    assert not again.failed and {h for h, *_ in changes(again)} == {"cp2"}  # the rerun converges it


def test_kubelet_is_restarted_only_when_its_inputs_change() -> None:
    node = FakeNode("cp1", hostname="cp1", installed={"/usr/bin/kubelet"})
    node.files["/etc/hostname"] = node.files.get("/etc/hostname") or __import__(
        "bootstrap.transport.base", fromlist=["FileState"]).FileState(b"cp1\n", 0o644)

    def once(s: ClusterSpec) -> RunResult:
        ctx = RunContext(s, node)
        run = RunState({"cp1": HOSTS[0]}, {"cp1": ctx}, RunResult({}), first_control_plane="cp1")
        return run_tree(Tree((kubelet.PHASE,)), run, set())

    first = once(spec())
    assert node.unit("kubelet").starts == 1 and node.unit("kubelet").enabled
    assert any(c.item == "start kubelet" and c.status == Status.UPDATED for c in first.hosts["cp1"].phases[0].changes)
    second = once(spec())
    assert changes(second) == set() and node.unit("kubelet").starts == 1
    third = once(build_spec({"apiserver_advertise_address": "10.0.0.1", "node_name": "cp1",
                             "kubernetes_version": "v1.33.1"}))
    start = next(c for c in third.hosts["cp1"].phases[0].changes if c.item == "start kubelet")
    assert node.unit("kubelet").starts == 2 and "config.yaml" in start.detail and "restarted" in start.detail
    # containerd restarted after the kubelet (a rerun fixed its config after a reboot): the kubelet
    # holds the runtime's old cgroup driver, so it is restarted once, and a rerun leaves it alone.
    node.unit("containerd").active = True
    node._systemctl(["restart", "containerd"], [])
    fourth = once(build_spec({"apiserver_advertise_address": "10.0.0.1", "node_name": "cp1",
                              "kubernetes_version": "v1.33.1"}))
    start = next(c for c in fourth.hosts["cp1"].phases[0].changes if c.item == "start kubelet")
    assert node.unit("kubelet").starts == 3 and "containerd restarted after the kubelet" in start.detail
    fifth = once(build_spec({"apiserver_advertise_address": "10.0.0.1", "node_name": "cp1",
                             "kubernetes_version": "v1.33.1"}))
    assert changes(fifth) == set() and node.unit("kubelet").starts == 3


def test_rolling_restarts_one_host_at_a_time_and_a_failed_gate_stops_the_roll() -> None:
    inside, most = [0], [0]
    lock = threading.Lock()
    order: list[str] = []

    def gate_for(ctx: RunContext) -> None:
        if ctx.name == "cp1":
            raise PhaseError("not healthy after the restart")

    def roll(ctx: RunContext) -> None:
        with ctx.rolling("demo", gate=lambda: gate_for(ctx)):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
                order.append(ctx.name)
            time.sleep(0.05)
            with lock:
                inside[0] -= 1

    nodes = fresh()
    result = run_tree(Tree((Phase("roll", "rolling", roll),)), make_run(nodes), set())
    assert most[0] == 1  # never two hosts inside at once
    failed = {h for h, r in result.hosts.items() if r.failed}
    if order[0] == "cp1":  # the first host failed its gate: nobody after it was touched
        assert failed == set(nodes) and order == ["cp1"]
    else:
        assert "cp1" in failed


def test_ctrl_c_stops_at_the_next_safe_point_and_says_so_at_once() -> None:
    told: list[float] = []

    def interrupting(ctx: RunContext) -> None:
        if ctx.name == "cp1":
            _thread.interrupt_main()  # Ctrl-C, delivered to the main thread that waits on the hosts
        time.sleep(0.3)
        ctx.record("work", Status.UPDATED)

    tree = Tree((Phase("one", "first", interrupting), Phase("two", "never reached", config_phase)))
    run = make_run(fresh())
    run.on_interrupt = lambda: told.append(time.monotonic())
    started = time.monotonic()
    result = run_tree(tree, run, set())
    assert told and told[0] - started < 0.3  # said at once, not after the step
    assert result.interrupted and result.failed
    one = {h: r.phases[0] for h, r in result.hosts.items()}
    assert one["cp1"].changes[0].item == "work"  # a host that had started finished its step
    assert all(p.skipped_reason == INTERRUPTED or p.changes[0].item == "work" for p in one.values())
    assert all(r.phases[1].skipped_reason == INTERRUPTED for r in result.hosts.values())  # nothing new started


@pytest.mark.parametrize("dry_run", [False, True])
def test_run_state_slots_are_per_run(dry_run: bool) -> None:
    a, b = make_run(fresh(), dry_run=dry_run), make_run(fresh(), dry_run=dry_run)
    a.slot(dict).update(x=1)
    assert b.slot(dict) == {} and a.slot(dict) == {"x": 1}


def test_unexpected_error_is_one_line_with_the_debug_log(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("KBOOTSTRAP_DEBUG_LOG", str(tmp_path / "debug.log"))

    def buggy(ctx: RunContext) -> None:
        raise ZeroDivisionError("oops")

    result = run_tree(Tree((Phase("bug", "a bug", buggy),)), make_run(fresh()), set())
    error = result.hosts["cp1"].error or ""
    assert "ZeroDivisionError: oops" in error and str(tmp_path / "debug.log") in error and "\n" not in error
    assert "Traceback" in (tmp_path / "debug.log").read_text()
