"""Token discovery against a real HTTPS endpoint: a thread with http.server + ssl on 127.0.0.1,
serving a cert signed by a CA made here, stands in for the API server paths discovery reads.

Everything the server serves is built here independently of the code under test: the CA and its
SPKI hash with cryptography, the JWS with hmac, the kubeadm-certs values with AESGCM.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import os
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from bootstrap.commands.common import EdgeGroup
from bootstrap.commands.join import join
from bootstrap.commands.token import token

TOKEN_ID, TOKEN_SECRET = "abcdef", "0123456789abcdef"
TOKEN = f"{TOKEN_ID}.{TOKEN_SECRET}"
CERT_KEY = bytes(range(32))
CLI = EdgeGroup(commands={"join": join, "token": token})


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str = "kubernetes") -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, True, False, False, True, False, False, False), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def pem(obj: Any) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def ca_hash(cert: x509.Certificate) -> str:
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def jws(content: str, token_id: str, secret: str) -> str:
    header = b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    mac = hmac.new(secret.encode(), f"{header}.{b64url(content.encode())}".encode(), hashlib.sha256).digest()
    return f"{header}..{b64url(mac)}"


class FakeAPI:
    """The objects served, by path; requests seen (path, Authorization)."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.need_bearer: dict[str, str] = {}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    ca, ca_key = make_ca()
    server_key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    server_cert = (x509.CertificateBuilder().subject_name(_name("kube-apiserver")).issuer_name(ca.subject)
                   .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .sign(ca_key, hashes.SHA256()))
    d = tmp_path_factory.mktemp("apiserver")
    (d / "tls.crt").write_bytes(pem(server_cert))
    (d / "tls.key").write_bytes(pem(server_key))
    api = FakeAPI()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            auth = self.headers.get("Authorization")
            api.requests.append((self.path.split("?")[0], auth))
            path = self.path.split("?")[0]
            obj = api.objects.get(path)
            want = api.need_bearer.get(path)
            code = 404 if obj is None else (401 if want and auth != f"Bearer {want}" else 200)
            body = json.dumps(obj if code == 200 else {"kind": "Status", "code": code}).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "tls.crt", d / "tls.key")
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    endpoint = f"127.0.0.1:{httpd.server_address[1]}"
    kubeconfig = yaml.safe_dump({
        "apiVersion": "v1",
        "clusters": [{"cluster": {"certificate-authority-data": base64.b64encode(pem(ca)).decode(),
                                  "server": f"https://{endpoint}"}, "name": ""}],
        "contexts": None, "current-context": "", "kind": "Config", "preferences": {}, "users": None,
    })
    api.objects["/api/v1/namespaces/kube-public/configmaps/cluster-info"] = {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cluster-info", "namespace": "kube-public"},
        "data": {"kubeconfig": kubeconfig, f"jws-kubeconfig-{TOKEN_ID}": jws(kubeconfig, TOKEN_ID, TOKEN_SECRET)},
    }
    # What kubeadm join reads next with the bootstrap token: the cluster's own configuration.
    for name, key, doc in (
        ("kubeadm-config", "ClusterConfiguration", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
         "kubernetesVersion: v1.37.2\nnetworking: {serviceSubnet: 10.233.0.0/18, dnsDomain: corp.local}\n"),
        ("kubelet-config", "kubelet", "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
         "clusterDNS: [10.233.0.10]\nclusterDomain: corp.local\n"),
    ):
        path = f"/api/v1/namespaces/kube-system/configmaps/{name}"
        api.objects[path] = {"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": name, "namespace": "kube-system"}, "data": {key: doc}}
        api.need_bearer[path] = TOKEN
    try:
        yield {"endpoint": endpoint, "ca": ca, "ca_key": ca_key, "api": api, "kubeconfig": kubeconfig}
    finally:
        httpd.shutdown()
        httpd.server_close()


def files_under(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mode & 0o777 for p in root.rglob("*") if p.is_file()}


def run_join(root: Path, *args: str) -> Any:
    root.mkdir(exist_ok=True)
    return CliRunner().invoke(CLI, ["join", *args, "--rootfs", str(root), "--node-name", "w1",
                                    "--apiserver-advertise-address", "10.0.0.9", "--discovery-timeout", "1s"])


