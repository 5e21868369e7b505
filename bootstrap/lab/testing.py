"""Helpers for tests that need real lab machines: unique names and labs that are always torn down."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

from bootstrap.lab import ops, remote, rootfs
from bootstrap.lab.hostcmd import which
from bootstrap.lab.state import LabState


def unique_name(prefix: str = "t") -> str:
    """Short (interface and host names have length limits) and unique per test run."""
    return f"{prefix}{secrets.token_hex(3)}"


def skip_reason() -> str | None:
    """Why lab tests cannot run on this host, or None when they can."""
    if os.geteuid() != 0:
        return "lab tests need root"
    missing = [b for b in ("systemd-nspawn", "dnsmasq", "ip", "nft") if which(b) is None]
    if not (rootfs.rootfs_path() / rootfs.COMPLETE_MARK).is_file() and which("debootstrap") is None:
        missing.append("debootstrap")
    if missing:
        pkgs = "systemd-container dnsmasq-base iproute2 nftables debootstrap"
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


def sh(
    lab: LabState, machine: str, command: str, stdin: str | None = None, timeout: float = 60
) -> tuple[int, str, str]:
    """Run a command on a lab machine over SSH (host key checked): (exit code, stdout, stderr)."""
    return remote.run(lab, lab.machine(machine), command, stdin.encode() if stdin is not None else None, timeout)
