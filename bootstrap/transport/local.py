"""The local transport: this machine's root, or a directory standing in for it (--rootfs)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bootstrap.transport.base import BatchFile, CommandResult, FileState


class LocalTarget:
    """Files under `root` (default "/"). live=False under --rootfs: nothing is started."""

    def __init__(self, root: str | os.PathLike[str] = "/", *, name: str = "localhost") -> None:
        self.root = Path(root).resolve()
        self.name = name
        self.live = self.root == Path("/")

    def host_path(self, path: str) -> Path:
        if not path.startswith("/"):
            raise ValueError(f"target paths are absolute: {path}")
        return self.root / path.lstrip("/")

    def read(self, path: str) -> FileState | None:
        p = self.host_path(path)
        try:
            return FileState(p.read_bytes(), p.stat().st_mode & 0o7777)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def read_many(self, paths: Sequence[str]) -> dict[str, FileState | None]:
        return {p: self.read(p) for p in paths}

    def write_many(self, files: Sequence[BatchFile]) -> None:
        for path, data, mode, owner in files:
            self.write(path, data, mode, owner)

    def dir_mode(self, path: str) -> int | None:
        p = self.host_path(path)
        return p.stat().st_mode & 0o7777 if p.is_dir() else None

    def write(self, path: str, data: bytes, mode: int, owner: str | None = None) -> None:
        p = self.host_path(path)
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        # Dot-prefixed temp name: the kubelet ignores dotfiles in the manifests dir.
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            if owner and self.live:
                user, _, group = owner.partition(":")
                if group:
                    shutil.chown(tmp, user or None, group)
                else:
                    shutil.chown(tmp, user)
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def mkdir(self, path: str, mode: int) -> None:
        """Create with mode if missing; an existing dir keeps its mode (never loosen a hardened one)."""
        p = self.host_path(path)
        if p.is_dir():
            return
        p.mkdir(parents=True, exist_ok=True, mode=0o755)
        os.chmod(p, mode)

    def chmod(self, path: str, mode: int) -> None:
        os.chmod(self.host_path(path), mode)

    def remove(self, path: str) -> None:
        p = self.host_path(path)
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)

    def list_dir(self, path: str) -> list[str] | None:
        p = self.host_path(path)
        return sorted(os.listdir(p)) if p.is_dir() else None

    def run(self, script: str, *, timeout: float | None = None) -> CommandResult:
        if not self.live:
            raise RuntimeError("refusing to run commands against a --rootfs directory")
        proc = subprocess.run(["bash", "-s"], input=script, capture_output=True, text=True, timeout=timeout)
        return CommandResult(proc.returncode, proc.stdout, proc.stderr)
