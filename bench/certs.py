"""Benchmark: `init phase certs all` (and + `kubeconfig all`) vs. the same number of keys made by
`openssl genpkey`, run as many at a time as there are CPUs. Prints a markdown table of medians.

    python bench/certs.py [--reps 9]

The openssl side only generates keys (no certificates, no signing), so it is a lower bound for
any tool that shells out to openssl; the target is ours <= 1.3x that.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bootstrap.engine.context import RunContext
from bootstrap.phases.certs import PHASE as CERTS
from bootstrap.phases.kubeconfig import PHASE as KUBECONFIG
from bootstrap.spec.load import build_spec
from bootstrap.transport.local import LocalTarget

OPENSSL_ARGS = {
    "RSA-2048": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    "ECDSA-P256": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
}
CERTS_KEYS = 11  # 3 CAs + 7 leaves + sa
KUBECONFIG_KEYS = 5  # admin, super-admin, kubelet, controller-manager, scheduler


def ours(algorithm: str, with_kubeconfigs: bool) -> float:
    spec = build_spec(
        {
            "apiserver_advertise_address": "10.0.0.5",
            "node_name": "cp1",
            "control_plane_endpoint": "lb.example.com:6443",
            "encryption_algorithm": algorithm,
        }
    )
    with tempfile.TemporaryDirectory() as root:
        ctx = RunContext(spec, LocalTarget(root), now=datetime.now(UTC))
        assert CERTS.run is not None and KUBECONFIG.run is not None
        start = time.perf_counter()
        CERTS.run(ctx)
        if with_kubeconfigs:
            KUBECONFIG.run(ctx)
        return time.perf_counter() - start


def openssl(algorithm: str, count: int) -> float:
    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as out:

        def one(i: int) -> None:
            subprocess.run(
                ["openssl", "genpkey", *OPENSSL_ARGS[algorithm], "-out", f"{out}/{i}.key"],
                check=True,
                capture_output=True,
            )

        start = time.perf_counter()
        with ThreadPoolExecutor(cpus) as pool:
            list(pool.map(one, range(count)))
        return time.perf_counter() - start


def median_pair(reps: int, a: Callable[[], float], b: Callable[[], float]) -> tuple[float, float]:
    xs, ys = [], []
    for _ in range(reps):  # interleaved so drift in machine load hits both sides alike
        xs.append(a())
        ys.append(b())
    return statistics.median(xs), statistics.median(ys)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args()
    if shutil.which("openssl") is None:
        print("openssl not found: nothing to compare against", file=sys.stderr)
        return 1
    ours("ECDSA-P256", True)  # warm imports and OpenSSL
    print(f"CPUs: {os.cpu_count()}, repetitions: {args.reps} (median wall time)\n")
    print("| workload | algorithm | keys | kbootstrap (s) | openssl genpkey x CPUs (s) | ratio |")
    print("|---|---|---|---|---|---|")
    for with_kc, label, keys in (
        (False, "certs all", CERTS_KEYS),
        (True, "certs all + kubeconfig all", CERTS_KEYS + KUBECONFIG_KEYS),
    ):
        for alg in ("RSA-2048", "ECDSA-P256"):
            mine, theirs = median_pair(
                args.reps, lambda a=alg, k=with_kc: ours(a, k), lambda a=alg, n=keys: openssl(a, n)
            )
            print(f"| {label} | {alg} | {keys} | {mine:.3f} | {theirs:.3f} | {mine / theirs:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
