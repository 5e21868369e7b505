"""Running host commands: list arguments only, one-line errors, requirement checks."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

from bootstrap.errors import KbootstrapError, RequirementError

# binary -> Debian package that ships it
PACKAGES = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "dnsmasq": "dnsmasq-base",
    "ip": "iproute2",
    "nft": "nftables",
    "mount": "mount",
    "ssh": "openssh-client",
    "docker-registry": "docker-registry",
    "skopeo": "skopeo",
    "iptables": "iptables",
}

# Tools live in sbin, which a non-login root shell or CI may not have on PATH.
_EXTRA_PATH = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def which(binary: str) -> str | None:
    path = os.environ.get("PATH", "/usr/bin:/bin")
    return shutil.which(binary, path=os.pathsep.join([path, *_EXTRA_PATH]))


def need(binary: str) -> str:
    found = which(binary)
    if found is None:
        pkg = PACKAGES.get(binary, binary)
        raise RequirementError(f"{binary} not found", hint=f"apt-get install {pkg}")
    return found


def pid_alive(pid: int) -> bool:
    """True for a live process; a zombie (exited, not yet reaped) counts as dead."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def need_root() -> None:
    if os.geteuid() != 0:
        raise RequirementError("the lab needs root (namespaces, mounts, bridges)", hint="run it with sudo")


def run(
    args: Sequence[str],
    *,
    check: bool = True,
    input: str | None = None,
    timeout: float = 120,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    exe = need(args[0])
    try:
        cp = subprocess.run(
            [exe, *args[1:]], input=input, capture_output=True, text=True, timeout=timeout,
            env=env, stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise KbootstrapError(f"`{' '.join(args)}` timed out after {timeout:.0f}s") from None
    if check and cp.returncode != 0:
        detail = (cp.stderr or cp.stdout).strip().splitlines()
        raise KbootstrapError(f"`{' '.join(args)}` failed: {detail[-1] if detail else f'exit {cp.returncode}'}")
    return cp
