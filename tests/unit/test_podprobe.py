"""The pod-network probe's pure parts: its objects (kubernetes-validate --strict), the agent script
(run by the real busybox on this host, on canned nslookup output), its report format, and the matrix
logic over a stand-in API. The probe on a live cluster is tests/lab/test_cluster.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from bootstrap.commands.common import EdgeGroup
from bootstrap.commands.netcheck import netcheck, pod_network_text
from bootstrap.render.podprobe import ProbeOptions, parse_report, render_objects
from bootstrap.validate.podnetwork import probe_pod_network

BUSYBOX = shutil.which("busybox")


def agent_script(opts: ProbeOptions) -> str:
    return str(render_objects(opts)[3]["spec"]["template"]["spec"]["containers"][0]["command"][3])


def test_objects_every_node_and_two_services() -> None:
    docs = render_objects(ProbeOptions(image="reg.test/busybox:1", namespace="probe"))
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("Namespace", "probe"), ("Service", "peers"), ("Service", "service"), ("DaemonSet", "kbootstrap-netcheck")]
    peers = docs[1]["spec"]
    assert peers["clusterIP"] == "None" and peers["publishNotReadyAddresses"] is True
    pod = docs[3]["spec"]["template"]["spec"]
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert pod["containers"][0]["image"] == "reg.test/busybox:1"
    assert pod["containers"][0]["securityContext"]["runAsNonRoot"] is True
    assert all(d["metadata"].get("namespace", "probe") == "probe" for d in docs)


@pytest.mark.skipif(shutil.which("kubernetes-validate") is None, reason="kubernetes-validate not installed")
def test_objects_pass_kubernetes_validate_strict(tmp_path: Path) -> None:
    for doc in render_objects(ProbeOptions(image="reg.test/busybox:1")):
        path = tmp_path / f"{doc['kind']}-{doc['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(doc))
        proc = subprocess.run(["kubernetes-validate", "--strict", str(path)], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, f"{path.name}: {proc.stdout}{proc.stderr}"


@pytest.mark.skipif(BUSYBOX is None, reason="busybox not installed")
def test_agent_reads_every_address_of_a_busybox_answer() -> None:
    """The script's own awk program, run by busybox on both output formats busybox nslookup has had."""
    script = agent_script(ProbeOptions(image="x"))
    program = script.split("first_ip='", 1)[1].split("'\n", 1)[0]
    answer = ("Server:\t\t10.96.0.10\nAddress:\t10.96.0.10:53\n\n"
              "Name:\tpeers.kbootstrap-netcheck.svc.cluster.local\nAddress: 10.244.1.5\n"
              "Name:\tpeers.kbootstrap-netcheck.svc.cluster.local\nAddress: 10.244.2.7\n\n"
              "Name:\tpeers\nAddress 1: fd00:10::3 peers.x\n")
    assert BUSYBOX is not None
    proc = subprocess.run([BUSYBOX, "awk", program], input=answer, capture_output=True, text=True, timeout=10)
    assert proc.stdout.split() == ["10.244.1.5", "10.244.2.7", "fd00:10::3"]


@pytest.mark.skipif(BUSYBOX is None, reason="busybox not installed")
def test_agent_script_is_valid_busybox_sh() -> None:
    assert BUSYBOX is not None
    proc = subprocess.run([BUSYBOX, "sh", "-n", "-c", agent_script(ProbeOptions(image="x"))],
                          capture_output=True, text=True, timeout=10)
    assert proc.returncode == 0, proc.stderr


def test_parse_report() -> None:
    got = parse_report("dns ok peers.ns.svc.cluster.local\nservice ok kbootstrap-netcheck-abc\n"
                       "peer 10.244.1.5 ok kbootstrap-netcheck-abc\npeer 10.244.2.7 fail\npeer nonsense ok x\n")
    assert got is not None and got.dns_ok and got.service_ok
    assert got.peers == {"10.244.1.5": "kbootstrap-netcheck-abc", "10.244.2.7": None}
    assert parse_report("") is None and parse_report("<html>503</html>") is None


