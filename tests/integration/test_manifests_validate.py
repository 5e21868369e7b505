"""Every rendered manifest passes REAL `kubernetes-validate --strict` for its Kubernetes version.

kubernetes-validate ships OpenAPI schemas for v1.25 .. v1.37 (checked at import below), so every
minor we support (v1.27 .. v1.34) is validated against its own schema, not a neighbour's.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bootstrap.render import etcd as etcdr
from bootstrap.render import kubelet as k
from bootstrap.render import manifests as m
from bootstrap.spec.load import build_spec
from bootstrap.versions import MAX_MINOR, MIN_MINOR

pytestmark = pytest.mark.skipif(shutil.which("kubernetes-validate") is None,
                                reason="kubernetes-validate is not installed (pip install kubernetes-validate)")


def shipped_minors() -> set[int]:
    import kubernetes_validate

    schema_dir = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    return {int(p.name.split(".")[1]) for p in schema_dir.iterdir() if p.name.endswith("-local-strict")}


def schema_version(minor: int) -> str:
    minors = shipped_minors()
    nearest = minor if minor in minors else min(minors, key=lambda x: abs(x - minor))
    return f"1.{nearest}.0"


def validate(*paths: Path, version: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubernetes-validate", "--strict", "-k", version, *map(str, paths)],
                          capture_output=True, text=True, timeout=120)


def test_schemas_cover_every_supported_minor() -> None:
    assert set(range(MIN_MINOR, MAX_MINOR + 1)) <= shipped_minors()


@pytest.mark.parametrize("hardening", ["cis", "kubeadm"])
@pytest.mark.parametrize("minor", list(range(MIN_MINOR, MAX_MINOR + 1)))
def test_manifests_validate_strict(tmp_path: Path, minor: int, hardening: str) -> None:
    spec = build_spec({"apiserver_advertise_address": "10.0.0.5", "node_name": "cp1",
                       "pod_network_cidr": "10.244.0.0/16", "kubernetes_version": f"v1.{minor}.0",
                       "hardening": hardening})
    files = {f"{name}.yaml": data for name, data in m.control_plane_manifests(
        spec, {"/etc/ca-certificates", "/etc/pki/tls/certs"}.__contains__,
        environ={"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "10.0.0.0/8"}).items()}
    files["etcd.yaml"] = etcdr.etcd_manifest(spec)
    paths = []
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)
    version = schema_version(minor)
    proc = validate(*paths, version=version)
    assert proc.returncode == 0, f"{version}:\n{proc.stdout}\n{proc.stderr}"
    for name in files:
        assert f"{name} passed for resource pod/{name.removesuffix('.yaml')} against version 1.{minor}" \
            in proc.stdout, proc.stdout


def test_strict_validation_catches_an_unknown_field(tmp_path: Path) -> None:
    """Guard against a vacuous pass: the same call rejects a manifest with a misspelt field."""
    spec = build_spec({"apiserver_advertise_address": "10.0.0.5", "node_name": "cp1"})
    bad = m.scheduler_pod(spec, environ={})
    bad["spec"]["containers"][0]["imagePulPolicy"] = "Always"
    path = tmp_path / "bad.yaml"
    path.write_bytes(m.pod_yaml(spec, bad))
    proc = validate(path, version=schema_version(spec.version.minor))
    assert proc.returncode != 0 and "imagePulPolicy" in proc.stdout + proc.stderr


def test_kubelet_configuration_kind_is_unknown_to_kubernetes_validate(tmp_path: Path) -> None:
    """KubeletConfiguration is a component config, not an API resource: kubernetes-validate has no
    schema for it. Pin that, so we notice if it ever gains one (then validate config.yaml here)."""
    spec = build_spec({"apiserver_advertise_address": "10.0.0.5", "node_name": "cp1"})
    path = tmp_path / "config.yaml"
    path.write_bytes(k.kubelet_config_yaml(spec)[0])
    proc = validate(path, version=schema_version(spec.version.minor))
    if proc.returncode == 0 and "passed" in proc.stdout:
        pytest.fail("kubernetes-validate now knows KubeletConfiguration: validate config.yaml strictly here")
    pytest.skip(f"kubernetes-validate has no KubeletConfiguration schema: {proc.stdout.strip()[:200]}")
