"""A cgroup of its own for each machine.

nspawn with --keep-unit and no host systemd puts the machine under <its own cgroup>/payload. Started
from the same cgroup, every machine would share /payload: one machine's systemd then sees (and on
stop kills) another's processes, and units fail at random with 219/CGROUP. So each nspawn is started
inside kbootstrap/<lab>/<machine> of the systemd-tracking hierarchies (name=systemd v1, and cgroup2).
"""

from __future__ import annotations

import contextlib
import os
import sys
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


def _hierarchies() -> list[Path]:
    """Mount point + our current cgroup in each hierarchy systemd uses to track processes."""
    mine: dict[str, str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            mine[controllers] = path
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            mountpoint = left.split()[4]
            fstype, _, opts = right.split()[:3]
            if fstype == "cgroup2" and "" in mine:
                out.append(Path(mountpoint + mine[""]))
            elif fstype == "cgroup" and "name=systemd" in opts.split(",") and "name=systemd" in mine:
                out.append(Path(mountpoint + mine["name=systemd"]))
    return out


def lab_cgroups(lab: str) -> list[Path]:
    return [h / "kbootstrap" / lab for h in _hierarchies()]


def prepare(lab: str, machine: str) -> list[str]:
    """Create the machine's cgroups; return the cgroup.procs files the launcher writes to."""
    procs = []
    for base in lab_cgroups(lab):
        d = base / machine
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue  # a read-only or foreign hierarchy: nspawn still works, only less isolated
        procs.append(str(d / "cgroup.procs"))
    return procs


def launcher_argv(procs: list[str], argv: list[str]) -> list[str]:
    return [sys.executable, "-c", LAUNCHER, *procs, "--", *argv]


def remove_tree(d: Path) -> None:
    """rmdir a cgroup subtree bottom-up (cgroupfs dirs only go with rmdir, and only when empty)."""
    if not d.is_dir():
        return
    for sub in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            os.rmdir(sub)
    with contextlib.suppress(OSError):
        os.rmdir(d)


def remove(lab: str, machine: str | None = None) -> None:
    for base in lab_cgroups(lab):
        remove_tree(base / machine if machine else base)
        if machine is None:
            with contextlib.suppress(OSError):
                os.rmdir(base.parent)  # kbootstrap/, when no other lab is left