class StandInAPI:
    """Just the calls probe_pod_network makes, over canned pods and reports."""

    def __init__(self, pods: list[dict[str, Any]], reports: dict[str, str], nodes: list[str]) -> None:
        self.pods, self.reports, self.nodes = pods, reports, nodes
        self.applied: list[str] = []
        self.deleted: list[str] = []

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return None

    def apply(self, obj: dict[str, Any]) -> str:
        self.applied.append(obj["kind"])
        return "created"

    def list(self, api_version: str, kind: str, namespace: str | None = None, **sel: str) -> list[dict[str, Any]]:
        if kind == "Node":
            return [{"metadata": {"name": n}, "spec": {}} for n in self.nodes]
        return self.pods

    def raw(self, path: str) -> str:
        return self.reports.get(path.split("/pods/")[1].split(":")[0], "")

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        self.deleted.append(f"{kind}/{name}")
        return True


def pod(name: str, node: str, ip: str, waiting: str | None = None) -> dict[str, Any]:
    state = {"waiting": {"reason": waiting, "message": "back-off pulling image"}} if waiting else {"running": {}}
    return {"metadata": {"name": name}, "spec": {"nodeName": node},
            "status": {"phase": "Pending" if waiting else "Running", "podIP": ip,
                       "containerStatuses": [{"state": state}]}}


def report(*peers: tuple[str, str | None]) -> str:
    lines = ["dns ok peers.kbootstrap-netcheck.svc.cluster.local", "service ok a"]
    return "\n".join(lines + [f"peer {ip} ok {who}" if who else f"peer {ip} fail" for ip, who in peers])


def run(api: StandInAPI, timeout: float = 10) -> Any:
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s
    return probe_pod_network(api, ProbeOptions(image="x"), timeout=timeout,  # type: ignore[arg-type]
                             clock=lambda: now[0], sleep=sleep)


def test_every_pair_answers() -> None:
    api = StandInAPI([pod("a", "n1", "10.0.1.2"), pod("b", "n2", "10.0.2.2")],
                     {"a": report(("10.0.2.2", "b"), ("10.0.1.2", "a")), "b": report(("10.0.1.2", "a"))},
                     ["n1", "n2"])
    got = run(api)
    assert got.ok, got.failures()
    assert [(p.source, p.target, p.ok) for p in got.peers] == [("n1", "n2", True), ("n2", "n1", True)]
    assert api.applied == ["Namespace", "Service", "Service", "DaemonSet"]
    assert api.deleted == ["Namespace/kbootstrap-netcheck"]  # removed after itself
    assert "pod to pod: 2 of 2 pairs" in pod_network_text(got)


def test_failures_name_the_pair_the_pod_and_the_node() -> None:
    api = StandInAPI([pod("a", "n1", "10.0.1.2"), pod("b", "n2", "10.0.2.2"),
                      pod("c", "n3", "10.0.3.2", waiting="ImagePullBackOff")],
                     {"a": report(("10.0.2.2", None)), "b": report()}, ["n1", "n2", "n3", "n4"])
    got = run(api)
    assert not got.ok
    assert got.failures() == [
        "n4: no probe pod (the DaemonSet did not place one: is the node schedulable?)",
        "n3: probe pod c is not running: ImagePullBackOff: back-off pulling image",
        "n1 -> n2 (10.0.2.2): no answer on :8080",
        "n2 -> n1 (10.0.1.2): not in the peers' DNS answer",
    ]
    assert got.to_json()["ok"] is False and got.seconds >= 10  # it waited its full time before saying so


def test_a_pod_the_kubelet_refused_says_why() -> None:
    evicted = {"metadata": {"name": "e"}, "spec": {"nodeName": "n1"},
               "status": {"phase": "Failed", "reason": "Evicted",
                          "message": "The node had condition: [DiskPressure]. "}}
    got = run(StandInAPI([evicted], {}, ["n1"]))
    assert got.failures() == [
        "n1: probe pod e is not running: phase Failed (Evicted: The node had condition: [DiskPressure].)"]


def test_image_without_in_cluster_is_a_usage_error() -> None:
    res = CliRunner().invoke(EdgeGroup(commands={"netcheck": netcheck}), ["netcheck", "--image", "x"])
    assert res.exit_code == 2 and "--in-cluster" in res.output
