"""Benchmark: boot labs of 3 and 50 machines with the rootfs cached; time to SSH, memory per machine.

    sudo python bench/lab_boot.py [--sizes 3,50] [--parallel 8]

Prints a markdown table. Every lab it starts is torn down, pass or fail.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bootstrap.lab import cgroup, ops, remote, rootfs
from bootstrap.lab.state import LabState
from bootstrap.lab.testing import unique_name


def mem_available_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    raise RuntimeError("no MemAvailable")


def lab_pss_kib(name: str) -> int:
    """Proportional set size of every process in the lab's cgroups (nspawn + everything it runs)."""
    pids: set[int] = set()
    for base in cgroup.lab_cgroups(name)[:1]:
        for procs in base.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids |= {int(p) for p in procs.read_text().split()}
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
    return total


def ssh_all(st: LabState) -> None:
    def one(m: object) -> None:
        rc, _, err = remote.run(st, m, "true")  # type: ignore[arg-type]
        if rc != 0:
            raise RuntimeError(err)

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(one, st.machines))


def bench(n: int, parallel: int) -> dict[str, float]:
    name = unique_name("b")
    inv = tempfile.TemporaryDirectory(prefix="kb-bench-inv-")
    before = mem_available_kib()
    t0 = time.monotonic()
    try:
        st, _ = ops.up(name, 1, n - 1, inventory_dir=inv.name, parallel=parallel)
        t_banner = time.monotonic() - t0
        ssh_all(st)
        t_ssh = time.monotonic() - t0
        time.sleep(5)  # let boots settle before measuring memory
        used = (before - mem_available_kib()) / n / 1024
        pss = lab_pss_kib(name) / n / 1024
    finally:
        t1 = time.monotonic()
        ops.down(name)
        t_down = time.monotonic() - t1
        inv.cleanup()
    return {"banner": t_banner, "ssh": t_ssh, "mem": used, "pss": pss, "down": t_down}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="3,50")
    ap.add_argument("--parallel", type=int, default=ops.DEFAULT_PARALLEL)
    args = ap.parse_args()
    rootfs.ensure_rootfs()  # cached before timing
    print(
        "| machines | parallel | sshd banner (s) | SSH login on all (s) | MemAvailable drop / machine (MiB) "
        "| PSS / machine (MiB) | lab down (s) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in (int(x) for x in args.sizes.split(",")):
        r = bench(n, args.parallel)
        print(
            f"| {n} | {args.parallel} | {r['banner']:.1f} | {r['ssh']:.1f} | {r['mem']:.1f} | {r['pss']:.1f} "
            f"| {r['down']:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
