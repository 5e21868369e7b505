"""kubeadm's patches directory: file names, order, and the three patch types (pure logic; the real
kubeadm judges the results in tests/lab/test_kubeadm_oracle.py and tests/integration/test_kubeadm_addon_oracle.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bootstrap.errors import ConfigError
from bootstrap.render.patching import PatchError, apply_patch, apply_patch_sets
from bootstrap.spec.model import PatchSet
from bootstrap.spec.patches import parse_file_name, read_patches_dir

REPO = Path(__file__).resolve().parents[2]
POD = {"metadata": {"name": "kube-apiserver", "labels": {"a": "1"}},
       "spec": {"containers": [{"name": "kube-apiserver", "command": ["kube-apiserver", "--x=1"],
                                "volumeMounts": [{"name": "a", "mountPath": "/a"}, {"name": "b", "mountPath": "/b"}]}],
                "volumes": [{"name": "a", "hostPath": {"path": "/a"}}, {"name": "b", "hostPath": {"path": "/b"}}]}}


@pytest.mark.parametrize(("name", "expected"), [
    ("kube-apiserver.yaml", ("kube-apiserver", "strategic")),
    ("kube-apiserver0+merge.json", ("kube-apiserver", "merge")),
    ("etcd-more+json.yaml", ("etcd", "json")),
    ("kubeletconfiguration+strategic.yaml", ("kubeletconfiguration", "strategic")),
    ("README.txt", None),
    ("something.yaml", None),
    ("kube-apiserver.yml", None),
])
def test_file_names_as_kubeadm_reads_them(name: str, expected: tuple[str, str] | None) -> None:
    assert parse_file_name(name, "patches") == expected


def test_a_plus_without_a_known_type_is_an_error() -> None:
    with pytest.raises(ConfigError, match="unknown or missing patch type after"):
        parse_file_name("kube-apiserver+foo.yaml", "patches")


def test_files_are_read_in_walk_order_and_addon_targets_follow_the_release(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "etcd0.yaml").write_text("metadata: {labels: {x: y}}\n")
    (tmp_path / "kube-scheduler.yaml").write_text("a: 1\n---\nb: 2\n")
    (tmp_path / "etcd.yaml").write_text("metadata: {}\n")
    (tmp_path / "kubeproxydaemonset.yaml").write_text("metadata: {}\n")
    (tmp_path / "empty-etcd.yaml").write_text("")
    (tmp_path / "etcd-empty.yaml").write_text("")
    sets, ignored = read_patches_dir(str(tmp_path), "patches", 37)
    assert [s.file for s in sets] == ["etcd.yaml", "kube-scheduler.yaml", "kubeproxydaemonset.yaml", "etcd0.yaml"]
    assert sets[1].patches == ({"a": 1}, {"b": 2})
    assert ignored == ("empty-etcd.yaml", "etcd-empty.yaml")
    sets, ignored = read_patches_dir(str(tmp_path), "patches", 36)  # not a target before v1.37
    assert "kubeproxydaemonset.yaml" in ignored and all(s.target != "kubeproxydaemonset" for s in sets)


def test_a_missing_directory_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"could not list patch files for path .*no such file or directory"):
        read_patches_dir(str(tmp_path / "nope"), "patches.directory", 37)


def test_strategic_merge_puts_new_list_items_first_and_merges_by_key() -> None:
    patch = {"spec": {"containers": [{"name": "kube-apiserver",
                                      "volumeMounts": [{"name": "c", "mountPath": "/c"},
                                                       {"mountPath": "/b", "readOnly": True}]}],
                      "volumes": [{"name": "a", "$patch": "delete"}]}}
    out = apply_patch(POD, "strategic", patch)
    mounts = out["spec"]["containers"][0]["volumeMounts"]
    # apimachinery's order: the patch's items in its order, the others where they were, a new item
    # going before the first one it cannot be compared with.
    assert [m["mountPath"] for m in mounts] == ["/c", "/a", "/b"]
    assert mounts[2] == {"name": "b", "mountPath": "/b", "readOnly": True}
    assert [v["name"] for v in out["spec"]["volumes"]] == ["b"]
    assert out["spec"]["containers"][0]["command"] == ["kube-apiserver", "--x=1"]  # not a merge list: kept
    assert POD["spec"]["volumes"][0]["name"] == "a"  # the input is not changed


def test_strategic_merge_replaces_plain_lists_and_deletes_nulls() -> None:
    out = apply_patch(POD, "strategic", {"metadata": {"labels": {"a": None, "b": "2"}},
                                         "spec": {"containers": [{"name": "kube-apiserver", "command": ["x"]}]}})
    assert out["metadata"]["labels"] == {"b": "2"}
    assert out["spec"]["containers"][0]["command"] == ["x"]
    replaced = apply_patch(POD, "strategic", {"metadata": {"labels": {"$patch": "replace", "z": "9"}}})
    assert replaced["metadata"]["labels"] == {"z": "9"}


def test_merge_patch_and_json_patch() -> None:
    assert apply_patch({"a": {"b": 1, "c": 2}}, "merge", {"a": {"b": None, "d": [1]}}) == {"a": {"c": 2, "d": [1]}}
    ops = [{"op": "add", "path": "/spec/containers/0/command/-", "value": "--y=2"},
           {"op": "replace", "path": "/metadata/labels/a", "value": "3"},
           {"op": "move", "from": "/metadata/labels/a", "path": "/metadata/labels/c"},
           {"op": "test", "path": "/metadata/labels/c", "value": "3"}]
    out = apply_patch(POD, "json", ops)
    assert out["spec"]["containers"][0]["command"][-1] == "--y=2"
    assert out["metadata"]["labels"] == {"c": "3"}
    with pytest.raises(PatchError, match="missing key"):
        apply_patch(POD, "json", [{"op": "replace", "path": "/metadata/nope", "value": 1}])


def test_a_patch_that_does_not_apply_names_its_file() -> None:
    sets = [PatchSet(file="kube-apiserver+json.yaml", target="kube-apiserver", patch_type="json",
                     patches=([{"op": "remove", "path": "/spec/nope"}],))]
    with pytest.raises(ConfigError, match=r"patches: kube-apiserver\+json\.yaml: could not apply .*json-patch"):
        apply_patch_sets(POD, "kube-apiserver", sets)
    assert apply_patch_sets(POD, "etcd", sets) == POD  # another target's patches do not apply


def test_a_patch_that_does_not_apply_stops_init_in_one_line(tmp_path: Path) -> None:
    # As kubeadm: the control-plane phase fails (what earlier phases wrote stays; a rerun converges).
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "kube-apiserver+json.yaml").write_text("- op: remove\n  path: /spec/nope\n")
    proc = subprocess.run([sys.executable, "-m", "bootstrap.cli", "init", "--rootfs", str(tmp_path / "root"),
                           "--apiserver-advertise-address", "10.0.0.10", "--node-name", "n1",
                           "--patches", str(tmp_path / "p")], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "kube-apiserver+json.yaml" in lines[0] and "Traceback" not in proc.stderr
