"""Offline bundles: the manifest, checksum verification, and which packages a node needs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from bootstrap.artifacts.bundle import MANIFEST, VERIFIED, load_bundle, packages_to_install
from bootstrap.errors import ConfigError


def make_bundle(tmp_path: Path, debs: dict[str, list[list[str]]]) -> Path:
    root = tmp_path / "bundle"
    (root / "debs").mkdir(parents=True)
    (root / "bin").mkdir()
    files = {}
    for name, depends in debs.items():
        data = f"deb {name}".encode()
        rel = f"debs/{name}_1.0_amd64.deb"
        (root / rel).write_bytes(data)
        files[rel] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "package": name,
                      "version": "1.0", "depends": depends}
    (root / "bin/kubectl").write_bytes(b"kubectl")
    files["bin/kubectl"] = {"sha256": hashlib.sha256(b"kubectl").hexdigest(), "size": 7}
    (root / MANIFEST).write_text(json.dumps({"kubernetes_version": "v1.34.0", "files": files}))
    return root


def test_verified_bundle_loads(tmp_path: Path) -> None:
    b = load_bundle(make_bundle(tmp_path, {"containerd": [["runc"]], "runc": []}))
    assert sorted(b.debs) == ["containerd", "runc"]
    assert b.binary("kubectl") is not None and b.binary("kubelet") is None


def test_a_tampered_file_is_refused(tmp_path: Path) -> None:
    root = make_bundle(tmp_path, {"runc": []})
    (root / "bin/kubectl").write_bytes(b"evil")
    with pytest.raises(ConfigError, match=r"checksum mismatch for bin/kubectl"):
        load_bundle(root)


def test_a_file_changed_after_a_verified_load_is_refused(tmp_path: Path) -> None:
    """The checksums kept from the last verification answer only for a file that is untouched: the
    same size and mtime (set back here, as a careful tamperer would) still differ in ctime."""
    root = make_bundle(tmp_path, {"runc": []})
    load_bundle(root)
    assert (root / VERIFIED).is_file()
    before = (root / "bin/kubectl").stat()
    (root / "bin/kubectl").write_bytes(b"kubecTl")
    os.utime(root / "bin/kubectl", ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(ConfigError, match=r"checksum mismatch for bin/kubectl"):
        load_bundle(root)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    root = make_bundle(tmp_path, {"runc": []})
    (root / "debs/runc_1.0_amd64.deb").unlink()
    with pytest.raises(ConfigError, match="missing"):
        load_bundle(root)


def test_no_manifest_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_bundle(tmp_path)
    assert "has no manifest.json (create one with `kbootstrap bundle create`)" in exc.value.one_line()


def test_dependency_closure_skips_what_the_node_has(tmp_path: Path) -> None:
    b = load_bundle(make_bundle(tmp_path, {
        "containerd": [["runc"], ["libc6"], ["libseccomp2"]],
        "runc": [["libc6"], ["libseccomp2"]],
        "libseccomp2": [["libc6"]],
        "libc6": [],
        "etcd-server": [["adduser"]],
        "adduser": [["passwd"]],  # passwd: not in the bundle, assumed present (essential)
    }))
    need = [d.package for d in packages_to_install(b, ("containerd",), installed={"libc6"})]
    assert need == ["containerd", "libseccomp2", "runc"]
    assert packages_to_install(b, ("containerd",), installed={"containerd", "runc"}) == []
    with pytest.raises(ConfigError, match="package conntrack is needed but not in the bundle"):
        packages_to_install(b, ("conntrack",), installed=set())
