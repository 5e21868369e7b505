"""A read-ahead cache over any Target: one batched read (read_many) answers many later reads.

Phases that inspect many files (the PKI: every cert and key; kubeconfigs) ask for them one by
one; over SSH each would be a round trip. A phase prefetches what it will read, and writes,
chmods and removes drop the paths they touch so a read never returns stale content.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from bootstrap.transport.base import CommandResult, FileState, Target

_MISSING = object()


class ReadAheadTarget:
    def __init__(self, inner: Target) -> None:
        self.inner = inner
        self.name = inner.name
        self.live = inner.live
        self._cache: dict[str, Any] = {}

    def prefetch(self, paths: Iterable[str]) -> None:
        paths = [p for p in dict.fromkeys(paths) if p not in self._cache]
        read_many = getattr(self.inner, "read_many", None)
        if not paths or read_many is None:
            return
        for path, state in read_many(paths).items():
            self._cache[path] = state if state is not None else _MISSING

    def read(self, path: str) -> FileState | None:
        hit = self._cache.get(path)
        if hit is None:
            return self.inner.read(path)
        return None if hit is _MISSING else hit

    def read_many(self, paths: Sequence[str]) -> dict[str, FileState | None]:
        self.prefetch(paths)
        return {p: self.read(p) for p in paths}

    def write(self, path: str, data: bytes, mode: int, owner: str | None = None) -> None:
        self._cache.pop(path, None)
        self.inner.write(path, data, mode, owner)

    def write_many(self, files: Sequence[tuple[str, bytes, int, str | None]]) -> None:
        for f in files:
            self._cache.pop(f[0], None)
        write_many = getattr(self.inner, "write_many", None)
        if write_many is not None:
            write_many(files)
        else:
            for path, data, mode, owner in files:
                self.inner.write(path, data, mode, owner)

    def mkdir(self, path: str, mode: int) -> None:
        self.inner.mkdir(path, mode)

    def chmod(self, path: str, mode: int) -> None:
        self._cache.pop(path, None)
        self.inner.chmod(path, mode)

    def remove(self, path: str) -> None:
        self._cache = {p: v for p, v in self._cache.items() if p != path and not p.startswith(path.rstrip("/") + "/")}
        self.inner.remove(path)

    def list_dir(self, path: str) -> list[str] | None:
        return self.inner.list_dir(path)

    def run(self, script: str, *, timeout: float | None = None) -> CommandResult:
        # A script may change any file: forget everything rather than guess.
        self._cache.clear()
        return self.inner.run(script, timeout=timeout)

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()
