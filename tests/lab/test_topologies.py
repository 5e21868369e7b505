"""Kubespray layouts beyond stacked etcd, on real lab machines: etcd on hosts of its own (the API
server must dial the members, not 127.0.0.1), and an empty etcd group with
etcd_deployment_type: kubeadm (kubeadm's etcd on the control planes). Each ends with every node
Ready and the API server's own etcd check passing, through the real kubectl.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kbtest import KUBECTL, KUBECTL_MISSING
from test_cluster import kubectl
from test_fleet import failing_checks, init_json

from bootstrap.lab.state import LabState
from bootstrap.lab.testing import sh

pytestmark = [pytest.mark.lab, pytest.mark.skipif(KUBECTL is None, reason=KUBECTL_MISSING)]


def regroup(lab: LabState, groups: dict[str, list[str]], extra_vars: dict[str, Any] | None = None) -> Path:
    """The lab's hosts.yaml with its groups as given (the hosts and their connection vars kept)."""
    inventory = Path(lab.inventory_dir) / "hosts.yaml"
    doc = yaml.safe_load(inventory.read_text())
    doc["all"]["children"] = {g: {"hosts": {h: None for h in hosts}} for g, hosts in groups.items()}
    inventory.write_text(yaml.safe_dump(doc, sort_keys=False))
    if extra_vars:
        gv = Path(lab.inventory_dir) / "group_vars" / "all" / "layout.yml"
        gv.write_text(yaml.safe_dump(extra_vars))
    return inventory


def ready_nodes(admin: Path) -> dict[str, str]:
    nodes = json.loads(kubectl({"admin": admin}, "get", "nodes", "-o", "json"))["items"]
    return {n["metadata"]["name"]: {c["type"]: c["status"] for c in n["status"]["conditions"]}["Ready"]
            for n in nodes}


def test_etcd_on_a_host_of_its_own(lab_factory: Any, bundle: Path, tmp_path: Path) -> None:
    lab: LabState = lab_factory(control_planes=1, workers=2)
    cp, w1, e1 = (m.name for m in lab.machines)
    inventory = regroup(lab, {"kube_control_plane": [cp], "etcd": [e1], "kube_node": [w1]})
    code, report = init_json(inventory, tmp_path / "pki", timeout=900)
    assert code == 0, json.dumps({h: r["error"] for h, r in report["hosts"].items()}) + str(failing_checks(report))
    admin = Path(lab.inventory_dir) / "artifacts" / "admin.conf"
    assert ready_nodes(admin) == {cp: "True", w1: "True"}  # the etcd host is no Kubernetes node
    assert "[+]etcd ok" in kubectl({"admin": admin}, "get", "--raw", "/readyz?verbose")
    e1_ip = next(m.ip for m in lab.machines if m.name == e1)
    _, manifest, _ = sh(lab, cp, "cat /etc/kubernetes/manifests/kube-apiserver.yaml")
    assert f"--etcd-servers=https://{e1_ip}:2379" in manifest
    _, manifests, _ = sh(lab, cp, "ls /etc/kubernetes/manifests")
    _, unit, _ = sh(lab, cp, "systemctl is-active etcd")
    assert "etcd.yaml" not in manifests.split() and unit.strip() != "active"  # no etcd on the control plane


def test_an_empty_etcd_group_with_kubeadms_etcd(lab_factory: Any, bundle: Path, tmp_path: Path) -> None:
    lab: LabState = lab_factory(control_planes=1, workers=1)
    cp, w1 = (m.name for m in lab.machines)
    inventory = regroup(lab, {"kube_control_plane": [cp], "etcd": [], "kube_node": [w1]},
                        {"etcd_deployment_type": "kubeadm"})
    code, report = init_json(inventory, tmp_path / "pki", timeout=900)
    assert code == 0, json.dumps({h: r["error"] for h, r in report["hosts"].items()}) + str(failing_checks(report))
    admin = Path(lab.inventory_dir) / "artifacts" / "admin.conf"
    assert ready_nodes(admin) == {cp: "True", w1: "True"}
    pods = kubectl({"admin": admin}, "-n", "kube-system", "get", "pods", "-l", "component=etcd", "-o", "name").split()
    assert pods == [f"pod/etcd-{cp}"]  # kubeadm's static pod, on the control plane
