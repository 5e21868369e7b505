"""netcheck without machines: the plan, the probe script, parsing, the matrix, the summary, exit codes.

A fake target answers the probe script the way a network would (FakeNet: names, blocked pairs and
ports, hosts down); one test runs the real script in a local bash against a real listening socket.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from bootstrap.spec.inventory import Inventory, load_inventory
from bootstrap.spec.model import ClusterSpec
from bootstrap.transport.base import CommandResult
from bootstrap.validate.netcheck import (
    ENDPOINT,
    MARK,
    NodeFacts,
    Probe,
    expected_ports,
    parse_facts,
    parse_results,
    plan_probes,
    probe_script,
    run_netcheck,
)
from bootstrap.validate.report import netcheck_text
from bootstrap.workflow.fleet_spec import fleet_cluster_spec, node_specs

NODES = {"cp1": "10.9.0.11", "cp2": "10.9.0.12", "cp3": "10.9.0.13", "w1": "10.9.0.21"}


def write_inventory(tmp_path: Path, n_workers: int = 1, endpoint: str | None = None) -> Inventory:
    nodes = dict(list(NODES.items())[:3])
    nodes.update({f"w{i}": f"10.9.0.{20 + i}" for i in range(1, n_workers + 1)})
    cps = [n for n in nodes if n.startswith("cp")]
    doc = {"all": {
        "hosts": {n: {"ansible_host": ip, "ip": ip} for n, ip in nodes.items()},
        "children": {
            "kube_control_plane": {"hosts": {n: None for n in cps}},
            "etcd": {"hosts": {n: None for n in cps}},
            "kube_node": {"hosts": {n: None for n in nodes if n.startswith("w")}},
        },
        **({"vars": {"apiserver_loadbalancer_domain_name": endpoint,
                     "loadbalancer_apiserver": {"address": "10.9.0.100", "port": 8443}}} if endpoint else {}),
    }}
    path = tmp_path / "hosts.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_inventory(str(path))


ETCD_UP = "unit etcd active\nunit kubelet inactive\nunit containerd active\nkubelet-binary no\n"


@dataclass
class FakeNet:
    """What the network looks like from the nodes."""

    ips: dict[str, str]
    names: dict[str, str] = field(default_factory=dict)  # name -> address the resolver gives
    blocked: set[tuple[str, str, int]] = field(default_factory=set)  # (from ip, to ip, port)
    down: set[str] = field(default_factory=set)  # ips that do not answer at all
    listening: dict[str, set[int]] = field(default_factory=dict)  # ip -> open ports

    def answer(self, src_ip: str, script: str) -> str:
        out = []
        for m in re.finditer(r"^(dns|png|tcp) (\d+) (\S+)(?: (\d+))? &$", script, re.M):
            kind, pid, subject, port = m[1], m[2], m[3].strip("'"), int(m[4] or 0)
            if kind == "dns":
                addr = self.names.get(subject)
                out.append(f"{MARK}\t{pid}\tok\t1\t{addr}" if addr else f"{MARK}\t{pid}\tfail\t1\tname not found")
            elif kind == "png":
                ok = subject not in self.down
                out.append(f"{MARK}\t{pid}\t{'ok' if ok else 'fail'}\t2\t{'2 received' if ok else 'no reply'}")
            else:
                if subject in self.down or (src_ip, subject, port) in self.blocked:
                    out.append(f"{MARK}\t{pid}\tfail\t2000\ttimed out after 2s")
                elif port in self.listening.get(subject, set()):
                    out.append(f"{MARK}\t{pid}\tok\t3\tconnected")
                else:
                    out.append(f"{MARK}\t{pid}\tfail\t1\tConnection refused")
        return "motd noise\n" + "\n".join(out) + "\n"


class FakeTarget:
    live = True

    def __init__(self, name: str, net: FakeNet, facts: str = ETCD_UP) -> None:
        self.name, self.net, self.facts = name, net, facts
        self.scripts: list[str] = []

    def run(self, script: str, *, timeout: float | None = None) -> CommandResult:
        self.scripts.append(script)
        if "systemctl is-active" in script:
            return CommandResult(0, self.facts, "")
        return CommandResult(0, self.net.answer(self.net.ips[self.name], script), "")


def healthy_net(inv: Inventory) -> FakeNet:
    ips = {h.name: h.ip for h in inv.hosts}
    listening = {h.ip: ({2379, 2380} if h.is_etcd else set()) for h in inv.hosts}
    return FakeNet(ips, names=dict(ips), listening=listening)


def targets_for(inv: Inventory, net: FakeNet, facts: dict[str, str] | None = None) -> dict[str, FakeTarget]:
    return {h.name: FakeTarget(h.name, net, (facts or {}).get(h.name, ETCD_UP if h.is_etcd else
            "unit etcd inactive\nunit kubelet inactive\nunit containerd active\nkubelet-binary no\n"))
            for h in inv.hosts}


@pytest.fixture
def inv(tmp_path: Path) -> Inventory:
    return write_inventory(tmp_path)


@pytest.fixture
def spec(inv: Inventory) -> ClusterSpec:
    return fleet_cluster_spec({}, inv)


# ---- facts and expected ports ---------------------------------------------------------------------
def test_parse_facts() -> None:
    f = parse_facts("unit etcd active\nunit kubelet \nkubelet-binary yes\nmanifest kube-apiserver.yaml\nnoise\n")
    assert f.reachable and f.active("etcd") and not f.active("kubelet")
    assert f.kubelet_installed and f.manifests == {"kube-apiserver.yaml"}


def test_expected_ports_say_why_a_service_is_not_expected(inv: Inventory, spec: ClusterSpec) -> None:
    cp1, w1 = inv.host("cp1"), inv.host("w1")
    lab = parse_facts(ETCD_UP + "manifest kube-apiserver.yaml\n")
    ports = {p: why for p, _, why in expected_ports(cp1, spec, lab)}
    assert ports[2379] == "" and ports[2380] == ""  # etcd unit active: must answer
    assert ports[6443] == "API server not running (static pod needs a kubelet; kubelet not running (not installed))"
    assert ports[10250] == "kubelet not running (not installed)"
    # A kubelet installed and active: both the kubelet and the API server are expected up.
    full = parse_facts("unit etcd active\nunit kubelet active\nkubelet-binary yes\nmanifest kube-apiserver.yaml\n")
    assert all(why == "" for _, _, why in expected_ports(cp1, spec, full))
    # etcd stopped: skipped with systemd's word for it; a worker serves no etcd and no API server.
    stopped = parse_facts("unit etcd failed\nkubelet-binary no\n")
    assert {p: why for p, _, why in expected_ports(cp1, spec, stopped)}[2379] == (
        "etcd not running (systemd unit etcd is failed)")
    assert [p for p, _, _ in expected_ports(w1, spec, lab)] == [10250]
    # No facts (host unreachable): nothing can be expected.
    assert all("unreachable" in why for _, _, why in expected_ports(cp1, spec, None))


# ---- the plan and the script ----------------------------------------------------------------------
def test_plan_covers_every_pair(inv: Inventory, spec: ClusterSpec) -> None:
    facts = {h.name: parse_facts(ETCD_UP) for h in inv.hosts}
    plan = plan_probes(inv, spec, facts)
    assert set(plan) == {"cp1", "cp2", "cp3", "w1"}
    cp1 = plan["cp1"]
    assert [p.subject for p in cp1 if p.kind == "dns" and p.target != ENDPOINT] == ["cp1", "cp2", "cp3", "w1"]
    assert [p.target for p in cp1 if p.kind == "ping"] == ["cp2", "cp3", "w1"]
    run_ports = sorted((p.target, p.port) for p in cp1 if p.kind == "port" and not p.skip)
    assert run_ports == [("cp2", 2379), ("cp2", 2380), ("cp3", 2379), ("cp3", 2380)]
    # The endpoint here is an IP (first control plane): nothing to resolve, and no API server is up.
    ep = [p for p in cp1 if p.target == ENDPOINT]
    assert [p.kind for p in ep] == ["dns", "port"] and all(p.skip for p in ep)


def test_endpoint_name_is_resolved(tmp_path: Path) -> None:
    inv = write_inventory(tmp_path, endpoint="api.example.lab")
    spec = fleet_cluster_spec({}, inv)
    plan = plan_probes(inv, spec, {})
    ep = [p for p in plan["w1"] if p.target == ENDPOINT and p.kind == "dns"]
    assert spec.endpoint_host_port() == ("api.example.lab", 8443)
    assert ep and ep[0].subject == "api.example.lab" and not ep[0].skip


def test_script_runs_probes_as_background_jobs_and_skips_skipped() -> None:
    probes = [Probe("a", "b", "dns", "b"), Probe("a", "b", "ping", "10.0.0.2"),
              Probe("a", "b", "port", "10.0.0.2", 2379, "etcd client"),
              Probe("a", "b", "port", "10.0.0.2", 10250, "kubelet", skip="kubelet not running")]
    script = probe_script(probes)
    assert "dns 0 b &" in script and "png 1 10.0.0.2 &" in script and "tcp 2 10.0.0.2 2379 &" in script
    assert "10250" not in script.split("tcp() {", 1)[1].split("}\n", 1)[1]
    assert script.rstrip().endswith("wait\nexit 0")
    # Only node tools: getent, ping, timeout and bash's /dev/tcp.
    assert "/dev/tcp/" in script and "getent ahosts" in script and "python" not in script


def test_real_script_in_local_bash() -> None:
    """The probe script as bash runs it: a real listener, a refused port, a name and a missing name."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]  # bound, not listening: refused
    try:
        probes = [Probe("a", "a", "dns", "localhost", expect=("127.0.0.1", "::1")),
                  Probe("a", "b", "dns", "no-such-name.invalid"),
                  Probe("a", "b", "port", "127.0.0.1", port, "etcd client"),
                  Probe("a", "b", "port", "127.0.0.1", closed_port, "etcd peer")]
        proc = subprocess.run(["bash", "-s"], input=probe_script(probes), capture_output=True, text=True, timeout=30)
    finally:
        server.close()
        closed.close()
    results = parse_results("a", probes, proc.stdout)
    assert [r.status for r in results] == ["ok", "fail", "ok", "fail"], proc.stdout + proc.stderr
    assert "name not found" in results[1].detail
    assert results[3].detail == "Connection refused"
    assert all(r.ms is not None and r.ms >= 0 for r in results)


