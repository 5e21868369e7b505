"""Versions of the host tools that go into a build and so into its stamps (gcc, Debian packages)."""

from __future__ import annotations

import subprocess

from components.buildlog import BuildLog
from components.errors import BuildError


def cc_version(log: BuildLog) -> str:
    _, out = log.run(["gcc", "--version"], what="gcc --version")
    return out.splitlines()[0].strip()


def deb_version(package: str) -> str:
    argv = ["dpkg-query", "-W", "-f", "${Version}", package]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"Debian package {package} is not installed (make deps installs it)")
    return proc.stdout
