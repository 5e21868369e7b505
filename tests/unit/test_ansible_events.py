"""The Ansible transport without Ansible: runner events -> our reports, and the Target adapter.

The events are trimmed copies of ones ansible-runner 2.4 emitted for playbooks/cluster.yml on a lab
(1 control plane + 1 worker), plus the failure kinds (phase error, plugin error, unreachable).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from bootstrap.ansible.events import EventCollector, phase_from_json
from bootstrap.ansible.steps import step_input
from bootstrap.engine.result import HostReport, PhaseResult, Status
from bootstrap.transport.ansible_target import AnsibleTarget

CP, W = "kba1-cp1", "kba1-w1"


def ev(kind: str, host: str, task: str, res: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"host": host, "task": task, "role": extra.pop("role", ""), "duration": 0.25, **extra}
    if res is not None:
        data["res"] = res
    return {"event": kind, "event_data": data}


def phase(name: str, *changes: tuple[str, str], error: str | None = None, skipped: str | None = None) -> dict[str, Any]:
    return {
        "name": name, "seconds": 0.1, "changed": sum(1 for _, s in changes if s in ("created", "updated")),
        "error": error, "skipped": skipped, "changes": [{"item": i, "status": s} for i, s in changes],
    }


def ours(host: str, step: str, *phases: dict[str, Any], merge: bool = False) -> dict[str, Any]:
    return {"host": host, "step": step, "phases": list(phases), "merge": merge}


RECORDED = [
    {"event": "playbook_on_start", "event_data": {}},
    {"event": "runner_on_start", "event_data": {"host": CP, "task": "Kernel modules, sysctls and swap off"}},
    ev("runner_on_ok", CP, "Kernel modules, sysctls and swap off", role="kernel", res={
        "changed": True, "msg": "kernel: 2 changed",
        "kbootstrap": ours(CP, "kernel", phase("kernel", ("/etc/modules-load.d/kubernetes.conf", "created"),
                                                ("/etc/sysctl.d/99-kubernetes.conf", "created"),
                                                ("apply sysctls", "unchanged")))}),
    ev("runner_on_ok", W, "Kernel modules, sysctls and swap off", role="kernel", res={
        "changed": False, "msg": "kernel: 0 changed",
        "kbootstrap": ours(W, "kernel", phase("kernel", ("/etc/modules-load.d/kubernetes.conf", "unchanged")))}),
    ev("runner_on_ok", CP, "Kubernetes binaries", role="binaries", res={
        "changed": False, "msg": "...",
        "kbootstrap": ours(CP, "binaries", phase("binaries/kubectl", ("/usr/bin/kubectl", "unchanged")),
                           phase("binaries/kubelet", skipped="skipped by --skip-phases"))}),
    ev("runner_on_skipped", W, "Shared CAs, made on the controller", role="pki"),
    ev("runner_on_ok", CP, "Shared CAs, made on the controller", role="pki", res={
        "changed": False, "msg": "shared CAs: read back from kba1-cp1",
        "ansible_facts": {"kbootstrap_shared_pki_source": "read back from kba1-cp1"},
        "kbootstrap": ours(CP, "certs:before")}),
    ev("runner_on_ok", CP, "Etcd member configured and running", role="etcd", res={
        "changed": True, "kbootstrap": ours(CP, "etcd", phase("etcd/local", ("/etc/systemd/system/etcd.service",
                                                                              "created"), ("start etcd", "updated")))}),
    ev("runner_on_ok", CP, "Etcd cluster healthy, seen from each member", role="etcd", res={
        "changed": False, "kbootstrap": ours(CP, "etcd:after", phase("etcd", ("etcd health", "unchanged")),
                                             merge=True)}),
    ev("runner_on_failed", W, "Kubeadm preflight checks", role="preflight", res={
        "failed": True, "changed": False, "msg": "preflight: [ERROR Swap]: swap is on (fix it)",
        "kbootstrap": ours(W, "preflight", phase("preflight", ("Swap", "failed"),
                                                 error="preflight: [ERROR Swap]: swap is on (fix it)"))}),
    {"event": "playbook_on_stats", "event_data": {"ok": {CP: 5, W: 1}, "changed": {CP: 2}, "failures": {W: 1},
                                                  "skipped": {W: 1}, "dark": {}}},
]


def collect(events: list[dict[str, Any]], hosts: list[str] | None = None, **kw: Any) -> EventCollector:
    c = EventCollector(hosts or [CP, W], **kw)
    for e in events:
        assert c.collect(e) is True  # keep every event (ansible-runner's contract)
    return c


def test_recorded_run_becomes_the_same_report_shape_as_ssh() -> None:
    seen: list[tuple[str, str]] = []
    c = collect(RECORDED, on_phase=lambda h, p: seen.append((h, p.name)))
    cp = c.reports[CP].to_json()
    assert [p["name"] for p in cp["phases"]] == ["kernel", "binaries/kubectl", "binaries/kubelet", "etcd/local"]
    assert cp["changed"] == 4 and cp["failed"] is False and cp["error"] is None
    # etcd-health merges its line into the etcd phase, as wait_etcd_healthy does over SSH.
    etcd = cp["phases"][-1]
    assert [ch["item"] for ch in etcd["changes"]] == ["/etc/systemd/system/etcd.service", "start etcd", "etcd health"]
    assert cp["phases"][2]["skipped"] == "skipped by --skip-phases"
    w = c.reports[W].to_json()
    assert w["failed"] is True and w["error"] == "preflight: [ERROR Swap]: swap is on (fix it)"
    assert c.stats[CP]["changed"] == 2 and c.stats[W]["failures"] == 1
    assert (CP, "kernel") in seen and (W, "preflight") in seen
    assert ("etcd" not in [p for _, p in seen])  # a merge is not a new phase
    assert {t.status for t in c.timings} == {"ok", "skipped", "failed"}


def test_report_json_keys_match_host_report() -> None:
    c = collect(RECORDED)
    assert set(c.reports[CP].to_json()) == set(HostReport("x").to_json())


def test_unreachable_host_gets_one_line_error() -> None:
    c = collect([
        ev("runner_on_unreachable", W, "Kernel", res={
            "unreachable": True, "changed": False,
            "msg": "Failed to connect to the host via ssh: Host key verification failed.\r\n"}),
    ])
    assert c.reports[W].error == f"cannot reach {W}: Failed to connect to the host via ssh: Host key verification failed."
    assert c.reports[CP].error is None


def test_plugin_failure_without_report_is_the_message() -> None:
    c = collect([ev("runner_on_failed", CP, "Kernel", res={
        "failed": True, "msg": "kbootstrap is not importable by this Ansible's Python (No module named 'bootstrap')"})])
    assert "not importable" in (c.reports[CP].error or "")
    assert "\n" not in (c.reports[CP].error or "")


def test_failed_shared_pki_stops_everyone_and_says_who() -> None:
    c = collect([ev("runner_on_failed", CP, "Shared CAs", res={
        "failed": True, "msg": "the CA in pki/x differs from the one on kba1-cp1 (the cluster's CA wins)",
        "kbootstrap": ours(CP, "certs:before")})])
    c.finish(2, "failed")
    assert "differs" in (c.reports[CP].error or "")
    assert c.reports[W].error == f"the play stopped before {W} finished: {CP} failed"


def test_successful_finish_touches_nothing() -> None:
    c = collect(RECORDED[:4])
    c.finish(0, "successful")
    assert not any(r.failed for r in c.reports.values())


def test_validate_results_are_not_host_failures() -> None:
    checks = [{"id": "service etcd", "kind": "service", "subject": "etcd", "status": "fail", "message": "inactive",
               "why": "etcd member"}]
    c = collect([ev("runner_on_failed", CP, "Node checks", res={
        "failed": True, "msg": "1 check(s) failed", "kbootstrap": ours(CP, "validate"),
        "kbootstrap_validate": {"node": CP, "counts": {"fail": 1}, "checks": checks}})])
    assert c.reports[CP].error is None
    assert c.validation[CP]["checks"] == checks


def test_phase_from_json_round_trips() -> None:
    p = PhaseResult("certs", 0.5, error=None)
    report = HostReport("h", [p])
    report.phases[0].changes.append(__import__("bootstrap.engine.result", fromlist=["Change"]).Change(
        "certs", "/etc/kubernetes/pki/ca.crt", Status.CREATED, "shared CA material"))
    back = phase_from_json(report.to_json()["phases"][0])
    assert back.name == "certs" and back.changed == 1 and back.changes[0].detail == "shared CA material"


def test_task_profile_ranks_by_slowest_host() -> None:
    c = collect(RECORDED)
    rows = c.task_profile(3)
    assert len(rows) == 3 and all(r["max_seconds"] == 0.25 for r in rows)


def test_step_input_from_task_vars() -> None:
    tv = {"inventory_file": "/inv/hosts.yaml", "inventory_hostname": CP, "kbootstrap_skip_phases": "kernel,binaries",
          "groups": {"kube_control_plane": [CP]}, "hostvars": {CP: {"kbootstrap_shared_pki_source": "read back"}},
          "ansible_play_hosts_all": [CP, W]}
    inp = step_input(tv, {}, check_mode=True)
    assert inp.inventory == "/inv/hosts.yaml" and inp.host == CP and inp.check_mode
    assert inp.skip == ("kernel", "binaries") and inp.play_hosts == (CP, W)
    assert inp.shared_sources == {CP: "read back"}
    assert step_input({**tv, "kbootstrap_inventory": "/other.yaml"}, {}, False).inventory == "/other.yaml"
    with pytest.raises(Exception, match="no inventory file"):
        step_input({"inventory_hostname": CP}, {}, False)


# ---- the Target adapter, with bash on this machine standing in for Ansible's connection ----------
def local_execute(cmd: str, data: bytes | None) -> tuple[int, str, str]:
    p = subprocess.run(["/bin/sh", "-c", cmd], input=data, capture_output=True, timeout=30)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def test_target_adapter_files_round_trip(tmp_path: Path) -> None:
    t = AnsibleTarget("local", local_execute)
    a, b = f"{tmp_path}/etc/kubernetes/pki/ca.crt", f"{tmp_path}/etc/kubernetes/admin.conf"
    binary = bytes(range(256)) * 40  # not text: must survive Ansible's text-only output
    t.write_many([(a, b"cert\n", 0o644, None), (b, binary, 0o600, None)])
    got = t.read_many([a, b, f"{tmp_path}/missing"])
    assert got[a] is not None and got[a].content == b"cert\n" and got[a].mode == 0o644
    assert got[b] is not None and got[b].content == binary and got[b].mode == 0o600
    assert got[f"{tmp_path}/missing"] is None
    t.chmod(a, 0o600)
    assert (t.read(a) or pytest.fail("gone")).mode == 0o600
    t.mkdir(f"{tmp_path}/d/e", 0o700)
    assert sorted(t.list_dir(f"{tmp_path}/etc/kubernetes") or []) == ["admin.conf", "pki"]
    assert t.list_dir(f"{tmp_path}/nope") is None
    t.remove(f"{tmp_path}/etc")
    assert t.read(a) is None
    r = t.run("echo out; echo err >&2; exit 3")
    assert (r.exit_code, r.stdout, r.stderr) == (3, "out\n", "err\n")


def test_target_adapter_errors_are_one_line(tmp_path: Path) -> None:
    t = AnsibleTarget("n1", local_execute)
    (tmp_path / "file").write_text("x")
    with pytest.raises(Exception, match=r"creating directory .* on n1 failed") as info:
        t.mkdir(f"{tmp_path}/file/sub", 0o755)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError):
        t.remove("/")


def test_run_once_result_lands_in_the_host_it_names() -> None:
    """vip-report runs once (Ansible files it under whichever host ran it) and names the first control
    plane: its line joins that host's loadbalancer phase, as the SSH fleet's after-phase check does."""
    c = EventCollector([CP, W])
    c.collect(ev("runner_on_ok", CP, "API endpoint load balancing", res={
        "changed": False, "kbootstrap": ours(CP, "loadbalancer", phase("loadbalancer", ("/etc/haproxy/haproxy.cfg",
                                                                                         "unchanged")))}))
    c.collect(ev("runner_on_ok", W, "Virtual IP held by exactly one control plane", res={
        "changed": False, "warnings": ["VIP 10.0.0.250 held by 2 nodes at once: a, b"],
        "kbootstrap": ours(CP, "loadbalancer:after", phase("loadbalancer", ("VIP 10.0.0.250", "warning")), merge=True)}))
    lb = c.report(CP).phases[-1]
    assert lb.name == "loadbalancer" and [ch.item for ch in lb.changes] == ["/etc/haproxy/haproxy.cfg", "VIP 10.0.0.250"]
    assert lb.changes[-1].status == Status.WARNING
    assert c.report(W).phases == []