def test_join_with_the_right_token_and_hash_writes_the_bootstrap_kubeconfig(cluster: dict[str, Any],
                                                                             tmp_path: Path) -> None:
    ep, root = cluster["endpoint"], tmp_path / "node"
    res = run_join(root, ep, "--token", TOKEN, "--discovery-token-ca-cert-hash", ca_hash(cluster["ca"]))
    assert res.exit_code == 0, res.output
    files = files_under(root)
    assert files["etc/kubernetes/bootstrap-kubelet.conf"] == 0o600
    assert files["etc/kubernetes/pki/ca.crt"] == 0o600  # CIS profile (kubeadm profile: 0644)
    assert "var/lib/kubelet/config.yaml" in files and "var/lib/kubelet/kubeadm-flags.env" in files
    kc = yaml.safe_load((root / "etc/kubernetes/bootstrap-kubelet.conf").read_text())
    assert kc["users"] == [{"name": "tls-bootstrap-token-user", "user": {"token": TOKEN}}]
    assert kc["clusters"][0]["name"] == "kubernetes"
    assert kc["clusters"][0]["cluster"]["server"] == f"https://{ep}"
    assert base64.b64decode(kc["clusters"][0]["cluster"]["certificate-authority-data"]) == pem(cluster["ca"])
    assert (root / "etc/kubernetes/pki/ca.crt").read_bytes() == pem(cluster["ca"])
    # Discovery read cluster-info twice (insecure, then TLS-verified), anonymously.
    cm_path = "/api/v1/namespaces/kube-public/configmaps/cluster-info"
    assert [r for r in cluster["api"].requests if r[0] == cm_path][-2:] == [(cm_path, None), (cm_path, None)]
    assert TOKEN_SECRET not in res.output
    # The cluster's part of the node's config came from the cluster, read with the token.
    kubelet = yaml.safe_load((root / "var/lib/kubelet/config.yaml").read_text())
    assert (kubelet["clusterDNS"], kubelet["clusterDomain"]) == (["10.233.0.10"], "corp.local")
    config_path = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config"
    assert (config_path, f"Bearer {TOKEN}") in cluster["api"].requests
    again = run_join(root, ep, "--token", TOKEN, "--discovery-token-ca-cert-hash", ca_hash(cluster["ca"]))
    assert again.exit_code == 0, again.output
    assert "nothing to do" in again.output


def test_any_one_of_several_pins_is_enough(cluster: dict[str, Any], tmp_path: Path) -> None:
    other, _ = make_ca("other")
    res = run_join(tmp_path / "n", cluster["endpoint"], "--token", TOKEN, "--discovery-token-ca-cert-hash",
                   ca_hash(other), "--discovery-token-ca-cert-hash", ca_hash(cluster["ca"]).upper().replace("SHA256",
                                                                                                          "sha256"))
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(("case", "message"), [
    ("wrong-secret", "failed to verify JWS signature of received cluster info object, can't trust this API Server"),
    ("wrong-hash", "cluster CA found in cluster-info ConfigMap is invalid: none of the public keys"),
    ("unknown-token", 'could not find a JWS signature in the cluster-info ConfigMap for token ID "zzzzzz"'),
    ("unreachable", "unable to reach the API server at https://127.0.0.1:1"),
    ("no-hash", "using token-based discovery without caCertHashes can be unsafe"),
])
def test_discovery_errors_write_nothing(cluster: dict[str, Any], tmp_path: Path, case: str, message: str) -> None:
    other, _ = make_ca("other")
    good_hash = ca_hash(cluster["ca"])
    ep, tok, hashes = cluster["endpoint"], TOKEN, ["--discovery-token-ca-cert-hash", good_hash]
    if case == "wrong-secret":
        tok = f"{TOKEN_ID}.ffffffffffffffff"
    elif case == "wrong-hash":
        hashes = ["--discovery-token-ca-cert-hash", ca_hash(other)]
    elif case == "unknown-token":
        tok = "zzzzzz.0123456789abcdef"
    elif case == "unreachable":
        ep = "127.0.0.1:1"
    elif case == "no-hash":
        hashes = []
    root = tmp_path / "node"
    root.mkdir()
    (root / "etc").mkdir()
    (root / "etc/hostname").write_text("w1\n")
    before = files_under(root)
    res = run_join(root, ep, "--token", tok, *hashes)
    assert res.exit_code != 0
    assert message in res.output, res.output
    assert "Traceback" not in res.output
    if case == "wrong-hash":
        assert ca_hash(other) not in res.output and good_hash in res.output  # kubeadm names the CA it found
    if case == "unknown-token":
        assert 'token id "zzzzzz" is invalid for this cluster or it has expired' in res.output
    assert "ffffffffffffffff" not in res.output and TOKEN_SECRET not in res.output
    assert files_under(root) == before


