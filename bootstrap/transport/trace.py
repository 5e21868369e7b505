"""KBOOTSTRAP_TRACE=FILE: every operation a run sends to a node, one JSON line each (host, op, ms,
what), for finding where a run's time goes (`python -m bootstrap.transport.trace FILE` sums it).
Scripts are named by their first line only: a script never carries a secret (those go in files),
but it is still not logged whole."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from bootstrap.transport.base import BatchFile, CommandResult, FileState, Target

ENV = "KBOOTSTRAP_TRACE"
_LOCK = threading.Lock()


class TracingTarget:
    def __init__(self, inner: Target, path: str) -> None:
        self.inner, self.path = inner, path
        self.name, self.live = inner.name, inner.live

    def _log(self, op: str, started: float, what: str) -> None:
        line = json.dumps({"host": self.name, "op": op, "t": round(started, 3),
                           "ms": round((time.monotonic() - started) * 1000, 1), "what": what[:120]})
        with _LOCK, open(self.path, "a") as f:
            f.write(line + "\n")

    def run(self, script: str, *, timeout: float | None = None) -> CommandResult:
        started = time.monotonic()
        try:
            return self.inner.run(script, timeout=timeout)
        finally:
            first = next((ln.strip() for ln in script.splitlines() if ln.strip() and not ln.startswith("set -")), "")
            self._log("run", started, first)

    def read_many(self, paths: Sequence[str]) -> dict[str, FileState | None]:
        started = time.monotonic()
        try:
            return self.inner.read_many(paths)
        finally:
            self._log("read_many", started, f"{len(paths)} paths: {', '.join(paths[:3])}")

    def write_many(self, files: Sequence[BatchFile]) -> None:
        started = time.monotonic()
        try:
            self.inner.write_many(files)
        finally:
            self._log("write_many", started, f"{len(files)} files: {', '.join(f[0] for f in files[:3])}")

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def traced(*args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            try:
                return attr(*args, **kwargs)
            finally:
                self._log(name, started, str(args[0]) if args else "")

        return traced


def maybe_trace(target: Target) -> Target:
    path = os.environ.get(ENV)
    return TracingTarget(target, path) if path else target


def summary(path: str) -> str:
    ops: dict[tuple[str, str], list[float]] = defaultdict(list)
    hosts: dict[str, float] = defaultdict(float)
    with open(path) as f:
        records = [json.loads(line) for line in f]
    for rec in records:
        ops[(rec["op"], rec["what"])].append(rec["ms"])
        hosts[rec["host"]] += rec["ms"]
    rows = sorted(ops.items(), key=lambda kv: -sum(kv[1]))[:40]
    out = [f"{sum(v):8.0f} ms {len(v):4d}x  {op:10s} {what}" for (op, what), v in rows]
    out += [f"host {h}: {ms:.0f} ms" for h, ms in sorted(hosts.items())]
    return "\n".join(out)


if __name__ == "__main__":
    print(summary(sys.argv[1]))
