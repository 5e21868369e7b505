"""The lab registry: Debian's docker-registry on the bridge address, TLS from the lab CA, found and
stopped by name on down."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from cryptography import x509

from bootstrap.lab import ops, registry
from bootstrap.lab.cli import lab
from bootstrap.lab.state import LabState, lab_dir
from bootstrap.lab.testing import sh, unique_name
from bootstrap.render import containerd_registry

pytestmark = [pytest.mark.lab, pytest.mark.slow]
LabFactory = Callable[..., LabState]


@pytest.fixture(scope="module")
def one(module_lab_factory: LabFactory) -> LabState:
    return module_lab_factory(1, 0)


def _listening(pid: int) -> set[str]:
    """IPv4 'addr:port' of the TCP sockets pid listens on (from /proc/net/tcp and its fds)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out = set()
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if f[3] == "0A" and f[9] in inodes:  # LISTEN
            hexip, hexport = f[1].split(":")
            ip = ".".join(str(int(hexip[i:i + 2], 16)) for i in (6, 4, 2, 0))
            out.add(f"{ip}:{int(hexport, 16)}")
    return out


def test_status_json_names_the_registry(one: LabState) -> None:
    result = CliRunner().invoke(lab, ["status", "--name", one.name, "-o", "json"])
    assert result.exit_code == 0, result.output
    reg = json.loads(result.output)["registry"]
    assert reg["address"] == f"{one.bridge_ip}:5000" and reg["url"] == f"https://{one.bridge_ip}:5000"
    assert reg["state"] == "running"
    assert reg["ca"] == str(lab_dir(one.name) / "registry" / "ca.crt")
    image = registry.test_image_reference(one.registry_images)
    assert image, one.registry_images
    assert {"image": image, "lab": f"{one.bridge_ip}:5000/{image}"} in reg["images"]
    assert reg["images"] == [{"image": r, "lab": f"{one.bridge_ip}:5000/{r}"} for r in one.registry_images]
    text = CliRunner().invoke(lab, ["status", "--name", one.name]).output
    assert f"registry https://{one.bridge_ip}:5000 (running" in text


def test_bound_only_to_the_bridge_address(one: LabState) -> None:
    (pid,) = registry.find_pids(one.dir)
    assert _listening(pid) == {f"{one.bridge_ip}:5000"}


def test_tls_from_the_lab_ca(one: LabState) -> None:
    status, _ = registry._get(one, "/v2/")
    assert status == 200
    for image in one.registry_images:
        assert registry.manifest_status(one, image) == 200, image
    cert = x509.load_pem_x509_certificate((one.dir / "registry" / "tls.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == [one.bridge_ip]
    # Not trusted by the system roots: a client must be given the lab CA.
    conn = http.client.HTTPSConnection(one.bridge_ip, 5000, timeout=5, context=ssl.create_default_context())
    with pytest.raises(ssl.SSLCertVerificationError):
        conn.request("GET", "/v2/")
    conn.close()
    key = one.dir / "registry" / "ca.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (one.dir / "registry" / "tls.key").stat().st_mode & 0o777 == 0o600


def test_machine_pulls_a_manifest_through_the_mirror_config(one: LabState) -> None:
    """From inside a machine, with the files the renderer makes from the lab inventory."""
    gv = yaml.safe_load((Path(one.inventory_dir) / "group_vars/all/lab.yml").read_text())
    files = containerd_registry.render(gv[containerd_registry.MIRRORS_VAR],
                                       ca_pem=Path(gv[containerd_registry.CA_VAR]).read_bytes())
    m = one.machines[0].name
    for path, data in files.items():
        code, _, err = sh(one, m, f"mkdir -p $(dirname {path}) && cat > {path}", data.decode())
        assert code == 0, err
    image = registry.test_image_reference(one.registry_images)
    assert image, one.registry_images
    upstream, rest = registry.split_reference(image)
    hosts = f"/etc/containerd/certs.d/{upstream}"
    name, _, tag = rest.rpartition(":")
    # The URL containerd builds from the mirror host with override_path, verified with the `ca` it names.
    code, out, err = sh(one, m, f"""
        host=$(sed -n 's/^\\[host\\."\\(.*\\)"\\]$/\\1/p' {hosts}/hosts.toml)
        ca=$(sed -n 's/^  ca = "\\(.*\\)"$/\\1/p' {hosts}/hosts.toml)
        curl -sSf --cacert "$ca" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \\
          "$host/{name}/manifests/{tag}"
    """)
    assert code == 0, err
    assert json.loads(out)["schemaVersion"] == 2


def test_down_stops_it_even_without_a_state_file(lab_host: None, tmp_path: Path) -> None:
    name = unique_name()
    try:
        st, _ = ops.up(name, 1, 0, inventory_dir=str(tmp_path))
        assert registry.find_pids(st.dir)
        storage = Path(st.registry_storage)
        (st.dir / "state.json").unlink()  # as if `up` had crashed before writing it
    finally:
        ops.down(name)
    assert not registry.find_pids(lab_dir(name))
    assert not lab_dir(name).exists()
    assert (storage / registry.COMPLETE_MARK).is_file(), "the shared storage cache stays"


def test_skopeo_and_registry_are_the_debian_ones() -> None:
    for binary, package in (("docker-registry", "docker-registry"), ("skopeo", "skopeo")):
        path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin")
        assert path, binary
        owner = subprocess.run(["dpkg", "-S", os.path.realpath(path)], capture_output=True, text=True)
        assert owner.stdout.startswith(f"{package}:"), owner.stdout
