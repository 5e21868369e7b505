"""The components `make components` built: binaries and image archives of a release, by name.

Reads RELEASE/manifest.json under the components directory ($KBOOTSTRAP_COMPONENTS, default
~/.cache/kbootstrap/components). The manifest's paths are relative to the release directory.
What is missing raises RequirementError with one line that names `make components`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bootstrap.errors import RequirementError

ENV_ROOT = "KBOOTSTRAP_COMPONENTS"
DEFAULT_RELEASE = "v1.37.2"  # components/releases.py DEFAULT_RELEASE
MANIFEST_SCHEMA = 1
_HINT = "run `make components`"


@dataclass(frozen=True)
class Source:
    version: str
    module: str | None = None
    package: str | None = None
    file: str | None = None
    debian: str | None = None


@dataclass(frozen=True)
class Artifact:
    name: str
    kind: str  # "binary" or "image"
    version: str
    source: Source
    sha256: str
    size: int
    path: Path  # absolute
    image: str | None = None  # images: the reference (e.g. registry.k8s.io/pause:3.10.2)
    digest: str | None = None  # images: the manifest digest

    def verify(self) -> None:
        """Check the file against the manifest's sha256 (reads the whole file)."""
        h = hashlib.sha256()
        with self.path.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        if h.hexdigest() != self.sha256:
            raise RequirementError(f"{self.path} does not match manifest.json (sha256 differs)", hint=_HINT)


@dataclass(frozen=True)
class Components:
    release: str
    directory: Path
    go: str
    binaries: Mapping[str, Artifact]  # "kubelet", "etcd", "cni/bridge" ...
    images: Mapping[str, Artifact]  # "kube-apiserver", "etcd", "coredns", "pause", "busybox" ...

    def binary(self, name: str) -> Path:
        try:
            return self.binaries[name].path
        except KeyError:
            raise RequirementError(f"components {self.release} have no binary {name!r}", hint=_HINT) from None

    def image(self, name: str) -> Artifact:
        try:
            return self.images[name]
        except KeyError:
            raise RequirementError(f"components {self.release} have no image {name!r}", hint=_HINT) from None

    @property
    def image_refs(self) -> dict[str, Path]:
        """Image reference -> OCI archive."""
        return {a.image: a.path for a in self.images.values() if a.image}


def components_root(root: Path | None = None) -> Path:
    if root is not None:
        return root
    env = os.environ.get(ENV_ROOT)
    return Path(env) if env else Path.home() / ".cache" / "kbootstrap" / "components"


def _source(data: dict[str, str]) -> Source:
    return Source(data["version"], data.get("module"), data.get("package"), data.get("file"), data.get("debian"))


def load_components(release: str = DEFAULT_RELEASE, root: Path | None = None) -> Components:
    """The built components of `release`; RequirementError when they are not (all) there."""
    directory = components_root(root) / release
    manifest = directory / "manifest.json"
    try:
        data = json.loads(manifest.read_text())
    except FileNotFoundError:
        raise RequirementError(f"components {release} are not built ({manifest} is missing)", hint=_HINT) from None
    except (OSError, ValueError) as exc:
        raise RequirementError(f"{manifest} is unreadable: {exc}", hint=_HINT) from None
    if data.get("schema") != MANIFEST_SCHEMA or data.get("release") != release:
        raise RequirementError(f"{manifest} is not a schema {MANIFEST_SCHEMA} manifest of {release}", hint=_HINT)
    binaries: dict[str, Artifact] = {}
    images: dict[str, Artifact] = {}
    for item in data["artifacts"]:
        artifact = Artifact(
            name=item["name"],
            kind=item["kind"],
            version=item["version"],
            source=_source(item["source"]),
            sha256=item["sha256"],
            size=int(item["size"]),
            path=directory / item["path"],
            image=item.get("image"),
            digest=item.get("digest"),
        )
        if not artifact.path.is_file() or artifact.path.stat().st_size != artifact.size:
            raise RequirementError(f"components {release}: {artifact.path} is missing or incomplete", hint=_HINT)
        (images if artifact.kind == "image" else binaries)[artifact.name] = artifact
    return Components(release, directory, str(data.get("go", "")), binaries, images)
