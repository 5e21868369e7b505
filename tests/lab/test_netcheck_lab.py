"""netcheck and validate on a real lab cluster (3 control planes + 1 worker, etcd in host mode), with
faults put in on purpose: a blocked port between two machines, a name removed from the lab DNS, a key
file's mode loosened, a machine powered off. Every fault is healed in a finally block.

The commands run in a subprocess, over real SSH with host keys checked; the cluster is provisioned
once for the module with `kbootstrap init -i`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bootstrap.lab import ops
from bootstrap.lab.state import LabState
from bootstrap.lab.testing import sh

pytestmark = pytest.mark.lab

KEY = "/etc/kubernetes/pki/apiserver.key"


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "200"})


def command(name: str, *args: str, timeout: float = 120) -> tuple[int, dict[str, Any]]:
    """`kbootstrap NAME ARGS -o json` in a subprocess."""
    proc = run("-m", "bootstrap.cli", name, *args, "-o", "json", timeout=timeout)
    try:
        return proc.returncode, json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}") from None


@pytest.fixture(scope="module")
def cluster(module_lab_factory: Any, bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    lab: LabState = module_lab_factory(control_planes=3, workers=1)
    inventory = Path(lab.inventory_dir) / "hosts.yaml"
    pki = tmp_path_factory.mktemp("pki")
    proc = run("-m", "bootstrap.cli", "init", "-i", str(inventory), "--pki-dir", str(pki), "-o", "json", timeout=600)
    failing = re.findall(r'\{[^{}]*"(?:status|result)": "(?:fail|error)"[^{}]*\}', proc.stdout)[:10]
    assert proc.returncode == 0, f"init failed: {failing}\n{proc.stdout[-1500:]}\n{proc.stderr[-2000:]}"
    return {"lab": lab, "inventory": str(inventory)}


def names(lab: LabState) -> dict[str, str]:
    """short -> full machine name: cp1 -> t1a2b3c-cp1."""
    return {m.name.rsplit("-", 1)[1]: m.name for m in lab.machines}


def failures(report: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(p["source"], p["target"], str(p.get("port") or p["kind"])) for p in report["probes"]
            if p["status"] == "fail"}


def test_netcheck_all_green(cluster: dict[str, Any]) -> None:
    code, report = command("netcheck", "-i", cluster["inventory"])
    assert code == 0, report["summary"]
    assert report["counts"]["pairs"] == 12 and report["counts"]["checked"] == 12 and report["counts"]["failed"] == 0
    n = names(cluster["lab"])
    probed = {(p["source"], p["target"], p["port"]) for p in report["probes"] if p["kind"] == "port" and
              p["status"] == "ok"}
    # etcd (a systemd unit here) answers on every member, from every other node.
    assert (n["w1"], n["cp3"], 2380) in probed and (n["cp1"], n["cp2"], 2379) in probed
    # A real cluster: the API server on every control plane and the kubelet on every node answer.
    assert (n["w1"], n["cp1"], 6443) in probed and (n["cp1"], n["w1"], 10250) in probed
    assert not [p for p in report["probes"] if p["status"] == "skipped" and p.get("port") in (6443, 10250)
                and p["target"] != "endpoint"]


def test_validate_green_on_the_fresh_cluster(cluster: dict[str, Any]) -> None:
    code, report = command("validate", "-i", cluster["inventory"])
    bad = {n: [c for c in v["checks"] if c["status"] in ("fail", "error")] for n, v in report["validate"]["nodes"].items()}
    assert code == 0, json.dumps(bad, indent=1)
    cp1 = report["validate"]["nodes"][names(cluster["lab"])["cp1"]]["checks"]
    passed = {c["id"] for c in cp1 if c["status"] == "pass"}
    assert {"service containerd", "service etcd", "swap off", "binary kubectl", f"file {KEY}"} <= passed
    w1 = report["validate"]["nodes"][names(cluster["lab"])["w1"]]["checks"]
    assert {c["id"] for c in w1 if c["status"] == "pass"} >= {"no /etc/kubernetes/pki/ca.key"}


def test_blocked_port_names_exactly_that_pair_and_port(cluster: dict[str, Any]) -> None:
    lab, n = cluster["lab"], names(cluster["lab"])
    ops.block(lab.name, n["cp1"], port=2379, peer=n["cp2"])
    try:
        code, report = command("netcheck", "-i", cluster["inventory"])
    finally:
        ops.heal(lab.name, n["cp1"])
    assert code == 1
    assert failures(report) == {(n["cp1"], n["cp2"], "2379"), (n["cp2"], n["cp1"], "2379")}
    assert report["counts"]["checked"] == 12 and report["counts"]["failed"] == 2


def test_removed_dns_name_names_the_failing_resolutions(cluster: dict[str, Any]) -> None:
    lab, n = cluster["lab"], names(cluster["lab"])
    ops.dns_set(lab.name, n["w1"], False)
    try:
        code, report = command("netcheck", "-i", cluster["inventory"])
    finally:
        ops.dns_set(lab.name, n["w1"], True)
    assert code == 1
    # Every other node fails to resolve w1; w1 knows its own name from /etc/hosts.
    assert failures(report) == {(n[s], n["w1"], "dns") for s in ("cp1", "cp2", "cp3")}
    details = {p["detail"] for p in report["probes"] if p["status"] == "fail"}
    assert details == {"name not found (NXDOMAIN or no record)"}


def test_validate_names_a_loosened_key_file(cluster: dict[str, Any]) -> None:
    lab, n = cluster["lab"], names(cluster["lab"])
    assert sh(lab, n["cp2"], f"chmod 0644 {KEY}")[0] == 0
    try:
        code, report = command("validate", "-i", cluster["inventory"])
    finally:
        assert sh(lab, n["cp2"], f"chmod 0600 {KEY}")[0] == 0
    assert code == 1
    bad = {(node, c["id"], c["message"]) for node, v in report["validate"]["nodes"].items() for c in v["checks"]
           if c["status"] in ("fail", "error")}
    assert bad == {(n["cp2"], f"file {KEY}", "mode 0644, must be 0600 or stricter")}


def test_powered_off_machine_is_unreachable_and_the_rest_is_checked(cluster: dict[str, Any]) -> None:
    lab, n = cluster["lab"], names(cluster["lab"])
    ops.stop_machine(lab.name, n["w1"])
    try:
        code, report = command("netcheck", "-i", cluster["inventory"])
    finally:
        ops.start_machine(lab.name, n["w1"])
    assert code == 1
    assert set(report["unreachable"]) == {n["w1"]}
    assert report["counts"]["checked"] == 9 and report["counts"]["not_checked"] == 3
    others = [p for p in report["probes"] if n["w1"] not in (p["source"], p["target"])]
    assert others and all(p["status"] in ("ok", "skipped") for p in others)
    # Its ports cannot be expected up without facts from it: skipped, saying why.
    w1_ports = [p for p in report["probes"] if p["target"] == n["w1"] and p["kind"] == "port"]
    assert w1_ports and all(p["status"] == "skipped" and "unreachable" in p["detail"] for p in w1_ports)


def test_validate_fleet_on_open_connections(cluster: dict[str, Any]) -> None:
    """The function `init -i` ends with: no reconnect, both reports, text and JSON renderings."""
    from bootstrap.spec.inventory import load_inventory
    from bootstrap.validate.fleet import validate_fleet
    from bootstrap.workflow.fleet_spec import fleet_cluster_spec, node_specs
    from bootstrap.workflow.options import FleetOptions
    from bootstrap.workflow.session import bundle_for, close, connect

    inv = load_inventory(cluster["inventory"])
    conns = connect(inv, [h.name for h in inv.hosts], FleetOptions(cluster["inventory"], forks=8))
    targets = {n: c for n, c in conns.items() if not isinstance(c, Exception)}
    assert len(targets) == len(conns), conns
    try:
        result = validate_fleet(inv, node_specs(fleet_cluster_spec({}, inv), inv), targets,
                                bundle=bundle_for(inv, None), output="text")
    finally:
        close(conns)
    assert not result.failed, result.text()
    text = result.render()
    assert "netcheck: 12 pairs checked, 0 failed" in text and "validate: 4 nodes" in text
    assert json.loads(result.render("json"))["ok"] is True
