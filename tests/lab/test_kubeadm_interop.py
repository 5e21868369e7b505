"""Interop with the real kubeadm: `kbootstrap join` adds a worker to a cluster the real `kubeadm init` built.

Two lab machines get only what kubeadm's packages would give them, through kbootstrap's own node
phases (kernel, container-runtime, binaries) and the kubelet unit with kubeadm's drop-in. Then the
release's real kubeadm runs `kubeadm init` on the control plane (nothing of kbootstrap's on it but
those), kbootstrap installs the pod network through that cluster's admin.conf, and `kbootstrap join
-i --limit WORKER` joins the worker the way it joins one to its own clusters: the CA read back from
the control plane, a bootstrap token made through the API, the kubelet's TLS bootstrap. Both nodes
end Ready. (The other direction, the real `kubeadm join` into a cluster kbootstrap built, is in
tests/lab/test_cluster.py.)
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kbtest import KUBECTL, KUBECTL_MISSING, join_configuration
from test_fleet import kbootstrap

from bootstrap.lab.state import LabState
from bootstrap.lab.testing import sh
from bootstrap.render.kubelet import KUBELET_DROPIN_PATH, KUBELET_UNIT_PATH, kubeadm_dropin, kubelet_unit
from bootstrap.spec.inventory import load_inventory
from bootstrap.workflow.fleet_spec import fleet_cluster_spec

pytestmark = [pytest.mark.lab, pytest.mark.skipif(KUBECTL is None, reason=KUBECTL_MISSING)]
PREPARE = ("kernel", "container-runtime", "binaries all")


def kubeadm_config(inventory: Path, address: str) -> str:
    """What a kubeadm user would write for this lab: the inventory's networks and release, and the
    kubelet settings the lab's machines need (kubelet_fail_cgroup_v1 and friends)."""
    spec = fleet_cluster_spec({}, load_inventory(str(inventory)))
    fields = {**spec.kubelet_role_configuration.get("control-plane", {}), **spec.kubelet_configuration}
    kubelet = {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
               **{k: v for k, v in fields.items() if k not in ("apiVersion", "kind")}}
    docs: list[dict[str, Any]] = [
        {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "InitConfiguration",
         "localAPIEndpoint": {"advertiseAddress": address},
         # A lab machine is a container: kubeadm's system checks cannot pass in it.
         "nodeRegistration": {"criSocket": spec.node.cri_socket, "ignorePreflightErrors": ["all"]}},
        {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration",
         "kubernetesVersion": spec.kubernetes_version, "controlPlaneEndpoint": f"{address}:6443",
         "networking": {"podSubnet": spec.networking.pod_subnet, "serviceSubnet": spec.networking.service_subnet,
                        "dnsDomain": spec.networking.dns_domain}},
        kubelet,
    ]
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


def kubectl(admin: Path, *args: str, timeout: float = 120) -> str:
    assert KUBECTL is not None
    proc = subprocess.run([KUBECTL, "--kubeconfig", str(admin), "--request-timeout=20s", *args],
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr[-1500:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def kubeadm_cluster(module_lab_factory: Any, bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    lab: LabState = module_lab_factory(control_planes=1, workers=1)
    inventory = Path(lab.inventory_dir) / "hosts.yaml"
    pki = tmp_path_factory.mktemp("pki")
    for phase in PREPARE:
        proc = kbootstrap("init", "phase", *phase.split(), "-i", str(inventory), "--pki-dir", str(pki), timeout=600)
        assert proc.returncode == 0, f"{phase}: {proc.stdout[-2000:]}{proc.stderr[-500:]}"
    cp = next(m for m in lab.machines if m.role == "control-plane")
    for machine in lab.machines:  # what the kubelet package ships
        script = (f"mkdir -p {shlex.quote(KUBELET_DROPIN_PATH.rpartition('/')[0])} && "
                  f"printf %s {shlex.quote(kubelet_unit().decode())} > {KUBELET_UNIT_PATH} && "
                  f"printf %s {shlex.quote(kubeadm_dropin().decode())} > {KUBELET_DROPIN_PATH} && "
                  "systemctl daemon-reload && systemctl enable kubelet")
        code, out, err = sh(lab, machine.name, script)
        assert code == 0, out + err
    config = kubeadm_config(inventory, cp.ip)
    code, out, err = sh(lab, cp.name, "cat > /root/kubeadm.yaml && kubeadm init --config /root/kubeadm.yaml",
                        stdin=config, timeout=600)
    assert code == 0, (out + err)[-3000:]
    assert "Your Kubernetes control-plane has initialized successfully!" in out
    _, admin_text, _ = sh(lab, cp.name, "cat /etc/kubernetes/admin.conf")
    admin = tmp_path_factory.mktemp("admin") / "admin.conf"
    admin.write_text(admin_text)
    admin.chmod(0o600)
    return {"lab": lab, "inventory": inventory, "pki": pki, "admin": admin, "cp": cp.name,
            "worker": next(m.name for m in lab.machines if m.role == "worker")}


def test_kbootstrap_joins_a_worker_to_a_cluster_the_real_kubeadm_built(kubeadm_cluster: dict[str, Any]) -> None:
    c = kubeadm_cluster
    proc = kbootstrap("init", "phase", "network", "-i", str(c["inventory"]), "--pki-dir", str(c["pki"]), timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-500:]
    proc = kbootstrap("join", "-i", str(c["inventory"]), "--limit", c["worker"], "--pki-dir", str(c["pki"]),
                      "-o", "json", timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-500:]
    report = json.loads(proc.stdout)
    assert not report["hosts"][c["worker"]]["failed"]
    deadline = time.monotonic() + 60
    while c["worker"] not in kubectl(c["admin"], "get", "nodes", "-o", "name") and time.monotonic() < deadline:
        time.sleep(1)
    kubectl(c["admin"], "wait", "--for=condition=Ready", "node", "--all", "--timeout=240s", timeout=260)
    nodes = json.loads(kubectl(c["admin"], "get", "nodes", "-o", "json"))["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == sorted([c["cp"], c["worker"]])


def test_kbootstrap_join_takes_the_cluster_config_from_the_kubeadm_cluster(kubeadm_cluster: dict[str, Any],
                                                                          tmp_path: Path) -> None:
    """Single-node `kbootstrap join --config` with kubeadm's own JoinConfiguration, rendered into a
    --rootfs: token discovery against kubeadm's API server, and the node's kubelet config from the
    cluster's kubeadm-config and kubelet-config ConfigMaps (its DNS address and domain), not defaults."""
    c = kubeadm_cluster
    code, out, err = sh(c["lab"], c["cp"], "kubeadm token create --print-join-command")
    assert code == 0, err
    config = tmp_path / "join.yaml"
    config.touch(0o600)
    config.write_text(join_configuration(out, "nodeRegistration:\n  name: rendered-worker\n"))
    root = tmp_path / "root"
    proc = kbootstrap("join", "--config", str(config), "--rootfs", str(root))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-1000:]
    theirs = yaml.safe_load(yaml.safe_load(kubectl(c["admin"], "get", "configmap", "-n", "kube-system",
                                                   "kubelet-config", "-o", "yaml"))["data"]["kubelet"])
    ours = yaml.safe_load((root / "var/lib/kubelet/config.yaml").read_text())
    assert ours["clusterDNS"] == theirs["clusterDNS"] != ["10.96.0.10"]
    assert ours["clusterDomain"] == theirs["clusterDomain"]
    assert (root / "etc/kubernetes/bootstrap-kubelet.conf").is_file()