def test_parse_marks_missing_results_and_wrong_addresses() -> None:
    probes = [Probe("a", "b", "dns", "b", expect=("10.0.0.2",)), Probe("a", "b", "ping", "10.0.0.2"),
              Probe("a", "a", "dns", "a", expect=("10.0.0.1",))]
    out = f"{MARK}\t0\tok\t3\t10.0.0.99\n{MARK}\t2\tok\t1\t127.0.1.1\ngarbage\t1\n"
    r = parse_results("a", probes, out)
    assert r[0].failed and r[0].detail == "resolves to 10.0.0.99, the inventory says 10.0.0.2"
    assert r[1].failed and "no result" in r[1].detail
    assert not r[2].failed  # a node's own name on loopback (Debian's 127.0.1.1) is fine


# ---- the whole run, matrix and summary ------------------------------------------------------------
def test_all_green(inv: Inventory, spec: ClusterSpec) -> None:
    net = healthy_net(inv)
    targets = targets_for(inv, net)
    report = run_netcheck(inv, spec, targets)  # type: ignore[arg-type]
    assert not report.failed, report.failures
    assert report.counts()["checked"] == 12 and report.counts()["failed"] == 0
    assert report.summary().startswith("netcheck: 12 pairs checked, 0 failed")
    # One facts round trip and one probe round trip per node, no more.
    assert all(len(t.scripts) == 2 for t in targets.values())
    text = netcheck_text(report)
    assert "ok" in text and "✗" not in text
    assert "skipped port 10250 (kubelet) on cp1, cp2, cp3, w1: kubelet not running (not installed)" in text


