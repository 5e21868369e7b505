"""Fleet benchmarks for `kbootstrap init -i` (issue 4), every figure measured in one run:

1. node prep on N lab machines: our phase machinery (the engine's runner over SSHTarget: batched file
   writes + one script per host) against one OpenSSH `bash -s` process per host doing the
   same work (the floor);
2. a full lab cluster (3 control planes + 2 workers) cold from a ready bundle, then a rerun;
3. node prep on a large lab (default 100 machines): wall time and control-machine memory.

    python bench/fleet.py [--machines 20] [--large 100] [--rounds 3] [--markdown FILE]

Needs root (labs). Every lab it boots is torn down, even on failure.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ssh_fanout import CONTAINERD_CONFIG, load_hosts, node_prep_script, openssh

from bootstrap.engine.context import RunContext
from bootstrap.engine.phase import Phase, Tree
from bootstrap.engine.result import RunResult
from bootstrap.engine.runner import RunState, run_tree
from bootstrap.lab.inventory import ensure_lab_bundle
from bootstrap.lab.testing import running_lab, unique_name
from bootstrap.spec.inventory import load_inventory
from bootstrap.spec.load import build_spec
from bootstrap.transport.ssh import SSHHost, connect_all


def node_prep(ctx: RunContext) -> None:
    """The same work as ssh_fanout.node_prep_script, written as a kbootstrap phase."""
    files = [
        ("/etc/modules-load.d/k8s.conf", b"overlay\nbr_netfilter\n", 0o644),
        (
            "/etc/sysctl.d/k8s.conf",
            b"-net.bridge.bridge-nf-call-iptables = 1\n-net.bridge.bridge-nf-call-ip6tables = 1\n"
            b"net.ipv4.ip_forward = 1\n",
            0o644,
        ),
        ("/etc/containerd/config.toml", CONTAINERD_CONFIG.encode(), 0o644),
        *(
            (f"/etc/kbbench/secrets/file{i}.conf", f"name: 'file {i}'\nvalue: \"$NOT_EXPANDED\"\n".encode(), 0o600)
            for i in range(10)
        ),
    ]
    written = ctx.ensure_files(files)
    ctx.run_change(
        f"""
mkdir -p -m 0755 /etc/kubernetes/manifests /etc/kubernetes/pki/etcd /var/lib/kubelet /var/lib/etcd
{"sysctl --system >/dev/null" if written["/etc/sysctl.d/k8s.conf"] else ":"}
test "$(cat /proc/sys/net/ipv4/ip_forward)" = 1
""",
        "node prep",
        changes=[],
    )


NODE_PREP = Phase("node-prep", "bench: modules, sysctls, dirs, 10 private files, containerd config", node_prep)


def ours_round(hosts: list[SSHHost], forks: int) -> tuple[float, int]:
    """connect_all + the phase on every host through the engine's runner; returns (seconds, changed)."""
    spec = build_spec({"apiserver_advertise_address": "10.0.0.1", "node_name": "bench"})
    started = time.monotonic()
    conns = connect_all(hosts, forks=forks)
    targets = {n: t for n, t in conns.items() if not isinstance(t, Exception)}
    assert len(targets) == len(hosts), {n: str(e) for n, e in conns.items() if isinstance(e, Exception)}
    contexts = {n: RunContext(spec, t) for n, t in targets.items()}
    nodes = {h.name: h for h in hosts}
    run = RunState(nodes, contexts, RunResult({}), forks=forks)  # type: ignore[arg-type]
    reports = run_tree(Tree((NODE_PREP,)), run, set()).hosts
    elapsed = time.monotonic() - started
    for t in targets.values():
        t.close()
    failed = {n: r.error or [p.error for p in r.phases] for n, r in reports.items() if r.failed}
    assert not failed, failed
    return elapsed, sum(r.changed for r in reports.values())


def wipe(hosts: list[SSHHost]) -> None:
    conns = connect_all(hosts)
    for t in conns.values():
        assert not isinstance(t, Exception)
        t.run("rm -rf /etc/kbbench /etc/modules-load.d/k8s.conf /etc/sysctl.d/k8s.conf /etc/containerd/config.toml")
        t.close()


