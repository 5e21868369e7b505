"""Stamps: what a step was built from (a hash of its inputs) and what it produced (artifacts with sha256).

A step is skipped when its stamp's inputs hash matches and every artifact it lists is on disk with
the recorded sha256, so a no-op `make components` hashes files instead of rebuilding. The stamp is
written last, after the outputs were renamed into place: an interrupted step has no valid stamp.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from components.manifest import Artifact, atomic_write_bytes

STAMP_SCHEMA = 1
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def inputs_hash(parts: Iterable[str | bytes]) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big"))  # length-prefixed: ("ab","c") != ("a","bc")
        h.update(data)
    return h.hexdigest()


@dataclass(frozen=True)
class Stamp:
    inputs: str
    artifacts: tuple[Artifact, ...]


def stamp_path(release_dir: Path, step: str) -> Path:
    return release_dir / "stamps" / f"{step}.json"


def read_stamp(path: Path) -> Stamp | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("schema") != STAMP_SCHEMA:
        return None
    try:
        return Stamp(str(data["inputs"]), tuple(Artifact.from_json(a) for a in data["artifacts"]))
    except (KeyError, TypeError, ValueError):
        return None


def write_stamp(path: Path, stamp: Stamp) -> None:
    data = {"schema": STAMP_SCHEMA, "inputs": stamp.inputs, "artifacts": [a.to_json() for a in stamp.artifacts]}
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def outputs_intact(release_dir: Path, artifacts: Iterable[Artifact]) -> bool:
    for a in artifacts:
        path = release_dir / a.path
        try:
            if path.stat().st_size != a.size or sha256_file(path) != a.sha256:
                return False
        except OSError:
            return False
    return True


def valid_stamp(release_dir: Path, step: str, inputs: str) -> Stamp | None:
    """The step's stamp when its inputs match and its outputs are intact; None means build it."""
    stamp = read_stamp(stamp_path(release_dir, step))
    if stamp is None or stamp.inputs != inputs or not stamp.artifacts:
        return None
    return stamp if outputs_intact(release_dir, stamp.artifacts) else None
