"""Loading a 100-host Kubespray inventory (issue: real-inputs): `load_inventory` beside Ansible's
own `ansible-inventory --list` on the same files, both in a fresh Python process, median of N.

The inventory is Kubespray-shaped (ours): 3 control planes, 97 workers in one host range,
group_vars/all and group_vars/k8s_cluster with references, a password lookup and collection
filters that kbootstrap never reads. Since both read it through Ansible's inventory and variable
machinery, the floor is Ansible's own CLI; ours also templates the variables it maps.

    python bench/inventory_load.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
GROUP_VARS = {
    "kube_version": "1.37.2", "cluster_name": "cluster.local", "dns_domain": "{{ cluster_name }}",
    "credentials_dir": "{{ inventory_dir }}/credentials", "kube_service_addresses": "10.233.0.0/18",
    "kube_pods_subnet": "10.233.64.0/18", "kube_network_plugin": "kube-router", "kube_proxy_mode": "iptables",
    "kube_apiserver_ip": "{{ kube_service_addresses | ansible.utils.ipaddr('net') | ansible.utils.ipaddr(1) }}",
    "kubeadm_certificate_key": "{{ lookup('password', credentials_dir + '/kubeadm_certificate_key.creds') }}",
}


def write(base: Path, workers: int = 97) -> Path:
    (base / "group_vars" / "k8s_cluster").mkdir(parents=True)
    (base / "group_vars" / "k8s_cluster" / "k8s-cluster.yml").write_text(yaml.safe_dump(GROUP_VARS))
    (base / "group_vars" / "all").mkdir()
    (base / "group_vars" / "all" / "all.yml").write_text("loadbalancer_apiserver_port: 6443\n")
    cps = "\n".join(f"cp{i} ansible_host=10.20.0.{i} ip=10.20.0.{i} etcd_member_name=etcd{i}" for i in (1, 2, 3))
    lines = [f"w{i} ansible_host=10.20.{1 + i // 250}.{i % 250 + 1}" for i in range(workers)]
    p = base / "inventory.ini"
    p.write_text(f"[kube_control_plane]\n{cps}\n[etcd:children]\nkube_control_plane\n[kube_node]\n"
                 + "\n".join(lines) + "\n")
    return p


def timed(cmd: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.monotonic() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        inv = write(Path(tmp))
        ours = [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[2]);"
                "from bootstrap.spec.inventory import load_inventory;"
                "from bootstrap.workflow.fleet_spec import fleet_cluster_spec, node_specs;"
                "i = load_inventory(sys.argv[1]); assert len(i.hosts) == 100; node_specs(fleet_cluster_spec({}, i), i)",
                str(inv), str(ROOT)]
        floor = [shutil.which("ansible-inventory") or "ansible-inventory", "-i", str(inv), "--list"]
        a, b = [], []
        for _ in range(args.rounds):  # interleaved, so both see the same machine load
            a.append(timed(ours))
            b.append(timed(floor))
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"100 hosts: kbootstrap load_inventory + every host's spec {ma:.2f} s, "
              f"ansible-inventory --list {mb:.2f} s, ratio {ma / mb:.2f}x (median of {args.rounds})")


if __name__ == "__main__":
    main()
