"""`kbootstrap config` and the kubeadm config rules behind it, without kubeadm (the oracle against
the real kubeadm binaries is tests/integration/test_kubeadm_config_oracle.py)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import NoReturn

import pytest
from click.testing import CliRunner, Result

from bootstrap.commands.common import EdgeGroup
from bootstrap.commands.config import config
from bootstrap.errors import ConfigError
from bootstrap.render import kubeadm_migrate as km
from bootstrap.render.apiobjects.uploadconfig import cluster_configuration
from bootstrap.spec.load import build_spec
from bootstrap.spec.model import ClusterSpec
from bootstrap.versions import DEFAULT_KUBERNETES_VERSION, KubeVersion, resolve_version

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


# ---- config migrate (the oracle against kubeadm itself: tests/integration/test_kubeadm_config_oracle.py) ----
NODE = {"name": "cp1", "criSocket": "unix:///run/containerd/containerd.sock"}
INIT4 = {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "InitConfiguration",
         "bootstrapTokens": [{"token": "abcdef.0123456789abcdef"}],
         "localAPIEndpoint": {"advertiseAddress": "192.0.2.10"}, "nodeRegistration": dict(NODE)}
JOIN4 = {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "JoinConfiguration", "nodeRegistration": dict(NODE),
         "discovery": {"bootstrapToken": {"token": "abcdef.0123456789abcdef", "apiServerEndpoint": "192.0.2.10:6443",
                                          "unsafeSkipCAVerification": True}}}


def cluster(api: str = "kubeadm.k8s.io/v1beta4", **fields: object) -> dict[str, object]:
    return {"apiVersion": api, "kind": "ClusterConfiguration", "kubernetesVersion": "v1.36.3", **fields}


def no_host() -> km.Host:
    """A machine that must not be asked: every value is in the file."""
    def ask(*_: object) -> NoReturn:
        raise AssertionError("looked the machine up although the file gave the value")
    return km.Host(hostname=ask, default_address=ask, cri_sockets=ask, new_token=ask, file_exists=ask)


def host(address: str | None = "192.0.2.99", sockets: tuple[str, ...] = ()) -> km.Host:
    return km.Host(hostname=lambda: "Node-A", default_address=lambda: address, cri_sockets=lambda: list(sockets),
                   new_token=lambda: "zzzzzz.0123456789abcdef", file_exists=lambda p: p == "/etc/kubernetes/x.conf")


def run(docs: list[dict[str, object]], release: str = "v1.36.3", machine: km.Host | None = None,
        **kw: bool) -> km.Migrated:
    return km.migrate(docs, KubeVersion.parse(release), machine or no_host(), **kw)


def test_migrate_v1beta3_maps_become_sorted_args_and_the_timeout_moves() -> None:
    init3 = {**INIT4, "apiVersion": "kubeadm.k8s.io/v1beta3",
             "nodeRegistration": {**NODE, "kubeletExtraArgs": {"v": "2", "max-pods": "50"}}}
    old = cluster("kubeadm.k8s.io/v1beta3", apiServer={"timeoutForControlPlane": "7m30s",
                                                        "extraArgs": {"b": "2", "a": "1"}},
                  etcd={"external": {"endpoints": ["https://192.0.2.1:2379"], "caFile": "/c", "certFile": "/c",
                                     "keyFile": "/k"}})
    init, clus = run([init3, old]).documents
    assert init["apiVersion"] == clus["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert init["timeouts"]["controlPlaneComponentHealthCheck"] == "7m30s"
    assert init["nodeRegistration"]["kubeletExtraArgs"] == [{"name": "max-pods", "value": "50"},
                                                            {"name": "v", "value": "2"}]
    assert init["nodeRegistration"]["imagePullSerial"] is True  # v1beta3 has no field: the conversion sets it
    assert clus["apiServer"] == {"extraArgs": [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]}
    assert clus["etcd"]["external"]["httpEndpoints"] == ["https://192.0.2.1:2379"]
    assert clus["proxy"] == {} and clus["encryptionAlgorithm"] == "RSA-2048"


@pytest.mark.parametrize(("release", "want"), [("v1.35.4", "0s"), ("v1.36.3", "0s"), ("v1.37.2", "10m0s")])
def test_migrate_keeps_kubeadms_health_check_timeout_bug(release: str, want: str) -> None:
    """v1.35/v1.36's migrate mutator copies the (empty) v1beta3 timeout over a v1beta4 file's."""
    init = {**INIT4, "timeouts": {"controlPlaneComponentHealthCheck": "10m"}}
    out = run([init, cluster(kubernetesVersion=release)], release).documents[0]
    assert out["timeouts"]["controlPlaneComponentHealthCheck"] == want


def test_migrate_a_v1beta3_cluster_timeout_reaches_the_join_document() -> None:
    old = cluster("kubeadm.k8s.io/v1beta3", apiServer={"timeoutForControlPlane": "9m"})
    docs = run([INIT4, old, JOIN4], "v1.35.4").documents
    assert [d["kind"] for d in docs] == ["InitConfiguration", "ClusterConfiguration", "JoinConfiguration"]
    assert docs[2]["timeouts"]["controlPlaneComponentHealthCheck"] == "9m0s"
    assert docs[2]["nodeRegistration"]["taints"] is None  # a worker: no control-plane taint, printed as null


def test_migrate_asks_the_machine_only_for_what_the_file_leaves_out() -> None:
    init, _ = run([cluster()], machine=host(sockets=(km.KNOWN_CRI_SOCKETS[1],))).documents
    assert init["nodeRegistration"]["name"] == "node-a"  # the hostname, lower-cased as kubeadm does
    assert init["nodeRegistration"]["criSocket"] == km.KNOWN_CRI_SOCKETS[1]  # the one answering
    assert init["bootstrapTokens"][0]["token"] == "zzzzzz.0123456789abcdef"
    assert init["localAPIEndpoint"] == {"advertiseAddress": "192.0.2.99", "bindPort": 6443}
    result = run([cluster()], machine=host(address=None))
    assert result.documents[0]["localAPIEndpoint"]["advertiseAddress"] == "0.0.0.0"
    assert any("no default route" in w for w in result.warnings)
    with pytest.raises(ConfigError, match="multiple CRI endpoints"):
        run([cluster()], machine=host(sockets=km.KNOWN_CRI_SOCKETS[:2]))


def test_migrate_upgrade_configuration_per_release() -> None:
    upgrade = {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "UpgradeConfiguration"}
    skipped = run([upgrade], "v1.35.4")
    assert skipped.documents == [] and any("skips it" in w for w in skipped.warnings)
    with pytest.raises(ConfigError, match="could not find a mutator"):
        run([upgrade], "v1.36.3")
    (out,) = run([upgrade], "v1.37.2").documents
    assert out["plan"] == {"etcdUpgrade": True} and out["diff"] == {}
    assert out["apply"]["imagePullPolicy"] == "IfNotPresent" and out["timeouts"]["upgradeManifests"] == "5m0s"


def test_migrate_kubernetes_version_as_kubeadm_normalizes_it() -> None:
    assert run([INIT4, cluster(kubernetesVersion="1.36.3")]).documents[1]["kubernetesVersion"] == "v1.36.3"
    # A label never resolves to a newer minor than the kubeadm's own (validateStableVersion).
    assert run([INIT4, cluster(kubernetesVersion="stable-1")]).documents[1]["kubernetesVersion"] == "v1.36.3"
    with pytest.raises(ConfigError, match=r"only supports control plane versions >= v1\.36\.0"):
        run([INIT4, cluster(kubernetesVersion="v1.35.4")], "v1.37.2")


@pytest.mark.parametrize(("docs", "release", "match"), [
    ([cluster(notAField=1)], "v1.36.3", "notAField: unknown field"),
    ([cluster(apiServer={"extraArgs": {"v": "2"}})], "v1.36.3", "must be a list"),
    ([cluster("kubeadm.k8s.io/v1beta3", apiServer={"extraArgs": {"v": 2}})], "v1.36.3", "must be a string"),
    ([cluster("kubeadm.k8s.io/v1", kubernetesVersion="v1.37.2")], "v1.37.2", "experimental"),
    ([cluster("kubeadm.k8s.io/v1", kubernetesVersion="v1.37.2")], "v1.36.3", "unknown configuration API"),
    ([cluster("kubeadm.k8s.io/v1beta2")], "v1.36.3", "old API spec"),
    ([{**JOIN4, "discovery": {}}], "v1.36.3", "bootstrapToken or file must be set"),
    ([cluster(featureGates={"ControlPlaneKubeletLocalMode": True})], "v1.36.3", "not a valid feature name"),
    ([{**INIT4, "bootstrapTokens": [{"token": "abcdef.0123456789abcdef", "expires": "2030-01-01T00:00:00Z"}]}],
     "v1.36.3", "mutually exclusive"),
    ([cluster(), cluster()], "v1.36.3", "specified twice"),
    ([{"kind": "ClusterConfiguration"}], "v1.36.3", "apiVersion"),
])
def test_migrate_refuses_with_the_field_named(docs: list[dict[str, object]], release: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        run(docs, release, machine=host())
    assert "\n" not in err.value.one_line()


def test_migrate_experimental_api_drops_merge_method() -> None:
    v1 = cluster("kubeadm.k8s.io/v1", kubernetesVersion="v1.37.2",
                 apiServer={"extraArgs": [{"name": "a", "value": "x", "mergeMethod": "append"}]})
    init = {**INIT4, "apiVersion": "kubeadm.k8s.io/v1"}
    out = run([init, v1], "v1.37.2", allow_experimental=True).documents[1]
    assert out["apiServer"]["extraArgs"] == [{"name": "a", "value": "x"}]
    v1["apiServer"] = {"extraArgs": [{"name": "a", "value": "x", "mergeMethod": "replace"}]}
    with pytest.raises(ConfigError, match="not a merge method"):
        run([init, v1], "v1.37.2", allow_experimental=True)


@pytest.mark.parametrize(("text", "want"), [
    ("90s", timedelta(seconds=90)), ("1.5h", timedelta(minutes=90)), ("1h30m", timedelta(minutes=90)),
    ("0", timedelta(0)), ("-2m", timedelta(minutes=-2)), ("300ms", timedelta(milliseconds=300)),
    ("", None), ("10", None), ("1d", None), (".s", None),
])
def test_go_durations(text: str, want: timedelta | None) -> None:
    assert km.parse_go_duration(text) == want


def test_kubeadm_yaml_keeps_dates_as_strings_and_refuses_repeated_keys() -> None:
    (doc,) = km.parse_documents("description: 2024-01-01\nport: 10:30\n", "f.yaml")
    assert doc == {"description": "2024-01-01", "port": "10:30"}  # no timestamps, no base-60 numbers
    with pytest.raises(ConfigError, match="line 2: key 'a' is already set"):
        km.parse_documents("a: 1\na: 2\n", "f.yaml")


V1BETA3_FILE = """\
apiVersion: kubeadm.k8s.io/v1beta3
kind: InitConfiguration
bootstrapTokens: [{token: abcdef.0123456789abcdef}]
localAPIEndpoint: {advertiseAddress: 192.0.2.10}
nodeRegistration: {name: cp1, criSocket: unix:///run/containerd/containerd.sock}
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
kubernetesVersion: VERSION
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
maxPods: 50
"""


def migrate_cli(tmp_path: Path, text: str, *args: str) -> Result:
    path = tmp_path / "old.yaml"
    path.write_text(text)
    return CliRunner().invoke(CLI, ["config", "migrate", "--old-config", str(path), *args])


def test_migrate_cli_prints_the_documents_and_warns_about_component_configs(tmp_path: Path) -> None:
    res = migrate_cli(tmp_path, V1BETA3_FILE.replace("VERSION", "v1.36.3"))
    assert res.exit_code == 0, res.output
    assert res.stdout.count("---\n") == 1 and "kubernetesVersion: v1.36.3" in res.stdout
    assert "KubeletConfiguration: read and validated, not carried over" in res.stderr


def test_migrate_cli_refuses_v1beta3_for_v1_37_in_one_line(tmp_path: Path) -> None:
    res = migrate_cli(tmp_path, V1BETA3_FILE.replace("VERSION", "v1.37.2"))
    assert res.exit_code == 2 and res.stdout == ""
    assert "old API spec" in res.stderr and res.stderr.count("\n") == 1
    # The same file with v1.36's kubeadm (which reads v1beta3, and a newer cluster version): migrated.
    res = migrate_cli(tmp_path, V1BETA3_FILE.replace("VERSION", "v1.37.2"), "--kubernetes-version", "v1.36.3")
    assert res.exit_code == 0 and "kubernetesVersion: v1.37.2" in res.stdout


def test_migrate_cli_refuses_releases_it_did_not_follow(tmp_path: Path) -> None:
    res = migrate_cli(tmp_path, V1BETA3_FILE.replace("VERSION", "v1.34.2"))
    assert res.exit_code == 2 and "--kubernetes-version v1.35" in res.stderr
    res = migrate_cli(tmp_path, V1BETA3_FILE.replace("VERSION", "v1.34.2"), "--kubernetes-version", "v1.35.4")
    assert res.exit_code == 0 and "kubernetesVersion: v1.34.2" in res.stdout


def test_migrate_cli_new_config_writes_the_file_and_prints_nothing(tmp_path: Path) -> None:
    out = tmp_path / "new.yaml"
    out.write_text("old contents\n")
    res = migrate_cli(tmp_path, V1BETA3_FILE.replace("VERSION", "v1.36.3"), "--new-config", str(out))
    assert res.exit_code == 0 and res.stdout == ""
    printed = migrate_cli(tmp_path, V1BETA3_FILE.replace("VERSION", "v1.36.3"))
    assert out.read_text() == printed.stdout
    assert out.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.yaml", "old.yaml"]  # no temporary file left
    res = migrate_cli(tmp_path, V1BETA3_FILE.replace("VERSION", "v1.36.3"), "--new-config",
                      str(tmp_path / "missing" / "new.yaml"))
    assert res.exit_code == 2 and "does not exist" in res.stderr


def test_migrate_cli_bad_yaml_is_one_line(tmp_path: Path) -> None:
    res = migrate_cli(tmp_path, "kind: [unclosed\n")
    assert res.exit_code == 2 and "not valid YAML" in res.stderr and res.stderr.count("\n") == 1
