"""SSH fan-out: our SSHTarget (paramiko, one connection + one `bash -s` per host) vs one OpenSSH process
per host, running the same node-prep script on every machine of a fresh 20-machine lab.

    python bench/ssh_fanout.py [--machines 20] [--rounds 3] [--forks 64]

Boots the lab, measures, prints a markdown table, and always tears the lab down. Needs root (labs).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from bootstrap.lab.testing import running_lab, unique_name
from bootstrap.transport.ssh import SSHHost, SSHTarget, connect_all, run_on_all

CONTAINERD_CONFIG = """version = 2
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.9"

[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = true
"""


def node_prep_script() -> str:
    """Kernel modules + sysctls for Kubernetes, 5 directories, 10 private files, a containerd config."""
    files = "".join(
        f"cat > /etc/kbbench/secrets/file{i}.conf <<'EOF'\nname: 'file {i}'\nvalue: \"$NOT_EXPANDED\"\nEOF\n"
        f"chmod 600 /etc/kbbench/secrets/file{i}.conf\n"
        for i in range(10)
    )
    return f"""set -euo pipefail
mkdir -p /etc/modules-load.d /etc/sysctl.d /etc/containerd
cat > /etc/modules-load.d/k8s.conf <<'EOF'
overlay
br_netfilter
EOF
# "-" keys: skip quietly where br_netfilter is not loaded (modules are the host kernel's here).
cat > /etc/sysctl.d/k8s.conf <<'EOF'
-net.bridge.bridge-nf-call-iptables = 1
-net.bridge.bridge-nf-call-ip6tables = 1
net.ipv4.ip_forward = 1
EOF
sysctl --system >/dev/null
mkdir -p -m 0755 /etc/kubernetes/manifests /etc/kubernetes/pki/etcd /var/lib/kubelet /var/lib/etcd \\
  /etc/kbbench/secrets
{files}cat > /etc/containerd/config.toml <<'EOF'
{CONTAINERD_CONFIG}EOF
test "$(cat /proc/sys/net/ipv4/ip_forward)" = 1
echo done
"""


def load_hosts(inventory_dir: Path) -> list[SSHHost]:
    data = yaml.safe_load((inventory_dir / "hosts.yaml").read_text())
    kh = str(inventory_dir / "known_hosts")
    return [
        SSHHost(
            n,
            v["ansible_host"],
            user=v.get("ansible_user", "root"),
            key_file=v["ansible_ssh_private_key_file"],
            known_hosts=(kh,),
        )
        for n, v in data["all"]["hosts"].items()
    ]


def ours(hosts: list[SSHHost], script: str, forks: int) -> tuple[float, float]:
    """(connect_all + one run per host, the run alone). Every host must succeed."""
    t0 = time.perf_counter()
    targets = connect_all(hosts, forks=forks)
    try:
        t1 = time.perf_counter()
        bad = {n: t for n, t in targets.items() if not isinstance(t, SSHTarget)}
        if bad:
            raise SystemExit(f"connect failed: {bad}")
        live = {n: t for n, t in targets.items() if isinstance(t, SSHTarget)}
        results = run_on_all(live, lambda t: t.run(script), forks=forks)
        t2 = time.perf_counter()
    finally:
        for t in targets.values():
            if isinstance(t, SSHTarget):
                t.close()
    failed = {n: r for n, r in results.items() if isinstance(r, BaseException) or not r.ok or r.stdout != "done\n"}
    if failed:
        raise SystemExit(f"node-prep failed: {failed}")
    return t2 - t0, t2 - t1


def openssh(hosts: list[SSHHost], script_path: Path) -> float:
    """One `ssh host bash -s < script` process per host, all at once (`forks` does not apply)."""
    t0 = time.perf_counter()
    procs = []
    for h in hosts:
        with open(script_path, "rb") as stdin:
            procs.append(
                subprocess.Popen(
                    [
                        "ssh",
                        "-i",
                        str(h.key_file),
                        "-o",
                        f"UserKnownHostsFile={h.known_hosts[0]}",
                        "-o",
                        "GlobalKnownHostsFile=/dev/null",
                        "-o",
                        "StrictHostKeyChecking=yes",
                        "-o",
                        "BatchMode=yes",
                        "-o",
                        "IdentitiesOnly=yes",
                        "-o",
                        "ConnectTimeout=10",
                        "-p",
                        str(h.port),
                        f"{h.user}@{h.address}",
                        "bash -s",
                    ],
                    stdin=stdin,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            )
    outs = [p.communicate() for p in procs]
    elapsed = time.perf_counter() - t0
    failed = [
        (h.name, p.returncode, err[-200:])
        for h, p, (out, err) in zip(hosts, procs, outs, strict=True)
        if p.returncode != 0 or out != b"done\n"
    ]
    if failed:
        raise SystemExit(f"openssh node-prep failed: {failed}")
    return elapsed


def fmt(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} s (min {min(xs):.2f}, max {max(xs):.2f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--machines", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3, help="measurements of each method (alternating)")
    ap.add_argument("--forks", type=int, default=64)
    args = ap.parse_args()
    name = unique_name("bf")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with running_lab(name, 1, args.machines - 1, inventory_dir=tmp):
            boot = time.perf_counter() - t0
            hosts = load_hosts(Path(tmp) / name)
            script = node_prep_script()
            script_path = Path(tmp) / "node-prep.sh"
            script_path.write_text(script)
            rows: dict[str, list[float]] = {"ours": [], "ours-run": [], "openssh": []}
            steps: list[Callable[[], None]] = []

            def step_ours() -> None:
                total, run = ours(hosts, script, args.forks)
                rows["ours"].append(total)
                rows["ours-run"].append(run)

            def step_openssh() -> None:
                rows["openssh"].append(openssh(hosts, script_path))

            for _ in range(args.rounds):
                steps += [step_ours, step_openssh]
            for step in steps:
                step()
        loadavg = Path("/proc/loadavg").read_text().split()[:3]
    print(
        f"\nSSH fan-out, {len(hosts)} lab machines (booted in {boot:.1f} s), node-prep script "
        f"({len(script)} bytes), {args.rounds} rounds, forks={args.forks}, host load {' '.join(loadavg)}\n"
    )
    print("| method | wall time, median (min, max) |")
    print("|---|---|")
    print(f"| kbootstrap SSHTarget: connect_all + one `run` per host | {fmt(rows['ours'])} |")
    print(f"| ... of which the `run` fan-out on open connections | {fmt(rows['ours-run'])} |")
    print(f"| OpenSSH: one `ssh host bash -s < script` process per host | {fmt(rows['openssh'])} |")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
