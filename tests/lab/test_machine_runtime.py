"""What containers and a kubelet need inside a lab machine, and that it stays inside the machine:
writable cgroup v1 controllers rooted at the machine's own subtree, keyring system calls, /dev/kmsg,
shared mount propagation, host-global sysctls shadowed."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from bootstrap.lab import cgroup, ops
from bootstrap.lab.state import LabState
from bootstrap.lab.testing import sh

pytestmark = [pytest.mark.lab, pytest.mark.slow]
LabFactory = Callable[..., LabState]


@pytest.fixture(scope="module")
def two(module_lab_factory: LabFactory) -> LabState:
    return module_lab_factory(1, 1)


def ok(lab: LabState, m: str, cmd: str) -> str:
    code, out, err = sh(lab, m, cmd)
    assert code == 0, f"{m}: {cmd!r} -> {code}: {err or out}"
    return out


def controllers() -> list[cgroup.Hierarchy]:
    return [h for h in cgroup.hierarchies() if h.is_controller]


def host_dir(lab: LabState, m: str, h: cgroup.Hierarchy) -> Path:
    (base,) = [p for p in cgroup.lab_cgroups(lab.name) if str(p).startswith(str(h.mount) + "/")]
    return base / m / "payload"


def test_every_controller_is_writable_and_rooted_at_the_machine(two: LabState) -> None:
    if not controllers():
        pytest.skip("this host has no cgroup v1 controllers")
    m1, m2 = (m.name for m in two.machines)
    for h in controllers():
        d = f"/sys/fs/cgroup/{h.mount_name}"
        assert re.search(rf"^(\S+ ){{4}}{re.escape(d)} rw,", ok(two, m1, "cat /proc/self/mountinfo"), re.M), d
        ok(two, m1, f"mkdir {d}/kbt-probe")
        try:
            # The machine's cgroup root is <machine>/payload on the host, and only that.
            assert (host_dir(two, m1, h) / "kbt-probe").is_dir(), h.mount_name
            assert not (host_dir(two, m2, h) / "kbt-probe").exists()
            assert "kbt-probe" not in ok(two, m2, f"ls {d}")
        finally:
            ok(two, m1, f"rmdir {d}/kbt-probe")
        # Its processes are in the machine's subtree: / in its own view
        assert f":{h.controllers}:/" in ok(two, m1, "cat /proc/1/cgroup")


def test_nothing_outside_the_machine_subtree_is_reachable(two: LabState) -> None:
    if not controllers():
        pytest.skip("this host has no cgroup v1 controllers")
    m1 = two.machines[0].name
    h = controllers()[0]
    # /sys/fs/cgroup itself stays read-only; nothing above the namespace root is visible.
    code, _, err = sh(two, m1, f"mkdir /sys/fs/cgroup/{h.mount_name}/../kbt-escape")
    assert code != 0 and "Read-only" in err
    # A fresh mount of the hierarchy shows the same root: no host cgroups, no release_agent (the
    # file that runs a host command when a cgroup empties exists only at a hierarchy's real root).
    out = ok(two, m1, f"""
        mkdir -p /run/kbt-cg && mount -t cgroup -o {h.controllers} cgroup /run/kbt-cg
        ls /run/kbt-cg; umount /run/kbt-cg""")
    assert "release_agent" not in out and "kbootstrap" not in out and "process_api" not in out
    assert "release_agent" not in ok(two, m1, f"ls /sys/fs/cgroup/{h.mount_name}")


def test_keyring_syscalls_are_allowed(two: LabState) -> None:
    # runc joins a new session keyring per container: keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL).
    out = ok(two, two.machines[0].name, """python3 -c '
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
r = libc.syscall(250, 1, None)  # SYS_keyctl on x86_64
print(r if r >= 0 else -ctypes.get_errno())'""")
    assert int(out) > 0, f"keyctl failed with errno {-int(out)}"


def test_kmsg_modules_and_propagation(two: LabState) -> None:
    m1 = two.machines[0].name
    if Path("/dev/kmsg").exists():
        # What the kubelet's OOM watcher does: read kernel log records (one per read, whole or EINVAL).
        ok(two, m1, "test -c /dev/kmsg && python3 -c 'import os; os.read(os.open(\"/dev/kmsg\", os.O_RDONLY), 8192)'")
    if Path("/lib/modules").is_dir():
        ok(two, m1, "test -d /lib/modules")
    assert ok(two, m1, "findmnt -no PROPAGATION /").strip() == "shared"
    ok(two, m1, "test -w /var/lib/containerd && stat -fc %T /var/lib/containerd | grep -qv overlay")


def test_kubelet_sysctls_do_not_reach_the_host(two: LabState) -> None:
    m1 = two.machines[0].name
    before = Path("/proc/sys/kernel/panic_on_oops").read_text()
    ok(two, m1, "echo 1 > /proc/sys/kernel/panic_on_oops && echo 10 > /proc/sys/kernel/panic")
    assert ok(two, m1, "cat /proc/sys/kernel/panic_on_oops").strip() == "1"
    assert Path("/proc/sys/kernel/panic_on_oops").read_text() == before
    ok(two, m1, f"echo {before.strip()} > /proc/sys/kernel/panic_on_oops")


def test_machine_cgroups_go_with_the_machine(two: LabState) -> None:
    m2 = two.machines[1].name
    assert cgroup.machine_cgroups(two.name, m2)
    ops.stop_machine(two.name, m2, force=True)
    assert not cgroup.machine_cgroups(two.name, m2)
    ops.start_machine(two.name, m2)
    assert cgroup.machine_cgroups(two.name, m2)