def test_control_plane_join_downloads_and_decrypts_kubeadm_certs(cluster: dict[str, Any], tmp_path: Path) -> None:
    api: FakeAPI = cluster["api"]
    fp_ca, fp_key = make_ca("front-proxy-ca")
    etcd_ca, etcd_key = make_ca("etcd-ca")
    from cryptography.hazmat.primitives.asymmetric import rsa

    sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    plain = {
        "ca.crt": pem(cluster["ca"]), "ca.key": pem(cluster["ca_key"]),
        "front-proxy-ca.crt": pem(fp_ca), "front-proxy-ca.key": pem(fp_key),
        "etcd-ca.crt": pem(etcd_ca), "etcd-ca.key": pem(etcd_key),
        "sa.key": pem(sa), "sa.pub": sa.public_key().public_bytes(serialization.Encoding.PEM,
                                                                 serialization.PublicFormat.SubjectPublicKeyInfo),
    }

    def seal(data: bytes) -> str:
        nonce = os.urandom(12)
        return base64.b64encode(nonce + AESGCM(CERT_KEY).encrypt(nonce, data, None)).decode()

    path = "/api/v1/namespaces/kube-system/secrets/kubeadm-certs"
    api.objects[path] = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "kubeadm-certs"},
                         "data": {k: seal(v) for k, v in plain.items()}}
    api.need_bearer[path] = TOKEN
    root = tmp_path / "cp2"
    args = [cluster["endpoint"], "--token", TOKEN, "--discovery-token-ca-cert-hash", ca_hash(cluster["ca"]),
            "--control-plane", "--skip-phases", "control-plane-join/etcd"]
    bad = run_join(root, *args, "--certificate-key", bytes(32).hex())
    assert bad.exit_code != 0 and "message authentication failed" in bad.output
    assert files_under(root) == {}
    res = run_join(root, *args, "--certificate-key", CERT_KEY.hex())
    assert res.exit_code == 0, res.output
    assert (path, f"Bearer {TOKEN}") in api.requests
    pki = root / "etc/kubernetes/pki"
    assert (pki / "ca.key").read_bytes() == plain["ca.key"]
    assert (pki / "etcd/ca.crt").read_bytes() == plain["etcd-ca.crt"]
    files = files_under(root)
    for rel in ("apiserver.crt", "apiserver-etcd-client.key", "etcd/peer.crt", "front-proxy-client.crt"):
        assert f"etc/kubernetes/pki/{rel}" in files
    for conf in ("admin.conf", "controller-manager.conf", "scheduler.conf", "bootstrap-kubelet.conf"):
        assert files[f"etc/kubernetes/{conf}"] == 0o600
    assert "etc/kubernetes/super-admin.conf" not in files  # kubeadm join never writes it
    assert "etc/kubernetes/manifests/kube-apiserver.yaml" in files
    assert all(m == 0o600 for f, m in files.items() if f.endswith(".key"))


def test_token_create_print_join_command(cluster: dict[str, Any], tmp_path: Path) -> None:
    admin = tmp_path / "admin.conf"
    admin.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "a@kubernetes",
        "clusters": [{"name": "kubernetes", "cluster": {"server": "https://10.0.0.1:6443",
                      "certificate-authority-data": base64.b64encode(pem(cluster["ca"])).decode()}}],
        "contexts": [{"name": "a@kubernetes", "context": {"cluster": "kubernetes", "user": "a"}}],
        "users": [{"name": "a", "user": {"token": "x"}}],
    }))
    res = CliRunner().invoke(CLI, ["token", "create", TOKEN, "--print-join-command", "--dry-run",
                                   "--kubeconfig", str(admin)])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == (f"kubeadm join 10.0.0.1:6443 --token {TOKEN} --discovery-token-ca-cert-hash "
                                  f"{ca_hash(cluster['ca'])}")
    key = CERT_KEY.hex()
    res = CliRunner().invoke(CLI, ["token", "create", TOKEN, "--print-join-command", "--certificate-key", key,
                                   "--dry-run", "--kubeconfig", str(admin)])
    assert res.stdout.strip().endswith(f"--control-plane --certificate-key {key}")
    # No API server at 10.0.0.1 here: a real create says so in one line.
    admin.write_text(admin.read_text().replace("10.0.0.1:6443", "127.0.0.1:1"))
    res = CliRunner().invoke(CLI, ["token", "create", "--kubeconfig", str(admin)])
    assert res.exit_code == 1 and "unable to reach the API server at https://127.0.0.1:1" in res.output
