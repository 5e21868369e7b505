"""The cached Debian rootfs every lab machine's overlay sits on. Built once, atomically, then reused."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

from bootstrap.errors import RequirementError
from bootstrap.lab.hostcmd import run
from bootstrap.lab.state import locked, write_atomic

SUITE = "bookworm"
PACKAGES = [
    # what the notes' smoke test needed
    "openssh-server", "iproute2", "iputils-ping", "systemd", "systemd-sysv", "dbus", "python3",
    # what a Kubernetes node and its tests use and minbase lacks
    "ca-certificates", "kmod", "procps", "less", "iptables", "conntrack", "socat", "ethtool", "curl",
    # non-root admin users with `become` (Kubespray's usual setup) are tested too
    "sudo",
]
# Units a container has no use for; some of them (the sys-* mounts) have been seen to stall boot.
MASKED_UNITS = [
    "sys-kernel-config.mount", "sys-fs-fuse-connections.mount", "sys-kernel-tracing.mount",
    "sys-kernel-debug.mount", "dev-hugepages.mount", "proc-sys-fs-binfmt_misc.automount",
    "proc-sys-fs-binfmt_misc.mount", "getty.target", "console-getty.service", "getty@.service",
    "container-getty@.service", "serial-getty@.service", "apt-daily.timer", "apt-daily-upgrade.timer",
    "e2scrub_all.timer", "e2scrub_reap.service", "fstrim.timer", "dpkg-db-backup.timer",
    "systemd-tmpfiles-clean.timer", "man-db.timer",
    # remounts / per /etc/fstab, which a container has no use for (nspawn mounts its root)
    "systemd-remount-fs.service",
]
SSHD_CONFIG = "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n"
# Bump when the tweaks below change, so caches built by older code are not reused.
RECIPE_VERSION = "1"
COMPLETE_MARK = ".kbootstrap-rootfs-complete"


def cache_root() -> Path:
    return Path(os.environ.get("KBOOTSTRAP_CACHE_DIR", "/var/cache/kbootstrap"))


def rootfs_path() -> Path:
    recipe = "|".join([SUITE, RECIPE_VERSION, *PACKAGES, *MASKED_UNITS])
    return cache_root() / f"rootfs-{SUITE}-{hashlib.sha256(recipe.encode()).hexdigest()[:8]}"


def host_mirror(files: list[Path] | None = None) -> str:
    """The Debian mirror the host's apt uses (deb822 or one-line format); deb.debian.org otherwise."""
    if env := os.environ.get("KBOOTSTRAP_DEBIAN_MIRROR"):
        return env
    if files is None:
        files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for f in files:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            text = f.read_text()
            for stanza in re.split(r"\n\s*\n", text):
                uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
                suites = re.search(r"^Suites:(.*)$", stanza, re.M)
                if uris and suites and SUITE in suites.group(1).split() and "security" not in uris.group(1):
                    return uris.group(1)
            for line in text.splitlines():
                m = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line.strip())
                if m and m.group(2) == SUITE:
                    return m.group(1)
    return "http://deb.debian.org/debian"


def ensure_rootfs() -> Path:
    """Return the cached rootfs, building it first if needed. Safe against concurrent callers."""
    final = rootfs_path()
    if (final / COMPLETE_MARK).is_file():
        return final
    cache_root().mkdir(parents=True, exist_ok=True)
    with locked(cache_root() / ".rootfs.lock"):
        if (final / COMPLETE_MARK).is_file():
            return final
        if final.exists():  # a cache without the mark was not made by us; never trust it
            shutil.rmtree(final)
        for stale in cache_root().glob(".build-*"):  # interrupted earlier builds
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(dir=cache_root(), prefix=".build-"))
        try:
            _debootstrap(tmp)
            _tweak(tmp)
            (tmp / COMPLETE_MARK).write_text(final.name + "\n")
            os.chmod(tmp, 0o755)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


def _debootstrap(target: Path) -> None:
    mirror = host_mirror()
    try:
        run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(target), mirror],
            timeout=1800,
        )
    except RequirementError:
        raise
    except Exception as e:
        raise RequirementError(
            f"building the lab rootfs failed: {e}", hint=f"check that {mirror} is reachable (KBOOTSTRAP_DEBIAN_MIRROR)"
        ) from None


def _tweak(root: Path) -> None:
    etc = root / "etc"
    for unit in MASKED_UNITS:
        link = etc / "systemd/system" / unit
        link.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        link.symlink_to("/dev/null")
    # Per-machine files: written into each overlay, so none may be shared through the lower dir.
    for p in [*(etc / "ssh").glob("ssh_host_*"), etc / "hostname", etc / "resolv.conf", etc / "hosts"]:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    write_atomic(etc / "machine-id", "")  # empty: each machine gets its own
    write_atomic(etc / "ssh/sshd_config.d/kbootstrap.conf", SSHD_CONFIG)
    # debootstrap leaves its .debs behind (~100 MB) and machines have no route to apt anyway.
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
