"""The build log: every command and all of its output go to one file; the terminal gets one line per step."""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from components.errors import BuildError

Progress = Callable[[str], None]


class BuildLog:
    def __init__(self, path: Path, progress: Progress | None = None) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")
        self._progress = progress

    def close(self) -> None:
        self._file.close()

    def note(self, message: str, *, show: bool = True) -> None:
        self._file.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
        self._file.flush()
        if show and self._progress:
            self._progress(message)

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        what: str | None = None,
        check: bool = True,
        stderr_apart: bool = False,
    ) -> tuple[int, str]:
        """Run a command with its output in the log: (exit code, stdout text, with stderr unless stderr_apart).
        With check, a failure raises BuildError naming the step and its last line of output."""
        shown = " ".join(shlex.quote(a) for a in argv)
        self.note(f"$ {shown}" + (f"   (in {cwd})" if cwd else ""), show=False)
        start = time.monotonic()
        proc = subprocess.run(
            list(argv), cwd=cwd, env=dict(env) if env is not None else None,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE if stderr_apart else subprocess.STDOUT,
            text=True, check=False,
        )
        self._file.write(proc.stdout)
        if stderr_apart:
            self._file.write(proc.stderr)
        self.note(f"exit {proc.returncode} after {time.monotonic() - start:.1f}s", show=False)
        if check and proc.returncode != 0:
            text = proc.stdout + (proc.stderr if stderr_apart else "")
            tail = [line for line in text.strip().splitlines() if line.strip()][-1:] or ["(no output)"]
            message = f"{what or argv[0]} failed (exit {proc.returncode}): {tail[0].strip()}"
            raise BuildError(message, log=str(self.path))
        return proc.returncode, proc.stdout
