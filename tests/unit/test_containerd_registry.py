"""containerd hosts.toml rendering from Kubespray's containerd_registries_mirrors."""

from __future__ import annotations

import base64
import datetime
import tomllib
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bootstrap.errors import ConfigError
from bootstrap.render import containerd_registry as cr


def _ca_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


KUBESPRAY_DOC_EXAMPLE: list[dict[str, Any]] = [
    {"prefix": "docker.io", "mirrors": [
        {"host": "https://mirror.gcr.io", "capabilities": ["pull", "resolve"], "skip_verify": False},
        {"host": "https://registry-1.docker.io", "capabilities": ["pull", "resolve"], "skip_verify": False},
    ], "server": "https://mirror.example.org"},
    {"prefix": "172.19.16.11:5000", "mirrors": [
        {"host": "http://172.19.16.11:5000", "capabilities": ["pull", "resolve"], "skip_verify": True},
    ]},
]


def _load(files: dict[str, bytes], path: str) -> dict[str, Any]:
    return tomllib.loads(files[path].decode())


def test_kubespray_examples_render_what_its_template_does() -> None:
    files = cr.render(KUBESPRAY_DOC_EXAMPLE)
    assert sorted(files) == ["/etc/containerd/certs.d/172.19.16.11:5000/hosts.toml",
                             "/etc/containerd/certs.d/docker.io/hosts.toml"]
    doc = _load(files, "/etc/containerd/certs.d/docker.io/hosts.toml")
    assert doc == {
        "server": "https://mirror.example.org",
        "host": {
            "https://mirror.gcr.io": {"capabilities": ["pull", "resolve"], "skip_verify": False,
                                      "override_path": False},
            "https://registry-1.docker.io": {"capabilities": ["pull", "resolve"], "skip_verify": False,
                                             "override_path": False},
        },
    }
    # mirror order is the order containerd tries them: kept
    text = files["/etc/containerd/certs.d/docker.io/hosts.toml"].decode()
    assert text.index("mirror.gcr.io") < text.index("registry-1.docker.io")
    local = _load(files, "/etc/containerd/certs.d/172.19.16.11:5000/hosts.toml")
    assert local["server"] == "https://172.19.16.11:5000"  # Kubespray's default: https:// + prefix
    assert local["host"]["http://172.19.16.11:5000"]["skip_verify"] is True


def test_defaults_string_capability_and_auth_header() -> None:
    files = cr.render([{"prefix": "registry.k8s.io", "mirrors": [
        {"host": "https://m1:5000"},
        {"host": "https://m2", "capabilities": "pull", "override_path": "true",
         "auth": {"username": "u", "password": "p@ss"}},
    ]}])
    doc = _load(files, "/etc/containerd/certs.d/registry.k8s.io/hosts.toml")
    assert doc["server"] == "https://registry.k8s.io"
    assert doc["host"]["https://m1:5000"]["capabilities"] == ["pull", "resolve"]
    m2 = doc["host"]["https://m2"]
    assert m2["capabilities"] == ["pull"] and m2["override_path"] is True
    assert m2["header"]["authorization"] == "Basic " + base64.b64encode(b"u:p@ss").decode()
    assert cr.file_mode("/etc/containerd/certs.d/registry.k8s.io/hosts.toml") == 0o640


def test_ca_written_per_registry_and_named_by_https_mirrors_only() -> None:
    ca = _ca_pem()
    files = cr.render([
        {"prefix": "registry.k8s.io", "mirrors": [{"host": "https://10.1.2.1:5000"}, {"host": "http://plain"}]},
        {"prefix": "docker.io", "mirrors": [{"host": "https://10.1.2.1:5000"}]},
    ], ca_pem=ca, config_path="/etc/containerd/certs.d/")
    k8s = "/etc/containerd/certs.d/registry.k8s.io"
    assert files[f"{k8s}/{cr.CA_FILE}"] == ca == files[f"/etc/containerd/certs.d/docker.io/{cr.CA_FILE}"]
    doc = _load(files, f"{k8s}/hosts.toml")
    assert doc["host"]["https://10.1.2.1:5000"]["ca"] == f"{k8s}/{cr.CA_FILE}"
    assert "ca" not in doc["host"]["http://plain"]
    assert cr.file_mode(f"{k8s}/{cr.CA_FILE}") == 0o644


