"""Run every benchmark in one go on this machine and write BENCHMARKS.md.

    python bench/run_all.py [--quick]

Each benchmark prints a markdown table; this collects them, with the machine's description and
the date, so every figure in BENCHMARKS.md comes from the same run. Needs root (labs).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

BENCHES = [
    (
        "PKI: `init phase certs all` vs `openssl genpkey` (issue 2)",
        ["certs.py", "--reps", "9"],
        ["certs.py", "--reps", "3"],
    ),
    ("Lab boot (issue 3)", ["lab_boot.py", "--sizes", "3,50"], ["lab_boot.py", "--sizes", "3"]),
    (
        "SSH fan-out: paramiko in one process vs one OpenSSH process per host",
        ["ssh_fanout.py", "--rounds", "3"],
        ["ssh_fanout.py", "--rounds", "1"],
    ),
    (
        "Fleet: `kbootstrap init -i` (issue 4)",
        ["fleet.py", "--rounds", "3", "--large", "100"],
        ["fleet.py", "--rounds", "1", "--large", "0"],
    ),
]
BENCHES += [
    (
        "Engine: reruns against the code before it, and the 3 CP + 2 W rerun (issue 12)",
        ["engine_rerun.py", "--rounds", "3"],
        ["engine_rerun.py", "--rounds", "1", "--machines", "8"],
    ),
    ("netcheck: 20 nodes, 380 pairs (issue 5)", ["netcheck.py"], ["netcheck.py"]),
    ("VIP failover (issue 8)", ["vip_failover.py", "--trials", "3"], ["vip_failover.py", "--trials", "1"]),
    (
        "Ansible transport vs SSH transport, 20 machines (issue 7)",
        ["ansible_vs_ssh.py", "--machines", "20"],
        ["ansible_vs_ssh.py", "--machines", "5"],
    ),
    ("Components: `make components` warm (issue 13)", ["components.py"], ["components.py"]),
    ("A real cluster: kbootstrap beside the kubeadm path, 3 CP + 2 W (issue 14)", ["cluster.py"], ["cluster.py"]),
]


NOTES = """## Reading these numbers

- Every lab machine runs on the same 2 cores as the control machine, so work on the nodes grows
  with their number: on 100 machines the OpenSSH floor itself grows 4.5-5.5x over its 20-machine
  figure (the Fleet table gives both in the same run). We stay at about half the OpenSSH floor at
  both sizes; the issue's "100 machines within 3x of 20" is not met here for that reason, and
  would need machines that do not share our CPU.
- `init -i` ends with netcheck and node validation. The 3 CP + 2 W rerun target (<= 5 s, validation
  included) is NOT met: before the cluster phases the rerun took 10.0 s (4.1 s provisioning + 4.4 s
  validation); with the whole cluster (API phases, cluster-ready, kube-router) it took 18.2 s in
  tests/lab/test_cluster.py (2026-12-01). `KBOOTSTRAP_TRACE=FILE` records every remote operation
  for finding where it goes (`python -m bootstrap.transport.trace FILE`).
- The Ansible figures come from the same lab size in the same run; where Ansible's time goes is
  printed by its benchmark.
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repetitions and smaller labs")
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = ap.parse_args()
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    parts = [
        "# Benchmarks",
        "",
        f"Measured in one run by `python bench/run_all.py` on {time.strftime('%Y-%m-%d')}: {os.cpu_count()} cores "
        f"({cpu}), {round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB, "
        f"kernel {platform.release()}, Python {platform.python_version()}.",
        "",
    ]
    for title, full, quick in BENCHES:
        argv = quick if args.quick else full
        print(f"== {title}", flush=True)
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, str(HERE / argv[0]), *argv[1:]], capture_output=True, text=True, cwd=ROOT
        )
        took = time.monotonic() - started
        body = (
            proc.stdout.strip()
            if proc.returncode == 0
            else f"FAILED (exit {proc.returncode}):\n\n```\n{(proc.stdout + proc.stderr)[-1500:]}\n```"
        )
        print(body, flush=True)
        parts += [f"## {title}", "", f"`python bench/{' '.join(argv)}` ({took:.0f} s)", "", body, ""]
    parts.append(NOTES)
    Path(args.out).write_text("\n".join(parts) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
