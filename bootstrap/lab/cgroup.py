"""A cgroup subtree of its own for each machine, in every hierarchy, delegated as container engines do.

nspawn with --keep-unit and no host systemd puts the machine under <its own cgroup>/payload. Started
from the same cgroup, every machine would share /payload: one machine's systemd then sees (and on
stop kills) another's processes, and units fail at random with 219/CGROUP. So each nspawn is started
inside kbootstrap/<lab>/<machine> of every hierarchy: name=systemd, cgroup2 and each cgroup v1
controller (cpu, memory, cpuset, ...; there in <machine>/payload). nspawn gives the machine a cgroup
namespace rooted at <machine>/payload: in each hierarchy the machine sees its own subtree, and
nothing of the host's or another machine's. nspawn mounts the v1 controllers read-only; the machine's init
wrapper (`initwrap`) remounts the ones delegated here read-write before systemd starts, so systemd,
containerd and the kubelet can create their cgroups (as a Docker container with a private cgroup
namespace sees /docker/<id> as its root).

Lab cgroups are created under the cgroup of the process that starts the machine (on this host the
memory controller has one per session), and found again by name (`kbootstrap/<lab>`), whichever
session made them.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Runs in the child between fork and exec of nspawn: join the cgroups given, then exec. A separate
# interpreter rather than preexec_fn, which is unsafe when machines are started from threads.
LAUNCHER = """
import os, sys
i = sys.argv.index("--")
for procs in sys.argv[1:i]:
    with open(procs, "w") as f:
        f.write(str(os.getpid()))
os.execv(sys.argv[i + 1], sys.argv[i + 1:])
"""

# Mount options of a v1 hierarchy that are not controller names.
_NOT_CONTROLLERS = {"rw", "ro", "noprefix", "clone_children", "xattr", "cpuset_v2_mode", "favordynmods"}
# How deep to look for another session's kbootstrap/<lab> (below the hierarchy's root).
_SEARCH_DEPTH = 4


@dataclass(frozen=True)
class Hierarchy:
    """One mounted cgroup hierarchy: where it is mounted, what it holds, and our cgroup in it."""

    mount: Path  # e.g. /sys/fs/cgroup/memory
    controllers: str  # as /proc/self/cgroup names it: "memory", "cpu,cpuacct", "name=systemd", "" (cgroup2)
    ours: str  # our cgroup path in it, e.g. /process_api/bbc4...

    @property
    def is_controller(self) -> bool:
        """A v1 hierarchy with resource controllers (not the name=systemd tracking one, not cgroup2)."""
        return self.controllers != "" and not self.controllers.startswith("name=")

    @property
    def mount_name(self) -> str:
        """The directory name under /sys/fs/cgroup inside a machine (nspawn mounts each one there)."""
        if self.controllers == "":
            return "unified"
        if self.controllers == "name=systemd":
            return "systemd"
        return self.controllers


def parse_hierarchies(self_cgroup: str, mountinfo: str) -> list[Hierarchy]:
    """The hierarchies in `mountinfo` (each once, mounted at its root) joined with our cgroup in each
    from `/proc/self/cgroup`. Pure, for tests."""
    mine: dict[str, str] = {}
    for line in self_cgroup.splitlines():
        if line.strip():
            _, controllers, path = line.split(":", 2)
            mine[controllers] = path
    out: list[Hierarchy] = []
    seen: set[str] = set()
    for line in mountinfo.splitlines():
        if " - " not in line:
            continue
        left, right = line.split(" - ", 1)
        fields, rfields = left.split(), right.split()
        root, mountpoint = fields[3], fields[4]
        fstype, opts = rfields[0], set(rfields[2].split(",")) if len(rfields) > 2 else set()
        if root != "/":
            continue  # a bind mount of a subtree: not where to make ours
        key = None
        if fstype == "cgroup2" and "" in mine:
            key = ""
        elif fstype == "cgroup":
            names = opts - _NOT_CONTROLLERS
            names = {n for n in names if not n.startswith("release_agent=")}
            for controllers in mine:
                if controllers and set(controllers.split(",")) == names:
                    key = controllers
        if key is None or key in seen:
            continue
        seen.add(key)
        out.append(Hierarchy(Path(mountpoint), key, mine[key]))
    return out


def hierarchies() -> list[Hierarchy]:
    with open("/proc/self/cgroup") as f, open("/proc/self/mountinfo") as g:
        return parse_hierarchies(f.read(), g.read())


def _found(h: Hierarchy, lab: str) -> list[Path]:
    """Every kbootstrap/<lab> directory in the hierarchy (ours first), whichever session made it."""
    mine = Path(str(h.mount) + h.ours.rstrip("/")) / "kbootstrap" / lab
    out = [mine] if mine.is_dir() else []

    def walk(d: Path, depth: int) -> Iterator[Path]:
        with contextlib.suppress(OSError):
            for sub in d.iterdir():
                if not sub.is_dir():
                    continue
                if sub.name == "kbootstrap":
                    if (sub / lab).is_dir():
                        yield sub / lab
                elif depth < _SEARCH_DEPTH:
                    yield from walk(sub, depth + 1)

    out += [p for p in walk(h.mount, 0) if p != mine]
    return out


def lab_cgroups(lab: str) -> list[Path]:
    """The lab's cgroup directories in every hierarchy, as they exist now."""
    return [p for h in hierarchies() for p in _found(h, lab)]


