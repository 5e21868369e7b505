"""Command line of the component build (the Makefile's `components` and `components-pin` targets).

    python3 -m components build [RELEASE ...] [--with flannel]   # default: every release in the table
    python3 -m components pin RELEASE [--with flannel]
    python3 -m components list
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from components import releases
from components.build import ENV_ROOT, build_release, default_root
from components.buildlog import BuildLog
from components.errors import BuildError
from components.gotool import GoTool
from components.pin import pin_release


def _progress(message: str) -> None:
    print(f"components: {message}", flush=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python3 -m components", description="kbootstrap's pinned component build")
    sub = p.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build (or verify and reuse) the components of releases")
    build.add_argument("releases", nargs="*", help="default: $KBOOTSTRAP_COMPONENTS_RELEASES or every release")
    build.add_argument("--root", type=Path, help=f"output parent directory (default: ${ENV_ROOT} or "
                       "~/.cache/kbootstrap/components)")
    build.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="go build -p (default: cores)")
    build.add_argument("--with", dest="extra", action="append", default=[], choices=releases.OPTIONAL_UNITS,
                       help="also build an optional unit")
    pin = sub.add_parser("pin", help="write a release's go.mod/go.sum (components/modules/RELEASE/)")
    pin.add_argument("release")
    pin.add_argument("--with", dest="extra", action="append", default=[], choices=releases.OPTIONAL_UNITS)
    sub.add_parser("list", help="print the releases table")
    return p


def _selected(names: list[str]) -> list[releases.Release]:
    if not names:
        env = os.environ.get("KBOOTSTRAP_COMPONENTS_RELEASES", "")
        names = env.split() if env.strip() else [r.kubernetes for r in releases.RELEASES]
    return [releases.get(n) for n in names]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            for r in releases.RELEASES:
                default = "\t(default)" if r.kubernetes == releases.DEFAULT_RELEASE else ""
                print(f"{r.kubernetes}\t{r.scope}{default}")
            return 0
        if args.command == "pin":
            release = releases.get(args.release)
            log = BuildLog(default_root() / "pin.log", _progress)
            try:
                start = time.monotonic()
                pin_release(release, GoTool(log, os.cpu_count() or 1), log, extra=args.extra)
                _progress(f"{release.kubernetes} pinned in {time.monotonic() - start:.0f}s (log: {log.path})")
            finally:
                log.close()
            return 0
        root = args.root or default_root()
        for release in _selected(args.releases):
            result = build_release(release, root, jobs=args.jobs, progress=_progress, extra=args.extra)
            what = f"built {', '.join(result.built)}" if result.built else "nothing to do"
            _progress(f"{result.release}: {what} in {result.seconds:.1f}s -> {result.directory} (log: {result.log})")
        return 0
    except (BuildError, KeyError, ValueError) as exc:
        message = exc.one_line() if isinstance(exc, BuildError) else str(exc).strip("'\"")
        print(f"components: error: {message}", file=sys.stderr)
        return 1
