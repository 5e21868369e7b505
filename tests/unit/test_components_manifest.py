"""manifest.json: written by the component build, read by bootstrap.artifacts.components; stamps decide
what a rerun rebuilds."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from bootstrap.artifacts.components import load_components
from bootstrap.errors import RequirementError
from components.manifest import Artifact, Manifest, Source, read_manifest, write_manifest
from components.stamps import Stamp, stamp_path, valid_stamp, write_stamp


def _release(tmp_path: Path, release: str = "v1.37.2") -> tuple[Path, Manifest]:
    rel = tmp_path / release
    (rel / "bin").mkdir(parents=True)
    (rel / "images").mkdir()
    kubelet = rel / "bin/kubelet"
    kubelet.write_bytes(b"kubelet bytes")
    archive = rel / "images/pause.tar"
    archive.write_bytes(b"an oci archive")

    def sha(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest()

    manifest = Manifest(release, "go1.26.8", (
        Artifact("kubelet", "binary", release, Source(release, module="k8s.io/kubernetes",
                 package="k8s.io/kubernetes/cmd/kubelet"), sha(kubelet), kubelet.stat().st_size, "bin/kubelet"),
        Artifact("pause", "image", "3.10.2", Source(release, module="k8s.io/kubernetes", file="build/pause/linux/pause.c"),
                 sha(archive), archive.stat().st_size, "images/pause.tar", image="registry.k8s.io/pause:3.10.2",
                 digest="sha256:" + "0" * 64, contents=(Source("1:1.35.0-4", debian="busybox-static"),)),
    ))
    return rel, manifest


def test_written_manifest_reads_back_in_both_readers(tmp_path: Path) -> None:
    rel, manifest = _release(tmp_path)
    assert write_manifest(rel / "manifest.json", manifest)
    assert not write_manifest(rel / "manifest.json", manifest)  # same content: file untouched
    assert read_manifest(rel / "manifest.json") == manifest
    assert oct((rel / "manifest.json").stat().st_mode & 0o777) == "0o644"

    comps = load_components("v1.37.2", root=tmp_path)
    assert comps.binary("kubelet") == rel / "bin/kubelet"
    assert comps.binaries["kubelet"].source.package == "k8s.io/kubernetes/cmd/kubelet"
    assert comps.image_refs == {"registry.k8s.io/pause:3.10.2": rel / "images/pause.tar"}
    assert comps.images["pause"].digest == "sha256:" + "0" * 64
    comps.binaries["kubelet"].verify()


def test_reader_names_make_components_when_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KBOOTSTRAP_COMPONENTS", str(tmp_path))
    with pytest.raises(RequirementError) as exc:
        load_components("v1.37.2")
    assert "make components" in exc.value.one_line()
    assert "\n" not in exc.value.one_line()


def test_reader_refuses_a_missing_or_changed_file(tmp_path: Path) -> None:
    rel, manifest = _release(tmp_path)
    write_manifest(rel / "manifest.json", manifest)
    (rel / "bin/kubelet").write_bytes(b"kubelet bytes, longer")
    with pytest.raises(RequirementError, match="missing or incomplete"):
        load_components("v1.37.2", root=tmp_path)
    (rel / "bin/kubelet").write_bytes(b"KUBELET BYTES")  # same size, other content
    comps = load_components("v1.37.2", root=tmp_path)
    with pytest.raises(RequirementError, match="sha256"):
        comps.binaries["kubelet"].verify()
    with pytest.raises(RequirementError, match="no binary 'etcd'"):
        comps.binary("etcd")


def test_stamp_is_valid_only_with_same_inputs_and_intact_outputs(tmp_path: Path) -> None:
    rel, manifest = _release(tmp_path)
    kubelet = manifest.artifacts[0]
    write_stamp(stamp_path(rel, "go-kubernetes"), Stamp("inputs-1", (kubelet,)))
    assert valid_stamp(rel, "go-kubernetes", "inputs-1") is not None
    assert valid_stamp(rel, "go-kubernetes", "inputs-2") is None  # go.mod, flags or Go changed
    (rel / "bin/kubelet").write_bytes(b"KUBELET BYTES")  # same size, different bytes
    assert valid_stamp(rel, "go-kubernetes", "inputs-1") is None
    (rel / "bin/kubelet").unlink()
    assert valid_stamp(rel, "go-kubernetes", "inputs-1") is None
    assert valid_stamp(rel, "never-built", "inputs-1") is None