def _base(h: Hierarchy, lab: str) -> Path:
    found = _found(h, lab)
    return found[0] if found else Path(str(h.mount) + h.ours.rstrip("/")) / "kbootstrap" / lab


def _mkdir_cpuset(d: Path) -> None:
    """mkdir a cpuset cgroup and the missing ones above it. A new cpuset cgroup has no CPUs and no
    memory nodes, and a process cannot join it (ENOSPC) until they are copied from its parent.
    Machines boot in parallel: another thread may have made a shared parent (the lab's) and not yet
    filled it, so every empty one on the way up is filled, top-down, whoever made it."""
    missing, p = [], d
    while not p.is_dir():
        missing.append(p)
        p = p.parent
    for q in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made by another machine's thread meanwhile
            q.mkdir()
    empty, p = [], d
    while any(not (p / f).read_text().strip() for f in ("cpuset.cpus", "cpuset.mems")):
        empty.append(p)
        p = p.parent
    for q in reversed(empty):
        for f in ("cpuset.cpus", "cpuset.mems"):
            if not (q / f).read_text().strip():
                (q / f).write_text((q.parent / f).read_text())


@dataclass(frozen=True)
class Prepared:
    procs: list[str]  # cgroup.procs files the launcher writes nspawn's pid to
    delegated: list[str]  # v1 controller hierarchies (mount names inside the machine) it may write to


def prepare(lab: str, machine: str) -> Prepared:
    """Create the machine's cgroup in every hierarchy. A hierarchy where that fails (read-only, e.g.
    when this host is itself a container) is skipped: the machine still boots, and that controller
    stays read-only inside it, never delegated."""
    procs, delegated = [], []
    for h in hierarchies():
        # In the controllers, nspawn and the machine go one level down, into payload: that is the root
        # the machine sees, so what the lab may set on <machine> itself stays out of its reach. (In
        # the systemd hierarchies nspawn makes <machine>/payload and /supervisor itself.)
        d = _base(h, lab) / machine / ("payload" if h.is_controller else "")
        try:
            if "cpuset" in h.controllers.split(","):
                _mkdir_cpuset(d)
            else:
                d.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        procs.append(str(d / "cgroup.procs"))
        if h.is_controller:
            delegated.append(h.mount_name)
    return Prepared(procs, delegated)


def launcher_argv(procs: list[str], argv: list[str]) -> list[str]:
    return [sys.executable, "-c", LAUNCHER, *procs, "--", *argv]


def remove_tree(d: Path, timeout: float = 5.0) -> None:
    """rmdir a cgroup subtree bottom-up (cgroupfs dirs only go with rmdir, and only when empty).
    Retried for a while: when a machine's init is killed, the kernel kills the rest of its pid
    namespace (containers included) asynchronously, so its cgroups empty a moment later."""
    deadline = time.monotonic() + timeout
    while d.is_dir():
        for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                os.rmdir(sub)
        with contextlib.suppress(OSError):
            os.rmdir(d)
        if not d.is_dir() or time.monotonic() > deadline:
            return
        time.sleep(0.1)


def remove(lab: str, machine: str | None = None) -> None:
    for base in lab_cgroups(lab):
        remove_tree(base / machine if machine else base)
        if machine is None:
            with contextlib.suppress(OSError):
                os.rmdir(base.parent)  # kbootstrap/, when no other lab is left


def machine_cgroups(lab: str, machine: str) -> list[Path]:
    """The machine's cgroup directory in each hierarchy where it exists (for checks and tests)."""
    return [p / machine for p in lab_cgroups(lab) if (p / machine).is_dir()]
