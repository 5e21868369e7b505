"""Helpers for tests that need real lab machines: unique names and labs that are always torn down."""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
from collections.abc import Iterator

import paramiko

from bootstrap.lab import ops, remote, rootfs, testimage
from bootstrap.lab.hostcmd import which
from bootstrap.lab.state import LabState


def unique_name(prefix: str = "t") -> str:
    """Short (interface and host names have length limits) and unique per test run."""
    return f"{prefix}{secrets.token_hex(3)}"


def skip_reason() -> str | None:
    """Why lab tests cannot run on this host, or None when they can."""
    if os.geteuid() != 0:
        return "lab tests need root"
    missing = [b for b in ("systemd-nspawn", "dnsmasq", "ip", "nft", "docker-registry", "skopeo") if which(b) is None]
    if not (rootfs.rootfs_path() / rootfs.COMPLETE_MARK).is_file() and which("debootstrap") is None:
        missing.append("debootstrap")
    if not testimage.BUSYBOX.is_file():
        missing.append(str(testimage.BUSYBOX))
    if missing:
        pkgs = "systemd-container dnsmasq-base iproute2 nftables debootstrap docker-registry skopeo busybox-static"
        return f"lab tests need {', '.join(missing)} (apt-get install {pkgs})"
    return None


@contextlib.contextmanager
def running_lab(
    name: str | None = None, control_planes: int = 1, workers: int = 0, **up_kwargs: object
) -> Iterator[LabState]:
    """A lab that is up for the block and torn down after it, even when the block (or `up`) fails."""
    name = name or unique_name()
    try:
        st, _ = ops.up(name, control_planes, workers, **up_kwargs)  # type: ignore[arg-type]
        yield st
    finally:
        ops.down(name)


# Where `kbootstrap init -i` writes on a node: what tests snapshot, compare and check ownership of.
NODE_PATHS = (
    "/etc/kubernetes",
    "/etc/containerd",
    "/etc/crictl.yaml",
    "/etc/sysctl.d/99-kubernetes.conf",
    "/etc/modules-load.d/kubernetes.conf",
    "/etc/systemd/system/etcd.service",
    "/etc/systemd/system/kubelet.service.d",
    "/usr/bin/kubectl",
    "/opt/cni/bin",
    # What kbootstrap writes there; the rest of /var/lib/kubelet is the running kubelet's own state
    # (pods, plugin sockets, rotated certificates with timestamps in their names).
    "/var/lib/kubelet/config.yaml",
    "/var/lib/kubelet/kubeadm-flags.env",
    "/var/lib/kubelet/instance-config.yaml",
    "/var/lib/kbootstrap",
    "/var/cache/kbootstrap",
)


def sh(
    lab: LabState, machine: str, command: str, stdin: str | None = None, timeout: float = 60
) -> tuple[int, str, str]:
    """Run a command on a lab machine over SSH (host key checked): (exit code, stdout, stderr)."""
    return remote.run(lab, lab.machine(machine), command, stdin.encode() if stdin is not None else None, timeout)


def sudo_sh(
    lab: LabState, machine: str, user: str, command: str, stdin: str | None = None, timeout: float = 60
) -> tuple[int, str, str]:
    """Like `sh`, logged in as `user` (lab key, host key checked) and run as root through `sudo -n`:
    for machines where root may not log in over SSH."""
    m = lab.machine(machine)
    client = paramiko.SSHClient()
    client.load_host_keys(str(lab.known_hosts_path))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(m.ip, username=user, key_filename=str(lab.key_path), timeout=timeout, banner_timeout=timeout,
                       auth_timeout=timeout, allow_agent=False, look_for_keys=False)
        chan = client.get_transport().open_session(timeout=timeout)  # type: ignore[union-attr]
        chan.settimeout(timeout)
        chan.exec_command(f"sudo -n -- bash -c {shlex.quote(command)}")
        if stdin is not None:
            chan.sendall(stdin.encode())
        chan.shutdown_write()
        out, err = chan.makefile("rb").read(), chan.makefile_stderr("rb").read()
        return chan.recv_exit_status(), out.decode(errors="replace"), err.decode(errors="replace")
    finally:
        client.close()
