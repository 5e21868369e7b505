"""A phase is a plain value: a name, its help text, what it does, and its sub-phases.

The phase table (phases/table.py) built from these drives `kbootstrap init`, `--skip-phases`,
`kbootstrap init phase <name>` and the help text, as kubeadm's workflow does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bootstrap.workflow.context import RunContext

PhaseFn = Callable[[RunContext], None]


@dataclass(frozen=True)
class Phase:
    name: str  # as kubeadm names it: "certs", "apiserver", "local"
    help: str
    run: PhaseFn | None = None  # None: a group whose work is its children's
    children: tuple[Phase, ...] = ()
    # Phases kubeadm has that need a running kube-apiserver; we stop there honestly.
    needs_api_server: bool = False

    def walk(self, prefix: str = "") -> list[tuple[str, Phase]]:
        """Depth-first (path, phase) pairs; path is 'certs/apiserver'."""
        path = f"{prefix}/{self.name}" if prefix else self.name
        out = [(path, self)]
        for child in self.children:
            out.extend(child.walk(path))
        return out
