"""Lab cgroup hierarchy discovery (pure parsing), the init wrapper and nspawn's arguments."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bootstrap.lab import cgroup, initwrap, machine
from bootstrap.lab.state import LabState, Machine

# This host: separate v1 controllers, name=systemd, an empty cgroup2 at unified; memory per session.
SELF_CGROUP = """9:name=systemd:/
8:pids:/
4:memory:/process_api/bbc4
3:cpuset:/
1:cpu:/
0::/
"""
MOUNTINFO = """31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
90 31 0:32 /docker/abc /mnt/memory rw,relatime - cgroup cgroup rw,memory
91 31 0:32 / /other/memory rw,relatime - cgroup cgroup rw,memory
"""


def test_every_hierarchy_once_with_our_cgroup() -> None:
    hs = cgroup.parse_hierarchies(SELF_CGROUP, MOUNTINFO)
    assert [(str(h.mount), h.controllers, h.ours) for h in hs] == [
        ("/sys/fs/cgroup/cpu", "cpu", "/"),
        ("/sys/fs/cgroup/cpuset", "cpuset", "/"),
        ("/sys/fs/cgroup/memory", "memory", "/process_api/bbc4"),
        ("/sys/fs/cgroup/pids", "pids", "/"),
        ("/sys/fs/cgroup/systemd", "name=systemd", "/"),
        ("/sys/fs/cgroup/unified", "", "/"),
    ]
    assert [h.mount_name for h in hs if h.is_controller] == ["cpu", "cpuset", "memory", "pids"]
    assert {h.mount_name for h in hs if not h.is_controller} == {"systemd", "unified"}


def test_comounted_controllers() -> None:
    hs = cgroup.parse_hierarchies(
        "4:cpu,cpuacct:/user.slice\n1:name=systemd:/init.scope\n",
        "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
        "40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd,release_agent=/x\n",
    )
    assert [(h.mount_name, h.ours, h.is_controller) for h in hs] == [
        ("cpu,cpuacct", "/user.slice", True), ("systemd", "/init.scope", False),
    ]


def test_pure_cgroup2_host() -> None:
    hs = cgroup.parse_hierarchies("0::/user.slice/session-1.scope\n",
                                  "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n")
    assert [(str(h.mount), h.is_controller) for h in hs] == [("/sys/fs/cgroup", False)]


_MKDIR = Path.mkdir


def cpuset_mkdir(self: Path, *a: object, **k: object) -> None:
    """mkdir as cpusetfs makes a cgroup: its cpus and mems files there, empty."""
    _MKDIR(self)
    (self / "cpuset.cpus").write_text("")
    (self / "cpuset.mems").write_text("")


def test_cpuset_gets_cpus_and_mems_from_parent(tmp_path: Path) -> None:
    # A plain directory stands in for cpusetfs: files appear empty in a new cgroup until written.
    (tmp_path / "cpuset.cpus").write_text("0-3\n")
    (tmp_path / "cpuset.mems").write_text("0\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Path, "mkdir", cpuset_mkdir)
        cgroup._mkdir_cpuset(tmp_path / "kbootstrap" / "lab" / "m1" / "payload")
    for d in ("kbootstrap", "kbootstrap/lab", "kbootstrap/lab/m1/payload"):
        assert (tmp_path / d / "cpuset.cpus").read_text() == "0-3\n"
        assert (tmp_path / d / "cpuset.mems").read_text() == "0\n"


def test_cpuset_parent_made_but_not_filled_by_another_thread_is_filled(tmp_path: Path) -> None:
    # Machines boot in parallel: the lab's cgroup exists, its cpus not yet copied by its maker.
    (tmp_path / "cpuset.cpus").write_text("0-1\n")
    (tmp_path / "cpuset.mems").write_text("0\n")
    for d in ("kbootstrap", "kbootstrap/lab"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "cpuset.cpus").write_text("" if d.endswith("lab") else "0-1\n")
        (tmp_path / d / "cpuset.mems").write_text("" if d.endswith("lab") else "0\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Path, "mkdir", cpuset_mkdir)
        cgroup._mkdir_cpuset(tmp_path / "kbootstrap" / "lab" / "m2")
    for d in ("kbootstrap/lab", "kbootstrap/lab/m2"):
        assert (tmp_path / d / "cpuset.cpus").read_text() == "0-1\n"
        assert (tmp_path / d / "cpuset.mems").read_text() == "0\n"


def test_nspawn_args(tmp_path: Path) -> None:
    m = Machine("dev-cp1", "control-plane", "10.9.9.10", "kb-dev-cp1", "kvabcdefc1")
    st = LabState(name="dev", subnet="10.9.9.0/24", bridge="kb-x", bridge_ip="10.9.9.1", domain="dev.lab",
                  rootfs="/nonexistent", inventory_dir=str(tmp_path), machines=[m])
    args = machine.nspawn_args(st, m, ["cpu", "memory"])
    assert "-b" not in args and "--boot" not in args
    assert "--kill-signal=SIGRTMIN+3" in args
    assert "--system-call-filter=@keyring" in args
    assert f"--bind={m.dir('dev')}/containerd:/var/lib/containerd" in args
    assert args[-4:] == ["/" + initwrap.PATH, "cpu", "memory", "--"]


def test_init_wrapper_script() -> None:
    s = initwrap.SCRIPT
    assert s.startswith("#!/bin/sh\n")
    assert 'mount -o remount,bind,rw,nosuid,nodev,noexec "/sys/fs/cgroup/$1"' in s
    assert "kernel/panic_on_oops" in s and s.rstrip().endswith('exec /usr/lib/systemd/systemd "$@"')
    assert subprocess.run(["sh", "-n"], input=s, text=True).returncode == 0  # valid POSIX sh
