"""Lab registry naming, mirrors, components manifest reading, config; the test image archive."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from bootstrap.lab import inventory, registry, testimage
from bootstrap.lab.state import LabState, Machine
from bootstrap.render import containerd_registry


def _lab(tmp_path: Path, images: list[str] | None = None) -> LabState:
    m = Machine("dev-cp1", "control-plane", "10.9.9.10", "kb-dev-cp1", "kvabcdefc1")
    return LabState(name="dev", subnet="10.9.9.0/24", bridge="kb-x", bridge_ip="10.9.9.1", domain="dev.lab",
                    rootfs="/nonexistent", inventory_dir=str(tmp_path), machines=[m],
                    registry_images=images or [])


def test_split_reference_with_docker_defaults() -> None:
    assert registry.split_reference("registry.k8s.io/pause:3.10.1") == ("registry.k8s.io", "pause:3.10.1")
    assert registry.split_reference("busybox:1") == ("docker.io", "library/busybox:1")
    assert registry.split_reference("rancher/flannel:v1") == ("docker.io", "rancher/flannel:v1")
    assert registry.split_reference("10.0.0.1:5000/x/y:1") == ("10.0.0.1:5000", "x/y:1")
    assert registry.split_reference("localhost/x:1") == ("localhost", "x:1")


def test_images_kept_under_their_full_name(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    assert registry.lab_reference(lab, "registry.k8s.io/pause:3.10.1") == "10.9.9.1:5000/registry.k8s.io/pause:3.10.1"
    assert registry.lab_reference(lab, "busybox:1") == "10.9.9.1:5000/docker.io/library/busybox:1"


def test_mirrors_render_to_hosts_toml_pointing_at_the_lab(tmp_path: Path) -> None:
    lab = _lab(tmp_path, ["docker.io/flannel/flannel:v0.26", "registry.k8s.io/pause:3.10.1"])
    m = registry.mirrors(lab)
    assert [e["prefix"] for e in m] == ["docker.io", "registry.k8s.io"]
    files = containerd_registry.render(m)
    text = files["/etc/containerd/certs.d/registry.k8s.io/hosts.toml"].decode()
    assert '[host."https://10.9.9.1:5000/v2/registry.k8s.io"]' in text and "override_path = true" in text
    # registry.k8s.io is mirrored even before an image of it is in the lab registry
    assert [e["prefix"] for e in registry.mirrors(_lab(tmp_path))] == ["registry.k8s.io"]


def test_lab_vars_name_the_registry_ca_and_cgroup_v1(tmp_path: Path) -> None:
    lab = _lab(tmp_path, ["registry.k8s.io/pause:3.10.1"])
    v = inventory.lab_vars(lab)
    assert v["kbootstrap_registry_ca"] == str(lab.dir / "registry" / "ca.crt")
    assert v["containerd_registries_mirrors"] == registry.mirrors(lab)
    assert v["kubelet_fail_cgroup_v1"] is False
    assert isinstance(v["kbootstrap_containerd_restrict_oom_score_adj"], bool)


def test_capability_from_status() -> None:
    assert not inventory.host_has_capability(24, "CapBnd:\t000001fffeffffff\n")
    assert inventory.host_has_capability(24, "CapBnd:\t000001ffffffffff\n")


def test_components_manifest_read_defensively(tmp_path: Path) -> None:
    rel = tmp_path / "v1.37.2"
    (rel / "images").mkdir(parents=True)
    (rel / "images" / "pause.tar").write_bytes(b"x")
    (rel / "manifest.json").write_text(json.dumps({"schema": 1, "artifacts": [
        {"kind": "image", "name": "pause", "image": "registry.k8s.io/pause:3.10.1", "path": "images/pause.tar",
         "sha256": "ab"},
        {"kind": "image", "name": "gone", "image": "registry.k8s.io/gone:1", "path": "images/gone.tar", "sha256": "cd"},
        {"kind": "binary", "name": "kubelet", "path": "bin/kubelet", "sha256": "ef"},
        {"kind": "image", "image": 7},
    ]}))
    (tmp_path / "v0.0.0").mkdir()
    (tmp_path / "v0.0.0" / "manifest.json").write_text("not json")
    imgs = registry.components_images(tmp_path)
    assert [(i.reference, i.archive, i.sha256) for i in imgs] == [
        ("registry.k8s.io/pause:3.10.1", rel / "images" / "pause.tar", "ab")]
    assert registry.components_images(tmp_path / "missing") == []


def test_storage_key_follows_the_image_set() -> None:
    a = registry.Image("r/a:1", Path("/a"), "1")
    b = registry.Image("r/b:1", Path("/b"), "2")
    assert registry.storage_key([a, b]) == registry.storage_key([b, a])
    assert registry.storage_key([a]) != registry.storage_key([a, b])
    assert registry.storage_key([a]) != registry.storage_key([registry.Image("r/a:1", Path("/a"), "9")])


def test_config_binds_only_the_bridge_address_and_is_read_only(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    c = registry.config(lab, Path("/store"), readonly=True)
    assert c["http"]["addr"] == "10.9.9.1:5000"
    assert c["http"]["tls"]["certificate"].endswith("/registry/tls.crt")
    assert c["storage"]["maintenance"]["readonly"] == {"enabled": True}
    assert registry.config(lab, Path("/store"), readonly=False)["storage"]["maintenance"]["readonly"] == {
        "enabled": False}


def test_test_image_is_a_valid_deterministic_oci_archive() -> None:
    data = testimage.archive_bytes(b"\x7fELF fake busybox")
    assert data == testimage.archive_bytes(b"\x7fELF fake busybox")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    for name, blob in files.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(blob).hexdigest() == name.rsplit("/", 1)[1]
    (entry,) = json.loads(files["index.json"])["manifests"]
    assert entry["annotations"]["io.containerd.image.name"] == testimage.REFERENCE
    manifest = json.loads(files[f"blobs/sha256/{entry['digest'][7:]}"])
    config = json.loads(files[f"blobs/sha256/{manifest['config']['digest'][7:]}"])
    assert config["config"]["Cmd"] == testimage.CMD
    assert config["rootfs"]["diff_ids"] == [manifest["layers"][0]["digest"]]
    with tarfile.open(fileobj=io.BytesIO(files[f"blobs/sha256/{manifest['layers'][0]['digest'][7:]}"])) as layer:
        names = {m.name: m for m in layer.getmembers()}
    assert names["bin/busybox"].mode == 0o755 and names["bin/sh"].linkname == "busybox"


def test_test_image_is_found_among_the_images() -> None:
    imgs = ["registry.k8s.io/pause:3.10.2", "kbootstrap.test/busybox:1.35.0-4", "registry.k8s.io/etcd:3.7.0-0"]
    assert registry.test_image_reference(imgs) == "kbootstrap.test/busybox:1.35.0-4"
    assert registry.test_image_reference(["registry.k8s.io/pause:3.10.2"]) is None


def test_own_test_image_only_before_components_are_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not testimage.BUSYBOX.is_file():
        pytest.skip("busybox-static is not installed")
    monkeypatch.setenv("KBOOTSTRAP_COMPONENTS_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("KBOOTSTRAP_CACHE_DIR", str(tmp_path / "cache"))
    (img,) = registry.lab_images()
    assert img.reference == testimage.REFERENCE and img.archive.is_file()
    assert img.sha256 == hashlib.sha256(img.archive.read_bytes()).hexdigest()
