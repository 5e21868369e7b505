"""Netchecker manifests (parsed back, and `kubernetes-validate --strict` on each) and --in-cluster.

No API server runs here: the in-cluster path is tested for its failure (one line, exit 1) and for
the report logic; reading a live server's report is not exercised.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner
from kbtest import KUBECTL, KUBECTL_MISSING

from bootstrap.commands.common import EdgeGroup
from bootstrap.commands.netcheck import agents_report, netcheck
from bootstrap.render.netchecker import (
    NetcheckerOptions,
    objects,
    parse_connectivity,
    proxy_path,
    render_manifests,
)


def by_kind(docs: list[dict]) -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_objects_match_what_kubespray_deploys() -> None:
    docs = list(yaml.safe_load_all(render_manifests(NetcheckerOptions(namespace="nc", node_port=31081))))
    kinds = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert kinds == [("Namespace", "nc"), ("ServiceAccount", "netchecker-server"),
                     ("ClusterRole", "netchecker-server"), ("ClusterRoleBinding", "netchecker-server"),
                     ("Deployment", "netchecker-server"), ("Service", "netchecker-service"),
                     ("DaemonSet", "netchecker-agent"), ("DaemonSet", "netchecker-agent-hostnet")]
    k = by_kind(docs)
    svc = k[("Service", "netchecker-service")]["spec"]
    assert svc["type"] == "NodePort" and svc["ports"][0]["nodePort"] == 31081 and svc["ports"][0]["port"] == 8081
    server = k[("Deployment", "netchecker-server")]["spec"]["template"]["spec"]
    assert server["serviceAccountName"] == "netchecker-server"
    assert "-endpoint=0.0.0.0:8081" in server["containers"][0]["args"]
    rules = k[("ClusterRole", "netchecker-server")]["rules"]
    assert rules == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    pod = k[("DaemonSet", "netchecker-agent")]["spec"]["template"]["spec"]
    hostnet = k[("DaemonSet", "netchecker-agent-hostnet")]["spec"]["template"]["spec"]
    assert "hostNetwork" not in pod
    assert hostnet["hostNetwork"] is True and hostnet["dnsPolicy"] == "ClusterFirstWithHostNet"
    for ds in (pod, hostnet):
        c = ds["containers"][0]
        assert "-serverendpoint=netchecker-service:8081" in c["args"] and "-reportinterval=15" in c["args"]
        assert {e["name"] for e in c["env"]} == {"MY_POD_NAME", "MY_NODE_NAME"}
        assert ds["tolerations"] == [{"operator": "Exists"}]  # every node, control planes included
    ds = k[("DaemonSet", "netchecker-agent")]
    assert ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == "100%"
    assert ds["metadata"]["labels"]["app"] == "netchecker-agent"  # the server finds agents by this label
    assert all(d["metadata"].get("namespace") in (None, "nc") for d in docs)


@pytest.mark.skipif(shutil.which("kubernetes-validate") is None, reason="kubernetes-validate not installed")
def test_every_manifest_passes_kubernetes_validate_strict(tmp_path: Path) -> None:
    for doc in objects(NetcheckerOptions(namespace="netcheck-test", report_interval=10)):
        path = tmp_path / f"{doc['kind']}-{doc['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(doc))
        proc = subprocess.run(["kubernetes-validate", "--strict", str(path)], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, f"{path.name}: {proc.stdout}{proc.stderr}"
        assert "passed" in proc.stdout


def test_render_manifests_option() -> None:
    result = CliRunner().invoke(netcheck, ["--render-manifests", "--namespace", "x", "--node-port", "30081"])
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(result.output))
    assert len(docs) == 8 and docs[0] == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}


def test_parse_server_report_with_its_odd_keys() -> None:
    ok = parse_connectivity({"Message": "All 8 pods successfully reported back to the server",
                             "Absent": None, "Outdated": None}, http_ok=True)
    assert ok.ok and ok.absent == ()
    bad = parse_connectivity({"Message": "There are absent or outdated pods", "Absent": ["netchecker-agent-x"],
                              "Outdated": ["netchecker-agent-hostnet-y"]}, http_ok=False)
    assert not bad.ok and bad.absent == ("netchecker-agent-x",) and bad.outdated == ("netchecker-agent-hostnet-y",)
    assert proxy_path(NetcheckerOptions()) == (
        "/api/v1/namespaces/netchecker/services/netchecker-service:8081/proxy/api/v1/connectivity_check")


def test_absent_and_outdated_from_the_agent_cache() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    fresh = (now - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S.123456789Z")
    old = (now - timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    agents = {"agent-a": {"report_interval": 15, "last_updated": fresh},
              "agent-b": {"report_interval": 15, "last_updated": old},
              "agent-gone": {"report_interval": 15, "last_updated": fresh}}  # pod deleted: ignored
    report = agents_report(["agent-a", "agent-b", "agent-c"], agents, now)
    assert report.absent == ("agent-c",) and report.outdated == ("agent-b",) and not report.ok
    assert agents_report(["agent-a"], agents, now).ok


def test_in_cluster_without_an_api_server_is_one_line_exit_1(tmp_path: Path) -> None:
    if KUBECTL is None:
        pytest.skip(KUBECTL_MISSING)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "x"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }))

    @click.group(cls=EdgeGroup)
    def main() -> None:
        pass

    main.add_command(netcheck)
    result = CliRunner().invoke(main, ["netcheck", "--in-cluster", "--kubeconfig", str(kubeconfig)])
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot read Netchecker's report: "), result.output
    assert "refused" in lines[0] and "Traceback" not in result.output


def test_netcheck_needs_an_inventory() -> None:
    @click.group(cls=EdgeGroup)
    def main() -> None:
        pass

    main.add_command(netcheck)
    result = CliRunner().invoke(main, ["netcheck"])
    assert result.exit_code == 2 and "netcheck needs -i INVENTORY" in result.output
