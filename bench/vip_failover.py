"""VIP failover time in the lab: 3 control planes (keepalived + HAProxy, stand-in API servers), N trials
of an orderly `lab stop` and of a forced one on the VIP holder. Prints a markdown table.

    sudo python bench/vip_failover.py [--trials 3]

Time is measured from the stop call until another control plane holds the VIP (read from its network
namespace every 50 ms). The setup is tests/lab/test_ha_lab.py's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bootstrap.lab.inventory import ensure_lab_bundle
from bootstrap.lab.testing import running_lab, skip_reason
from tests.lab.test_ha_lab import measure_failover, restart_stopped, setup_ha


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    reason = skip_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 3
    bundle = ensure_lab_bundle()
    rows: list[tuple[int, str, str, str, float]] = []
    with running_lab(control_planes=3, workers=1) as lab, tempfile.TemporaryDirectory() as tmp:
        ha = setup_ha(lab, bundle, Path(tmp))
        for trial in range(1, args.trials + 1):
            for force in (False, True):
                old, new, took = measure_failover(ha, force=force)
                rows.append((trial, "stop --force" if force else "stop", old, new, took))
                restart_stopped(ha)
                time.sleep(2)  # let the returning node settle as BACKUP
    print("| trial | how | VIP holder stopped | new holder | seconds |")
    print("|---|---|---|---|---|")
    for trial, how, old, new, took in rows:
        print(f"| {trial} | `lab {how}` | {old} | {new} | {took:.2f} |")
    for how in ("stop", "stop --force"):
        times = [r[4] for r in rows if r[1] == how]
        print(
            f"\n`lab {how}`: min {min(times):.2f}s, median {statistics.median(times):.2f}s, max {max(times):.2f}s "
            f"over {len(times)} trials (advert_int 1 s)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
