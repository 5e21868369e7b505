"""manifest.json of a release's outputs: every artifact with its version, source, sha256 and path.

The file is the contract with the rest of kbootstrap (bootstrap/artifacts/components.py reads it):
paths are relative to the release directory, so the whole directory can be moved or copied.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

SCHEMA = 1


@dataclass(frozen=True)
class Source:
    """Where an artifact comes from: a Go/C source module at a version, or a Debian package."""

    version: str
    module: str | None = None  # k8s.io/kubernetes
    package: str | None = None  # the Go package built, e.g. k8s.io/kubernetes/cmd/kubelet
    file: str | None = None  # a C source inside the module, e.g. build/pause/linux/pause.c
    debian: str | None = None  # a Debian package name

    def to_json(self) -> dict[str, str]:
        out = {"version": self.version}
        for key in ("module", "package", "file", "debian"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Source:
        return cls(data["version"], data.get("module"), data.get("package"), data.get("file"), data.get("debian"))


@dataclass(frozen=True)
class Artifact:
    name: str
    kind: str  # "binary" or "image"
    version: str
    source: Source
    sha256: str
    size: int
    path: str  # relative to the release directory
    image: str | None = None  # images: the reference kubeadm/containerd use
    digest: str | None = None  # images: the manifest digest
    contents: Sequence[Source] = field(default_factory=tuple)  # images: everything that went in

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name,
            "kind": self.kind,
            "version": self.version,
            "source": self.source.to_json(),
            "sha256": self.sha256,
            "size": self.size,
            "path": self.path,
        }
        if self.kind == "image":
            out["image"] = self.image
            out["digest"] = self.digest
            out["contents"] = [s.to_json() for s in self.contents]
        return out

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Artifact:
        contents = data.get("contents") or []
        assert isinstance(contents, list)
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            version=str(data["version"]),
            source=Source.from_json(data["source"]),  # type: ignore[arg-type]
            sha256=str(data["sha256"]),
            size=int(data["size"]),  # type: ignore[call-overload]
            path=str(data["path"]),
            image=str(data["image"]) if data.get("image") else None,
            digest=str(data["digest"]) if data.get("digest") else None,
            contents=tuple(Source.from_json(s) for s in contents),
        )


@dataclass(frozen=True)
class Manifest:
    release: str
    go: str  # `go version` of the toolchain that built the binaries
    artifacts: Sequence[Artifact]

    def to_json(self) -> dict[str, object]:
        return {
            "schema": SCHEMA,
            "release": self.release,
            "go": self.go,
            "artifacts": [a.to_json() for a in sorted(self.artifacts, key=lambda a: (a.kind, a.name))],
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Manifest:
        if data.get("schema") != SCHEMA:
            raise ValueError(f"manifest schema {data.get('schema')!r}, expected {SCHEMA}")
        artifacts = data["artifacts"]
        assert isinstance(artifacts, list)
        return cls(str(data["release"]), str(data["go"]), tuple(Artifact.from_json(a) for a in artifacts))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same directory and rename: readers see the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; these files are for every user of the machine
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def encode(manifest: Manifest) -> bytes:
    return (json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n").encode()


def write_manifest(path: Path, manifest: Manifest) -> bool:
    """Write manifest.json atomically; False (and the file untouched) when it already says the same."""
    data = encode(manifest)
    if path.is_file() and path.read_bytes() == data:
        return False
    atomic_write_bytes(path, data)
    return True


def read_manifest(path: Path) -> Manifest:
    return Manifest.from_json(json.loads(path.read_text()))
