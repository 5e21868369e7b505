"""Benchmark: `make components` (python3 -m components build) from scratch, and again with nothing to do.

    python bench/components.py [--releases v1.37.2 ...] [--cold]

- warm-cache rebuild: an empty KBOOTSTRAP_COMPONENTS directory, this machine's Go build and module
  caches as they are (what a developer sees after deleting the outputs);
- no-op: the same command again (stamps and sha256 checks only);
- with --cold, a true cold build first: GOCACHE and GOMODCACHE pointed at empty temp directories,
  so every module is downloaded and every package compiled (what a fresh CI machine sees).
Prints a markdown table; per-step times are in each release's build.log.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from components.releases import RELEASES  # noqa: E402


def build(releases: list[str], out: Path, extra_env: dict[str, str]) -> float:
    env = {**os.environ, "KBOOTSTRAP_COMPONENTS": str(out), **extra_env}
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "components", "build", *releases], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)
    took = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"build failed after {took:.0f}s:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return took


def step_times(out: Path, release: str) -> str:
    """'name Ns' for each `go build` step of the last run, from the release's build.log."""
    log = (out / release / "build.log").read_text().splitlines()
    starts = [i for i, line in enumerate(log) if "build started" in line]
    last = log[starts[-1]:] if starts else log
    return ", ".join(line.split(": ", 1)[1].replace(" built in ", " ") for line in last if " built in " in line)


def digests(out: Path, releases: list[str]) -> dict[tuple[str, str, str], str]:
    found = {}
    for r in releases:
        data = json.loads((out / r / "manifest.json").read_text())
        found.update({(r, a["kind"], a["name"]): a["sha256"] for a in data["artifacts"]})
    return found


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--releases", nargs="*", default=[r.kubernetes for r in RELEASES])
    ap.add_argument("--cold", action="store_true", help="also a build with empty GOCACHE and GOMODCACHE")
    args = ap.parse_args()
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="kbootstrap-bench-components-") as tmp:
        tmpdir = Path(tmp)
        details = []
        if args.cold:
            caches = {"GOCACHE": str(tmpdir / "gocache"), "GOMODCACHE": str(tmpdir / "gomodcache")}
            took = build(args.releases, tmpdir / "cold", caches)
            rows.append(("cold: empty outputs, GOCACHE and GOMODCACHE", took))
            cold = digests(tmpdir / "cold", args.releases)
            details += [f"- cold {r}: {step_times(tmpdir / 'cold', r)}" for r in args.releases]
            # module files are read-only: go clean removes them
            subprocess.run(["go", "clean", "-modcache"], env={**os.environ, **caches}, check=False)
            shutil.rmtree(tmpdir / "cold", ignore_errors=True)
        took = build(args.releases, tmpdir / "warm", {})
        rows.append(("warm-cache rebuild: empty outputs, warm Go caches", took))
        details += [f"- warm-cache {r}: {step_times(tmpdir / 'warm', r)}" for r in args.releases]
        rows.append(("no-op: the same command again", build(args.releases, tmpdir / "warm", {})))
        if args.cold:
            warm = digests(tmpdir / "warm", args.releases)
            differ = sorted("/".join(k) for k in warm if cold.get(k) != warm[k])
            listed = f"; differ: {', '.join(differ)}" if differ else ""
            details.append(f"- reproducible: {len(warm) - len(differ)} of {len(warm)} artifacts bit-identical "
                           f"between the cold and the warm-cache build{listed}")
    print(f"Releases: {', '.join(args.releases)}; `go build -p {os.cpu_count()}`.\n")
    print("| run | seconds |\n| --- | ---: |")
    for name, secs in rows:
        print(f"| {name} | {secs:.1f} |")
    print("\nPer-unit `go build` times (seconds):\n")
    print("\n".join(details))


if __name__ == "__main__":
    main()
