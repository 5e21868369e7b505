"""`kbootstrap config` and the kubeadm config rules behind it, without kubeadm (the oracle against
the real kubeadm binaries is tests/integration/test_kubeadm_config_oracle.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bootstrap.commands.common import EdgeGroup
from bootstrap.commands.config import config
from bootstrap.errors import ConfigError
from bootstrap.render.apiobjects.uploadconfig import cluster_configuration
from bootstrap.spec.load import build_spec
from bootstrap.spec.model import ClusterSpec
from bootstrap.versions import DEFAULT_KUBERNETES_VERSION, resolve_version

CLI = EdgeGroup(commands={"config": config})


@pytest.mark.parametrize(("label", "want"), [
    ("stable", DEFAULT_KUBERNETES_VERSION), ("stable-1", DEFAULT_KUBERNETES_VERSION),
    ("latest", DEFAULT_KUBERNETES_VERSION), ("stable-1.36", "v1.36.3"), ("latest-1.35", "v1.35.4"),
    ("v1.34.2", "v1.34.2"), ("1.36.1", "1.36.1"),
])
def test_version_labels_resolve_offline(label: str, want: str) -> None:
    assert resolve_version(label) == want


@pytest.mark.parametrize("label", ["stable-1.30", "stable-2", "ci/latest"])
def test_labels_we_cannot_resolve_are_one_line(label: str) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_version(label, "--kubernetes-version")
    assert "\n" not in err.value.one_line() and "--kubernetes-version" in err.value.one_line()


def spec_from(tmp_path: Path, text: str) -> ClusterSpec:
    path = tmp_path / "kubeadm.yaml"
    path.write_text(text)
    return build_spec({"apiserver_advertise_address": "192.0.2.10", "node_name": "cp1"}, str(path))


def test_label_in_a_config_file(tmp_path: Path) -> None:
    spec = spec_from(tmp_path, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
                               "kubernetesVersion: stable-1.36\n")
    assert spec.kubernetes_version == "v1.36.3"


def test_disabled_addons_skip_their_phases_and_are_uploaded_as_kubeadm_syncs_them(tmp_path: Path) -> None:
    spec = spec_from(tmp_path, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
                               "dns: {disabled: true, imageTag: v1.2.3}\n---\n"
                               "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n"
                               "skipPhases: [addon/kube-proxy]\n")
    assert set(spec.skipped_phases) == {"addon/coredns", "addon/kube-proxy"}
    doc = cluster_configuration(spec)
    assert doc["dns"] == {"disabled": True, "imageTag": "v1.2.3"} and doc["proxy"] == {"disabled": True}


def test_v1beta3_is_refused_from_v1_37_and_read_before(tmp_path: Path) -> None:
    old = "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nkubernetesVersion: {}\n"
    assert spec_from(tmp_path, old.format("v1.36.3")).kubernetes_version == "v1.36.3"
    with pytest.raises(ConfigError, match="old API spec"):
        spec_from(tmp_path, old.format("v1.37.2"))


def test_images_list_refuses_mixing_config_and_flags(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n")
    res = CliRunner().invoke(CLI, ["config", "images", "list", "--config", str(path), "--kubernetes-version", "v1"])
    assert res.exit_code == 2 and "can not mix '--config'" in res.output


def test_print_refuses_an_unknown_component_config_and_old_releases() -> None:
    res = CliRunner().invoke(CLI, ["config", "print", "init-defaults", "--component-configs", "Foo"])
    assert res.exit_code == 2 and "KubeletConfiguration" in res.output
    res = CliRunner().invoke(CLI, ["config", "print", "init-defaults", "--kubernetes-version", "v1.30.0"])
    assert res.exit_code == 2 and "v1beta3" in res.output


def test_validate_bad_file_is_one_line_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("apiVersion: kubeadm.k8s.io/v1\nkind: ClusterConfiguration\n")
    res = CliRunner().invoke(CLI, ["config", "validate", "--config", str(path)])
    assert res.exit_code == 2 and "experimental API spec" in res.output and res.output.count("\n") == 1
