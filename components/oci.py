"""OCI image archives written directly, without a container daemon.

An archive is a tar of an OCI image layout (oci-layout, index.json, blobs/sha256/...), the format
`skopeo copy oci-archive:FILE ...` and `ctr images import FILE` read. Everything is deterministic:
layer members sorted, mtime 0, uid/gid 0, no user names; JSON with sorted keys. Layers are
uncompressed tars (media type ...layer.v1.tar), so a layer's digest is its diff_id and the same
inputs give the same image digest on every machine. The archive is written to a temp name and
renamed into place, so an interrupted build never leaves a half archive.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"  # what `ctr images import` names the image after
EPOCH = "1970-01-01T00:00:00Z"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One member of a layer. `path` is absolute in the image; exactly one of source/data for a file."""

    path: str
    kind: Literal["file", "dir", "symlink"] = "file"
    mode: int = 0o755
    source: Path | None = None  # host file copied in
    data: bytes | None = None  # inline content
    target: str = ""  # symlink target
    xattrs: Mapping[str, bytes] = field(default_factory=dict)  # e.g. security.capability
    uid: int = 0
    gid: int = 0
    content_id: str = ""  # a stable id of `source`'s content (its sha256, or size:mtime), for stamps

    @property
    def name(self) -> str:
        return str(PurePosixPath(self.path).relative_to("/"))


@dataclass(frozen=True)
class ImageConfig:
    entrypoint: Sequence[str] = ()
    cmd: Sequence[str] = ()
    env: Sequence[str] = (f"PATH={DEFAULT_PATH}",)
    user: str = ""
    working_dir: str = ""
    exposed_ports: Sequence[str] = ()  # "53/udp"
    labels: Mapping[str, str] = field(default_factory=dict)
    architecture: str = "amd64"
    os: str = "linux"


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str  # sha256:HEX
    size: int

    def to_json(self) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class ImageArchive:
    path: Path
    reference: str
    manifest: Descriptor
    config: Descriptor
    layers: tuple[Descriptor, ...]
    sha256: str  # of the archive file
    size: int


