"""A phase is a plain value: a name, its help, what it does on a host, which hosts it runs on, and
its sub-phases. One tree of them (bootstrap/phases/tree.py) drives `kbootstrap init`, `init phase
...` (with and without -i), `join`, `reset`, `--skip-phases` and the help text, as kubeadm's
workflow does; the runner (engine/runner.py) walks it over the hosts of a run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from bootstrap.errors import UsageError

if TYPE_CHECKING:
    from bootstrap.engine.context import RunContext
    from bootstrap.engine.runner import RunState

PhaseFn = Callable[["RunContext"], None]
# Runs once per run on the control machine (before or after a phase's hosts, or as the whole work
# of a cluster-level phase such as validation). Raising a KbootstrapError fails the phase's hosts.
Hook = Callable[["RunState", list[str]], None]


class Node(Protocol):
    """What the runner knows of a host: its name and its roles (an InventoryHost, or the local node)."""

    @property
    def name(self) -> str: ...

    @property
    def is_control_plane(self) -> bool: ...

    @property
    def is_etcd(self) -> bool: ...


@dataclass(frozen=True)
class Hosts:
    """Which hosts of a run a phase runs on; `name` is what the help text says."""

    name: str
    pick: Callable[[Node, RunState], bool]

    def __call__(self, node: Node, run: RunState) -> bool:
        return self.pick(node, run)


ALL = Hosts("every host", lambda n, run: True)
CONTROL_PLANES = Hosts("control planes", lambda n, run: n.is_control_plane)
FIRST_CONTROL_PLANE = Hosts("the first control plane", lambda n, run: n.name == run.first_control_plane)
ETCD_MEMBERS = Hosts("etcd members", lambda n, run: n.is_etcd)
NOT_CONTROL_PLANES = Hosts("hosts that are not control planes", lambda n, run: not n.is_control_plane)
# Kubespray's kube_node hosts that are not control planes: they join through TLS bootstrap.
WORKERS = Hosts("workers", lambda n, run: bool(getattr(n, "is_worker", False)) and not n.is_control_plane)
# Every host that runs a kubelet (an etcd-only host does not).
KUBE_NODES = Hosts("Kubernetes nodes", lambda n, run: n.is_control_plane or bool(getattr(n, "is_worker", False)))


@dataclass(frozen=True)
class Phase:
    name: str  # as kubeadm names it: "certs", "apiserver", "local"
    help: str
    run: PhaseFn | None = None  # None: a group whose work is its children's (or a cluster step)
    children: tuple[Phase, ...] = ()
    hosts: Hosts = ALL
    before: Hook | None = None  # once, before the phase's hosts run it (e.g. make the shared CAs)
    after: Hook | None = None  # once, after, with the hosts that completed it (e.g. etcd healthy)
    cluster_step: Hook | None = None  # the phase's whole work, once on the control machine (validate)
    fleet_only: bool = False  # node preparation: kbootstrap's, not part of kubeadm's single-node init
    needs_api_server: bool = False  # kubeadm phases that talk to a running kube-apiserver

    def walk(self, prefix: str = "") -> list[tuple[str, Phase]]:
        """Depth-first (path, phase) pairs; path is 'certs/apiserver'."""
        path = f"{prefix}/{self.name}" if prefix else self.name
        out = [(path, self)]
        for child in self.children:
            out.extend(child.walk(path))
        return out

    def with_children(self, *children: Phase) -> Phase:
        return replace(self, children=children)

    def with_hosts(self, hosts: Hosts) -> Phase:
        return replace(self, hosts=hosts)


@dataclass(frozen=True)
class Tree:
    """The phases of one workflow (init, join, reset), in order."""

    phases: tuple[Phase, ...]

    def __iter__(self) -> Iterator[Phase]:
        return iter(self.phases)

    def paths(self) -> list[str]:
        return [path for top in self.phases for path, _ in top.walk()]

    def find(self, path: str) -> Phase:
        for top in self.phases:
            for p, phase in top.walk():
                if p == path:
                    return phase
        raise UsageError(f"unknown phase {path!r}", hint="valid phases: " + ", ".join(self.paths()))

    def replace(self, path: str, phase: Phase) -> Tree:
        """The tree with the phase at `path` (top level or a child) replaced: a join is init's tree
        with etcd joined instead of bootstrapped, an edit rather than a name-matching loop."""
        head, _, rest = path.partition("/")
        if not any(p.name == head for p in self.phases):
            raise KeyError(path)
        return Tree(tuple(_replace_in(p, rest, phase) if p.name == head else p for p in self.phases))

    def insert_before(self, name: str, phase: Phase) -> Tree:
        out: list[Phase] = []
        for p in self.phases:
            if p.name == name:
                out.append(phase)
            out.append(p)
        if len(out) == len(self.phases):
            raise KeyError(name)
        return Tree(tuple(out))

    def without(self, *names: str) -> Tree:
        return Tree(tuple(p for p in self.phases if p.name not in names))

    def local(self) -> Tree:
        """kubeadm's single-node workflow: the tree without kbootstrap's fleet-only phases."""
        return Tree(tuple(p for p in self.phases if not p.fleet_only))

    def check_skip(self, names: Iterable[str], *, where: str = "--skip-phases") -> set[str]:
        """Validate phase names to skip (kubeadm accepts 'certs', 'certs/apiserver', 'certs/all')."""
        known = set(self.paths())
        out = set()
        for raw in names:
            name = str(raw).strip().removesuffix("/all")
            if not name:
                continue
            if name not in known:
                raise UsageError(f"{where}: unknown phase {name!r}", hint="valid phases: " + ", ".join(self.paths()))
            out.add(name)
        return out

    def only(self, path: str) -> tuple[Tree, set[str]]:
        """`init phase PATH`: the top phase holding PATH, and the skip set leaving only PATH (and what
        is under it) to run."""
        self.find(path)
        top = next(p for p in self.phases if path == p.name or path.startswith(p.name + "/"))
        skip = {
            p for p, _ in top.walk()
            if p != path and not p.startswith(path + "/") and not path.startswith(p + "/")
        }
        return Tree((top,)), skip


def _replace_in(phase: Phase, rest: str, new: Phase) -> Phase:
    if not rest:
        return new
    head, _, tail = rest.partition("/")
    if not any(c.name == head for c in phase.children):
        raise KeyError(rest)
    return replace(phase, children=tuple(_replace_in(c, tail, new) if c.name == head else c for c in phase.children))
