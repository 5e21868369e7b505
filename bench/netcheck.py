"""Benchmark: the full netcheck matrix on 20 lab machines (380 ordered pairs); target <= 5 s.

The lab is not provisioned: on the 3 control planes a transient systemd unit named `etcd` listens on
2379/2380 (so the facts say etcd is active and those ports are probed for real); the kubelet and API
server ports are skipped with their reason, as on a lab cluster. Prints a markdown table.

    sudo python bench/netcheck.py [--runs 3] [--workers 17]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bootstrap.lab.testing import running_lab, sh, skip_reason, unique_name
from bootstrap.spec.inventory import load_inventory
from bootstrap.validate.netcheck import run_netcheck
from bootstrap.workflow.fleet_spec import fleet_cluster_spec
from bootstrap.workflow.options import FleetOptions
from bootstrap.workflow.session import close, connect

# A stand-in etcd: accepts and closes connections on both etcd ports.
LISTENER = r"""systemd-run --quiet --unit=etcd python3 -c '
import socket, threading
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(128)
    while True:
        c, _ = s.accept(); c.close()
for p in (2379, 2380): threading.Thread(target=serve, args=(p,)).start()
' && sleep 0.5 && systemctl is-active etcd"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--control-planes", type=int, default=3)
    ap.add_argument("--workers", type=int, default=17)
    args = ap.parse_args()
    reason = skip_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 3
    n = args.control_planes + args.workers
    with running_lab(unique_name("nb"), args.control_planes, args.workers, inventory_dir="/tmp/kb-bench-inv") as lab:
        for m in lab.machines:
            if m.role == "control-plane":
                code, out, err = sh(lab, m.name, LISTENER)
                if code != 0:
                    print(f"listener on {m.name} failed: {err or out}", file=sys.stderr)
                    return 1
        inv = load_inventory(str(Path(lab.inventory_dir) / "hosts.yaml"))
        spec = fleet_cluster_spec({}, inv)
        rows = []
        for run in range(1, args.runs + 1):
            t0 = time.monotonic()
            conns = connect(inv, [h.name for h in inv.hosts], FleetOptions(str(inv.path)))
            targets = {n: c for n, c in conns.items() if not isinstance(c, Exception)}
            unreachable = {n: str(c) for n, c in conns.items() if isinstance(c, Exception)}
            t1 = time.monotonic()
            try:
                report = run_netcheck(inv, spec, targets, unreachable=unreachable)
            finally:
                close(conns)
            t2 = time.monotonic()
            c = report.counts()
            rows.append((run, c, t1 - t0, t2 - t1, t2 - t0))
            if report.failed:
                print(report.summary(), file=sys.stderr)
    print(f"\n### netcheck, {n} lab machines ({args.control_planes} control planes with a stand-in etcd)\n")
    print("| run | pairs | probes run | skipped | failed | connect (s) | netcheck (s) | total (s) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for run, c, conn, check, total in rows:
        ran = c["probes"] - c["probes_skipped"]
        print(
            f"| {run} | {c['pairs']} | {ran} | {c['probes_skipped']} | {c['probes_failed']} | {conn:.2f} | "
            f"{check:.2f} | {total:.2f} |"
        )
    med = statistics.median(r[3] for r in rows)
    med_total = statistics.median(r[4] for r in rows)
    print(f"\nmedian netcheck {med:.2f} s (facts + probes), with SSH connect {med_total:.2f} s; target <= 5 s")
    return 0 if all(r[1]["probes_failed"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