class _HashingWriter(io.RawIOBase):
    """A write-only file that hashes and counts what passes through it to `out`."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:  # tarfile asks where it is; we are at the end of what we wrote
        return self.size

    def write(self, b: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self.out.write(b)
        self.hash.update(b)
        self.size += len(b)
        return len(b)


def canonical_json(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def split_reference(ref: str) -> tuple[str, str]:
    """("registry.k8s.io/pause", "3.10.2") from "registry.k8s.io/pause:3.10.2"."""
    name, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag or not name:
        raise ValueError(f"{ref!r} is not NAME:TAG")
    return name, tag


def with_parents(entries: Iterable[Entry]) -> list[Entry]:
    """The entries plus any missing parent directory (0755), sorted by path; duplicates refused."""
    by_path: dict[str, Entry] = {}
    for e in entries:
        if e.path in by_path and by_path[e.path] != e:
            raise ValueError(f"two different entries for {e.path}")
        by_path[e.path] = e
    for path in list(by_path):
        for parent in PurePosixPath(path).parents:
            p = str(parent)
            if p == "/":
                continue
            existing = by_path.get(p)
            if existing is None:
                by_path[p] = Entry(p, kind="dir", mode=0o755)
            elif existing.kind != "dir":
                raise ValueError(f"{p} is a {existing.kind} but {path} is below it")
    return [by_path[p] for p in sorted(by_path, key=lambda p: PurePosixPath(p).parts)]


def _tarinfo(e: Entry) -> tarfile.TarInfo:
    info = tarfile.TarInfo(e.name + ("/" if e.kind == "dir" else ""))
    info.mode = e.mode
    info.uid, info.gid = e.uid, e.gid
    info.uname = info.gname = ""
    info.mtime = 0
    if e.kind == "dir":
        info.type = tarfile.DIRTYPE
    elif e.kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = e.target
    else:
        info.type = tarfile.REGTYPE
        info.size = len(e.data) if e.data is not None else os.stat(e.source).st_size  # type: ignore[arg-type]
    if e.xattrs:
        # PAX SCHILY.xattr records carry raw bytes; tarfile writes them as hdrcharset=BINARY.
        info.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in e.xattrs.items()}
    return info


def write_layer(entries: Iterable[Entry], out: BinaryIO) -> Descriptor:
    """Write one layer tar to `out`; its descriptor (digest == diff_id: the layer is uncompressed)."""
    sink = _HashingWriter(out)
    with tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in with_parents(entries):
            info = _tarinfo(e)
            if e.kind != "file":
                tar.addfile(info)
            elif e.data is not None:
                tar.addfile(info, io.BytesIO(e.data))
            else:
                with open(e.source, "rb") as f:  # type: ignore[arg-type]
                    tar.addfile(info, f)
    return Descriptor(MEDIA_LAYER, "sha256:" + sink.hash.hexdigest(), sink.size)


def image_config_json(config: ImageConfig, layers: Sequence[Descriptor]) -> bytes:
    cfg: dict[str, object] = {"Env": list(config.env)}
    if config.entrypoint:
        cfg["Entrypoint"] = list(config.entrypoint)
    if config.cmd:
        cfg["Cmd"] = list(config.cmd)
    if config.user:
        cfg["User"] = config.user
    if config.working_dir:
        cfg["WorkingDir"] = config.working_dir
    if config.exposed_ports:
        cfg["ExposedPorts"] = {p: {} for p in config.exposed_ports}
    if config.labels:
        cfg["Labels"] = dict(config.labels)
    return canonical_json({
        "architecture": config.architecture,
        "os": config.os,
        "created": EPOCH,
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": [d.digest for d in layers]},
        "history": [{"created": EPOCH, "created_by": "kbootstrap components (OCI layout writer)"} for _ in layers],
    })


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
    tar.addfile(info)


def write_archive(dest: Path, reference: str, layers: Sequence[Iterable[Entry]], config: ImageConfig) -> ImageArchive:
    """Write an OCI archive of one linux/amd64 image named `reference` to `dest` (atomically)."""
    _, tag = split_reference(reference)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}.") as tmp:
        layer_files: list[tuple[Descriptor, Path]] = []
        for i, entries in enumerate(layers):
            path = Path(tmp) / f"layer{i}"
            with path.open("wb") as f:
                layer_files.append((write_layer(entries, f), path))
        descs = tuple(d for d, _ in layer_files)
        config_bytes = image_config_json(config, descs)
        config_desc = Descriptor(MEDIA_CONFIG, "sha256:" + hashlib.sha256(config_bytes).hexdigest(), len(config_bytes))
        manifest_bytes = canonical_json({
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": config_desc.to_json(),
            "layers": [d.to_json() for d in descs],
        })
        manifest_desc = Descriptor(
            MEDIA_MANIFEST, "sha256:" + hashlib.sha256(manifest_bytes).hexdigest(), len(manifest_bytes)
        )
        index_bytes = canonical_json({
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [{
                **manifest_desc.to_json(),
                "annotations": {REF_NAME: tag, CONTAINERD_NAME: reference},
                "platform": {"architecture": config.architecture, "os": config.os},
            }],
        })
        part = Path(tmp) / "archive.tar"
        with part.open("wb") as raw:
            sink = _HashingWriter(raw)
            with tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT) as tar:
                _add_bytes(tar, "oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"}))
                _add_bytes(tar, "index.json", index_bytes)
                _add_dir(tar, "blobs/")
                _add_dir(tar, "blobs/sha256/")
                blobs: dict[str, bytes | Path] = {
                    config_desc.digest: config_bytes,
                    manifest_desc.digest: manifest_bytes,
                }
                for d, p in layer_files:
                    blobs[d.digest] = p  # identical layers (e.g. two empty ones) are stored once
                for digest in sorted(blobs):
                    name = "blobs/sha256/" + digest.removeprefix("sha256:")
                    blob = blobs[digest]
                    if isinstance(blob, bytes):
                        _add_bytes(tar, name, blob)
                    else:
                        info = tarfile.TarInfo(name)
                        info.size, info.mode, info.mtime = blob.stat().st_size, 0o644, 0
                        with blob.open("rb") as f:
                            tar.addfile(info, f)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(part, dest)
    return ImageArchive(dest, reference, manifest_desc, config_desc, descs, sink.hash.hexdigest(), sink.size)


@dataclass(frozen=True)
class ReadImage:
    """An archive parsed back: what the index names and the blobs, each digest checked."""

    reference: str | None
    tag: str | None
    manifest: dict[str, object]
    config: dict[str, object]
    layers: tuple[bytes, ...]


def read_archive(path: Path) -> ReadImage:
    """Parse an archive written by write_archive, verifying every blob against its digest."""
    with tarfile.open(path) as tar:
        def blob(digest: str) -> bytes:
            f = tar.extractfile("blobs/sha256/" + digest.removeprefix("sha256:"))
            if f is None:
                raise ValueError(f"{path}: blob {digest} missing")
            data = f.read()
            if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
                raise ValueError(f"{path}: blob {digest} does not match its digest")
            return data

        layout_file = tar.extractfile("oci-layout")
        index_file = tar.extractfile("index.json")
        if layout_file is None or index_file is None:
            raise ValueError(f"{path}: not an OCI layout")
        if json.loads(layout_file.read()).get("imageLayoutVersion") != "1.0.0":
            raise ValueError(f"{path}: unknown imageLayoutVersion")
        index = json.loads(index_file.read())
        (entry,) = index["manifests"]
        manifest = json.loads(blob(entry["digest"]))
        config = json.loads(blob(manifest["config"]["digest"]))
        layers = tuple(blob(d["digest"]) for d in manifest["layers"])
        if config["rootfs"]["diff_ids"] != [d["digest"] for d in manifest["layers"]]:
            raise ValueError(f"{path}: diff_ids do not match the (uncompressed) layers")
        annotations = entry.get("annotations", {})
        return ReadImage(annotations.get(CONTAINERD_NAME), annotations.get(REF_NAME), manifest, config, layers)
