"""Lab state on disk: one directory per lab holding state.json, the lab key, DNS files and overlays."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bootstrap.errors import UsageError
from bootstrap.localfiles import write_atomic

STATE_VERSION = 1


def lab_root() -> Path:
    # Overridable so a second checkout or a test can keep its labs apart.
    return Path(os.environ.get("KBOOTSTRAP_LAB_DIR", "/var/lib/kbootstrap/lab"))


def lab_dir(name: str) -> Path:
    return lab_root() / name


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive flock, held for the block: serialises commands that change the same lab."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def lab_lock_path(name: str) -> Path:
    return lab_root() / f".{name}.lock"


def lab_lock(name: str) -> contextlib.AbstractContextManager[None]:
    return locked(lab_lock_path(name))


def global_lock() -> contextlib.AbstractContextManager[None]:
    """Held while picking a subnet, so two `lab up` runs cannot pick the same one."""
    return locked(lab_root() / ".lock")


@dataclass
class Machine:
    name: str
    role: str
    ip: str
    netns: str
    veth: str
    dns: bool = True  # False while removed from the lab DNS by `lab dns remove`
    blocks: list[str] = field(default_factory=list)  # human-readable active nft blocks

    def dir(self, lab: str) -> Path:
        return lab_dir(lab) / "machines" / self.name


@dataclass
class LabState:
    name: str
    subnet: str
    bridge: str
    bridge_ip: str
    domain: str
    rootfs: str
    inventory_dir: str
    machines: list[Machine]
    complete: bool = False  # set once `up` has finished; a half-made lab is cleaned by `down`
    registry_images: list[str] = field(default_factory=list)  # what the lab registry serves
    registry_storage: str = ""  # its (shared, read-only) storage directory
    vip: str = ""  # `lab up --vip`: the keepalived VIP the inventory gives the control planes
    version: int = STATE_VERSION

    @property
    def dir(self) -> Path:
        return lab_dir(self.name)

    @property
    def key_path(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def known_hosts_path(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def prefixlen(self) -> int:
        return int(self.subnet.split("/")[1])

    def machine(self, name: str) -> Machine:
        for m in self.machines:
            if m.name == name:
                return m
        # Accept the short form too: `lab ssh dev cp1` means dev-cp1.
        for m in self.machines:
            if m.name == f"{self.name}-{name}":
                return m
        known = ", ".join(m.name for m in self.machines)
        raise UsageError(f"lab {self.name} has no machine {name!r}", hint=f"machines: {known}")

    def save(self) -> None:
        write_atomic(self.dir / "state.json", json.dumps(asdict(self), indent=2) + "\n")


def load(name: str) -> LabState | None:
    path = lab_dir(name) / "state.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        hint = f"kbootstrap lab down --name {name}"
        raise UsageError(f"lab {name}: unreadable state {path}: {e}", hint=hint) from None
    raw["machines"] = [Machine(**m) for m in raw["machines"]]
    return LabState(**raw)


def require(name: str) -> LabState:
    st = load(name)
    if st is None:
        raise UsageError(f"no lab named {name!r}", hint="kbootstrap lab list")
    return st


def all_labs() -> list[LabState]:
    root = lab_root()
    if not root.is_dir():
        return []
    out = []
    for d in sorted(root.iterdir()):
        if (d / "state.json").is_file():
            with contextlib.suppress(UsageError, TypeError, KeyError):
                st = load(d.name)
                if st is not None:
                    out.append(st)
    return out
