"""A read-ahead cache over any Target: one batched read (read_many) answers many later reads.

Phases that inspect many files (the PKI: every cert and key; kubeconfigs) ask for them one by
one; over SSH each would be a round trip. A phase prefetches what it will read, and writes,
chmods and removes drop the paths they touch so a read never returns stale content. A script run
through the cache may change any file, so it forgets everything (`fact` reads are scripts too).
Directory modes are kept across read-only facts (`fact`): the phases ask for the same few
directories (pki, manifests) many times, and only kbootstrap changes them during a run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bootstrap.transport.base import BatchFile, CommandResult, FileState, Target, read_only

_MISSING = FileState(b"", -1)


class ReadAheadTarget:
    def __init__(self, inner: Target) -> None:
        self.inner = inner
        self.name = inner.name
        self.live = inner.live
        self._cache: dict[str, FileState] = {}
        self._dir_modes: dict[str, int] = {}  # directories seen, with their mode

    def prefetch(self, paths: Iterable[str]) -> None:
        paths = [p for p in dict.fromkeys(paths) if p not in self._cache]
        if not paths:
            return
        for path, state in self.inner.read_many(paths).items():
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
        self.write_many([(path, data, mode, owner)])

    def write_many(self, files: Sequence[BatchFile]) -> None:
        for f in files:
            self._cache.pop(f[0], None)
        self.inner.write_many(files)

    def mkdir(self, path: str, mode: int) -> None:
        self._dir_modes.pop(path, None)
        self.inner.mkdir(path, mode)

    def chmod(self, path: str, mode: int) -> None:
        self._cache.pop(path, None)
        self._dir_modes.pop(path, None)
        self.inner.chmod(path, mode)

    def remove(self, path: str) -> None:
        prefix = path.rstrip("/") + "/"
        self._cache = {p: v for p, v in self._cache.items() if p != path and not p.startswith(prefix)}
        self._dir_modes = {p: v for p, v in self._dir_modes.items() if p != path and not p.startswith(prefix)}
        self.inner.remove(path)

    def list_dir(self, path: str) -> list[str] | None:
        return self.inner.list_dir(path)

    def dir_mode(self, path: str) -> int | None:
        if path in self._dir_modes:
            return self._dir_modes[path]
        mode = self.inner.dir_mode(path)
        if mode is not None:  # a missing one may be made by anyone (mkdir -p of a file's parent)
            self._dir_modes[path] = mode
        return mode

    def run(self, script: str, *, timeout: float | None = None) -> CommandResult:
        # A script may change any file: forget everything rather than guess.
        self._cache.clear()
        self._dir_modes.clear()
        return self.inner.run(script, timeout=timeout)

    def fact(self, script: str, *, timeout: float | None = None, now: bool = False) -> CommandResult:
        """A read-only script: file contents are forgotten (the node's own processes may write
        files meanwhile), directory modes kept."""
        self._cache.clear()
        return read_only(self.inner, script, timeout=timeout, now=now)

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()
