"""Files of installed Debian packages, for the images that need real userland tools (kube-proxy's
iptables/nft/ipset, the busybox test image).

A package set is closed over Depends/Pre-Depends (first installed alternative), so every shared
library a binary loads comes along with it, from the package that ships it; maintainer-script
helpers (debconf, perl ...) are not needed at run time and are left out. Files are taken from the
installed system as `dpkg-query -L` lists them, documentation and init scripts excepted.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from components.errors import BuildError
from components.oci import Entry

# Needed only by maintainer scripts (postinst/prerm), never by the tools in the image.
NOT_AT_RUNTIME = frozenset({
    "debconf", "debconf-2.0", "perl-base", "init-system-helpers", "adduser", "dpkg", "sensible-utils",
    "lsb-base", "sysvinit-utils", "debianutils", "usrmerge", "usr-is-merged",
})
_SKIP_PREFIXES = (
    "/usr/share/doc/", "/usr/share/man/", "/usr/share/info/", "/usr/share/lintian/", "/usr/share/locale/",
    "/usr/share/bug/", "/usr/share/bash-completion/", "/usr/share/zsh/", "/usr/share/fish/",
    "/usr/share/doc-base/", "/etc/init.d/", "/lib/systemd/", "/usr/lib/systemd/", "/etc/logrotate.d/",
)
_DEP_RE = re.compile(r"^\s*([a-z0-9][a-z0-9+.-]*)")


@dataclass(frozen=True, order=True)
class DebPackage:
    name: str
    version: str
    arch: str


def _dpkg_query(args: Sequence[str]) -> str:
    proc = subprocess.run(["dpkg-query", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"dpkg-query {' '.join(args)}: {proc.stderr.strip().splitlines()[-1:] or ['failed']}")
    return proc.stdout


def _status(names: Iterable[str]) -> dict[str, tuple[DebPackage, list[list[str]]]]:
    """Installed packages among `names`: the package and its dependency groups (alternatives)."""
    names = sorted(set(names))
    if not names:
        return {}
    fmt = r"${Package}\t${Version}\t${Architecture}\t${db:Status-Status}\t${Pre-Depends}, ${Depends}\n"
    proc = subprocess.run(["dpkg-query", "-W", "-f", fmt, *names], capture_output=True, text=True, check=False)
    out = {}
    for line in proc.stdout.splitlines():
        name, version, arch, status, deps = line.split("\t")
        if status != "installed":
            continue
        groups = []
        for group in deps.split(","):
            alts = [m[1] for alt in group.split("|") if (m := _DEP_RE.match(alt.replace(":any", "")))]
            if alts:
                groups.append(alts)
        out[name] = (DebPackage(name, version, arch), groups)
    return out


def closure(roots: Iterable[str], skip: frozenset[str] = NOT_AT_RUNTIME) -> list[DebPackage]:
    """The installed packages `roots` and everything they depend on; a missing root is an error."""
    roots = list(roots)
    found = _status(roots)
    missing = [r for r in roots if r not in found]
    if missing:
        raise BuildError(f"Debian package(s) not installed: {' '.join(missing)} (make deps installs them)")
    done: dict[str, DebPackage] = {}
    todo = list(found.items())
    while todo:
        name, (pkg, groups) = todo.pop()
        if name in done:
            continue
        done[name] = pkg
        wanted = []
        for alts in groups:
            alts = [a for a in alts if a not in skip]
            if alts and not any(a in done for a in alts):
                wanted.append(alts)
        status = _status(a for alts in wanted for a in alts)
        for alts in wanted:
            # The first installed alternative; an uninstalled virtual one is satisfied by another package.
            chosen = next((a for a in alts if a in status), None)
            if chosen:
                todo.append((chosen, status[chosen]))
    return sorted(done.values())


def package_paths(pkg: DebPackage) -> list[str]:
    listed = _dpkg_query(["-L", f"{pkg.name}:{pkg.arch}" if pkg.arch != "all" else pkg.name])
    return [p for p in listed.splitlines() if p.startswith("/") and not p.startswith(_SKIP_PREFIXES)]


def entries(packages: Iterable[DebPackage]) -> list[Entry]:
    """Layer entries for the files and symlinks of `packages`, as installed on this machine."""
    out: dict[str, Entry] = {}
    listed = [p for pkg in packages for p in package_paths(pkg)]
    listed_set = set(listed)
    for path in listed:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue  # a conffile the admin removed, or a path diverted away
        if os.path.islink(path):
            if os.path.isdir(path) and any(p.startswith(path + "/") for p in listed_set):
                continue  # a merged-/usr alias such as /lib -> usr/lib: a directory for dpkg
            out[path] = Entry(path, kind="symlink", mode=0o777, target=os.readlink(path))
        elif os.path.isfile(path):
            out[path] = Entry(path, kind="file", mode=st.st_mode & 0o7777, source=Path(path),
                              content_id=f"{st.st_size}:{st.st_mtime_ns}")
    return list(out.values())


def image_tag(version: str) -> str:
    """A Debian version as an image tag: no epoch, other characters outside [A-Za-z0-9_.-] become '-'."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", version.split(":", 1)[-1])
