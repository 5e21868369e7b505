"""The one small interface every transport offers: read/write files atomically, run a script."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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

    def read(self, path: str) -> FileState | None: ...

    def write(self, path: str, data: bytes, mode: int, owner: str | None = None) -> None:
        """Atomically replace path (temp file in the same dir, then rename); parents made 0755."""
        ...

    def mkdir(self, path: str, mode: int) -> None:
        """Create (with parents) if missing; an existing directory keeps its mode."""
        ...

    def chmod(self, path: str, mode: int) -> None: ...

    def remove(self, path: str) -> None: ...

    def list_dir(self, path: str) -> list[str] | None: ...

    def run(self, script: str, *, timeout: float | None = None) -> CommandResult:
        """Run a bash script (fed on stdin) on the node."""
        ...
