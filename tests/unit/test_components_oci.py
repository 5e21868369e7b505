"""The OCI archive writer: parsed back, every digest matches, layers are deterministic tars, and the
index carries the names skopeo and `ctr images import` read."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from components import oci
from components.images import CAP_NET_BIND_SERVICE, file_capability


def _layers(tmp_path: Path) -> list[list[oci.Entry]]:
    binary = tmp_path / "kube-apiserver"
    binary.write_bytes(b"\x7fELF pretend binary" * 100)
    return [
        [oci.Entry("/etc/passwd", mode=0o644, data=b"root:x:0:0::/root:/sbin/nologin\n"), oci.Entry("/tmp", "dir", 0o1777)],
        [
            oci.Entry("/usr/local/bin/kube-apiserver", source=binary, xattrs={"security.capability": CAP_NET_BIND_SERVICE}),
            oci.Entry("/usr/sbin/iptables", kind="symlink", mode=0o777, target="xtables-nft-multi"),
        ],
    ]


def _write(tmp_path: Path, name: str = "image.tar") -> oci.ImageArchive:
    config = oci.ImageConfig(entrypoint=("/go-runner",), user="65532:65532", exposed_ports=("53/udp",))
    return oci.write_archive(tmp_path / name, "registry.k8s.io/kube-apiserver:v1.37.2", _layers(tmp_path), config)


def test_archive_reads_back_with_matching_digests(tmp_path: Path) -> None:
    archive = _write(tmp_path)
    image = oci.read_archive(archive.path)  # checks every blob against its digest
    assert image.reference == "registry.k8s.io/kube-apiserver:v1.37.2"
    assert image.tag == "v1.37.2"
    assert image.config["config"]["Entrypoint"] == ["/go-runner"]  # type: ignore[index]
    assert image.config["config"]["User"] == "65532:65532"  # type: ignore[index]
    assert image.config["config"]["ExposedPorts"] == {"53/udp": {}}  # type: ignore[index]
    assert image.config["os"] == "linux" and image.config["architecture"] == "amd64"
    assert [d.digest for d in archive.layers] == ["sha256:" + hashlib.sha256(b).hexdigest() for b in image.layers]
    assert archive.sha256 == hashlib.sha256(archive.path.read_bytes()).hexdigest()
    assert archive.size == archive.path.stat().st_size
    with tarfile.open(archive.path) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        assert json.load(tar.extractfile("oci-layout")) == {"imageLayoutVersion": "1.0.0"}  # type: ignore[arg-type]
    (entry,) = index["manifests"]
    assert entry["digest"] == archive.manifest.digest
    assert entry["mediaType"] == oci.MEDIA_MANIFEST
    assert entry["platform"] == {"architecture": "amd64", "os": "linux"}


def test_layers_are_deterministic_tars(tmp_path: Path) -> None:
    image = oci.read_archive(_write(tmp_path).path)
    with tarfile.open(fileobj=io.BytesIO(image.layers[1])) as layer:
        members = layer.getmembers()
    names = [m.name for m in members]
    assert names == ["usr", "usr/local", "usr/local/bin", "usr/local/bin/kube-apiserver", "usr/sbin", "usr/sbin/iptables"]
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.uname == "" for m in members)
    assert {m.name: oct(m.mode) for m in members if m.isdir()} == {
        "usr": "0o755", "usr/local": "0o755", "usr/local/bin": "0o755", "usr/sbin": "0o755",
    }
    apiserver = next(m for m in members if m.name.endswith("kube-apiserver"))
    cap = apiserver.pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape")
    assert cap == CAP_NET_BIND_SERVICE
    assert next(m for m in members if m.issym()).linkname == "xtables-nft-multi"


def test_same_inputs_give_the_same_image(tmp_path: Path) -> None:
    a = _write(tmp_path, "a.tar")
    b = _write(tmp_path, "b.tar")
    assert a.manifest.digest == b.manifest.digest
    assert a.sha256 == b.sha256


def test_a_tampered_blob_is_detected(tmp_path: Path) -> None:
    archive = _write(tmp_path)
    layer_name = "blobs/sha256/" + archive.layers[0].digest.removeprefix("sha256:")
    tampered = tmp_path / "tampered.tar"
    with tarfile.open(archive.path) as src, tarfile.open(tampered, "w") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read() if m.isfile() else None  # type: ignore[union-attr]
            if m.name == layer_name and data is not None:
                data = data.replace(b"root:x", b"evil:x")
            dst.addfile(m, io.BytesIO(data) if data is not None else None)
    with pytest.raises(ValueError, match="does not match its digest"):
        oci.read_archive(tampered)


def test_parents_are_added_and_conflicts_refused() -> None:
    entries = oci.with_parents([oci.Entry("/a/b/c", data=b"x")])
    assert [(e.path, e.kind) for e in entries] == [("/a", "dir"), ("/a/b", "dir"), ("/a/b/c", "file")]
    with pytest.raises(ValueError, match="below it"):
        oci.with_parents([oci.Entry("/lib", kind="symlink", target="usr/lib"), oci.Entry("/lib/x.so", data=b"")])
    with pytest.raises(ValueError, match="two different"):
        oci.with_parents([oci.Entry("/x", data=b"1"), oci.Entry("/x", data=b"2")])


def test_no_half_archive_on_failure(tmp_path: Path) -> None:
    missing = oci.Entry("/bin/x", source=tmp_path / "does-not-exist")
    with pytest.raises(FileNotFoundError):
        oci.write_archive(tmp_path / "out.tar", "example.test/x:1", [[missing]], oci.ImageConfig())
    assert list(tmp_path.iterdir()) == []


def test_file_capability_encoding() -> None:
    # getcap's view of `setcap cap_net_bind_service=+ep`: revision 2, effective, permitted bit 10
    assert file_capability(1 << 10) == bytes.fromhex("01000002" "00040000" "00000000" "00000000" "00000000")


def test_reference_must_have_a_tag() -> None:
    assert oci.split_reference("registry.k8s.io/coredns/coredns:v1.14.6") == ("registry.k8s.io/coredns/coredns", "v1.14.6")
    with pytest.raises(ValueError):
        oci.split_reference("localhost:5000/pause")
