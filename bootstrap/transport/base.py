"""The one small interface every transport offers, and the file operations built on it.

A transport implements three calls: `run` a bash script (fed on stdin), `read_many` files (content
and mode, one round trip) and `write_many` files (atomically, one round trip). `NodeTarget` builds
everything else phases use (read one file, mkdir, chmod, remove, list a directory, a directory's
mode) on `run`, quoting every path, so SSH, an Ansible connection or anything that can run a
script is a target with no more code than those three calls.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

BatchFile = tuple[str, bytes, int, str | None]  # path, content, mode, owner ("user" or "user:group")


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass(frozen=True)
class FileState:
    content: bytes
    mode: int  # permission bits only (0o7777)


class Target(Protocol):
    """One node's filesystem and shell. Paths are absolute paths *on the node*."""

    name: str
    live: bool  # True when this is the real root of a running machine (services may be started)

    def run(self, script: str, *, timeout: float | None = None) -> CommandResult:
        """Run a bash script (fed on stdin) on the node."""
        ...

    def read_many(self, paths: Sequence[str]) -> dict[str, FileState | None]:
        """Regular files' content and mode (None: missing or not a regular file)."""
        ...

    def write_many(self, files: Sequence[BatchFile]) -> None:
        """Write each file atomically (temp file in the same dir, then rename); parents made 0755."""
        ...

    def read(self, path: str) -> FileState | None: ...

    def write(self, path: str, data: bytes, mode: int, owner: str | None = None) -> None: ...

    def mkdir(self, path: str, mode: int) -> None:
        """Create (with parents) if missing; an existing directory keeps its mode."""
        ...

    def chmod(self, path: str, mode: int) -> None: ...

    def remove(self, path: str) -> None: ...

    def list_dir(self, path: str) -> list[str] | None: ...

    def dir_mode(self, path: str) -> int | None:
        """The permission bits of a directory; None if there is no directory there."""
        ...


def read_only(target: Target, script: str, *, timeout: float | None = None, now: bool = False) -> CommandResult:
    """Run a script that changes nothing on the node: a target that caches reads (transport/cache.py,
    snapshot.py) keeps what such a script cannot invalidate. now: asked at the moment it is needed,
    never read ahead (a wait for something to happen; a check that only follows a change)."""
    fact = getattr(target, "fact", None)
    return fact(script, timeout=timeout, now=now) if fact is not None else target.run(script, timeout=timeout)


class ShellError(Exception):
    """A file operation's script failed on the node (the transport maps it to its own error)."""


class NodeTarget:
    """The derived file operations over `run`, for transports that only run scripts."""

    name: str
    live: bool = True

    def run(self, script: str, *, timeout: float | None = None) -> CommandResult:
        raise NotImplementedError

    def read_many(self, paths: Sequence[str]) -> dict[str, FileState | None]:
        raise NotImplementedError

    def write_many(self, files: Sequence[BatchFile]) -> None:
        raise NotImplementedError

    def checked(self, script: str, what: str) -> str:
        """Run one of our own scripts; a non-zero exit raises, naming the host and its last word."""
        result = self.run(script)
        if not result.ok:
            lines = result.stderr.strip().splitlines()
            last = lines[-1] if lines else f"exit code {result.exit_code}"
            raise self.failure(f"{what} on {self.name} failed: {last}")
        return result.stdout

    def failure(self, message: str) -> Exception:
        return ShellError(message)

    def read(self, path: str) -> FileState | None:
        return self.read_many([path])[path]

    def write(self, path: str, data: bytes, mode: int, owner: str | None = None) -> None:
        self.write_many([(path, data, mode, owner)])

    def mkdir(self, path: str, mode: int) -> None:
        q = shlex.quote(_absolute(path))
        self.checked(f"[ -d {q} ] || {{ umask 022 && mkdir -p -- {q} && chmod {mode:o} -- {q}; }}\n",
                     f"creating directory {path}")

    def chmod(self, path: str, mode: int) -> None:
        self.checked(f"chmod {mode:o} -- {shlex.quote(_absolute(path))}\n", f"chmod {path}")

    def remove(self, path: str) -> None:
        if _absolute(path).rstrip("/") == "":
            raise ValueError("refusing to remove /")
        self.checked(f"rm -rf -- {shlex.quote(path)}\n", f"removing {path}")

    def list_dir(self, path: str) -> list[str] | None:
        return parse_list_dir(self.checked(list_dir_script(path), f"listing {path}"))

    def dir_mode(self, path: str) -> int | None:
        return parse_dir_mode(self.checked(dir_mode_script(path), f"stat {path}"))


def list_dir_script(path: str) -> str:
    q = shlex.quote(_absolute(path))
    return f"[ -d {q} ] || {{ echo -; exit 0; }}; cd -- {q} && ls -A1\n"


def parse_list_dir(out: str) -> list[str] | None:
    if out.strip() == "-":
        return None
    return sorted(x for x in out.split("\n") if x)


def dir_mode_script(path: str) -> str:
    q = shlex.quote(_absolute(path))
    return f"[ -d {q} ] && stat -c %a -- {q} || echo -\n"


def parse_dir_mode(out: str) -> int | None:
    out = out.strip()
    return None if out in ("", "-") else int(out, 8)


def _absolute(path: str) -> str:
    if not path.startswith("/") or "\0" in path:
        raise ValueError(f"target paths are absolute: {path}")
    return path
