"""Binaries from upstream release URLs, pinned by sha256, downloaded once on the control machine.

The default source when no offline bundle is configured: https://dl.k8s.io/release/VERSION/bin/
linux/ARCH/NAME, or a mirror with the same layout (Kubespray's files_repo). A file is fetched to a
temp name, checked against the pinned checksum, and only then renamed into the cache, so a bad
or interrupted download is never used. Versions without a pin are refused unless the caller
passes the checksum explicitly.
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from bootstrap.artifacts.bundle import sha256_file
from bootstrap.errors import ConfigError, TransportError

DEFAULT_BASE_URL = "https://dl.k8s.io/release"
CACHE = Path("/var/cache/kbootstrap/downloads")

# sha256 of the upstream release binaries, as published with each release (NAME.sha256 beside the
# binary on dl.k8s.io). Add a version here when it becomes supported.
PINNED: dict[tuple[str, str, str], str] = {
    ("kubelet", "v1.34.0", "amd64"): "5c0d28cea2a3a5c91861dda088a29d56c1b027e184dae1d792686f0710750076",
    ("kubelet", "v1.34.0", "arm64"): "e45a7795391cd62ee226666039153832d3096c0f892266cd968936e18b2b40b0",
    ("kubeadm", "v1.34.0", "amd64"): "aecc23726768d1753fd417f6e7395cb1a350373295e8e9d9f80e95ed3618e38e",
    ("kubeadm", "v1.34.0", "arm64"): "6b7108016bb2b74132f7494e200501d6522682c01759db91892051a052079c77",
    ("kubectl", "v1.34.0", "amd64"): "cfda68cba5848bc3b6c6135ae2f20ba2c78de20059f68789c090166d6abc3e2c",
    ("kubectl", "v1.34.0", "arm64"): "00b182d103a8a73da7a4d11e7526d0543dcf352f06cc63a1fde25ce9243f49a0",
}
ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}

_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()


def release_url(name: str, version: str, arch: str, base_url: str = DEFAULT_BASE_URL) -> str:
    return f"{base_url.rstrip('/')}/{version}/bin/linux/{arch}/{name}"


def pinnedsha256_file(name: str, version: str, arch: str, pins: Mapping[tuple[str, str, str], str] = PINNED) -> str:
    try:
        return pins[(name, version, arch)]
    except KeyError:
        raise ConfigError(
            "binaries", f"no pinned sha256 for {name} {version} ({arch})",
            hint="use a version kbootstrap pins, or an offline bundle made with `kbootstrap bundle create`",
        ) from None


def fetch(
    name: str,
    version: str,
    arch: str,
    *,
    base_url: str = DEFAULT_BASE_URL,
    cache: Path = CACHE,
    pins: Mapping[tuple[str, str, str], str] = PINNED,
    timeout: float = 60.0,
) -> tuple[Path, str]:
    """The verified binary in the control machine's cache (downloaded if needed) and its sha256."""
    want = pinnedsha256_file(name, version, arch, pins)
    dest = cache / version / arch / name
    with _lock_for(dest):  # hosts in parallel ask for the same file: download it once
        if dest.is_file() and sha256_file(dest) == want:
            return dest, want
        dest.parent.mkdir(parents=True, exist_ok=True)
        url = release_url(name, version, arch, base_url)
        tmp = dest.with_name(f".{name}.{os.getpid()}.part")
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, tmp.open("wb") as out:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
        except (urllib.error.URLError, OSError) as exc:
            tmp.unlink(missing_ok=True)
            reason = getattr(exc, "reason", exc)
            raise TransportError(
                f"cannot download {name} {version} from {url}: {reason}",
                hint="no route to the release site? build an offline bundle (`kbootstrap bundle create "
                "--binaries-from DIR`) or point --upstream-url at a mirror",
            ) from None
        got = sha256_file(tmp)
        if got != want:
            tmp.unlink(missing_ok=True)
            raise TransportError(
                f"checksum mismatch for {url}: expected {want[:16]}..., got {got[:16]}...",
                hint="the download is corrupt or not the release it claims to be; nothing was installed",
            )
        tmp.chmod(0o755)
        os.replace(tmp, dest)
    return dest, want


def _lock_for(path: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(path, threading.Lock())