def test_blocked_port_names_exactly_that_pair_and_port(inv: Inventory, spec: ClusterSpec) -> None:
    net = healthy_net(inv)
    net.blocked = {(NODES["cp1"], NODES["cp2"], 2379), (NODES["cp2"], NODES["cp1"], 2379)}
    report = run_netcheck(inv, spec, targets_for(inv, net))  # type: ignore[arg-type]
    assert report.failed
    assert sorted((r.probe.source, r.probe.target, r.probe.port) for r in report.failures) == [
        ("cp1", "cp2", 2379), ("cp2", "cp1", 2379)]
    data = report.to_json()
    assert data["failed_pairs"] == [{"source": "cp1", "target": "cp2", "failed": ["2379"]},
                                    {"source": "cp2", "target": "cp1", "failed": ["2379"]}]
    assert "netcheck: 12 pairs checked, 2 failed (cp1->cp2, cp2->cp1)" in report.summary()
    text = netcheck_text(report)
    assert "cp1 -> cp2: tcp 10.9.0.12:2379 (etcd client): timed out after 2s" in text
    assert text.count("✗") == 2
    json.dumps(data)  # serialisable


def test_host_down_is_unreachable_and_other_pairs_are_checked(inv: Inventory, spec: ClusterSpec) -> None:
    net = healthy_net(inv)
    net.down = {NODES["w1"]}
    targets = targets_for(inv, net)
    del targets["w1"]  # the connect failed
    report = run_netcheck(inv, spec, targets, unreachable={"w1": "cannot reach w1: no route to host"})  # type: ignore[arg-type]
    assert report.unreachable == {"w1": "cannot reach w1: no route to host"}
    assert {(r.probe.source, r.probe.target, r.probe.kind) for r in report.failures} == {
        ("cp1", "w1", "ping"), ("cp2", "w1", "ping"), ("cp3", "w1", "ping")}
    c = report.counts()
    assert c["checked"] == 9 and c["not_checked"] == 3 and c["failed"] == 3
    # Ports of a host we have no facts from are skipped, with the reason.
    w1_ports = [r for r in report.results if r.probe.target == "w1" and r.probe.kind == "port"]
    assert w1_ports and all(r.status == "skipped" and "unreachable" in r.detail for r in w1_ports)
    assert "w1 (unreachable)" in netcheck_text(report)


