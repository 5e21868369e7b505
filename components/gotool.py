"""The go command, run the same way for every unit: pinned modules, no toolchain switch, `-p` = cores."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from components.buildlog import BuildLog
from components.errors import BuildError, ModuleRefused
from components.units import BUILD_DATE, BuildGroup

# -mod=readonly: go.mod/go.sum are the pins, a build never rewrites them (pinning uses -mod=mod).
# -trimpath: no build-machine paths in the binaries. -buildvcs=false: the unit dirs sit in our git
# tree, whose state says nothing about the upstream source.
BUILD_GOFLAGS = "-mod=readonly -trimpath -buildvcs=false"
# How cmd/go reports a module the proxy will not serve, e.g. "example.com/m@v1.2.3: reading
# https://proxy.golang.org/example.com/m/@v/v1.2.3.zip: 403 Forbidden".
_REFUSED_RE = re.compile(r"([\w.~/-]+)@(v[\w.+-]+): reading \S+: ((?:4|5)\d\d [^\n]*)")


@dataclass(frozen=True)
class ModuleInfo:
    path: str
    version: str
    dir: Path
    gomod: Path
    time: str | None  # the proxy's publication time of the version (RFC 3339)


def _json_stream(text: str) -> Iterator[dict[str, object]]:
    """`go ... -json` prints one JSON object after another, not an array."""
    decoder = json.JSONDecoder()
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return
        obj, pos = decoder.raw_decode(text, pos)
        yield obj


class GoTool:
    def __init__(self, log: BuildLog, jobs: int, go: str = "go") -> None:
        self.log = log
        self.jobs = jobs
        self.go = go

    def env(self, *, cgo: bool = False, goflags: str = BUILD_GOFLAGS) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "GOFLAGS": goflags,
            "GOTOOLCHAIN": "local",  # a module that needs a newer Go fails loudly instead of fetching one
            "CGO_ENABLED": "1" if cgo else "0",
            "GOOS": "linux",
            "GOARCH": "amd64",
            "GOWORK": "off",
        })
        if cgo:
            env.setdefault("CC", "gcc")
        return env

    def version(self) -> str:
        _, out = self.log.run([self.go, "env", "GOVERSION"], env=self.env(), what="go env GOVERSION")
        return out.strip()

    def download(self, cwd: Path, specs: Sequence[str] = ()) -> list[ModuleInfo]:
        """`go mod download -json` (the unit's whole build list when specs is empty); a refused module
        raises ModuleRefused naming it."""
        goflags = "-mod=mod" if specs else BUILD_GOFLAGS
        rc, out = self.log.run(
            [self.go, "mod", "download", "-json", *specs], cwd=cwd, env=self.env(goflags=goflags),
            check=False, stderr_apart=True, what="go mod download",
        )
        infos = []
        for obj in _json_stream(out):
            path, version = str(obj.get("Path")), str(obj.get("Version"))
            if obj.get("Error"):
                error = str(obj["Error"])
                self._raise_refused(error)
                raise ModuleRefused(path, version, error.strip().splitlines()[0], log=str(self.log.path))
            info_time = None
            if obj.get("Info"):
                try:
                    info_time = json.loads(Path(str(obj["Info"])).read_text()).get("Time")
                except (OSError, ValueError):
                    info_time = None
            infos.append(ModuleInfo(path, version, Path(str(obj.get("Dir"))), Path(str(obj.get("GoMod"))), info_time))
        if rc != 0:
            raise BuildError(f"go mod download failed in {cwd} (exit {rc})", log=str(self.log.path))
        return infos

    def _raise_refused(self, output: str) -> None:
        m = _REFUSED_RE.search(output)
        if m:
            raise ModuleRefused(m[1], m[2], m[3].strip(), log=str(self.log.path))

    def tidy(self, cwd: Path) -> str:
        """`go mod tidy`; returns its output (gomod.resolved_to_latest reads what it looked up)."""
        rc, out = self.log.run([self.go, "mod", "tidy"], cwd=cwd, env=self.env(goflags="-mod=mod"), check=False)
        if rc != 0:
            self._fail(f"go mod tidy in {cwd}", rc, out)
        return out

    def build_list(self, cwd: Path) -> dict[str, str]:
        """`go list -m all` where CWD holds an upstream module's go.mod and go.sum: the version of every
        module that upstream's own build uses (the main module, which has none, left out)."""
        _, out = self.log.run([self.go, "list", "-m", "-f", "{{.Path}} {{.Version}}", "all"], cwd=cwd,
                              env=self.env(goflags="-mod=mod"), stderr_apart=True, what=f"go list -m all in {cwd}")
        return {path: version for path, _, version in (line.partition(" ") for line in out.splitlines())
                if version and version != "<no value>"}

    def _fail(self, what: str, rc: int, output: str) -> None:
        self._raise_refused(output)
        tail = [line for line in output.strip().splitlines() if line.strip()][-1:] or ["(no output)"]
        raise BuildError(f"{what} failed (exit {rc}): {tail[0].strip()}", log=str(self.log.path))

    def build(
        self,
        cwd: Path,
        group: BuildGroup,
        packages: Sequence[str],
        outdir: Path,
        build_date: str | None,
        what: str,
    ) -> None:
        """One `go build -o OUTDIR PKG...`: every binary of the group in one invocation."""
        ldflags = " ".join(group.ldflags)
        if BUILD_DATE in ldflags:
            if not build_date:
                raise BuildError(f"{what}: the module's publication time is unknown (needed for buildDate)")
            ldflags = ldflags.replace(BUILD_DATE, build_date)
        argv = [self.go, "build", "-p", str(self.jobs), "-o", str(outdir) + os.sep]
        if group.buildmode:
            argv.append(f"-buildmode={group.buildmode}")
        if group.tags:
            argv.append("-tags=" + ",".join(group.tags))
        if ldflags:
            argv.append("-ldflags=" + ldflags)
        rc, out = self.log.run([*argv, *packages], cwd=cwd, env=self.env(cgo=group.cgo), check=False)
        if rc != 0:
            self._fail(what, rc, out)