def node_prep_bench(n: int, rounds: int, forks: int) -> dict[str, float]:
    script = node_prep_script()
    with tempfile.TemporaryDirectory() as tmp, running_lab(unique_name("bf"), 1, n - 1, inventory_dir=tmp) as lab:
        inv_dir = Path(tmp) / lab.name
        hosts = load_hosts(inv_dir)
        script_path = Path(tmp) / "node-prep.sh"
        script_path.write_text(script)
        ours, rerun, floor = [], [], []
        for _ in range(rounds):
            wipe(hosts)
            floor.append(openssh(hosts, script_path))
            wipe(hosts)
            t, changed = ours_round(hosts, forks)
            assert changed > 0
            ours.append(t)
            t, changed = ours_round(hosts, forks)
            assert changed == 0, changed
            rerun.append(t)
    return {"ours": statistics.median(ours), "rerun": statistics.median(rerun), "openssh": statistics.median(floor)}


def cluster_bench(pki: Path) -> dict[str, float]:
    """Cold run, then a rerun. The report's `seconds` is provisioning; validation (netcheck and
    node checks, which `init -i` runs at the end) is timed apart."""
    ensure_lab_bundle()
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, running_lab(unique_name("bc"), 3, 2, inventory_dir=tmp) as lab:
        inventory = Path(tmp) / lab.name / "hosts.yaml"
        assert load_inventory(str(inventory)).hosts
        for label in ("cold", "rerun"):
            started = time.monotonic()
            argv = [sys.executable, "-m", "bootstrap.cli", "init", "-i", str(inventory), "--pki-dir", str(pki)]
            proc = subprocess.run([*argv, "-o", "json"], capture_output=True, text=True)
            out[f"{label}_wall"] = time.monotonic() - started
            assert proc.returncode == 0, proc.stderr[-2000:]
            report = json.loads(proc.stdout)
            out[label] = report["seconds"]
            out[f"{label}_validation"] = (report.get("validation") or {}).get("seconds", 0.0)
        assert all(h["changed"] == 0 for h in report["hosts"].values())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--machines", type=int, default=20)
    ap.add_argument("--large", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--forks", type=int, default=64)
    ap.add_argument("--markdown", help="write the table to this file too")
    args = ap.parse_args()

    small = node_prep_bench(args.machines, args.rounds, args.forks)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    large_forks = max(args.forks, args.large)
    large = node_prep_bench(args.large, 1, large_forks) if args.large else None
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with tempfile.TemporaryDirectory() as pki:
        cluster = cluster_bench(Path(pki))

    lines = [
        "| benchmark | kbootstrap | floor / target | ratio |",
        "|---|---:|---:|---:|",
        f"| node prep, {args.machines} machines (median of {args.rounds}) | {small['ours']:.2f} s | OpenSSH "
        f"{small['openssh']:.2f} s (target <= 2x) | {small['ours'] / small['openssh']:.2f}x |",
        f"| node prep rerun, nothing to do, {args.machines} machines | {small['rerun']:.2f} s | | |",
    ]
    if large:
        lines.append(
            f"| node prep, {args.large} machines (forks {large_forks}) | {large['ours']:.2f} s | OpenSSH "
            f"{large['openssh']:.2f} s; target: 3x the {args.machines}-machine figure = {3 * small['ours']:.2f} s | "
            f"{large['ours'] / small['ours']:.2f}x of {args.machines}, "
            f"{large['ours'] / large['openssh']:.2f}x OpenSSH |"
        )
        lines.append(
            f"| control-machine peak RSS, {args.large} machines | {rss_after / 1024:.0f} MiB "
            f"(before: {rss_before / 1024:.0f} MiB) | | |"
        )
    lines += [
        f"| full lab cluster 3 CP + 2 workers, cold from a ready bundle | {cluster['cold']:.1f} s provisioning + "
        f"{cluster['cold_validation']:.1f} s validation ({cluster['cold_wall']:.1f} s wall) | target <= 60 s | |",
        f"| same command again (0 changed) | {cluster['rerun']:.1f} s provisioning + "
        f"{cluster['rerun_validation']:.1f} s validation ({cluster['rerun_wall']:.1f} s wall, "
        "Python start included) | target <= 5 s | |",
    ]
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")


if __name__ == "__main__":
    main()