def test_missing_dns_name_names_the_failing_resolutions(inv: Inventory, spec: ClusterSpec) -> None:
    net = healthy_net(inv)
    del net.names["w1"]
    report = run_netcheck(inv, spec, targets_for(inv, net))  # type: ignore[arg-type]
    assert sorted((r.probe.source, r.probe.subject) for r in report.failures) == [
        ("cp1", "w1"), ("cp2", "w1"), ("cp3", "w1"), ("w1", "w1")]
    assert all(r.probe.kind == "dns" for r in report.failures)


def test_twenty_nodes_matrix(tmp_path: Path) -> None:
    inv = write_inventory(tmp_path, n_workers=17)
    spec = fleet_cluster_spec({}, inv)
    report = run_netcheck(inv, spec, targets_for(inv, healthy_net(inv)))  # type: ignore[arg-type]
    assert report.counts()["pairs"] == 380 and not report.failed


# ---- the command: exit codes and JSON --------------------------------------------------------------
def test_command_exit_codes(monkeypatch: pytest.MonkeyPatch, inv: Inventory) -> None:
    from click.testing import CliRunner

    from bootstrap.commands import netcheck as cmd
    from bootstrap.workflow import check

    net = healthy_net(inv)
    monkeypatch.setattr(check, "connect", lambda inv_, names, opts: targets_for(inv_, net))
    runner = CliRunner()
    ok = runner.invoke(cmd.netcheck, ["-i", str(inv.path), "-o", "json"])
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.output)
    assert data["ok"] is True and data["counts"]["pairs"] == 12
    assert {"source", "target", "kind", "status", "detail", "ms"} <= set(data["probes"][0])
    net.blocked = {(NODES["w1"], NODES["cp3"], 2380)}
    bad = runner.invoke(cmd.netcheck, ["-i", str(inv.path)])
    assert bad.exit_code == 1
    assert "w1 -> cp3: tcp 10.9.0.13:2380 (etcd peer)" in bad.output
    assert "1 failed (w1->cp3)" in bad.output


def test_facts_lost_host_is_unreachable(inv: Inventory, spec: ClusterSpec) -> None:
    net = healthy_net(inv)
    targets = targets_for(inv, net)

    class Lost(FakeTarget):
        def run(self, script: str, *, timeout: float | None = None) -> CommandResult:
            raise OSError("connection lost")

    targets["cp3"] = Lost("cp3", net)
    report = run_netcheck(inv, spec, targets)  # type: ignore[arg-type]
    assert report.unreachable == {"cp3": "connection lost"}
    assert NodeFacts(False).active("etcd") is False


def test_validate_fleet_skip_phases(inv: Inventory, spec: ClusterSpec) -> None:
    from bootstrap.validate.fleet import validate_fleet

    targets = targets_for(inv, healthy_net(inv))
    only_net = validate_fleet(inv, node_specs(spec, inv), targets, bundle=None, skip_phases=["validate/nodes"])  # type: ignore[arg-type]
    assert only_net.nodes is None and only_net.netcheck is not None and not only_net.failed
    assert "netcheck: 12 pairs checked, 0 failed" in only_net.render()
    none = validate_fleet(inv, node_specs(spec, inv), targets, bundle=None, output="json", skip_phases=["validate"])  # type: ignore[arg-type]
    assert none.netcheck is None and none.nodes is None and not none.failed
    assert json.loads(none.render())["skipped"] == {"netcheck": "--skip-phases", "validate": "--skip-phases"}
