"""A fake live node for unit tests of the engine: files and directories in memory, systemd units with
state (enabled, active, how often (re)started), and the few shell commands the phases under test
run. Anything else is refused loudly (exit 127), so a test never passes on a command the fake
silently ignored. The real thing is tested in tests/lab/ on real machines.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from bootstrap.transport.base import BatchFile, CommandResult, FileState


@dataclass
class Unit:
    enabled: bool = False
    active: bool = False
    starts: int = 0  # start + restart + reload, i.e. how often the process was (re)started
    started_at: int = 0  # when it last entered `active` (a clock of the node's own: ticks per start)


@dataclass
class FakeNode:
    name: str
    live: bool = True
    files: dict[str, FileState] = field(default_factory=dict)
    dirs: dict[str, int] = field(default_factory=lambda: {"/": 0o755})
    units: dict[str, Unit] = field(default_factory=dict)
    installed: set[str] = field(default_factory=set)  # executables present (`test -x`)
    hostname: str = ""
    down: bool = False  # powered off: every call fails as a lost connection would
    commands: list[str] = field(default_factory=list)  # every command line run, in order

    # -- the transport
    def _alive(self) -> None:
        if self.down:
            from bootstrap.errors import TransportError

            raise TransportError(f"connection to {self.name} lost", hint="the machine went down")

    def read_many(self, paths: Sequence[str]) -> dict[str, FileState | None]:
        self._alive()
        return {p: self.files.get(p) for p in paths}

    def write_many(self, files: Sequence[BatchFile]) -> None:
        self._alive()
        for path, data, mode, _ in files:
            self._makedirs(posixpath.dirname(path), 0o755)
            self.files[path] = FileState(data, mode)

    def run(self, script: str, *, timeout: float | None = None) -> CommandResult:
        self._alive()
        out: list[str] = []
        code = 0
        for line in script.splitlines():
            line = line.strip()
            if not line or line.startswith("#") or line == "set -euo pipefail":
                continue
            for chain in line.split(";"):
                chain = chain.strip()
                if not chain:
                    continue
                for part in chain.split("&&"):
                    code = self._command(part.strip(), out)
                    if code != 0:
                        break
        return CommandResult(code, "".join(out), "" if code != 127 else f"fake node: unknown command in {script!r}")

    # -- derived file operations (as NodeTarget gives real transports)
    def read(self, path: str) -> FileState | None:
        return self.read_many([path])[path]

    def write(self, path: str, data: bytes, mode: int, owner: str | None = None) -> None:
        self.write_many([(path, data, mode, owner)])

    def mkdir(self, path: str, mode: int) -> None:
        self._alive()
        if path not in self.dirs:
            self._makedirs(posixpath.dirname(path), 0o755)
            self.dirs[path] = mode

    def chmod(self, path: str, mode: int) -> None:
        self._alive()
        if path in self.dirs:
            self.dirs[path] = mode
        elif path in self.files:
            self.files[path] = FileState(self.files[path].content, mode)

    def remove(self, path: str) -> None:
        self._alive()
        prefix = path.rstrip("/") + "/"
        self.files = {p: s for p, s in self.files.items() if p != path and not p.startswith(prefix)}
        self.dirs = {p: m for p, m in self.dirs.items() if p != path and not p.startswith(prefix)}

    def list_dir(self, path: str) -> list[str] | None:
        if path not in self.dirs:
            return None
        prefix = path.rstrip("/") + "/"
        names = {p[len(prefix):].split("/")[0] for p in [*self.files, *self.dirs] if p.startswith(prefix)}
        return sorted(n for n in names if n)

    def dir_mode(self, path: str) -> int | None:
        self._alive()
        return self.dirs.get(path)

    def _makedirs(self, path: str, mode: int) -> None:
        while path and path not in self.dirs:
            self.dirs[path] = mode
            path = posixpath.dirname(path)

    # -- the shell this fake understands
    def unit(self, name: str) -> Unit:
        return self.units.setdefault(name, Unit())

    def _command(self, cmd: str, out: list[str]) -> int:
        self.commands.append(cmd)
        cmd = re.sub(r"\s*(>/dev/null|2>/dev/null|2>&1|>&2)", "", cmd).strip()
        if cmd in ("true", ":"):
            return 0
        words = shlex.split(cmd)
        if words[:1] == ["systemctl"]:
            return self._systemctl([w for w in words[1:] if w not in ("-q", "--quiet")], out)
        if words[:2] == ["test", "-x"] and len(words) == 3:
            return 0 if words[2] in self.installed else 1
        if words == ["hostname"]:
            out.append(self.hostname + "\n")
            return 0 if self.hostname else 1
        if words[:2] == ["pgrep", "-x"] and len(words) == 3:
            return 0 if self.unit(words[2]).active else 1
        if words[:1] == ["echo"]:
            out.append(" ".join(words[1:]) + "\n")
            return 0
        return 127

    def _systemctl(self, args: list[str], out: list[str]) -> int:
        if args == ["daemon-reload"]:
            return 0
        if args[:3] == ["show", "-p", "ActiveEnterTimestampMonotonic"] and args[3:4] == ["--value"]:
            out.extend(f"{self.unit(n).started_at if self.unit(n).active else 0}\n" for n in args[4:])
            return 0
        if len(args) != 2 and args[:2] != ["disable", "--now"]:
            return 127
        verb, name = args[0], args[-1]
        unit = self.unit(name)
        if verb == "is-enabled":
            out.append(("enabled" if unit.enabled else "disabled") + "\n")
            return 0 if unit.enabled else 1
        if verb == "is-active":
            out.append(("active" if unit.active else "inactive") + "\n")
            return 0 if unit.active else 3
        if verb == "enable":
            unit.enabled = True
            return 0
        if verb in ("start", "restart", "reload-or-restart"):
            if verb != "start" or not unit.active:
                unit.starts += 1
                unit.started_at = 1 + max(u.started_at for u in self.units.values())
            unit.active = True
            return 0
        if verb in ("stop", "disable"):
            unit.active = False
            unit.enabled = unit.enabled and verb == "stop"
            return 0
        return 127
