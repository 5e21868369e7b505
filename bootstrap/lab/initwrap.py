"""The lab machine's first PID 1: a few mounts a container node needs, then it execs systemd.

kind's node image has an entrypoint doing the same before it starts systemd. nspawn with `-b` would
exec systemd directly, so the lab runs this script as nspawn's command instead (with the kill signal
`-b` would set). It is written into every machine's overlay by `machine.prepare`.

What it does, in order:
- remounts read-write the cgroup v1 controller hierarchies given as arguments: the ones where the lab
  made the machine a subtree of its own (nspawn mounts them read-only; with its cgroup namespace each
  is rooted at that subtree, so rw reaches only the machine's own cgroups);
- makes / recursively shared (mount propagation for the kubelet's volumes; nspawn already shares /,
  this makes it explicit);
- shadows the host-global sysctls the kubelet sets (kernel.panic=10, kernel.panic_on_oops=1,
  vm.overcommit_memory=1, ...) with per-machine files holding the host's values: /proc/sys is writable
  in lab machines, and those are not namespaced, so a kubelet would otherwise change the host kernel's
  settings for everyone (kernel.panic_on_oops=1 turns any oops into a reboot of the host).
"""

from __future__ import annotations

PATH = "usr/local/sbin/kbootstrap-lab-init"  # relative to the machine's root
SYSTEMD = "/usr/lib/systemd/systemd"
# What the kubelet's container manager writes (pkg/kubelet/cm setupKernelTunables). Namespaced
# sysctls (net.*) need no shadow: the machine has its own network namespace.
SHADOWED_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
SHADOW_DIR = "/run/kbootstrap-lab/sysctl"

SCRIPT = f"""#!/bin/sh
# kbootstrap lab init (written by `kbootstrap lab up`; see bootstrap/lab/initwrap.py).
# Usage: kbootstrap-lab-init [cgroup hierarchy under /sys/fs/cgroup ...] -- [systemd arguments]
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
    mount -o remount,bind,rw,nosuid,nodev,noexec "/sys/fs/cgroup/$1" ||
        echo "kbootstrap-lab-init: /sys/fs/cgroup/$1 stays read-only" >&2
    shift
done
[ "$1" = "--" ] && shift
mount --make-rshared / || echo "kbootstrap-lab-init: / is not shared" >&2
mkdir -p {SHADOW_DIR}
for s in {" ".join(SHADOWED_SYSCTLS)}; do
    [ -f "/proc/sys/$s" ] || continue
    f="{SHADOW_DIR}/$(echo "$s" | tr / .)"
    cat "/proc/sys/$s" > "$f" && mount --bind "$f" "/proc/sys/$s" ||
        echo "kbootstrap-lab-init: cannot shadow $s" >&2
done
exec {SYSTEMD} "$@"
"""


def argv(delegated: list[str]) -> list[str]:
    """nspawn's command for a machine whose cgroup hierarchies `delegated` may be made writable."""
    return ["/" + PATH, *delegated, "--"]
