"""The Ansible transport against the SSH transport, same cluster, same size, one run (issue 7).

Two labs of N machines (3 control planes + N-3 workers), booted side by side from the same rootfs:
lab A is provisioned by `kbootstrap init -i` over SSH (paramiko), lab B by playbooks/cluster.yml
through ansible-runner. Each is then provisioned again (nothing to do), and each again by the OTHER
transport: both must report 0 changes, which is the cheapest proof that they build the same nodes.
Validation (netcheck, node checks) is skipped on both sides: it is not provisioning.

Where Ansible spends its time comes from ansible-runner's events: per task, the slowest host's
duration, and over all tasks the share spent inside kbootstrap's phase code (the `seconds` of each
phase report) against Ansible's own per-task cost (worker fork, plugin and spec load, connection).

    python bench/ansible_vs_ssh.py [--machines 20] [--forks 50]

Needs root (labs) and ansible-core. Every lab is torn down, even on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bootstrap.ansible.playbook import PlaybookRun, run_playbook
from bootstrap.lab.inventory import ensure_lab_bundle
from bootstrap.lab.testing import running_lab, unique_name

ROOT = Path(__file__).resolve().parent.parent


def ssh_init(inventory: Path, pki: Path, forks: int) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bootstrap.cli",
            "init",
            "-i",
            str(inventory),
            "--pki-dir",
            str(pki),
            "--skip-phases",
            "validate",
            "--forks",
            str(forks),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},
    )
    took = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"ssh init failed (exit {proc.returncode}): {(proc.stderr or proc.stdout)[-500:]}")
    return took, json.loads(proc.stdout)


def ansible_init(inventory: Path, pki: Path, hosts: list[str], forks: int) -> PlaybookRun:
    run = run_playbook(
        inventory,
        "cluster.yml",
        hosts=hosts,
        forks=forks,
        extravars={"kbootstrap_pki_dir": str(pki), "kbootstrap_validate": False},
        timeout=1800,
    )
    if run.rc != 0:
        errors = {
            n: r.error or next((p.error for p in r.phases if p.error), None)
            for n, r in run.collector.reports.items()
            if r.failed
        }
        raise SystemExit(f"ansible run failed (rc {run.rc}): {errors}")
    return run


def changed_ssh(report: dict[str, Any]) -> int:
    return sum(h["changed"] for h in report["hosts"].values())


def changed_ansible(run: PlaybookRun) -> int:
    return sum(s.get("changed", 0) for s in run.collector.stats.values())


def breakdown(run: PlaybookRun) -> tuple[float, float]:
    """(sum of task durations over hosts, sum of kbootstrap phase seconds over hosts)."""
    tasks = sum(t.seconds for t in run.collector.timings)
    phases = sum(p.seconds for r in run.collector.reports.values() for p in r.phases)
    return tasks, phases


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--machines", type=int, default=20)
    ap.add_argument("--forks", type=int, default=50)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (labs)")
        return 2
    ensure_lab_bundle()
    cps, workers = 3, max(0, args.machines - 3)
    with tempfile.TemporaryDirectory(prefix="kb-bench-ansible-") as tmp, contextlib.ExitStack() as stack:
        inv_dir = str(Path(tmp) / "inventories")
        lab_a = stack.enter_context(running_lab(unique_name("ba"), cps, workers, inventory_dir=inv_dir))
        lab_b = stack.enter_context(running_lab(unique_name("bb"), cps, workers, inventory_dir=inv_dir))
        inv_a, inv_b = Path(lab_a.inventory_dir) / "hosts.yaml", Path(lab_b.inventory_dir) / "hosts.yaml"
        hosts_a, hosts_b = [m.name for m in lab_a.machines], [m.name for m in lab_b.machines]
        pki_a, pki_b = Path(tmp) / "pki-a", Path(tmp) / "pki-b"

        ssh_cold, rep = ssh_init(inv_a, pki_a, args.forks)
        ssh_cold_changes = changed_ssh(rep)
        ssh_rerun, rep = ssh_init(inv_a, pki_a, args.forks)
        ssh_rerun_changes = changed_ssh(rep)
        cross_a = ansible_init(inv_a, pki_a, hosts_a, args.forks)  # Ansible over the SSH-built cluster

        ans_cold = ansible_init(inv_b, pki_b, hosts_b, args.forks)
        ans_rerun = ansible_init(inv_b, pki_b, hosts_b, args.forks)
        cross_b_secs, rep = ssh_init(inv_b, pki_b, args.forks)  # SSH over the Ansible-built cluster
        cross_b_changes = changed_ssh(rep)

    n = args.machines
    print(
        f"{n} lab machines (3 control planes, etcd in host mode, {workers} workers), offline bundle, "
        f"forks {args.forks}; validation skipped on both; lab boot not included.\n"
    )
    print("| run | SSH transport (paramiko) | Ansible transport (ansible-runner) |")
    print("| --- | --- | --- |")
    print(
        f"| cold: {n} fresh machines | {ssh_cold:.1f} s ({ssh_cold_changes} changes) | "
        f"{ans_cold.seconds:.1f} s ({changed_ansible(ans_cold)} changed tasks) |"
    )
    print(
        f"| rerun, nothing to do | {ssh_rerun:.1f} s ({ssh_rerun_changes} changes) | "
        f"{ans_rerun.seconds:.1f} s ({changed_ansible(ans_rerun)} changed tasks) |"
    )
    print(
        f"| the other transport's cluster, rerun | {cross_b_secs:.1f} s ({cross_b_changes} changes on the "
        f"Ansible-built lab) | {cross_a.seconds:.1f} s ({changed_ansible(cross_a)} changed tasks on the "
        f"SSH-built lab) |"
    )
    for title, run in (("cold", ans_cold), ("rerun", ans_rerun)):
        tasks, phases = breakdown(run)
        share = 100 * phases / tasks if tasks else 0.0
        print(
            f"\nAnsible {title} run: {len(run.collector.timings)} task results; host-seconds in tasks "
            f"{tasks:.1f}, of which inside kbootstrap phase code {phases:.1f} ({share:.0f}%); the rest is "
            "Ansible's per-task cost (worker fork, action plugin, inventory+spec load per task, SSH exec).\n"
        )
        print("| task (role : name) | slowest host s | sum over hosts s | hosts |")
        print("| --- | --- | --- | --- |")
        for row in run.collector.task_profile(6):
            print(f"| {row['task']} | {row['max_seconds']:.2f} | {row['sum_seconds']:.1f} | {row['hosts']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
