"""go.mod text: read the directives a unit needs from an upstream go.mod, and write a unit's go.mod.

A unit's go.mod requires the upstream module(s) it builds and lists the binaries as `tool` lines,
so that `go mod tidy` keeps exactly their dependencies. An upstream module's own `replace`
directives are ignored by Go when that module is a dependency; they are carried over here, with
local paths (k8s staging/, etcd's ../api) turned into the same module at the release's version.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

_BLOCK_RE = re.compile(r"^(require|replace|tool|exclude)\s*\(\s*$")
_COMMENT_RE = re.compile(r"//.*$")
# `go mod tidy` when no module in the build list provides an imported package: it takes @latest.
_FOUND_RE = re.compile(r"^go: found (\S+) in (\S+) (\S+)$", re.MULTILINE)


@dataclass(frozen=True, order=True)
class Replace:
    old_path: str
    old_version: str | None
    new_path: str
    new_version: str | None  # None: new_path is a local directory

    @property
    def is_local(self) -> bool:
        return self.new_version is None

    def line(self) -> str:
        old = f"{self.old_path} {self.old_version}" if self.old_version else self.old_path
        new = f"{self.new_path} {self.new_version}" if self.new_version else self.new_path
        return f"{old} => {new}"


def _directives(text: str) -> Iterable[tuple[str, str]]:
    """(verb, rest of line) for every directive, block members included; comments dropped."""
    block: str | None = None
    for raw in text.splitlines():
        line = _COMMENT_RE.sub("", raw).strip()
        if not line:
            continue
        if block:
            if line == ")":
                block = None
            else:
                yield block, line
            continue
        m = _BLOCK_RE.match(line)
        if m:
            block = m[1]
            continue
        verb, _, rest = line.partition(" ")
        yield verb, rest.strip()


def go_directive(text: str) -> str | None:
    for verb, rest in _directives(text):
        if verb == "go":
            return rest
    return None


def module_path(text: str) -> str | None:
    for verb, rest in _directives(text):
        if verb == "module":
            return rest.strip('"')
    return None


def requires(text: str) -> dict[str, str]:
    return {p: v for verb, rest in _directives(text) if verb == "require" for p, v in [rest.split()[:2]]}


def module_of(package: str, text: str) -> tuple[str, str]:
    """The required module (path, version) that provides `package`, a replace's version winning."""
    required = requires(text)
    owners = [m for m in required if package == m or package.startswith(m + "/")]
    if not owners:
        raise ValueError(f"no required module provides {package}")
    module = max(owners, key=len)
    version = required[module]
    for r in replaces(text):
        if r.old_path == module and r.old_version in (None, version) and r.new_version:
            version = r.new_version if r.new_path == module else f"{r.new_path}@{r.new_version}"
    return module, version


def semver_key(version: str) -> tuple[object, ...]:
    """A sort key giving Go's version order: vX.Y.Z, a release after its pre-releases (pseudo-versions
    are pre-releases), numeric identifiers before alphanumeric ones; +build metadata ignored."""
    core, _, pre = version.removeprefix("v").split("+", 1)[0].partition("-")
    numbers = tuple(int(p) if p.isdigit() else 0 for p in core.split("."))
    if not pre:
        return (numbers, 1, ())
    idents = tuple((0, int(i), "") if i.isdigit() else (1, 0, i) for i in pre.split("."))
    return (numbers, 0, idents)


def resolved_to_latest(tidy_output: str) -> dict[str, str]:
    """Modules `go mod tidy` looked up at their latest version ("go: found PKG in MODULE VERSION"),
    because no module in the build list provided a package: {module: the version it took}."""
    return {m[2]: m[3] for m in _FOUND_RE.finditer(tidy_output)}


def tools(text: str) -> list[str]:
    return [rest for verb, rest in _directives(text) if verb == "tool"]


def replaces(text: str) -> list[Replace]:
    out = []
    for verb, rest in _directives(text):
        if verb != "replace":
            continue
        left, _, right = rest.partition("=>")
        old = left.split()
        new = right.split()
        if not old or not new:
            raise ValueError(f"malformed replace directive: {rest!r}")
        out.append(Replace(old[0], old[1] if len(old) > 1 else None, new[0], new[1] if len(new) > 1 else None))
    return out


def carried_replaces(upstream_gomods: Iterable[str], local_version: str) -> list[Replace]:
    """The upstream replace directives a unit must repeat: a local-path target becomes the module
    itself at `local_version` (the version the upstream release tags its sibling modules with).
    Local replaces of modules the upstream go.mod does not require are guards, not pins (etcd's
    `go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY`), and are left out."""
    seen: dict[tuple[str, str | None], Replace] = {}
    for text in upstream_gomods:
        required = requires(text)
        for r in replaces(text):
            if r.is_local and r.old_path not in required:
                continue
            fixed = Replace(r.old_path, r.old_version, r.old_path, local_version) if r.is_local else r
            prior = seen.get((r.old_path, r.old_version))
            if prior and prior != fixed:
                raise ValueError(f"conflicting upstream replaces for {r.old_path}: {prior.line()} / {fixed.line()}")
            seen[(r.old_path, r.old_version)] = fixed
    return sorted(seen.values())


def render(
    module: str,
    go_version: str,
    require: Mapping[str, str],
    replace: Sequence[Replace],
    tool: Sequence[str],
) -> str:
    """A minimal unit go.mod; `go mod tidy` then adds the indirect requirements and go.sum."""
    lines = [
        "// Generated by `make components-pin` (python3 -m components pin): edit components/releases.py instead.",
        f"module {module}",
        "",
        f"go {go_version}",
        "",
        "require (",
        *(f"\t{p} {v}" for p, v in sorted(require.items())),
        ")",
    ]
    if replace:
        lines += ["", "replace (", *(f"\t{r.line()}" for r in sorted(replace)), ")"]
    lines += ["", "tool (", *(f"\t{t}" for t in sorted(tool)), ")", ""]
    return "\n".join(lines)
