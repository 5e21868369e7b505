"""A tiny OCI image for lab tests: Debian's static busybox in one layer, as an OCI archive.

Not an image builder: the cluster's images come from the components build (bootstrap/artifacts). This
exists so a lab registry has something real to serve (and a node something to run) before those
images are there. The archive is deterministic (fixed times and owners), so its digest only changes
with the busybox binary.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from bootstrap.errors import RequirementError
from bootstrap.lab.state import write_atomic

BUSYBOX = Path("/bin/busybox")  # busybox-static
REFERENCE = "lab.kbootstrap.test/busybox:1"  # .test is reserved (RFC 2606): never a real registry
APPLETS = ("sh", "echo", "cat", "ls", "sleep", "hostname", "ps", "true", "wget")
# The default command sleeps, so the image also serves as a pod sandbox in tests.
CMD = ["/bin/sleep", "2147483647"]


def _tarinfo(name: str, *, type_: bytes = tarfile.REGTYPE, size: int = 0, mode: int = 0o644,
             link: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.size, ti.mode, ti.linkname = type_, size, mode, link
    ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = 0, 0, 0, "", ""
    return ti


def _layer(busybox: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_tarinfo("bin", type_=tarfile.DIRTYPE, mode=0o755))
        tar.addfile(_tarinfo("bin/busybox", size=len(busybox), mode=0o755), io.BytesIO(busybox))
        for a in APPLETS:
            tar.addfile(_tarinfo(f"bin/{a}", type_=tarfile.SYMTYPE, mode=0o777, link="busybox"))
        for d in ("tmp", "etc", "proc", "sys", "dev"):
            tar.addfile(_tarinfo(d, type_=tarfile.DIRTYPE, mode=0o1777 if d == "tmp" else 0o755))
    return buf.getvalue()


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _digest(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def archive_bytes(busybox: bytes, reference: str = REFERENCE) -> bytes:
    """The OCI archive (a tar of an OCI image layout) that `skopeo copy oci-archive:` reads."""
    layer = _layer(busybox)
    config = _canonical({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": CMD, "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
    })
    manifest = _canonical({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _digest(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": _digest(layer),
                    "size": len(layer)}],
    })
    index = _canonical({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": _digest(manifest),
                       "size": len(manifest),
                       "annotations": {"org.opencontainers.image.ref.name": reference.rsplit(":", 1)[1],
                                       "io.containerd.image.name": reference}}],
    })
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        files = [("oci-layout", _canonical({"imageLayoutVersion": "1.0.0"})), ("index.json", index)]
        files += [(f"blobs/sha256/{_digest(b)[7:]}", b) for b in (layer, config, manifest)]
        for d in ("blobs", "blobs/sha256"):
            tar.addfile(_tarinfo(d, type_=tarfile.DIRTYPE, mode=0o755))
        for name, data in files:
            tar.addfile(_tarinfo(name, size=len(data)), io.BytesIO(data))
    return buf.getvalue()


def ensure_archive(dest: Path) -> Path:
    """Write the archive to dest (once; rewritten when busybox changed). Needs busybox-static."""
    if not BUSYBOX.is_file():
        raise RequirementError(f"{BUSYBOX} not found (the lab's test image is made from it)",
                               hint="apt-get install busybox-static")
    busybox = BUSYBOX.read_bytes()
    if b"/ld-linux" in busybox[:4096]:  # an ELF interpreter: the dynamic build of package busybox
        raise RequirementError(f"{BUSYBOX} is linked dynamically and cannot run alone in an image",
                               hint="apt-get install busybox-static")
    data = archive_bytes(busybox)
    if not dest.is_file() or dest.read_bytes() != data:
        write_atomic(dest, data)
    return dest