def test_default_prefix_has_no_server() -> None:
    doc = _load(cr.render([{"prefix": "_default", "mirrors": [{"host": "https://m"}]}]),
                "/etc/containerd/certs.d/_default/hosts.toml")
    assert "server" not in doc and list(doc["host"]) == ["https://m"]


def test_nothing_to_render() -> None:
    assert cr.render(None) == {} == cr.render([])


@pytest.mark.parametrize(("value", "path"), [
    ({"prefix": "x"}, "containerd_registries_mirrors"),
    ([{"mirrors": []}], "containerd_registries_mirrors[0].prefix"),
    ([{"prefix": "../etc", "mirrors": [{"host": "https://m"}]}], "containerd_registries_mirrors[0].prefix"),
    ([{"prefix": "a/b", "mirrors": [{"host": "https://m"}]}], "containerd_registries_mirrors[0].prefix"),
    ([{"prefix": "r", "mirrors": []}], "containerd_registries_mirrors[0].mirrors"),
    ([{"prefix": "r", "mirrors": [{"host": "m:5000"}]}], "containerd_registries_mirrors[0].mirrors[0].host"),
    ([{"prefix": "r", "mirrors": [{"host": "ftp://m"}]}], "containerd_registries_mirrors[0].mirrors[0].host"),
    ([{"prefix": "r", "mirrors": [{"host": "https://m", "capabilities": ["pul"]}]}],
     "containerd_registries_mirrors[0].mirrors[0].capabilities"),
    ([{"prefix": "r", "mirrors": [{"host": "https://m", "skip_verify": "maybe"}]}],
     "containerd_registries_mirrors[0].mirrors[0].skip_verify"),
    ([{"prefix": "r", "mirrors": [{"host": "https://m", "insecure": True}]}],
     "containerd_registries_mirrors[0].mirrors[0].insecure"),
    ([{"prefix": "r", "mirrors": [{"host": "https://m"}], "endpoint": "x"}], "containerd_registries_mirrors[0].endpoint"),
    ([{"prefix": "r", "mirrors": [{"host": "https://m"}, {"host": "https://m"}]}],
     "containerd_registries_mirrors[0].mirrors[1].host"),
    ([{"prefix": "r", "mirrors": [{"host": "https://m"}]}, {"prefix": "r", "mirrors": [{"host": "https://n"}]}],
     "containerd_registries_mirrors[1].prefix"),
    ([{"prefix": "r", "mirrors": [{"host": "https://m", "auth": {"username": "u"}}]}],
     "containerd_registries_mirrors[0].mirrors[0].auth"),
])
def test_bad_input_names_the_field(value: Any, path: str) -> None:
    with pytest.raises(ConfigError) as e:
        cr.render(value)
    assert e.value.path == path


def test_auth_error_does_not_show_the_password() -> None:
    with pytest.raises(ConfigError) as e:
        cr.render([{"prefix": "r", "mirrors": [{"host": "https://m", "auth": {"password": "s3cret"}}]}])
    assert "s3cret" not in e.value.one_line()


def test_ca_must_be_a_certificate() -> None:
    with pytest.raises(ConfigError) as e:
        cr.render([{"prefix": "r", "mirrors": [{"host": "https://m"}]}], ca_pem=b"not a cert")
    assert e.value.path == cr.CA_VAR


def test_strings_are_escaped() -> None:
    files = cr.render([{"prefix": "r", "mirrors": [{"host": 'https://m/p"ath'}]}])
    assert list(_load(files, "/etc/containerd/certs.d/r/hosts.toml")["host"]) == ['https://m/p"ath']
